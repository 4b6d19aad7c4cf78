"""Amazon S3 and S3-compatible stores (MinIO, Ceph, Backblaze B2, Cloudflare R2, Wasabi).

Uploads stream straight from the pipeline into a multipart upload: bytes are cut into
parts of ``part_size`` and sent by ``concurrency`` worker threads, with at most
``concurrency`` parts in flight plus the one being filled, so memory stays near
``(concurrency + 1) * part_size`` whatever the archive's size, and no temp file is
written.  An archive smaller than one part is sent with a single PUT.

Integrity: every part carries a checksum that S3 verifies (CRC32 by default, or
SHA-256, or Content-MD5 for stores that only accept that); the SHA-256 of the whole
object is kept in its metadata (single PUT) or in an object tag (multipart, whose
metadata is fixed before the data is known), and every read checks it at the end of
the stream.  The object appears only when the upload completes, with
``If-None-Match: *`` so an existing object is never replaced; a failed or interrupted
upload is aborted, and :meth:`Backend.stale_uploads` finds those a killed process left.

boto3 is imported only when a client is first needed: importing bakthat stays light.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any

from bakthat.backends import _redact, base
from bakthat.backends._progress import Progress
from bakthat.backends._retry import RetryPolicy, call_with_retries, error_code, http_status, is_transient
from bakthat.conf import Setting
from bakthat.errors import (
    AlreadyExistsError,
    ConfigError,
    IntegrityError,
    NotFoundError,
    RetrievalPendingError,
    StorageError,
)

log = logging.getLogger("bakthat.backends")

MiB = 1 << 20
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * 1024 * MiB
MAX_PARTS = 10_000
#: Part sizes grow by one ``part_size`` every this many parts, so a stream of unknown
#: length fits in S3's 10,000 parts: 16 MiB parts reach 880 GB, 64 MiB parts 3.5 TB.
PART_GROWTH_EVERY = 1000
SHA256_KEY = "bakthat-sha256"

STORAGE_CLASSES = (
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "GLACIER_IR",
    "DEEP_ARCHIVE",
    "EXPRESS_ONEZONE",
)
#: Storage classes whose objects must be restored before they can be read.
ARCHIVE_CLASSES = ("GLACIER", "DEEP_ARCHIVE")
CHECKSUM_ALGORITHMS = ("CRC32", "SHA256", "SHA1", "MD5", "none")

SETTINGS: dict[str, Setting] = {
    "s3_bucket": Setting(str, None, "S3 bucket holding the backups (created on first upload if missing)"),
    "s3_prefix": Setting(str, "", "key prefix ('folder') inside the bucket, e.g. backups/host1"),
    "endpoint_url": Setting(str, None, "S3-compatible endpoint (https://minio.example:9000); default: AWS, or $AWS_ENDPOINT_URL"),
    "access_key": Setting(str, None, "AWS access key id; leave unset to use the AWS credential chain (env, ~/.aws, instance role)"),
    "secret_key": Setting(str, None, "AWS secret access key (only with access_key)"),
    "session_token": Setting(str, None, "AWS session token for temporary credentials"),
    "aws_profile": Setting(str, None, "named profile of ~/.aws/config and ~/.aws/credentials to use"),
    "storage_class": Setting(str, None, "S3 storage class of archives (default: the bucket's, STANDARD)", STORAGE_CLASSES),
    "part_size": Setting((int, str), "16MiB", "multipart part size (bytes, or 8MiB, 64MB...; 5 MiB to 5 GiB)"),
    "concurrency": Setting(int, 4, "parts uploaded at once; memory is about (concurrency + 1) * part_size"),
    "checksum_mode": Setting(
        str,
        "when_supported",
        "when botocore adds/validates CRC checksums: when_supported (AWS) or when_required (stores that reject the new headers)",
        ("when_supported", "when_required"),
    ),
    "checksum_algorithm": Setting(
        str, None, "per-part checksum S3 verifies (default CRC32, or MD5 with checksum_mode when_required)", CHECKSUM_ALGORITHMS
    ),
    "sse": Setting(str, None, "server-side encryption", ("AES256", "aws:kms", "aws:kms:dsse")),
    "sse_kms_key_id": Setting(str, None, "KMS key id or ARN for sse aws:kms"),
    "s3_create_bucket": Setting(bool, True, "create the bucket on first upload if it does not exist"),
    "s3_abort_incomplete_days": Setting(
        int, 7, "on a bucket bakthat creates, a lifecycle rule aborting incomplete multipart uploads after N days (0: none)"
    ),
    "s3_addressing_style": Setting(str, None, "bucket addressing: path, virtual or auto (default path with endpoint_url)", ("auto", "path", "virtual")),
    "s3_conditional_writes": Setting(
        bool, True, "use If-None-Match/If-Match so nothing is ever overwritten by accident; off for stores that reject them"
    ),
    "s3_tagging": Setting(bool, True, "record a multipart object's SHA-256 as an object tag (off for stores without tagging)"),
    "s3_retry_mode": Setting(str, "standard", "botocore retry mode", ("standard", "adaptive", "legacy")),
    "s3_max_attempts": Setting(int, 5, "attempts per request (botocore) and per part (bakthat)"),
    "s3_verify": Setting((bool, str), True, "verify TLS certificates: true, false, or a CA bundle path"),
}


def parse_size(value: int | str | None, default: int) -> int:
    """Given ``16777216``, ``"16MiB"``, ``"16M"`` or ``"64MB"``, return a byte count.

    Both ``M`` and ``MB`` mean MiB here (part sizes are always binary).  Raise
    ConfigError for anything else.
    """
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ConfigError(f"invalid size {value!r}")
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)(i?[bB])?\s*", str(value))
    if not match:
        raise ConfigError(f"invalid size {value!r}: use a byte count or a number with K, M or G (e.g. 16MiB)")
    factor = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[match.group(2).lower()]
    return int(match.group(1)) * factor


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def part_checksum(algorithm: str, data: bytes | memoryview) -> dict[str, str]:
    """Return the request arguments carrying ``data``'s checksum for ``algorithm``."""
    if algorithm == "CRC32":
        return {"ChecksumCRC32": _b64(zlib.crc32(data).to_bytes(4, "big"))}
    if algorithm == "SHA256":
        return {"ChecksumSHA256": _b64(hashlib.sha256(data).digest())}
    if algorithm == "SHA1":
        return {"ChecksumSHA1": _b64(hashlib.sha1(data).digest())}  # noqa: S324 - integrity, not security
    if algorithm == "MD5":
        return {"ContentMD5": _b64(hashlib.md5(data).digest())}  # noqa: S324 - integrity, not security
    return {}


