"""The streams of the Glacier vault backend: tree-hashed uploads and verified ranged reads.

The contract is the one :mod:`bakthat.backends.vault` states (this module is its
transfer half): an archive below ``vault_part_size`` is one ``upload_archive``, a
larger one a multipart upload whose every part carries its SHA-256 tree hash (which
Glacier checks), completed with the whole archive's tree hash; a read fetches the
output of a finished archive-retrieval job in ``vault_chunk_size`` ranges, each
checked against its tree hash, and the whole archive against its SHA-256.  Nothing
here imports :mod:`bakthat.backends.vault` at run time (no import cycle).
"""

from __future__ import annotations

import hashlib
import logging
import urllib.parse
from typing import TYPE_CHECKING, Any

from bakthat.backends import base
from bakthat.backends._retry import call_with_retries, error_code
from bakthat.backends.aws import translate_error
from bakthat.errors import IntegrityError, StorageError

if TYPE_CHECKING:
    from bakthat.backends.vault import GlacierArchives, VaultBackend

log = logging.getLogger("bakthat.backends")

MiB = 1 << 20


def leaf_hashes(data: bytes | memoryview) -> list[bytes]:
    """Return the SHA-256 of each 1 MiB chunk of ``data`` (Glacier's tree hash leaves)."""
    if not data:
        return [hashlib.sha256(b"").digest()]
    view = memoryview(data)
    return [hashlib.sha256(view[offset : offset + MiB]).digest() for offset in range(0, len(view), MiB)]


def tree_hash(leaves: list[bytes]) -> bytes:
    """Return the Glacier tree hash (SHA-256 pairs, bottom-up) of the given leaves."""
    level = list(leaves) or [hashlib.sha256(b"").digest()]
    while len(level) > 1:
        level = [
            hashlib.sha256(level[index] + level[index + 1]).digest() if index + 1 < len(level) else level[index]
            for index in range(0, len(level), 2)
        ]
    return level[0]


def description(key: str) -> str:
    """Glacier descriptions are printable ASCII: percent-encode the rest of the key."""
    return urllib.parse.quote(key, safe=" /!$&'()*+,-.:;=@_~")




class VaultUpload(base.Upload):
    """An archive upload: one request below ``vault_part_size``, else a multipart upload."""

    def __init__(self, backend: VaultBackend, key: str):
        self.backend = backend
        self.key = key
        self.part_size = backend.part_size
        self._buffer = bytearray()
        self._hash = hashlib.sha256()
        self._leaves: list[bytes] = []
        self.size = 0
        self._sent = 0
        self.upload_id: str | None = None
        self._state = "open"

    def write(self, data: bytes) -> int:
        if self._state != "open":
            raise StorageError(f"upload of {self.key} is {self._state}")
        self._hash.update(data)
        self.size += len(data)
        self._buffer += data
        while len(self._buffer) >= self.part_size:
            part = bytes(self._buffer[: self.part_size])
            del self._buffer[: self.part_size]
            self._send_part(part)
        return len(data)

    def _send_part(self, part: bytes) -> None:
        backend = self.backend
        client = backend.client
        if self.upload_id is None:
            response = backend.call(
                "starting a vault upload",
                lambda: client.initiate_multipart_upload(
                    vaultName=backend.vault, archiveDescription=description(self.key), partSize=str(self.part_size)
                ),
            )
            self.upload_id = response["uploadId"]
        leaves = leaf_hashes(part)
        self._leaves.extend(leaves)
        start, end = self._sent, self._sent + len(part) - 1
        backend.call(
            f"uploading part at byte {start} of {self.key}",
            lambda: client.upload_multipart_part(
                vaultName=backend.vault,
                uploadId=self.upload_id,
                range=f"bytes {start}-{end}/*",
                checksum=tree_hash(leaves).hex(),
                body=part,
            ),
        )
        self._sent += len(part)

    def commit(self) -> base.ObjectInfo:
        if self._state != "open":
            raise StorageError(f"upload of {self.key} is {self._state}")
        backend = self.backend
        client = backend.client
        if self.upload_id is None:
            body = bytes(self._buffer)
            self._leaves = leaf_hashes(body)
            checksum = tree_hash(self._leaves).hex()
            response = backend.call(
                f"uploading {self.key}",
                lambda: client.upload_archive(
                    vaultName=backend.vault, archiveDescription=description(self.key), checksum=checksum, body=body
                ),
            )
        else:
            if self._buffer:
                self._send_part(bytes(self._buffer))
            checksum = tree_hash(self._leaves).hex()
            response = backend.call(
                f"completing {self.key}",
                lambda: client.complete_multipart_upload(
                    vaultName=backend.vault, uploadId=self.upload_id, archiveSize=str(self.size), checksum=checksum
                ),
            )
            self.upload_id = None
        self._buffer = bytearray()
        archive_id = response["archiveId"]
        returned = response.get("checksum")
        # Glacier answers with the tree hash; moto with the plain SHA-256: either proves receipt.
        if returned and returned not in (checksum, self._hash.hexdigest()):
            backend.delete_archive(archive_id)
            raise IntegrityError(f"{self.key}: the vault computed another tree hash; archive removed")
        info = backend.record_archive(self.key, archive_id, self.size, self._hash.hexdigest(), checksum)
        self._state = "committed"
        return info

    def abort(self) -> None:
        if self._state != "open":
            return
        self._state = "aborted"
        self._buffer = bytearray()
        if self.upload_id is not None:
            upload_id, self.upload_id = self.upload_id, None
            try:
                self.backend.client.abort_multipart_upload(vaultName=self.backend.vault, uploadId=upload_id)
            except Exception as exc:  # noqa: BLE001 - Glacier drops abandoned uploads after 24 h
                log.warning("could not abort the vault upload of %s (%s)", self.key, error_code(exc) or type(exc).__name__)


