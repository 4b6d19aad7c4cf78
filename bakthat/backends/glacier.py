"""Glacier: S3 archive storage classes by default, the legacy vault API for existing vaults.

The vault-based Glacier service takes no new customers since December 2025, so
``destination: glacier`` stores archives in the profile's S3 bucket with the archive
storage class ``glacier_storage_class`` (GLACIER by default, or DEEP_ARCHIVE; GLACIER_IR
objects read at once).  Restoring an archived object is 0.6's two-step: the first
``restore`` requests a retrieval (tier ``retrieval_tier``: Expedited, Standard or Bulk)
and raises :class:`~bakthat.errors.RetrievalPendingError` saying so; a later ``restore``
downloads it once ready; ``wait=True`` (``--wait``) polls until it is.  Every retrieval
is recorded in the catalog table ``retrievals``; ``bakthat retrievals`` shows them.

Small objects written with :meth:`Backend.put` (the manifests beside each archive) stay
in STANDARD, so the store's own description of each backup is readable without a
retrieval.

Existing vault users keep working: a profile with ``glacier_vault`` (and
``glacier_mode`` auto or vault) uses the vault API.  Archive ids live in the catalog
table ``glacier_archives`` (0.6's ``inventory`` rows are read too); reads go through
archive-retrieval jobs, downloaded in ``vault_chunk_size`` ranges with each range's
tree hash and the whole archive's SHA-256 checked.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import IO, Any

import peewee

from bakthat import models
from bakthat.backends import base, s3
from bakthat.backends._retry import RetryPolicy, call_with_retries, error_code, http_status
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
TIERS = ("Expedited", "Standard", "Bulk")
GLACIER_CLASSES = ("GLACIER", "DEEP_ARCHIVE", "GLACIER_IR")
#: How long a retrieval usually takes, for the messages.
TYPICAL_WAIT = {
    ("GLACIER", "Expedited"): "1-5 minutes",
    ("GLACIER", "Standard"): "3-5 hours",
    ("GLACIER", "Bulk"): "5-12 hours",
    ("DEEP_ARCHIVE", "Standard"): "up to 12 hours",
    ("DEEP_ARCHIVE", "Bulk"): "up to 48 hours",
    ("vault", "Expedited"): "1-5 minutes",
    ("vault", "Standard"): "3-5 hours",
    ("vault", "Bulk"): "5-12 hours",
}

SETTINGS: dict[str, Setting] = {
    "glacier_vault": Setting(str, None, "legacy Glacier vault name: when set, destination glacier uses the vault API"),
    "glacier_mode": Setting(
        str, "auto", "auto (vault API if glacier_vault is set, else S3), s3 or vault", ("auto", "s3", "vault")
    ),
    "glacier_storage_class": Setting(str, "GLACIER", "S3 archive class of destination glacier", GLACIER_CLASSES),
    "retrieval_tier": Setting(str, "Standard", "speed (and price) of archive retrievals", TIERS),
    "retrieval_days": Setting(int, 3, "days a restored copy of an S3 archive stays readable"),
    "retrieval_wait": Setting(bool, False, "restore waits for retrievals (as --wait) instead of returning"),
    "retrieval_poll_interval": Setting((int, float), 300, "seconds between checks while waiting for a retrieval"),
    "retrieval_wait_timeout": Setting((int, float), 172800, "give up waiting for a retrieval after this many seconds"),
    "glacier_endpoint_url": Setting(str, None, "Glacier vault API endpoint (default AWS, or $AWS_ENDPOINT_URL)"),
    "vault_part_size": Setting((int, str), "16MiB", "vault multipart part size: a power of two from 1 MiB to 4 GiB"),
    "vault_chunk_size": Setting((int, str), "4MiB", "vault download range size (a multiple of 1 MiB)"),
}


# --------------------------------------------------------------------------- catalog tables


class GlacierArchives(models.BaseModel):
    """One archive in a legacy Glacier vault: what the vault API needs to find it again."""

    backend_hash = peewee.CharField(index=True)
    vault = peewee.CharField()
    key = peewee.TextField()
    archive_id = peewee.TextField()
    size = peewee.BigIntegerField()
    sha256 = peewee.CharField(null=True)
    tree_hash = peewee.CharField(null=True)
    created = peewee.IntegerField()

    class Meta:
        table_name = "glacier_archives"
        indexes = ((("backend_hash", "key"), True),)


class Retrievals(models.BaseModel):
    """A retrieval of an archived object: an S3 restore or a vault archive-retrieval job.

    ``status`` is pending, ready, failed or expired.  The successor of 0.6's ``jobs``.
    """

    backend = peewee.CharField()
    backend_hash = peewee.CharField(index=True)
    key = peewee.TextField()
    kind = peewee.CharField()  # s3-restore | vault-job
    job_id = peewee.TextField(null=True)
    tier = peewee.CharField()
    status = peewee.CharField(default="pending", index=True)
    requested = peewee.IntegerField()
    updated = peewee.IntegerField()
    ready_until = peewee.IntegerField(null=True)
    message = peewee.TextField(null=True)

    class Meta:
        table_name = "retrievals"
        indexes = ((("backend_hash", "key"), False),)


TABLES = [GlacierArchives, Retrievals]
_created: dict[str, Any] = {"for": None}


def catalog_ready() -> bool:
    """Create this module's tables in the bound catalog (once per binding); False if unbound."""
    bound = models._bound.get("key")
    if bound is None:
        return False
    if _created["for"] != bound:
        models.ensure_tables(TABLES)
        _created["for"] = bound
    return True


