"""The read half of the Swift backend: a verified, resumable download of one object.

The contract is the one :mod:`bakthat.backends.swift` states ("Verified reads"): every
read counts and hashes the bytes, checks the length against the object's and the
SHA-256 against the recorded one (or, for an object bakthat did not write, the MD5
against its ETag), and resumes a broken stream with a ranged GET pinned to the ETag.
Nothing here imports :mod:`bakthat.backends.swift` at run time (no import cycle).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from bakthat.backends import base
from bakthat.backends._progress import Progress
from bakthat.backends._swift_http import SHA256_HEADER, status_of, transient, translate_error
from bakthat.errors import IntegrityError

if TYPE_CHECKING:
    from bakthat.backends.swift import Backend

READ_CHUNK = 1 << 20


class SwiftReader(base.VerifiedReader):
    """A verified, resumable read of one object (see the module docstring).

    The size and SHA-256 checks are :class:`~bakthat.backends.base.VerifiedReader`'s;
    an object without a recorded SHA-256 (and not a large object) is checked against
    the MD5 of its ETag on top.
    """

    chunk = READ_CHUNK

    def __init__(self, backend: Backend, key: str, headers: dict[str, str], body: Any):
        size = int(headers.get("content-length") or 0)
        super().__init__(backend.describe(key), size, Progress("Download", size or None, backend.progress))
        self.backend = backend
        self.key = key
        self._body = body
        self.etag = str(headers.get("etag", ""))
        self.metadata = {name[len("x-object-meta-"):]: value for name, value in headers.items() if name.startswith("x-object-meta-")}
        self._expected_sha256 = headers.get(SHA256_HEADER)
        large = str(headers.get("x-static-large-object", "")).lower() == "true" or "x-object-manifest" in headers
        self._expected_md5 = None if (self._expected_sha256 or large) else self.etag.strip('"')
        self._md5 = hashlib.md5() if self._expected_md5 else None  # noqa: S324 - integrity

    def resume(self) -> None:
        self._body.close()
        _headers, self._body = self.backend.get_object(
            self.key, headers={"Range": f"bytes={self.position}-", "If-Match": self.etag}
        )

    def read_raw(self, size: int) -> bytes:
        return self.read_resuming(
            size,
            self.backend.retry_policy,
            transient,
            lambda exc: translate_error(exc, "reading", self.described),
            lambda exc: status_of(exc) == 412,
        )

    def update(self, data: bytes) -> None:
        if self._md5 is not None:
            self._md5.update(data)

    def expected_sha256(self) -> str | None:
        return self._expected_sha256

    def check_more(self) -> None:
        if self._md5 is not None and self._expected_md5 != self._md5.hexdigest():
            raise IntegrityError(f"{self.described}: MD5 mismatch with its ETag; the object is damaged (in transit or at rest)")