def translate_error(exc: BaseException, action: str, what: str) -> BaseException:
    """Given a boto3/botocore exception, return the bakthat error to raise instead.

    Messages name the action, the bucket/key and the service's error code; never a
    credential.
    """
    if isinstance(exc, (StorageError, NotFoundError, ConfigError, IntegrityError, RetrievalPendingError)):
        return exc
    code = error_code(exc)
    status = http_status(exc)
    name = type(exc).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"):
        return ConfigError(
            f"{action} {what}: no usable AWS credentials; set access_key and secret_key in the profile, "
            "or configure the AWS credential chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws/credentials, "
            "an instance or container role)"
        )
    if code in ("NoSuchKey", "NotFound", "404", "NoSuchBucket", "ResourceNotFoundException") or status == 404:
        return NotFoundError(f"{action} {what}: not found ({code or status})")
    if code == "InvalidObjectState":
        return RetrievalPendingError(
            f"{what} is in an archive storage class and has not been restored; "
            "`bakthat restore` requests the retrieval (see `bakthat retrievals`)"
        )
    if code in ("PreconditionFailed", "ConditionalRequestConflict") or status == 412:
        return AlreadyExistsError(f"{action} {what}: the object exists or changed meanwhile ({code or status})")
    if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled") or status == 403:
        return StorageError(f"{action} {what}: access denied ({code or status}); check the credentials and the bucket policy")
    if name == "FlexibleChecksumError" or code in ("BadDigest", "InvalidDigest"):
        return IntegrityError(f"{action} {what}: checksum mismatch ({code or name}); the data was damaged in transit")
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError", "ReadTimeoutError"):
        return StorageError(f"{action} {what}: cannot reach the store ({name})")
    detail = code or name
    return StorageError(f"{action} {what} failed ({detail})")


def _to_epoch(value: Any) -> float | None:
    return value.timestamp() if hasattr(value, "timestamp") else None


def _explicit_region(conf: dict[str, Any]) -> str | None:
    """Return the profile's region_name if the user set it; None lets boto3 find one."""
    raw = getattr(conf, "raw", None)  # bakthat.settings.Settings: the profile as written
    region = conf.get("region_name")
    if region and (raw is None or "region_name" in raw):
        return str(region)
    return None