def _require_catalog() -> None:
    if not catalog_ready():
        raise ConfigError("the vault API keeps archive ids in the catalog: bind it first (bakthat.models.bind)")


def record_retrieval(
    backend: base.Backend,
    key: str,
    kind: str,
    status: str,
    tier: str,
    job_id: str | None = None,
    ready_until: int | None = None,
    message: str | None = None,
) -> Retrievals | None:
    """Create or update the newest retrieval row of ``key``; None if no catalog is bound."""
    if not catalog_ready():
        return None
    now = int(time.time())
    row = (
        Retrievals.select()
        .where((Retrievals.backend_hash == backend.backend_hash) & (Retrievals.key == key) & (Retrievals.kind == kind))
        .order_by(Retrievals.requested.desc())
        .first()
    )
    if row is None or (row.status in ("failed", "expired") and status == "pending") or (job_id and row.job_id != job_id and status == "pending"):
        row = Retrievals(backend=backend.name, backend_hash=backend.backend_hash, key=key, kind=kind, requested=now, tier=tier)
    row.status = status
    row.tier = tier
    row.job_id = job_id or row.job_id
    row.ready_until = ready_until
    row.message = message
    row.updated = now
    row.save()
    return row


def _settings(conf: dict[str, Any]) -> tuple[str, int, float, float]:
    tier = str(conf.get("retrieval_tier") or "Standard").capitalize()
    if tier not in TIERS:
        raise ConfigError(f"retrieval_tier must be one of {', '.join(TIERS)}")
    days = int(conf.get("retrieval_days") or 3)
    poll = float(conf.get("retrieval_poll_interval") or 300)
    timeout = float(conf.get("retrieval_wait_timeout") or 172800)
    return tier, days, poll, timeout


def _pending_message(key: str, where: str, tier: str, requested_now: bool) -> str:
    typical = TYPICAL_WAIT.get((where, tier), "a few hours")
    what = "was requested now" if requested_now else "is in progress"
    return (
        f"{key} is archived in {where}: a {tier} retrieval {what} (typically {typical}). "
        "Run the same restore again once it is ready, or add --wait to wait for it; "
        "`bakthat retrievals` shows pending retrievals."
    )


# --------------------------------------------------------------------------- S3 archive classes


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


