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

Archive classes: an object in GLACIER or DEEP_ARCHIVE (or an archive tier of
INTELLIGENT_TIERING) is restored before it is read, as restic warms up its S3 objects
inside its S3 backend: :meth:`Backend.prepare_read` requests the restore (tier and days
from the profile), records it in the ``retrievals`` table, and raises
RetrievalPendingError or waits (:mod:`bakthat.backends.retrieval`).  The ``glacier``
destination (:mod:`bakthat.backends.glacier`) is this backend with an archive class.

The streams themselves (the multipart upload, the verified read) are in
:mod:`bakthat.backends._s3_transfer`; the profile keys and the typed config in
:mod:`bakthat.backends._s3_config` (re-exported here); credentials, clients and error
translation in :mod:`bakthat.backends.aws`.  This module is over 500 lines because
what is left is one concept, the bucket as bakthat uses it: naming, conditional
writes and deletes, the commit check, bucket creation, tags, archive-class restores
and stale uploads all act on the same client and prefix, and splitting them further
would scatter one class's methods.  boto3 is imported only when a client is first needed.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import IO, Any

from bakthat.backends import base
from bakthat.backends._retry import RetryPolicy, call_with_retries, error_code, http_status
from bakthat.backends._s3_config import ARCHIVE_CLASSES, CHECKSUM_ALGORITHMS, SETTINGS, STORAGE_CLASSES, S3Config
from bakthat.backends._s3_transfer import SHA256_KEY, S3Reader, S3Upload
from bakthat.backends.aws import aws_client, aws_session, to_epoch, translate_error
from bakthat.backends.retrieval import pending_message, record_retrieval, wait_for
from bakthat.errors import AlreadyExistsError, IntegrityError, NotFoundError, RetrievalPendingError

log = logging.getLogger("bakthat.backends")

#: Re-exported from _s3_config: the backend's SETTINGS and typed config; checker.py reads the archive classes.
__all__ = ["ARCHIVE_CLASSES", "CHECKSUM_ALGORITHMS", "SETTINGS", "STORAGE_CLASSES", "Backend", "S3Config", "StaleUpload", "restore_state"]


@dataclass
class StaleUpload:
    """An incomplete multipart upload left in the bucket."""

    key: str
    upload_id: str
    initiated: float
    storage_class: str | None = None


def restore_state(header: str | None) -> tuple[str | None, int | None]:
    """Given an ``x-amz-restore`` header, return (None | "ongoing" | "ready", expiry epoch)."""
    if not header:
        return None, None
    if 'ongoing-request="true"' in header:
        return "ongoing", None
    expiry = None
    if "expiry-date=" in header:
        text = header.split("expiry-date=", 1)[1].strip().strip('"')
        try:
            expiry = int(parsedate_to_datetime(text).timestamp())
        except (TypeError, ValueError):
            expiry = None
    return "ready", expiry


