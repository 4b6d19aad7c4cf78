"""Two things moto's Glacier (5.2) lacks, added to its server for the vault tests.

moto keeps vaults, archives and jobs, but has no multipart upload and ignores the
``Range`` of ``GetJobOutput`` (it always sends the whole archive, which bakthat's reader
accepts as a fallback).  So the vault's multipart upload and ranged download would
never meet a server.  :func:`install` adds them to moto's own ``GlacierResponse``, in
moto's style (one method per operation, routed by botocore's service model), checking
what the real service checks:

* ``InitiateMultipartUpload``: a part size that is a power of two from 1 MiB to 4 GiB;
* ``UploadMultipartPart``: a ``Content-Range`` at a multiple of the part size, every
  part exactly the part size but the last, and the part's SHA-256 tree hash;
* ``CompleteMultipartUpload``: the parts contiguous, the archive size, and the whole
  archive's tree hash; the archive is then moto's like any other;
* ``GetJobOutput`` with ``Range: bytes=a-b``: 206, ``Content-Range``, and the range's
  tree hash when the range is aligned on 1 MiB (as Glacier sends it).

The tree hash is computed here independently of bakthat's (``_tree_hash``), so a wrong
one in bakthat is caught.  :func:`install` must run before the server's first Glacier
request (tests/backends/conftest.py calls it before starting the server).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

MiB = 1 << 20


def _tree_hash(data: bytes) -> str:
    """The SHA-256 tree hash of ``data`` as the Glacier documentation defines it."""
    level = [hashlib.sha256(data[offset : offset + MiB]).digest() for offset in range(0, len(data), MiB)]
    level = level or [hashlib.sha256(b"").digest()]
    while len(level) > 1:
        paired = [hashlib.sha256(level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        level = paired + ([level[-1]] if len(level) % 2 else [])
    return level[0].hex()


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, str], str]:
    body = json.dumps({"code": code, "message": message, "type": "Client"})
    return status, {"content-type": "application/json", "x-amzn-ErrorType": code, "status": status}, body


def _vault(response: Any) -> Any:
    parts = response.parsed_url.path.split("/")
    return response.glacier_backend.describe_vault(parts[parts.index("vaults") + 1])


def _uploads(vault: Any) -> dict[str, dict[str, Any]]:
    """The vault's multipart uploads in progress (kept on moto's vault, so a reset drops them)."""
    if not hasattr(vault, "bakthat_uploads"):
        vault.bakthat_uploads = {}
    return vault.bakthat_uploads


def initiate_multipart_upload(self: Any) -> tuple[int, dict[str, str], str]:
    part_size = int(self.headers.get("x-amz-part-size") or 0)
    megabytes = part_size // MiB
    if part_size % MiB or megabytes & (megabytes - 1) or not 1 <= megabytes <= 4096:
        return _error(400, "InvalidParameterValueException", f"invalid part size {part_size}")
    vault = _vault(self)
    upload_id = uuid.uuid4().hex
    _uploads(vault)[upload_id] = {
        "part_size": part_size,
        "description": self.headers.get("x-amz-archive-description") or "",
        "parts": {},
    }
    location = f"{self.parsed_url.path}/{upload_id}"
    return 201, {"x-amz-multipart-upload-id": upload_id, "Location": location, "status": 201}, ""


def upload_multipart_part(self: Any) -> tuple[int, dict[str, str], str]:
    upload = _uploads(_vault(self)).get(self.parsed_url.path.rsplit("/", 1)[-1])
    if upload is None:
        return _error(404, "ResourceNotFoundException", "no such upload")
    body = bytes(self.body)
    first, _, last = self.headers["Content-Range"].split()[1].split("/")[0].partition("-")
    start, end = int(first), int(last)
    if start % upload["part_size"] or end - start + 1 != len(body) or len(body) > upload["part_size"]:
        return _error(400, "InvalidParameterValueException", f"bad part range {start}-{end} for {len(body)} bytes")
    if self.headers.get("x-amz-sha256-tree-hash") != _tree_hash(body):
        return _error(400, "InvalidParameterValueException", "the part's tree hash does not match its content")
    upload["parts"][start] = body
    return 204, {"x-amz-sha256-tree-hash": _tree_hash(body), "status": 204}, ""


def complete_multipart_upload(self: Any) -> tuple[int, dict[str, str], str]:
    vault = _vault(self)
    upload_id = self.parsed_url.path.rsplit("/", 1)[-1]
    upload = _uploads(vault).get(upload_id)
    if upload is None:
        return _error(404, "ResourceNotFoundException", "no such upload")
    offsets = sorted(upload["parts"])
    size = upload["part_size"]
    if offsets != [index * size for index in range(len(offsets))] or any(
        len(upload["parts"][offset]) != size for offset in offsets[:-1]
    ):
        return _error(400, "InvalidParameterValueException", "the parts are not contiguous parts of the part size")
    data = b"".join(upload["parts"][offset] for offset in offsets)
    if int(self.headers.get("x-amz-archive-size") or -1) != len(data):
        return _error(400, "InvalidParameterValueException", "the archive size does not match the parts")
    if self.headers.get("x-amz-sha256-tree-hash") != _tree_hash(data):
        return _error(400, "InvalidParameterValueException", "the archive's tree hash does not match its parts")
    archive = vault.create_archive(data, upload["description"])
    del _uploads(vault)[upload_id]
    headers = {"x-amz-archive-id": archive["archive_id"], "x-amz-sha256-tree-hash": _tree_hash(data), "status": 201}
    return 201, headers, ""


def abort_multipart_upload(self: Any) -> tuple[int, dict[str, str], str]:
    _uploads(_vault(self)).pop(self.parsed_url.path.rsplit("/", 1)[-1], None)
    return 204, {"status": 204}, ""


def _ranged_get_job_output(original: Any) -> Any:
    def get_job_output(self: Any) -> tuple[int, dict[str, str], Any]:
        wanted = self.headers.get("Range")
        status, headers, output = original(self)
        if not wanted or status != 200 or not isinstance(output, (bytes, bytearray)):
            return status, headers, output
        first, _, last = wanted.split("=", 1)[1].partition("-")
        start, end = int(first), min(int(last), len(output) - 1)
        data = bytes(output[start : end + 1])
        headers = {**headers, "Content-Range": f"bytes {start}-{end}/{len(output)}", "status": 206}
        if start % MiB == 0 and ((end + 1) % MiB == 0 or end + 1 == len(output)):
            headers["x-amz-sha256-tree-hash"] = _tree_hash(data)
        return 206, headers, data

    return get_job_output


def install() -> None:
    """Add the operations to moto's Glacier (idempotent).  Run before its first request."""
    from moto.glacier import urls
    from moto.glacier.responses import GlacierResponse

    if getattr(GlacierResponse, "bakthat_extended", False):
        return
    dispatch = GlacierResponse.dispatch
    urls.url_paths["{0}/(?P<account_number>.+)/vaults/(?P<vault_name>[^/]+)/multipart-uploads$"] = dispatch
    urls.url_paths["{0}/(?P<account_number>.+)/vaults/(?P<vault_name>[^/]+)/multipart-uploads/(?P<upload_id>[^/]+)$"] = dispatch
    GlacierResponse.initiate_multipart_upload = initiate_multipart_upload
    GlacierResponse.upload_multipart_part = upload_multipart_part
    GlacierResponse.complete_multipart_upload = complete_multipart_upload
    GlacierResponse.abort_multipart_upload = abort_multipart_upload
    GlacierResponse.get_job_output = _ranged_get_job_output(GlacierResponse.get_job_output)
    GlacierResponse.bakthat_extended = True