def ensure_restored(
    backend: s3.Backend, key: str, head: dict[str, Any], wait: bool = False, sleep: Callable[[float], Any] = time.sleep
) -> None:
    """Make an archived S3 object readable: request its restore, then wait or raise.

    Given the object's HEAD response: a finished restore returns at once; none yet
    requests one (tier and days from the profile); then raise RetrievalPendingError
    unless ``wait`` (or the profile's ``retrieval_wait``), in which case poll every
    ``retrieval_poll_interval`` seconds until it is ready.
    """
    tier, days, poll, timeout = _settings(backend.conf)
    storage_class = head.get("StorageClass") or "INTELLIGENT_TIERING"
    if storage_class == "DEEP_ARCHIVE" and tier == "Expedited":
        log.warning("DEEP_ARCHIVE has no Expedited retrievals; using Standard")
        tier = "Standard"
    state, expiry = restore_state(head.get("Restore"))
    if state == "ready":
        record_retrieval(backend, key, "s3-restore", "ready", tier, ready_until=expiry)
        return
    requested_now = False
    if state is None:
        request: dict[str, Any] = {"GlacierJobParameters": {"Tier": tier}}
        if storage_class != "INTELLIGENT_TIERING":
            request["Days"] = days
        object_key = backend.object_key(key)
        try:
            call_with_retries(
                lambda: backend.client.restore_object(Bucket=backend.bucket, Key=object_key, RestoreRequest=request),
                f"requesting the restore of {key}",
                backend.retry_policy,
            )
            requested_now = True
            log.info("Requested a %s retrieval of %s (%s)", tier, key, storage_class)
        except Exception as exc:
            if error_code(exc) != "RestoreAlreadyInProgress":
                raise s3.translate_error(exc, "requesting the restore of", backend.describe(key)) from None
    message = _pending_message(key, storage_class, tier, requested_now)
    record_retrieval(backend, key, "s3-restore", "pending", tier, message=message)
    if not (wait or backend.conf.get("retrieval_wait")):
        raise RetrievalPendingError(message)
    deadline = time.monotonic() + timeout
    log.info("Waiting for the retrieval of %s (checking every %gs)", key, poll)
    while True:
        sleep(poll)
        state, expiry = restore_state(backend.head(key).get("Restore"))
        if state == "ready":
            record_retrieval(backend, key, "s3-restore", "ready", tier, ready_until=expiry)
            log.info("%s is restored and readable", key)
            return
        if time.monotonic() > deadline:
            raise RetrievalPendingError(f"{key}: the retrieval is still running after {timeout:g}s of waiting; run restore again later")


def refresh_restore(backend: s3.Backend, row: Retrievals) -> Retrievals:
    """Update an S3 restore's row from the object's HEAD: pending, ready or expired."""
    try:
        head = backend.head(row.key)
    except NotFoundError:
        row.status, row.message = "expired", "the object is gone"
    else:
        state, expiry = restore_state(head.get("Restore"))
        if state == "ready":
            row.status, row.ready_until = "ready", expiry
        elif state == "ongoing":
            row.status = "pending"
        elif (head.get("StorageClass") or "STANDARD") in s3.ARCHIVE_CLASSES:
            row.status = "expired"  # the restored copy lapsed
    row.updated = int(time.time())
    row.save()
    return row


class Backend(s3.Backend):
    """Archives in an S3 bucket with an archive storage class (or, legacy, a Glacier vault)."""

    name = "glacier"

    def __new__(cls, conf: dict[str, Any]) -> Any:
        if cls is Backend and use_vault(conf):
            return VaultBackend(conf)
        return super().__new__(cls)

    def __init__(self, conf: dict[str, Any]):
        super().__init__(conf)
        archive_class = str(conf.get("glacier_storage_class") or "GLACIER")
        if archive_class not in GLACIER_CLASSES:
            raise ConfigError(f"glacier_storage_class must be one of {', '.join(GLACIER_CLASSES)}")
        self.storage_class = archive_class

    @property
    def legacy_backend_hash(self) -> str | None:
        """None: bakthat 0.6 wrote no glacier backup into an S3 bucket."""
        return None

    def storage_class_for(self, metadata: dict[str, str] | None) -> str | None:
        """Archives get the archive class; only an explicit STANDARD (put) is kept."""
        if (metadata or {}).get("storage_class") == "STANDARD":
            return "STANDARD"
        return self.storage_class

    def put(self, key: str, source: IO[bytes] | bytes, *, metadata: dict[str, str] | None = None, **kwargs: Any) -> base.ObjectInfo:
        """Store a small side object (a manifest) in STANDARD so it reads without a retrieval."""
        return super().put(key, source, metadata={"storage_class": "STANDARD", **(metadata or {})}, **kwargs)


def use_vault(conf: dict[str, Any]) -> bool:
    """Return True if the profile selects the legacy vault API."""
    mode = str(conf.get("glacier_mode") or "auto")
    if mode not in ("auto", "s3", "vault"):
        raise ConfigError("glacier_mode must be auto, s3 or vault")
    if mode == "vault" and not conf.get("glacier_vault"):
        raise ConfigError("glacier_mode vault needs glacier_vault")
    return mode == "vault" or (mode == "auto" and bool(conf.get("glacier_vault")))


# --------------------------------------------------------------------------- the vault API


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