def aws_session(conf: dict[str, Any]) -> Any:
    """Given profile settings, return a boto3 Session.

    The profile's access_key/secret_key (and session_token) when set, else the AWS
    credential chain: environment, ``aws_profile`` or the default shared files, SSO,
    container and instance roles.  The region is the profile's region_name when set,
    else boto3's (AWS_DEFAULT_REGION, ~/.aws/config), else us-east-1.  Every secret
    resolved is registered with the log redaction filter.
    """
    import boto3

    access_key = conf.get("access_key") or None
    secret_key = conf.get("secret_key") or None
    token = conf.get("session_token") or None
    _redact.protect(access_key, secret_key, token)
    if bool(access_key) != bool(secret_key):
        raise ConfigError("set both access_key and secret_key, or neither (to use the AWS credential chain)")
    arguments = {
        "aws_access_key_id": access_key,
        "aws_secret_access_key": secret_key,
        "aws_session_token": token,
        "profile_name": conf.get("aws_profile") or None,
    }
    try:
        session = boto3.session.Session(region_name=_explicit_region(conf), **arguments)
        if session.region_name is None:
            session = boto3.session.Session(region_name="us-east-1", **arguments)
    except Exception as exc:
        if type(exc).__name__ == "ProfileNotFound":
            raise ConfigError(f"AWS profile {conf.get('aws_profile')!r} not found in ~/.aws/config or ~/.aws/credentials") from None
        raise
    try:
        credentials = session.get_credentials()
        if credentials is not None:
            frozen = credentials.get_frozen_credentials()
            _redact.protect(frozen.access_key, frozen.secret_key, frozen.token)
    except Exception as exc:  # noqa: BLE001 - reported when a request needs them
        log.debug("AWS credentials not resolved yet (%s)", type(exc).__name__)
    return session


def aws_client(
    conf: dict[str, Any],
    service: str,
    *,
    endpoint_url: str | None = None,
    checksum_mode: str = "when_supported",
    attempts: int = 5,
    pool: int = 10,
) -> Any:
    """Return a boto3 client for ``service`` with the profile's credentials, retries and checksums.

    ``endpoint_url`` None lets botocore use AWS or ``$AWS_ENDPOINT_URL[_<SERVICE>]``.
    """
    from botocore.config import Config

    session = aws_session(conf)
    style = conf.get("s3_addressing_style") or ("path" if endpoint_url else "auto")
    config = Config(
        retries={"mode": str(conf.get("s3_retry_mode") or "standard"), "max_attempts": attempts},
        request_checksum_calculation=checksum_mode,
        response_checksum_validation=checksum_mode,
        max_pool_connections=max(10, pool),
        connect_timeout=20,
        read_timeout=120,
        s3={"addressing_style": style},
        user_agent_extra="bakthat",
    )
    verify = conf.get("s3_verify", True)
    client = session.client(service, endpoint_url=endpoint_url, config=config, verify=None if verify is True else verify)
    _redact.protect()  # attach the filter to loggers botocore created meanwhile
    return client


@dataclass
class StaleUpload:
    """An incomplete multipart upload left in the bucket."""

    key: str
    upload_id: str
    initiated: float
    storage_class: str | None = None


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
        self.algorithm = backend.checksum_algorithm
        self.part_size = backend.part_size
        self.concurrency = backend.concurrency
        self.extra = backend.put_arguments(metadata)
        self.progress = Progress("Upload", None, progress or backend.progress)
        self._buffer = bytearray()
        self._hash = hashlib.sha256()
        self.size = 0
        self.upload_id: str | None = None
        self._part_number = 0
        self._parts: dict[int, dict[str, Any]] = {}
        self._futures: list[Future[None]] = []
        self._executor: ThreadPoolExecutor | None = None
        self._slots = threading.BoundedSemaphore(self.concurrency)
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
        """Take ``data``; hand each full part to a worker (waiting for a free slot).

        A full part's buffer is given to the worker as it is (no copy) and a new one is
        started, so at most ``concurrency`` parts are in flight plus the one filling.
        """
        self._check()
        self._hash.update(data)
        self.size += len(data)
        view = memoryview(data).cast("B")
        while view:
            need = self._current_part_size() - len(self._buffer)
            self._buffer += view[:need]
            view = view[need:]
            if len(self._buffer) >= self._current_part_size():
                part, self._buffer = self._buffer, bytearray()
                self._submit(part)
        return len(data)

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

    def _submit(self, part: bytes | bytearray) -> None:
        if self.upload_id is None:
            self._start_multipart()
        if self._part_number >= MAX_PARTS:
            raise StorageError(f"{self.key}: more than {MAX_PARTS} parts; raise part_size")
        self._part_number += 1
        number = self._part_number
        # Wait for a free slot; wake up regularly to notice a failed part (or Ctrl-C).
        while not self._slots.acquire(timeout=0.5):
            self._check()
        self._check_after_acquire()
        assert self._executor is not None
        future = self._executor.submit(self._upload_part, number, part)
        future.add_done_callback(self._part_done)
        self._futures.append(future)

    def _check_after_acquire(self) -> None:
        if self._failure is not None:
            self._slots.release()
            raise self._wrap_failure()

    def _part_done(self, future: Future[None]) -> None:
        self._slots.release()
        exc = future.exception() if not future.cancelled() else None
        if exc is not None and not isinstance(exc, _Cancelled):
            with self._lock:
                if self._failure is None:
                    self._failure = exc
            self._cancel.set()

    def _upload_part(self, number: int, part: bytes | bytearray) -> None:
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
        if not self.backend.conditional_writes:
            return {}
        if self.if_match:
            return {"IfMatch": self.if_match}
        return {"IfNoneMatch": "*"}

    def commit(self) -> base.ObjectInfo:
        self._check()
        digest = self._hash.hexdigest()
        if not self.backend.conditional_writes and not self.if_match and self.backend.exists(self.key):
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
        body = bytes(self._buffer)
        self._buffer = bytearray()
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
        if self._buffer:
            last, self._buffer = self._buffer, bytearray()
            self._submit(last)
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
        self._buffer = bytearray()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        if self.upload_id is not None:
            self.backend.abort_multipart(self.object_key, self.upload_id)
            self.upload_id = None


