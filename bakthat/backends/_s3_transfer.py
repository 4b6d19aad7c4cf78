"""The streams of the S3 backend: a parallel multipart upload, and a verified, resumable read.

The contract is the one :mod:`bakthat.backends.s3` states (this module is its transfer
half, kept apart so each stays readable): bytes cut into parts of ``part_size``, sent
by ``concurrency`` worker threads; the parts are filled into at most ``concurrency + 1``
buffers, allocated once and reused, so an upload's memory is bounded exactly; each
part with a checksum S3 verifies; the stream hashed once (the SHA-256 the object, the
catalog and the manifest record); the object visible only when the upload completes;
every read counted and hashed and checked at the end.  This
module imports nothing of :mod:`bakthat.backends.s3` at run time (no import cycle):
the backend is passed in.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

try:  # zlib's CRC-32, computed with SIMD: 5-7x faster than the standard library's
    from zlib_ng.zlib_ng import crc32
except ImportError:  # an environment installed before zlib-ng was required: the same values, slower
    from zlib import crc32

from bakthat.backends import base
from bakthat.backends._progress import Progress
from bakthat.backends._retry import call_with_retries, error_code, is_transient
from bakthat.backends.aws import translate_error
from bakthat.errors import AlreadyExistsError, IntegrityError, NotFoundError, StorageError

if TYPE_CHECKING:
    from bakthat.backends.s3 import Backend

log = logging.getLogger("bakthat.backends")

MiB = 1 << 20
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * 1024 * MiB
MAX_PARTS = 10_000
#: Part sizes grow by one ``part_size`` every this many parts, so a stream of unknown
#: length fits in S3's 10,000 parts: 5 MiB parts (the default) reach 900 GB, 8 MiB
#: parts 1.4 TB, 32 MiB parts S3's 5 TiB object limit.
PART_GROWTH_EVERY = 300
#: The metadata key (single PUT) or object tag (multipart) holding the object's SHA-256.
SHA256_KEY = "bakthat-sha256"


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def part_checksum(algorithm: str, data: bytes | memoryview) -> dict[str, str]:
    """Return the request arguments carrying ``data``'s checksum for ``algorithm``."""
    if algorithm == "CRC32":
        return {"ChecksumCRC32": _b64(crc32(data).to_bytes(4, "big"))}
    if algorithm == "SHA256":
        return {"ChecksumSHA256": _b64(hashlib.sha256(data).digest())}
    if algorithm == "SHA1":
        return {"ChecksumSHA1": _b64(hashlib.sha1(data).digest())}  # noqa: S324 - integrity, not security
    if algorithm == "MD5":
        return {"ContentMD5": _b64(hashlib.md5(data).digest())}  # noqa: S324 - integrity, not security
    return {}


class _Cancelled(Exception):
    """A part upload skipped because the upload is being aborted."""