def _description(key: str) -> str:
    """Glacier descriptions are printable ASCII: percent-encode the rest of the key."""
    return urllib.parse.quote(key, safe=" /!$&'()*+,-.:;=@_~")


#: The ``retrievals`` key of a vault inventory job.
INVENTORY_KEY = "(vault inventory)"


@dataclass(frozen=True)
class InventoryEntry:
    """One archive of a vault inventory."""

    key: str
    archive_id: str
    size: int
    created: float | None
    tree_hash: str | None


def _iso_epoch(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


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
                    vaultName=backend.vault, archiveDescription=_description(self.key), partSize=str(self.part_size)
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
                    vaultName=backend.vault, archiveDescription=_description(self.key), checksum=checksum, body=body
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
        try:
            GlacierArchives.create(
                backend_hash=backend.backend_hash,
                vault=backend.vault,
                key=self.key,
                archive_id=archive_id,
                size=self.size,
                sha256=self._hash.hexdigest(),
                tree_hash=checksum,
                created=int(time.time()),
            )
        except peewee.IntegrityError:
            backend.delete_archive(archive_id)
            raise AlreadyExistsError(f"{backend.describe(self.key)} already exists; nothing was replaced") from None
        self._state = "committed"
        return base.ObjectInfo(self.key, self.size, time.time(), {"archive_id": archive_id, "sha256": self._hash.hexdigest()})

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


class VaultReader(io.RawIOBase):
    """The output of a finished archive-retrieval job, fetched in ranges and verified."""

    def __init__(self, backend: VaultBackend, row: GlacierArchives, job_id: str):
        super().__init__()
        self.backend = backend
        self.row = row
        self.job_id = job_id
        self.size = int(row.size)
        self.position = 0
        self._hash = hashlib.sha256()
        self._chunk = b""
        self._stream: Any = None  # the whole output, when the service ignores ranges
        self._verified = False

    def readable(self) -> bool:
        return True

    def _fetch(self) -> bytes:
        """Return the next range of the output (with retries), or b"" at the end."""
        if self._stream is not None:
            return self._stream.read(self.backend.chunk_size)
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
            self._stream = response["body"]
            return self._stream.read(self.backend.chunk_size)
        if len(data) != end - start + 1:
            raise IntegrityError(f"{self.row.key}: the vault returned {len(data)} bytes for a {end - start + 1}-byte range")
        checksum = response.get("checksum")
        if checksum and tree_hash(leaf_hashes(data)).hex() != checksum:
            raise IntegrityError(f"{self.row.key}: a downloaded range does not match its tree hash")
        return data

    def read(self, size: int | None = -1) -> bytes:
        if self._verified:
            return b""
        if size is None or size < 0:
            chunks = []
            while chunk := self.read(1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        if not self._chunk:
            try:
                self._chunk = self._fetch()
            except (IntegrityError, StorageError):
                raise
            except Exception as exc:
                raise s3.translate_error(exc, "downloading", self.backend.describe(self.row.key)) from None
        data, self._chunk = self._chunk[:size], self._chunk[size:]
        if data:
            self._hash.update(data)
            self.position += len(data)
        else:
            self._verify()
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _verify(self) -> None:
        self._verified = True
        if self.position != self.size:
            raise IntegrityError(f"{self.row.key}: read {self.position} bytes, the archive has {self.size}")
        if self.row.sha256 and self._hash.hexdigest() != self.row.sha256:
            raise IntegrityError(f"{self.row.key}: SHA-256 mismatch; the downloaded archive is damaged")

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
        super().close()


class VaultBackend(base.Backend):
    """Archives in a legacy Glacier vault; archive ids and jobs kept in the catalog."""

    name = "glacier"

    def __init__(self, conf: dict[str, Any]):
        super().__init__(conf)
        self.vault = str(conf.get("glacier_vault") or "")
        if not self.vault:
            raise ConfigError("the vault API needs glacier_vault")
        self.region = s3._explicit_region(conf) or str(conf.get("region_name") or "us-east-1")
        self.part_size = s3.parse_size(conf.get("vault_part_size"), 16 * MiB)
        megabytes = self.part_size // MiB
        if self.part_size % MiB or megabytes & (megabytes - 1) or not 1 <= megabytes <= 4096:
            raise ConfigError("vault_part_size must be a power of two from 1 MiB to 4 GiB")
        self.chunk_size = s3.parse_size(conf.get("vault_chunk_size"), 4 * MiB)
        if self.chunk_size % MiB or self.chunk_size <= 0:
            raise ConfigError("vault_chunk_size must be a multiple of 1 MiB")
        self.retry_policy = RetryPolicy(attempts=max(1, int(conf.get("s3_max_attempts") or 5)))
        self._client: Any = None
        self._vault_ready = False

    @property
    def container(self) -> str:
        return f"glacier://{self.region}/{self.vault}"

    @property
    def legacy_backend_hash(self) -> str | None:
        """bakthat 0.6's ``backend_hash`` of this vault: SHA-512 of access_key + vault."""
        access_key = self.conf.get("access_key")
        return hashlib.sha512(f"{access_key}{self.vault}".encode()).hexdigest() if access_key else None

    def describe(self, key: str) -> str:
        return f"{self.container}/{key}"

    @property
    def client(self) -> Any:
        if self._client is None:
            conf = {**self.conf, "region_name": self.region}
            self._client = s3.aws_client(
                conf,
                "glacier",
                endpoint_url=self.conf.get("glacier_endpoint_url") or None,
                attempts=self.retry_policy.attempts,
            )
        return self._client

    @client.setter
    def client(self, value: Any) -> None:
        self._client = value

    def call(self, what: str, operation: Callable[[], Any]) -> Any:
        try:
            return call_with_retries(operation, what, self.retry_policy)
        except Exception as exc:
            raise s3.translate_error(exc, what, f"in vault {self.vault}") from None

    def _row(self, key: str) -> GlacierArchives:
        _require_catalog()
        row = GlacierArchives.get_or_none(
            (GlacierArchives.backend_hash == self.backend_hash) & (GlacierArchives.key == self.check_key(key))
        )
        if row is None:
            row = self._legacy_row(key)
        if row is None:
            raise NotFoundError(f"{self.describe(key)}: no such archive in the catalog")
        return row

    def _legacy_row(self, key: str) -> GlacierArchives | None:
        """Adopt 0.6's ``inventory`` row (filename, archive_id) for ``key``, if that table exists."""
        database = models.database
        try:
            if "inventory" not in database.get_tables():
                return None
            cursor = database.execute_sql("SELECT archive_id FROM inventory WHERE filename = ?", (key,))
            found = cursor.fetchone()
        except Exception:  # noqa: BLE001 - not a 0.6 catalog
            return None
        if not found:
            return None
        return GlacierArchives.create(
            backend_hash=self.backend_hash, vault=self.vault, key=key, archive_id=found[0], size=0, created=int(time.time())
        )

    def ensure_vault(self) -> None:
        if not self._vault_ready:
            self.call(f"creating vault {self.vault}", lambda: self.client.create_vault(vaultName=self.vault))
            self._vault_ready = True

    def delete_archive(self, archive_id: str) -> None:
        try:
            self.client.delete_archive(vaultName=self.vault, archiveId=archive_id)
        except Exception as exc:  # noqa: BLE001 - reported, the caller decides
            log.warning("could not delete a vault archive (%s)", error_code(exc) or type(exc).__name__)

    # -- primitives -----------------------------------------------------------------------
    def open_upload(self, key: str, metadata: dict[str, str] | None = None) -> VaultUpload:
        self.check_key(key)
        _require_catalog()
        if self.exists(key):
            raise AlreadyExistsError(f"{self.describe(key)} already exists; nothing was replaced")
        self.ensure_vault()
        return VaultUpload(self, key)

    def stat(self, key: str) -> base.ObjectInfo:
        row = self._row(key)
        return base.ObjectInfo(key, int(row.size), float(row.created), {"archive_id": row.archive_id})

    def list(self, prefix: str = "") -> Iterator[base.ObjectInfo]:
        if not catalog_ready():
            return
        query = GlacierArchives.select().where(GlacierArchives.backend_hash == self.backend_hash)
        rows = sorted((row for row in query if row.key.startswith(prefix)), key=lambda row: row.key)
        for row in rows:
            yield base.ObjectInfo(row.key, int(row.size), float(row.created), {"archive_id": row.archive_id})

    def delete(self, key: str) -> None:
        row = self._row(key)
        try:
            self.client.delete_archive(vaultName=self.vault, archiveId=row.archive_id)
        except Exception as exc:
            if not (error_code(exc) == "ResourceNotFoundException" or http_status(exc) == 404):
                raise s3.translate_error(exc, "deleting", self.describe(key)) from None
            log.warning("%s was already gone from the vault", key)
        row.delete_instance()
        for job in Retrievals.select().where((Retrievals.backend_hash == self.backend_hash) & (Retrievals.key == key)):
            job.delete_instance()

    def url(self, key: str, expires_in: int = 3600) -> str:
        """Vault archives have no HTTP URL: return a ``glacier://`` URI naming the archive."""
        row = self._row(key)
        return f"{self.container}/{urllib.parse.quote(key)}?archive_id={row.archive_id}"

    def _job(self, key: str, kind: str = "vault-job") -> Retrievals | None:
        if not catalog_ready():
            return None
        return (
            Retrievals.select()
            .where(
                (Retrievals.backend_hash == self.backend_hash)
                & (Retrievals.key == key)
                & (Retrievals.kind == kind)
                & (Retrievals.status.in_(["pending", "ready"]))
            )
            .order_by(Retrievals.requested.desc())
            .first()
        )

    def refresh(self, job: Retrievals) -> Retrievals:
        """Update a job row from ``describe_job``: ready, pending, failed or expired."""
        try:
            described = self.client.describe_job(vaultName=self.vault, jobId=job.job_id)
        except Exception as exc:
            if error_code(exc) == "ResourceNotFoundException" or http_status(exc) == 404:
                job.status, job.message = "expired", "the job output is no longer available (24 h after completion)"
            else:
                raise s3.translate_error(exc, "checking the retrieval of", self.describe(job.key)) from None
        else:
            code = described.get("StatusCode")
            if described.get("Completed") and code == "Succeeded":
                job.status = "ready"
                completed = described.get("CompletionDate")
                if completed:
                    try:
                        job.ready_until = int(datetime.fromisoformat(completed.replace("Z", "+00:00")).timestamp()) + 86400
                    except ValueError:
                        job.ready_until = None
            elif described.get("Completed") or code == "Failed":
                job.status, job.message = "failed", str(described.get("StatusMessage") or "failed")
            else:
                job.status = "pending"
        job.updated = int(time.time())
        job.save()
        return job

    def prepare_read(self, key: str, wait: bool = False, sleep: Callable[[float], Any] = time.sleep) -> None:
        """Start (or find) an archive-retrieval job for ``key``; wait for it or raise Pending."""
        row = self._row(key)
        tier, _days, _poll, _timeout = _settings(self.conf)
        job = self._job(key)
        if job is not None:
            job = self.refresh(job)
            if job.status == "ready":
                return
            if job.status != "pending":
                job = None
        requested_now = False
        if job is None:
            response = self.call(
                f"requesting the retrieval of {key}",
                lambda: self.client.initiate_job(
                    vaultName=self.vault,
                    jobParameters={"Type": "archive-retrieval", "ArchiveId": row.archive_id, "Tier": tier, "Description": _description(key)[:1024]},
                ),
            )
            requested_now = True
            job = record_retrieval(self, key, "vault-job", "pending", tier, job_id=response["jobId"])
            log.info("Requested a %s retrieval of %s from vault %s", tier, key, self.vault)
        assert job is not None
        message = _pending_message(key, "vault", job.tier, requested_now)
        job.message = message
        job.save()
        if not (wait or self.conf.get("retrieval_wait")):
            raise RetrievalPendingError(message)
        self._wait_for(job, key, "restore", sleep)

    def _wait_for(self, job: Retrievals, what: str, command: str, sleep: Callable[[float], Any]) -> None:
        """Poll a pending job every ``retrieval_poll_interval`` seconds until it is ready.

        Raise StorageError if it fails or expires, RetrievalPendingError after
        ``retrieval_wait_timeout`` seconds.
        """
        _tier, _days, poll, timeout = _settings(self.conf)
        deadline = time.monotonic() + timeout
        log.info("Waiting for the retrieval of %s (checking every %gs)", what, poll)
        while True:
            sleep(poll)
            job = self.refresh(job)
            if job.status == "ready":
                log.info("%s is retrieved and readable", what)
                return
            if job.status != "pending":
                raise StorageError(f"{what}: the vault retrieval job {job.status}: {job.message}")
            if time.monotonic() > deadline:
                raise RetrievalPendingError(f"{what}: the retrieval is still running after {timeout:g}s of waiting; run {command} again later")

    # -- the vault inventory (sync adopts bakthat 0.6's archives from it) -------------------
    def inventory(self, wait: bool = False, sleep: Callable[[float], Any] = time.sleep) -> list[InventoryEntry]:
        """Return the vault's archives as its latest inventory lists them.

        A vault has no live listing: this requests an inventory-retrieval job (or finds
        the one requested earlier, recorded in ``retrievals``) and reads its output once
        it is ready.  AWS prepares a vault inventory about once a day, so archives of the
        last day may be missing.  Raise RetrievalPendingError while the job runs (unless
        ``wait`` or ``retrieval_wait``: then poll), StorageError if it fails.
        """
        _require_catalog()
        what = f"the inventory of vault {self.vault}"
        job = self._job(INVENTORY_KEY, kind="vault-inventory")
        if job is not None and self.refresh(job).status not in ("pending", "ready"):
            job = None
        requested_now = job is None
        if job is None:
            response = self.call(
                f"requesting {what}",
                lambda: self.client.initiate_job(
                    vaultName=self.vault, jobParameters={"Type": "inventory-retrieval", "Format": "JSON"}
                ),
            )
            job = record_retrieval(self, INVENTORY_KEY, "vault-inventory", "pending", "Standard", job_id=response["jobId"])
            assert job is not None
            log.info("Requested %s", what)
        if job.status != "ready":
            message = (
                f"{what} {'was requested now' if requested_now else 'is being prepared'} (typically 3-5 hours): "
                "run the same sync again once it is ready, or add --wait; `bakthat retrievals` shows it."
            )
            job.message = message
            job.save()
            if not (wait or self.conf.get("retrieval_wait")):
                raise RetrievalPendingError(message)
            self._wait_for(job, what, "sync", sleep)
        response = self.call(f"reading {what}", lambda: self.client.get_job_output(vaultName=self.vault, jobId=job.job_id))
        try:
            listing = json.loads(response["body"].read())
            entries = [
                InventoryEntry(
                    key=urllib.parse.unquote(str(item["ArchiveDescription"] or "")),
                    archive_id=str(item["ArchiveId"]),
                    size=int(item["Size"]),
                    created=_iso_epoch(item.get("CreationDate")),
                    tree_hash=item.get("SHA256TreeHash"),
                )
                for item in listing["ArchiveList"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"{what}: the inventory is malformed ({exc})") from None
        return sorted(entries, key=lambda entry: entry.key)

    def adopt_archive(self, entry: InventoryEntry) -> None:
        """Record an archive found in the inventory, so reads and deletes can find its id."""
        _require_catalog()
        try:
            GlacierArchives.create(
                backend_hash=self.backend_hash,
                vault=self.vault,
                key=entry.key,
                archive_id=entry.archive_id,
                size=entry.size,
                tree_hash=entry.tree_hash,
                created=int(entry.created or time.time()),
            )
        except peewee.IntegrityError:
            log.debug("%s is already recorded", self.describe(entry.key))

    def open_read(self, key: str) -> IO[bytes]:
        row = self._row(key)
        job = self._job(key)
        if job is None or self.refresh(job).status != "ready":
            self.prepare_read(key, wait=bool(self.conf.get("retrieval_wait")))
            job = self._job(key)
        assert job is not None and job.job_id
        if not row.size:  # adopted from 0.6's inventory: the job knows the size
            described = self.client.describe_job(vaultName=self.vault, jobId=job.job_id)
            row.size = int(described.get("ArchiveSizeInBytes") or 0)
            row.save()
        return VaultReader(self, row, job.job_id)  # type: ignore[return-value]


# --------------------------------------------------------------------------- status


def retrievals(backend: base.Backend | None = None, refresh: bool = True, include_done: bool = False) -> list[Retrievals]:
    """Return retrieval rows (pending ones unless ``include_done``), newest first.

    With a backend, only its rows, refreshed from the store first when ``refresh``.
    """
    if not catalog_ready():
        return []
    query = Retrievals.select().order_by(Retrievals.requested.desc())
    if backend is not None:
        query = query.where(Retrievals.backend_hash == backend.backend_hash)
    rows = list(query)
    if backend is not None and refresh and hasattr(backend, "refresh"):
        rows = [backend.refresh(row) if row.status in ("pending", "ready") else row for row in rows]
    if not include_done:
        rows = [row for row in rows if row.status == "pending"]
    return rows


__all__ = [
    "Backend",
    "GlacierArchives",
    "Retrievals",
    "VaultBackend",
    "ensure_restored",
    "retrievals",
    "tree_hash",
]