class Backend(base.Backend):
    """Objects in an S3 bucket, under an optional key prefix."""

    name = "s3"
    cheap_reads = False
    conditional_writes = True
    lists_stale_uploads = True
    archive_retrievals = True

    def __init__(self, conf: Mapping[str, Any]):
        super().__init__(conf)
        self.config = S3Config.from_settings(conf, self.name)
        self.bucket = self.config.bucket
        self.prefix = self.config.prefix
        self.endpoint_url = self.config.endpoint_url
        self.retry_policy = RetryPolicy(attempts=self.config.aws.max_attempts)
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
        access_key = self.config.aws.access_key
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
        return aws_session(self.config.aws)

    def make_client(self, service: str) -> Any:
        """Return a boto3 client for ``service`` with this profile's endpoint, retries and checksums."""
        return aws_client(
            self.config.aws,
            service,
            endpoint_url=self.endpoint_url if service == "s3" else None,
            checksum_mode=self.config.checksum_mode,
            addressing_style=self.config.addressing_style,
            pool=self.config.concurrency + 4,
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
        return (metadata or {}).get("storage_class") or self.config.storage_class

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
        if self.config.sse:
            arguments["ServerSideEncryption"] = self.config.sse
            if self.config.sse_kms_key_id:
                arguments["SSEKMSKeyId"] = self.config.sse_kms_key_id
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
            if not self.config.create_bucket:
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
        days = self.config.abort_incomplete_days
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
        if not self.config.tagging:
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
        if not self.config.tagging or "-" not in etag:
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
            to_epoch(head.get("LastModified")),
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
        return base.ObjectInfo(key, int(head.get("ContentLength") or 0), to_epoch(head.get("LastModified")), metadata)

    def list(self, prefix: str = "") -> Iterator[base.ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    yield base.ObjectInfo(
                        item["Key"][len(self.prefix):],
                        int(item.get("Size") or 0),
                        to_epoch(item.get("LastModified")),
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
        conditions = {"IfMatch": if_match} if if_match and self.config.conditional_writes else {}
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

    def prepare_read(self, key: str, wait: bool = False, sleep: Callable[[float], Any] = time.sleep) -> None:
        """Make an archived object readable: request its restore, then wait or raise.

        An object outside the archive classes returns at once, as does one whose restore
        is done.  Otherwise request a restore (the profile's tier and days) unless one
        runs already, record it in ``retrievals``, and raise RetrievalPendingError
        unless ``wait`` (or ``retrieval_wait``): then poll every
        ``retrieval_poll_interval`` seconds until it is ready.
        """
        head = self.head(key)
        storage_class = head.get("StorageClass") or "STANDARD"
        archived = storage_class in ARCHIVE_CLASSES or head.get("ArchiveStatus") in ("ARCHIVE_ACCESS", "DEEP_ARCHIVE_ACCESS")
        if not archived:
            return
        config = self.config.retrieval
        tier = config.tier
        if storage_class == "DEEP_ARCHIVE" and tier == "Expedited":
            log.warning("DEEP_ARCHIVE has no Expedited retrievals; using Standard")
            tier = "Standard"
        state, expiry = restore_state(head.get("Restore"))
        if state == "ready":
            record_retrieval(self, key, "s3-restore", "ready", tier, ready_until=expiry)
            return
        requested_now = state is None and self._request_restore(key, storage_class, tier)
        message = pending_message(key, storage_class, tier, requested_now)
        record_retrieval(self, key, "s3-restore", "pending", tier, message=message)
        if not (wait or config.wait):
            raise RetrievalPendingError(message)

        def check() -> tuple[str, str | None]:
            state, expiry = restore_state(self.head(key).get("Restore"))
            if state != "ready":
                return "pending", None
            record_retrieval(self, key, "s3-restore", "ready", tier, ready_until=expiry)
            return "ready", None

        wait_for(key, check, config, sleep=sleep)

    def _request_restore(self, key: str, storage_class: str, tier: str) -> bool:
        """Request the restore of an archived object; return False if one was running."""
        request: dict[str, Any] = {"GlacierJobParameters": {"Tier": tier}}
        if storage_class != "INTELLIGENT_TIERING":
            request["Days"] = self.config.retrieval.days
        object_key = self.object_key(key)
        try:
            call_with_retries(
                lambda: self.client.restore_object(Bucket=self.bucket, Key=object_key, RestoreRequest=request),
                f"requesting the restore of {key}",
                self.retry_policy,
            )
        except Exception as exc:
            if error_code(exc) != "RestoreAlreadyInProgress":
                raise translate_error(exc, "requesting the restore of", self.describe(key)) from None
            return False
        log.info("Requested a %s retrieval of %s (%s)", tier, key, storage_class)
        return True

    def refresh(self, row: Any) -> Any:
        """Update a restore's ``retrievals`` row from the object's HEAD: pending, ready or expired."""
        try:
            head = self.head(row.key)
        except NotFoundError:
            row.status, row.message = "expired", "the object is gone"
        else:
            state, expiry = restore_state(head.get("Restore"))
            if state == "ready":
                row.status, row.ready_until = "ready", expiry
            elif state == "ongoing":
                row.status = "pending"
            elif (head.get("StorageClass") or "STANDARD") in ARCHIVE_CLASSES:
                row.status = "expired"  # the restored copy lapsed
        row.updated = int(time.time())
        row.save()
        return row

    # -- stale multipart uploads --------------------------------------------------------------
    def stale_uploads(self, older_than: float = 0) -> list[StaleUpload]:
        """Return incomplete multipart uploads under the prefix started over ``older_than`` seconds ago."""
        limit = time.time() - older_than
        found = []
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for item in page.get("Uploads", []) or []:
                    initiated = to_epoch(item.get("Initiated")) or 0.0
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