class S3Upload(base.Upload):
    """A streaming upload: a single PUT for small objects, else a parallel multipart upload.

    Nothing is visible under the key until :meth:`commit` completes the upload.  A part
    that fails after its retries makes the next :meth:`write` (or :meth:`commit`) raise;
    :meth:`abort` stops the workers and aborts the multipart upload on the store.
    """

    def __init__(
        self,
        backend: Backend,
        key: str,
        metadata: dict[str, str] | None,
        *,
        if_match: str | None = None,
        progress: Callable[[int], None] | None = None,
    ):
        self.backend = backend
        self.key = key
        self.object_key = backend.object_key(key)
        self.if_match = if_match
        self.algorithm = backend.config.checksum_algorithm
        self.part_size = backend.config.part_size
        self.concurrency = backend.config.concurrency
        self.extra = backend.put_arguments(metadata)
        self.progress = Progress("Upload", None, progress or backend.progress)
        #: The SHA-256 of every byte written: recorded with the object, and shared with
        #: the caller's HashingWriter (base.Upload.running_sha256), so hashed once.
        self.running_sha256 = hashlib.sha256()
        self.size = 0
        # The part being filled: ``_filled`` bytes of ``_buffer`` (None: none taken yet).
        self._buffer: bytearray | None = None
        self._filled = 0
        # Part buffers not in use, and how many exist (never more than concurrency + 1).
        self._free: list[bytearray] = []
        self.part_buffers = 0
        self._returned = threading.Condition()
        self.upload_id: str | None = None
        self._part_number = 0
        self._parts: dict[int, dict[str, Any]] = {}
        self._futures: list[Future[None]] = []
        self._executor: ThreadPoolExecutor | None = None
        self._cancel = threading.Event()
        self._failure: BaseException | None = None
        self._state = "open"
        self._lock = threading.Lock()

    # -- writing -------------------------------------------------------------------
    def _current_part_size(self) -> int:
        grown = self.part_size * (1 + self._part_number // PART_GROWTH_EVERY)
        return min(grown, MAX_PART_SIZE)

    def _check(self) -> None:
        if self._failure is not None:
            raise self._wrap_failure()
        if self._state != "open":
            raise StorageError(f"upload of {self.key} is {self._state}; it cannot take more data")

    def _wrap_failure(self) -> BaseException:
        failure = self._failure
        assert failure is not None
        if not isinstance(failure, Exception):  # KeyboardInterrupt, SystemExit: keep their meaning
            return failure
        return translate_error(failure, "uploading a part of", self.backend.describe(self.key))

    def write(self, data: bytes) -> int:
        """Take ``data``; hand each full part to a worker (waiting for a free buffer).

        Bytes are copied once, into a part buffer; a full buffer is given to a worker as
        it is (no copy) and comes back to the pool when its part is sent, so at most
        ``concurrency + 1`` buffers ever exist: ``concurrency`` in flight, one filling.
        """
        self._check()
        self.running_sha256.update(data)
        self.size += len(data)
        view = memoryview(data).cast("B")
        while view:
            size = self._current_part_size()
            if self._buffer is None:
                self._buffer = self._take_buffer(size)
            taken = view[: size - self._filled]
            end = self._filled + len(taken)
            self._buffer[self._filled : end] = taken  # in place (the first buffer grows)
            self._filled = end
            view = view[len(taken) :]
            if end == size:
                self._submit_filled()
        return len(data)

    def _take_buffer(self, size: int) -> bytearray:
        """Return a free part buffer of at least ``size`` bytes, waiting for one if all
        ``concurrency + 1`` are in use.  The first grows as it is written (a small object
        never costs a whole part); later ones are allocated whole, once."""
        with self._returned:
            while not self._free and self.part_buffers > self.concurrency:
                self._returned.wait(0.5)  # wake up regularly to notice a failed part (or Ctrl-C)
                self._check()
            if self._free:
                buffer = self._free.pop()
                if len(buffer) >= size:
                    return buffer
                del buffer  # parts grew: free the smaller buffer before allocating its successor
                return bytearray(size)
            self.part_buffers += 1
            return bytearray() if self.part_buffers == 1 else bytearray(size)

    def _give_back(self, buffer: bytearray) -> None:
        with self._returned:
            self._free.append(buffer)
            self._returned.notify()

    def _submit_filled(self) -> None:
        """Send the buffer being filled as the next part (trimmed to its bytes, in place)."""
        part, filled = self._buffer, self._filled
        assert part is not None
        self._buffer, self._filled = None, 0
        if len(part) > filled:
            del part[filled:]
        self._submit(part)

    def _start_multipart(self) -> None:
        client = self.backend.client
        arguments = {"Bucket": self.backend.bucket, "Key": self.object_key, **self.extra}
        if self.algorithm not in ("MD5", "none"):
            arguments["ChecksumAlgorithm"] = self.algorithm
        try:
            response = call_with_retries(
                lambda: client.create_multipart_upload(**arguments),
                f"starting the upload of {self.key}",
                self.backend.retry_policy,
            )
        except Exception as exc:
            raise translate_error(exc, "starting the upload of", self.backend.describe(self.key)) from None
        self.upload_id = response["UploadId"]
        self._executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="bakthat-s3-part")
        log.debug("multipart upload of %s started", self.key)

    def _submit(self, part: bytearray) -> None:
        if self._failure is not None:
            raise self._wrap_failure()
        if self.upload_id is None:
            self._start_multipart()
        if self._part_number >= MAX_PARTS:
            raise StorageError(f"{self.key}: more than {MAX_PARTS} parts; raise part_size")
        self._part_number += 1
        number = self._part_number
        assert self._executor is not None
        future = self._executor.submit(self._upload_part, number, part)
        # The callback must not hold the buffer: a future keeps its callbacks after they
        # ran, and every future is kept until the commit, so a buffer replaced by a
        # larger one when parts grow would never be freed.  The worker gives it back.
        future.add_done_callback(self._part_done)
        self._futures.append(future)

    def _part_done(self, future: Future[None]) -> None:
        exc = future.exception() if not future.cancelled() else None
        if exc is not None and not isinstance(exc, _Cancelled):
            with self._lock:
                if self._failure is None:
                    self._failure = exc
            self._cancel.set()

    def _upload_part(self, number: int, part: bytearray) -> None:
        """Send ``part`` as part ``number`` (with retries); give its buffer back to the pool
        whatever the outcome."""
        try:
            self._send_part(number, part)
        finally:
            self._give_back(part)

    def _send_part(self, number: int, part: bytearray) -> None:
        checksum = part_checksum(self.algorithm, part)
        client = self.backend.client

        def send() -> dict[str, Any]:
            if self._cancel.is_set():
                raise _Cancelled()
            return client.upload_part(
                Bucket=self.backend.bucket,
                Key=self.object_key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=part,
                **checksum,
            )

        response = call_with_retries(
            send,
            f"part {number} of {self.key}",
            self.backend.retry_policy,
            retryable=lambda exc: not isinstance(exc, _Cancelled) and is_transient(exc),
            stop=self._cancel.is_set,
        )
        record = {"PartNumber": number, "ETag": response["ETag"]}
        record.update({name: value for name, value in checksum.items() if name.startswith("Checksum")})
        with self._lock:
            self._parts[number] = record
        self.progress.update(len(part))

    # -- finishing -------------------------------------------------------------------
    def _conditions(self) -> dict[str, str]:
        if not self.backend.config.conditional_writes:
            return {}
        if self.if_match:
            return {"IfMatch": self.if_match}
        return {"IfNoneMatch": "*"}

    def commit(self) -> base.ObjectInfo:
        self._check()
        digest = self.running_sha256.hexdigest()
        if not self.backend.config.conditional_writes and not self.if_match and self.backend.exists(self.key):
            raise AlreadyExistsError(f"{self.backend.describe(self.key)} already exists; nothing was replaced")
        if self.upload_id is None:
            etag = self._put_single(digest)
        else:
            etag = self._complete_multipart(digest)
        self._state = "committed"
        self.progress.finish()
        return self.backend.verify_committed(self.key, self.size, digest, etag)

    def _put_single(self, digest: str) -> str:
        client = self.backend.client
        body = self._buffer if self._buffer is not None else bytearray()
        del body[self._filled :]  # the first buffer: grown as written, so nothing to trim
        self._buffer, self._filled = None, 0
        arguments = {**self.extra, "Metadata": {**self.extra.get("Metadata", {}), SHA256_KEY: digest}}
        arguments.update(part_checksum(self.algorithm, body))
        arguments.update(self._conditions())
        attempts = {"n": 0}

        def send() -> dict[str, Any]:
            attempts["n"] += 1
            return client.put_object(Bucket=self.backend.bucket, Key=self.object_key, Body=body, **arguments)

        try:
            response = call_with_retries(send, f"storing {self.key}", self.backend.retry_policy)
        except Exception as exc:
            if attempts["n"] > 1 and self._ours_already(exc, digest):
                return self.backend.head(self.key).get("ETag", "")
            raise self._commit_error(exc) from None
        self.progress.update(len(body))
        return response.get("ETag", "")

    def _complete_multipart(self, digest: str) -> str:
        if self._filled:
            self._submit_filled()
        for future in self._futures:
            try:
                future.result()
            except BaseException:  # noqa: BLE001 - recorded by _part_done
                pass
        self._check()
        parts = [self._parts[number] for number in sorted(self._parts)]
        if len(parts) != self._part_number:
            raise StorageError(f"{self.key}: {self._part_number - len(parts)} parts are missing; upload not completed")
        client = self.backend.client
        conditions = self._conditions()
        attempts = {"n": 0}

        def send() -> dict[str, Any]:
            attempts["n"] += 1
            return client.complete_multipart_upload(
                Bucket=self.backend.bucket,
                Key=self.object_key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": parts},
                **conditions,
            )

        try:
            response = call_with_retries(send, f"completing {self.key}", self.backend.retry_policy)
        except Exception as exc:
            if attempts["n"] > 1 and error_code(exc) in ("NoSuchUpload", "PreconditionFailed") and self._ours_already(exc, None):
                response = {"ETag": self.backend.head(self.key).get("ETag", "")}
            else:
                raise self._commit_error(exc) from None
        self.upload_id_completed = self.upload_id
        self.upload_id = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self.backend.tag_sha256(self.key, digest)
        return response.get("ETag", "")

    def _ours_already(self, exc: BaseException, digest: str | None) -> bool:
        """After a retried commit failed as 'exists' / 'no such upload', is the object ours?"""
        try:
            head = self.backend.head(self.key)
        except Exception:  # noqa: BLE001 - then it is not ours
            return False
        if head.get("ContentLength") != self.size:
            return False
        if digest is None:
            return True
        return head.get("Metadata", {}).get(SHA256_KEY) == digest

    def _commit_error(self, exc: BaseException) -> BaseException:
        error = translate_error(exc, "storing", self.backend.describe(self.key))
        if isinstance(error, AlreadyExistsError) or (self.if_match and isinstance(error, NotFoundError)):
            if self.if_match:
                return AlreadyExistsError(
                    f"{self.backend.describe(self.key)} was changed or deleted by another writer; nothing was replaced"
                )
            return AlreadyExistsError(f"{self.backend.describe(self.key)} already exists; nothing was replaced")
        return error

    def abort(self) -> None:
        if self._state in ("aborted", "committed"):
            return
        self._state = "aborted"
        self._cancel.set()
        self._buffer, self._filled, self._free = None, 0, []
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        if self.upload_id is not None:
            self.backend.abort_multipart(self.object_key, self.upload_id)
            self.upload_id = None