class VaultReader(base.VerifiedReader):
    """The output of a finished archive-retrieval job, fetched in ranges and verified.

    Each range is checked against its tree hash here; the archive's length and SHA-256
    (the catalog's) by :class:`~bakthat.backends.base.VerifiedReader`.
    """

    noun = "archive"
    damaged = "the downloaded archive is damaged"

    def __init__(self, backend: VaultBackend, row: GlacierArchives, job_id: str):
        super().__init__(row.key, int(row.size))
        self.backend = backend
        self.row = row
        self.job_id = job_id
        self._chunk = b""

    def expected_sha256(self) -> str | None:
        return self.row.sha256 or None

    def _fetch(self) -> bytes:
        """Return the next range of the output (with retries), or b"" at the end.

        ``_body`` is the whole output, when the service ignores ranges.
        """
        if self._body is not None:
            return self._body.read(self.backend.chunk_size)
        if self.position >= self.size:
            return b""
        start = self.position
        end = min(self.size, start + self.backend.chunk_size) - 1
        client = self.backend.client

        def fetch() -> tuple[bytes, dict[str, Any]]:
            response = client.get_job_output(vaultName=self.backend.vault, jobId=self.job_id, range=f"bytes={start}-{end}")
            body = response["body"]
            if not response.get("contentRange") and response.get("status", 206) == 200 and start == 0:
                return b"", response  # whole output: streamed below
            return body.read(), response

        data, response = call_with_retries(fetch, f"downloading {self.row.key}", self.backend.retry_policy)
        if not data and start == 0 and not response.get("contentRange"):
            self._body = response["body"]
            return self._body.read(self.backend.chunk_size)
        if len(data) != end - start + 1:
            raise IntegrityError(f"{self.row.key}: the vault returned {len(data)} bytes for a {end - start + 1}-byte range")
        checksum = response.get("checksum")
        if checksum and tree_hash(leaf_hashes(data)).hex() != checksum:
            raise IntegrityError(f"{self.row.key}: a downloaded range does not match its tree hash")
        return data

    def read_raw(self, size: int) -> bytes:
        if not self._chunk:
            try:
                self._chunk = self._fetch()
            except (IntegrityError, StorageError):
                raise
            except Exception as exc:
                raise translate_error(exc, "downloading", self.backend.describe(self.row.key)) from None
        data, self._chunk = self._chunk[:size], self._chunk[size:]
        return data