class S3Reader(io.RawIOBase):
    """A verified, resumable read of one object.

    Counts and hashes every byte; at the end of the stream checks the length against
    the object's and the SHA-256 against the one recorded at upload (metadata or tag),
    raising IntegrityError on a mismatch.  A connection that breaks mid-stream is
    resumed with a ranged GET pinned to the same ETag.
    """

    def __init__(self, backend: Backend, key: str, response: dict[str, Any], progress: Callable[[int], None] | None = None):
        super().__init__()
        self.backend = backend
        self.key = key
        self._body = response["Body"]
        self.etag: str = response.get("ETag", "")
        self.metadata: dict[str, str] = dict(response.get("Metadata") or {})
        self.size: int = int(response.get("ContentLength") or 0)
        self.storage_class: str = response.get("StorageClass") or "STANDARD"
        self._hash = hashlib.sha256()
        self.position = 0
        self._verified = False
        self._progress = Progress("Download", self.size or None, progress or backend.progress)

    def readable(self) -> bool:
        return True

    def _resume(self) -> None:
        self._body.close()
        response = self.backend.get(self.key, Range=f"bytes={self.position}-", IfMatch=self.etag)
        self._body = response["Body"]

    def read(self, size: int | None = -1) -> bytes:
        if self._verified:
            return b""
        want = -1 if size is None or size < 0 else size
        attempt = 0
        while True:
            try:
                data = self._body.read(want if want >= 0 else None)
                break
            except Exception as exc:  # noqa: BLE001 - classified just below
                attempt += 1
                if attempt >= self.backend.retry_policy.attempts or not is_transient(exc):
                    raise translate_error(exc, "reading", self.backend.describe(self.key)) from None
                log.debug("read of %s broke at byte %d (%s); resuming", self.key, self.position, type(exc).__name__)
                time.sleep(self.backend.retry_policy.delay(attempt))
                try:
                    self._resume()
                except Exception as resume_exc:  # noqa: BLE001
                    if error_code(resume_exc) == "PreconditionFailed":
                        raise IntegrityError(f"{self.backend.describe(self.key)} changed while it was being read") from None
                    raise translate_error(resume_exc, "reading", self.backend.describe(self.key)) from None
        if data:
            self._hash.update(data)
            self.position += len(data)
            self._progress.update(len(data))
            if self.size and self.position > self.size:
                raise IntegrityError(f"{self.backend.describe(self.key)}: more bytes than the object's {self.size}")
        if not data or (want < 0) or (self.size and self.position == self.size):
            self._verify()
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        chunks = []
        while chunk := self.read(1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)

    def _verify(self) -> None:
        if self._verified:
            return
        self._verified = True
        described = self.backend.describe(self.key)
        if self.position != self.size:
            raise IntegrityError(f"{described}: read {self.position} bytes, the object has {self.size}")
        expected = self.metadata.get(SHA256_KEY) or self.backend.tagged_sha256(self.key, self.etag)
        if expected and expected != self._hash.hexdigest():
            raise IntegrityError(f"{described}: SHA-256 mismatch; the object is damaged (in transit or at rest)")
        self._progress.finish()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def close(self) -> None:
        if not self.closed:
            try:
                self._body.close()
            finally:
                super().close()


