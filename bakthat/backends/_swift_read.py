"""The read half of the Swift backend: a verified, resumable download of one object.

The contract is the one :mod:`bakthat.backends.swift` states ("Verified reads"): every
read counts and hashes the bytes, checks the length against the object's and the
SHA-256 against the recorded one (or, for an object bakthat did not write, the MD5
against its ETag), and resumes a broken stream with a ranged GET pinned to the ETag.
Nothing here imports :mod:`bakthat.backends.swift` at run time (no import cycle).
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from typing import TYPE_CHECKING, Any

from bakthat.backends._progress import Progress
from bakthat.backends._swift_http import SHA256_HEADER, status_of, transient, translate_error
from bakthat.errors import IntegrityError

if TYPE_CHECKING:
    from bakthat.backends.swift import Backend

log = logging.getLogger("bakthat.backends")

READ_CHUNK = 1 << 20


class SwiftReader(io.RawIOBase):
    """A verified, resumable read of one object (see the module docstring)."""

    def __init__(self, backend: Backend, key: str, headers: dict[str, str], body: Any):
        super().__init__()
        self.backend = backend
        self.key = key
        self._body = body
        self.etag = str(headers.get("etag", ""))
        self.metadata = {name[len("x-object-meta-"):]: value for name, value in headers.items() if name.startswith("x-object-meta-")}
        self.size = int(headers.get("content-length") or 0)
        self._expected_sha256 = headers.get(SHA256_HEADER)
        large = str(headers.get("x-static-large-object", "")).lower() == "true" or "x-object-manifest" in headers
        self._expected_md5 = None if (self._expected_sha256 or large) else self.etag.strip('"')
        self._sha256 = hashlib.sha256()
        self._md5 = hashlib.md5() if self._expected_md5 else None  # noqa: S324 - integrity
        self.position = 0
        self._verified = False
        self._progress = Progress("Download", self.size or None, backend.progress)

    def readable(self) -> bool:
        return True

    def _resume(self) -> None:
        self._body.close()
        _headers, self._body = self.backend.get_object(
            self.key, headers={"Range": f"bytes={self.position}-", "If-Match": self.etag}
        )

    def read(self, size: int | None = -1) -> bytes:
        if self._verified:
            return b""
        if size is None or size < 0:
            return self.readall()
        attempt = 0
        while True:
            try:
                data = self._body.read(size)
                break
            except Exception as exc:  # noqa: BLE001 - classified just below
                attempt += 1
                if attempt >= self.backend.retry_policy.attempts or not transient(exc):
                    raise translate_error(exc, "reading", self.backend.describe(self.key)) from None
                log.debug("read of %s broke at byte %d (%s); resuming", self.key, self.position, type(exc).__name__)
                time.sleep(self.backend.retry_policy.delay(attempt))
                try:
                    self._resume()
                except Exception as resume_exc:  # noqa: BLE001
                    if status_of(resume_exc) == 412:
                        raise IntegrityError(f"{self.backend.describe(self.key)} changed while it was being read") from None
                    raise translate_error(resume_exc, "reading", self.backend.describe(self.key)) from None
        if data:
            self._sha256.update(data)
            if self._md5 is not None:
                self._md5.update(data)
            self.position += len(data)
            self._progress.update(len(data))
            if self.position > self.size:
                raise IntegrityError(f"{self.backend.describe(self.key)}: more bytes than the object's {self.size}")
        if not data or self.position == self.size:
            self._verify()
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        chunks = []
        while chunk := self.read(READ_CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)

    def _verify(self) -> None:
        if self._verified:
            return
        self._verified = True
        described = self.backend.describe(self.key)
        if self.position != self.size:
            raise IntegrityError(f"{described}: read {self.position} bytes, the object has {self.size}")
        if self._expected_sha256 and self._expected_sha256 != self._sha256.hexdigest():
            raise IntegrityError(f"{described}: SHA-256 mismatch; the object is damaged (in transit or at rest)")
        if self._md5 is not None and self._expected_md5 != self._md5.hexdigest():
            raise IntegrityError(f"{described}: MD5 mismatch with its ETag; the object is damaged (in transit or at rest)")
        self._progress.finish()

    def hexdigest(self) -> str:
        return self._sha256.hexdigest()

    def close(self) -> None:
        if not self.closed:
            try:
                self._body.close()
            finally:
                super().close()