class S3Reader(base.VerifiedReader):
    """A verified, resumable read of one object.

    Counts and hashes every byte; at the end of the stream checks the length against
    the object's and the SHA-256 against the one recorded at upload (metadata or tag),
    raising IntegrityError on a mismatch (:class:`~bakthat.backends.base.VerifiedReader`).
    A connection that breaks mid-stream is resumed with a ranged GET pinned to the same ETag.
    """

    def __init__(self, backend: Backend, key: str, response: dict[str, Any], progress: Callable[[int], None] | None = None):
        size = int(response.get("ContentLength") or 0)
        super().__init__(backend.describe(key), size, Progress("Download", size or None, progress or backend.progress))
        self.backend = backend
        self.key = key
        self._body = response["Body"]
        self.etag: str = response.get("ETag", "")
        self.metadata: dict[str, str] = dict(response.get("Metadata") or {})
        self.storage_class: str = response.get("StorageClass") or "STANDARD"

    def resume(self) -> None:
        self._body.close()
        response = self.backend.get(self.key, Range=f"bytes={self.position}-", IfMatch=self.etag)
        self._body = response["Body"]

    def read_raw(self, size: int) -> bytes:
        return self.read_resuming(
            size,
            self.backend.retry_policy,
            is_transient,
            lambda exc: translate_error(exc, "reading", self.described),
            lambda exc: error_code(exc) == "PreconditionFailed",
        )

    def expected_sha256(self) -> str | None:
        return self.metadata.get(SHA256_KEY) or self.backend.tagged_sha256(self.key, self.etag)