class Backend(base.Backend):
    """Objects in an S3 bucket, under an optional key prefix."""

    name = "s3"
    cheap_reads = False

    def __init__(self, conf: dict[str, Any]):
        super().__init__(conf)
        bucket = conf.get("s3_bucket")
        if not bucket:
            raise ConfigError(f"destination {self.name} needs s3_bucket in the profile")
        self.bucket = str(bucket)
        prefix = str(conf.get("s3_prefix") or "").strip("/")
        self.prefix = prefix + "/" if prefix else ""
        self.endpoint_url = conf.get("endpoint_url") or None
        self.part_size = parse_size(conf.get("part_size"), 16 * MiB)
        if not MIN_PART_SIZE <= self.part_size <= MAX_PART_SIZE:
            raise ConfigError(f"part_size must be between 5 MiB and 5 GiB, not {self.part_size} bytes")
        self.concurrency = int(conf.get("concurrency") or 4)
        if not 1 <= self.concurrency <= 64:
            raise ConfigError("concurrency must be between 1 and 64")
        self.checksum_mode = str(conf.get("checksum_mode") or "when_supported")
        if self.checksum_mode not in ("when_supported", "when_required"):
            raise ConfigError("checksum_mode must be when_supported or when_required")
        default_algorithm = "CRC32" if self.checksum_mode == "when_supported" else "MD5"
        self.checksum_algorithm = str(conf.get("checksum_algorithm") or default_algorithm)
        if self.checksum_algorithm not in CHECKSUM_ALGORITHMS:
            raise ConfigError(f"checksum_algorithm must be one of {', '.join(CHECKSUM_ALGORITHMS)}")
        self.storage_class = conf.get("storage_class") or None
        if self.storage_class is not None and self.storage_class not in STORAGE_CLASSES:
            raise ConfigError(f"unknown storage_class {self.storage_class!r} (known: {', '.join(STORAGE_CLASSES)})")
        self.conditional_writes = bool(conf.get("s3_conditional_writes", True))
        self.tagging = bool(conf.get("s3_tagging", True))
        attempts = int(conf.get("s3_max_attempts") or 5)
        self.retry_policy = RetryPolicy(attempts=max(1, attempts))
        #: Called with the number of bytes each time a part or a read chunk completes.
        self.progress: Callable[[int], None] | None = None
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._bucket_ready = False

    # -- identity and naming ---------------------------------------------------------
    @property
    def container(self) -> str:
        where = self.endpoint_url.rstrip("/") + "/" if self.endpoint_url else "s3://"
        return f"{where}{self.bucket}/{self.prefix}"

    @property
    def legacy_backend_hash(self) -> str | None:
        """bakthat 0.6's ``backend_hash`` of this bucket: SHA-512 of access_key + bucket.

        None without an access key or with a key prefix (0.6 stored at the bucket's root).
        """
        access_key = self.conf.get("access_key")
        if not access_key or self.prefix:
            return None
        return hashlib.sha512(f"{access_key}{self.bucket}".encode()).hexdigest()

    def object_key(self, key: str) -> str:
        return self.prefix + self.check_key(key)

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    # -- client ------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The boto3 S3 client, built on first use (thread-safe once built)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self.make_client("s3")
        return self._client

    @client.setter
    def client(self, value: Any) -> None:
        self._client = value

    def session(self) -> Any:
        """Return a boto3 Session from the profile's keys, or the default credential chain."""
        return aws_session(self.conf)

    def make_client(self, service: str) -> Any:
        """Return a boto3 client for ``service`` with this profile's endpoint, retries and checksums."""
        return aws_client(
            self.conf,
            service,
            endpoint_url=self.endpoint_url if service == "s3" else None,
            checksum_mode=self.checksum_mode,
            attempts=self.retry_policy.attempts,
            pool=self.concurrency + 4,
        )

    # -- layered requests ----------------------------------------------------------------
    def call(self, what: str, operation: Callable[[], Any]) -> Any:
        """Run one request with retries; translate its failure into a bakthat error."""
        try:
            return call_with_retries(operation, what, self.retry_policy)
        except Exception as exc:
            raise translate_error(exc, what, "") from None

    def head(self, key: str) -> dict[str, Any]:
        """Return the raw HEAD response of ``key``.  Raise NotFoundError if it is missing."""
        object_key = self.object_key(key)
        try:
            return call_with_retries(
                lambda: self.client.head_object(Bucket=self.bucket, Key=object_key), f"HEAD {key}", self.retry_policy
            )
        except Exception as exc:
            raise translate_error(exc, "looking up", self.describe(key)) from None

    def get(self, key: str, **arguments: Any) -> dict[str, Any]:
        """Return the raw GET response of ``key``.  Raise NotFoundError if it is missing."""
        object_key = self.object_key(key)
        try:
            return call_with_retries(
                lambda: self.client.get_object(Bucket=self.bucket, Key=object_key, **arguments),
                f"GET {key}",
                self.retry_policy,
            )
        except Exception as exc:
            raise translate_error(exc, "reading", self.describe(key)) from None

    def storage_class_for(self, metadata: dict[str, str] | None) -> str | None:
        """Return the storage class of a new object: the caller's (e.g. from
        ``--s3-reduced-redundancy``), else the profile's."""
        return (metadata or {}).get("storage_class") or self.storage_class

    def put_arguments(self, metadata: dict[str, str] | None) -> dict[str, Any]:
        """Return the PutObject/CreateMultipartUpload arguments for a new object."""
        arguments: dict[str, Any] = {}
        user = {}
        for name, value in (metadata or {}).items():
            if name == "storage_class" or value is None:
                continue
            if name == "content_type":
                arguments["ContentType"] = str(value)
            else:
                user[name.lower()] = str(value)
        storage_class = self.storage_class_for(metadata)
        if storage_class and storage_class != "STANDARD":
            arguments["StorageClass"] = storage_class
        sse = self.conf.get("sse")
        if sse:
            arguments["ServerSideEncryption"] = sse
            if self.conf.get("sse_kms_key_id"):
                arguments["SSEKMSKeyId"] = self.conf["sse_kms_key_id"]
        if user:
            arguments["Metadata"] = user
        return arguments

    def ensure_bucket(self) -> None:
        """Create the bucket if it is missing (and ``s3_create_bucket`` allows it)."""
        if self._bucket_ready:
            return
        client = self.client
        try:
            call_with_retries(lambda: client.head_bucket(Bucket=self.bucket), "HEAD bucket", self.retry_policy)
        except Exception as exc:
            if not (error_code(exc) in ("404", "NoSuchBucket", "NotFound") or http_status(exc) == 404):
                if http_status(exc) == 403:
                    self._bucket_ready = True  # no ListBucket right: let the upload tell
                    return
                raise translate_error(exc, "checking bucket", self.bucket) from None
            if not self.conf.get("s3_create_bucket", True):
                raise NotFoundError(f"bucket {self.bucket} does not exist (s3_create_bucket is off)") from None
            self._create_bucket()
        self._bucket_ready = True

    def _create_bucket(self) -> None:
        client = self.client
        region = client.meta.region_name
        arguments: dict[str, Any] = {"Bucket": self.bucket}
        if region and region != "us-east-1":
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            client.create_bucket(**arguments)
        except Exception as exc:
            if error_code(exc) not in ("BucketAlreadyOwnedByYou",):
                raise translate_error(exc, "creating bucket", self.bucket) from None
            return
        log.info("Created bucket %s", self.bucket)
        days = int(self.conf.get("s3_abort_incomplete_days", 7) or 0)
        if days > 0:
            rule = {
                "ID": "bakthat-abort-incomplete-multipart-uploads",
                "Filter": {"Prefix": self.prefix},
                "Status": "Enabled",
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": days},
            }
            try:
                client.put_bucket_lifecycle_configuration(Bucket=self.bucket, LifecycleConfiguration={"Rules": [rule]})
            except Exception as exc:  # noqa: BLE001 - a convenience, not a requirement
                log.debug("could not add the abort-incomplete-uploads lifecycle rule (%s)", error_code(exc) or type(exc).__name__)

    def tag_sha256(self, key: str, digest: str) -> None:
        """Record a multipart object's SHA-256 as the object tag ``bakthat-sha256`` (best effort)."""
        if not self.tagging:
            return
        object_key = self.object_key(key)
        try:
            call_with_retries(
                lambda: self.client.put_object_tagging(
                    Bucket=self.bucket, Key=object_key, Tagging={"TagSet": [{"Key": SHA256_KEY, "Value": digest}]}
                ),
                f"tagging {key}",
                self.retry_policy,
            )
        except Exception as exc:  # noqa: BLE001 - the catalog and manifest keep the SHA-256 too
            log.warning("%s: could not tag its SHA-256 (%s); set s3_tagging: false for stores without tagging",
                        self.describe(key), error_code(exc) or type(exc).__name__)

    def tagged_sha256(self, key: str, etag: str) -> str | None:
        """Return the SHA-256 recorded in the object's tags, if any (multipart objects)."""
        if not self.tagging or "-" not in etag:
            return None
        object_key = self.object_key(key)
        try:
            response = self.client.get_object_tagging(Bucket=self.bucket, Key=object_key)
        except Exception as exc:  # noqa: BLE001 - then only the catalog's SHA-256 is checked
            log.debug("no tags for %s (%s)", key, error_code(exc) or type(exc).__name__)
            return None
        for tag in response.get("TagSet", []):
            if tag.get("Key") == SHA256_KEY:
                return str(tag.get("Value"))
        return None

    def verify_committed(self, key: str, size: int, digest: str, etag: str) -> base.ObjectInfo:
        """Check that the store holds ``size`` bytes under ``key`` in the version we wrote.

        The HEAD and the removal are conditional on our write's ETag: if another writer
        has replaced the object since (KeyValue keys can be rewritten), our version is no
        longer there to check, and theirs is left alone.  Raise IntegrityError, after
        removing our version, if its size is wrong.
        """
        object_key = self.object_key(key)
        try:
            head = call_with_retries(
                lambda: self.client.head_object(Bucket=self.bucket, Key=object_key, IfMatch=etag),
                f"HEAD {key}",
                self.retry_policy,
            )
        except Exception as exc:
            if http_status(exc) == 412 or error_code(exc) in {"PreconditionFailed", "412"}:
                log.debug("%s was replaced by another writer before it could be checked", self.describe(key))
                return base.ObjectInfo(key, size, None, {"etag": etag, "sha256": digest})
            raise translate_error(exc, "looking up", self.describe(key)) from None
        stored = int(head.get("ContentLength") or 0)
        if stored != size:
            try:
                self.client.delete_object(Bucket=self.bucket, Key=object_key, IfMatch=etag)
            finally:
                raise IntegrityError(f"{self.describe(key)}: the store holds {stored} bytes, {size} were sent; removed")
        return base.ObjectInfo(
            key,
            stored,
            _to_epoch(head.get("LastModified")),
            {"etag": head.get("ETag", etag), "sha256": digest, "storage_class": head.get("StorageClass") or "STANDARD"},
        )

    def abort_multipart(self, object_key: str, upload_id: str) -> None:
        """Abort a multipart upload and check no part survived (abort again if one did)."""
        client = self.client
        for _ in range(3):
            try:
                call_with_retries(
                    lambda: client.abort_multipart_upload(Bucket=self.bucket, Key=object_key, UploadId=upload_id),
                    "aborting an upload",
                    self.retry_policy,
                )
            except Exception as exc:
                if error_code(exc) == "NoSuchUpload" or http_status(exc) == 404:
                    return
                log.warning("could not abort the upload of %s (%s); `bakthat cleanup_uploads` removes it later",
                            object_key, error_code(exc) or type(exc).__name__)
                return
            try:
                remaining = client.list_parts(Bucket=self.bucket, Key=object_key, UploadId=upload_id).get("Parts")
            except Exception:  # noqa: BLE001 - NoSuchUpload: gone, as wanted
                return
            if not remaining:
                return
        log.debug("aborted upload of %s", object_key)

    # -- primitives ------------------------------------------------------------------------
    def open_upload(
        self,
        key: str,
        metadata: dict[str, str] | None = None,
        *,
        if_match: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> S3Upload:
        """Start an upload of ``key``.  Raise AlreadyExistsError at once if it exists.

        ``if_match`` (an ETag) turns the upload into a compare-and-swap replacement of
        that version, as the KeyValue store uses; a concurrent change makes
        :meth:`S3Upload.commit` raise AlreadyExistsError.
        """
        self.check_key(key)
        self.ensure_bucket()
        if if_match is None and self.exists(key):
            raise AlreadyExistsError(f"{self.describe(key)} already exists; nothing was replaced")
        return S3Upload(self, key, metadata, if_match=if_match, progress=progress)

    def open_read(self, key: str) -> IO[bytes]:
        response = self.get(key)
        return S3Reader(self, key, response)  # type: ignore[return-value]

    def stat(self, key: str) -> base.ObjectInfo:
        head = self.head(key)
        metadata = {name: str(value) for name, value in (head.get("Metadata") or {}).items()}
        metadata["etag"] = head.get("ETag", "")
        metadata["storage_class"] = head.get("StorageClass") or "STANDARD"
        if head.get("Restore"):
            metadata["restore"] = head["Restore"]
        return base.ObjectInfo(key, int(head.get("ContentLength") or 0), _to_epoch(head.get("LastModified")), metadata)

    def list(self, prefix: str = "") -> Iterator[base.ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    yield base.ObjectInfo(
                        item["Key"][len(self.prefix):],
                        int(item.get("Size") or 0),
                        _to_epoch(item.get("LastModified")),
                        {"etag": item.get("ETag", ""), "storage_class": item.get("StorageClass") or "STANDARD"},
                    )
        except Exception as exc:
            if error_code(exc) == "NoSuchBucket":
                return
            raise translate_error(exc, "listing", f"s3://{self.bucket}/{self.prefix}{prefix}") from None

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Delete ``key``; raise NotFoundError if it is missing.

        With ``if_match`` (an ETag) the delete is conditional: AlreadyExistsError if the
        object changed meanwhile.
        """
        head = self.head(key)  # S3 deletes missing keys silently; the interface reports them
        if if_match and head.get("ETag") != if_match:
            raise AlreadyExistsError(f"{self.describe(key)} changed meanwhile; not deleted")
        object_key = self.object_key(key)
        conditions = {"IfMatch": if_match} if if_match and self.conditional_writes else {}
        try:
            call_with_retries(
                lambda: self.client.delete_object(Bucket=self.bucket, Key=object_key, **conditions),
                f"deleting {key}",
                self.retry_policy,
            )
        except Exception as exc:
            if conditions and error_code(exc) in ("NotImplemented", "InvalidArgument", "InvalidRequest"):
                # Stores without conditional deletes: the HEAD above checked the version.
                self.call(f"deleting {key}", lambda: self.client.delete_object(Bucket=self.bucket, Key=object_key))
                return
            raise translate_error(exc, "deleting", self.describe(key)) from None

    def url(self, key: str, expires_in: int = 3600) -> str:
        return str(
            self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self.object_key(key)}, ExpiresIn=int(expires_in)
            )
        )

    def prepare_read(self, key: str, wait: bool = False) -> None:
        """Request (and with ``wait`` await) the restore of an archived object; see glacier."""
        head = self.head(key)
        storage_class = head.get("StorageClass") or "STANDARD"
        archived = storage_class in ARCHIVE_CLASSES or head.get("ArchiveStatus") in (
            "ARCHIVE_ACCESS",
            "DEEP_ARCHIVE_ACCESS",
        )
        if not archived:
            return
        from bakthat.backends import glacier

        glacier.ensure_restored(self, key, head, wait=wait)

    def refresh(self, row: Any) -> Any:
        """Update a recorded retrieval (a ``glacier.Retrievals`` row) from the object's state."""
        from bakthat.backends import glacier

        return glacier.refresh_restore(self, row)

    # -- stale multipart uploads --------------------------------------------------------------
    def stale_uploads(self, older_than: float = 0) -> list[StaleUpload]:
        """Return incomplete multipart uploads under the prefix started over ``older_than`` seconds ago."""
        limit = time.time() - older_than
        found = []
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for item in page.get("Uploads", []) or []:
                    initiated = _to_epoch(item.get("Initiated")) or 0.0
                    if initiated <= limit:
                        found.append(
                            StaleUpload(item["Key"][len(self.prefix):], item["UploadId"], initiated, item.get("StorageClass"))
                        )
        except Exception as exc:
            if error_code(exc) == "NoSuchBucket":
                return []
            raise translate_error(exc, "listing incomplete uploads in", f"s3://{self.bucket}/{self.prefix}") from None
        return sorted(found, key=lambda upload: upload.initiated)

    def abort_upload(self, upload: StaleUpload) -> None:
        """Abort one incomplete multipart upload found by :meth:`stale_uploads`."""
        self.abort_multipart(self.prefix + upload.key, upload.upload_id)


def cleanup_uploads(backend: Any, older_than: float, dry_run: bool = False) -> list[StaleUpload]:
    """Given a backend with ``stale_uploads``, abort (unless ``dry_run``) those older than
    ``older_than`` seconds and return them."""
    if not hasattr(backend, "stale_uploads"):
        raise ConfigError(f"destination {backend.name} has no multipart uploads to clean")
    stale = backend.stale_uploads(older_than)
    for upload in stale:
        if dry_run:
            log.info("Would abort incomplete upload of %s (started %s)", upload.key, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(upload.initiated)))
        else:
            backend.abort_upload(upload)
            log.info("Aborted incomplete upload of %s", upload.key)
    return stale
