"""Glacier vaults: the legacy vault API, for existing vaults (destination glacier).

The vault-based Glacier service takes no new customers since December 2025; profiles
with ``glacier_vault`` keep working through this backend (``glacier_mode`` auto or
vault; :mod:`bakthat.backends.glacier` chooses).  A vault has no names and no listing:
the archive id of every key lives in the catalog table ``glacier_archives`` (0.6's
``inventory`` rows are read too), and :meth:`VaultBackend.inventory` reads the vault's
own inventory, through an inventory-retrieval job, for ``bakthat sync``.  Reads go
through archive-retrieval jobs recorded in ``retrievals``
(:mod:`bakthat.backends.retrieval`), then download the job's output in
``vault_chunk_size`` ranges with each range's tree hash and the whole archive's
SHA-256 checked (:mod:`bakthat.backends._vault_transfer`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

import peewee

from bakthat import models
from bakthat.backends import base
from bakthat.backends._config import parse_size, setting_value
from bakthat.backends._retry import RetryPolicy, call_with_retries, error_code, http_status
from bakthat.backends._vault_transfer import VaultReader, VaultUpload, description
from bakthat.backends.aws import AwsConfig, aws_client, translate_error
from bakthat.backends.retrieval import (
    RetrievalConfig,
    Retrievals,
    catalog_ready,
    pending_message,
    record_retrieval,
    wait_for,
)
from bakthat import profile_keys
from bakthat.errors import AlreadyExistsError, ConfigError, IntegrityError, NotFoundError, RetrievalPendingError

log = logging.getLogger("bakthat.backends")

MiB = 1 << 20

#: The profile keys read here, declared in :mod:`bakthat.profile_keys` (read without importing this module).
SETTINGS = profile_keys.VAULT


@dataclass(frozen=True)
class VaultConfig:
    """Everything the vault backend reads from a profile, checked, with the defaults applied."""

    vault: str
    region: str = "us-east-1"
    endpoint_url: str | None = None
    part_size: int = 16 * MiB
    chunk_size: int = 4 * MiB
    aws: AwsConfig = field(default_factory=AwsConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> VaultConfig:
        """Given profile settings, return the vault config.  Raise ConfigError naming the
        key if glacier_vault is missing or a size is not one Glacier accepts."""

        def value(name: str) -> Any:
            return setting_value(settings, SETTINGS, name)

        vault = value("glacier_vault")
        if not vault:
            raise ConfigError("the vault API needs glacier_vault")
        part_size = parse_size(value("vault_part_size"), 0)
        megabytes = part_size // MiB
        if part_size % MiB or megabytes & (megabytes - 1) or not 1 <= megabytes <= 4096:
            raise ConfigError("vault_part_size must be a power of two from 1 MiB to 4 GiB")
        chunk_size = parse_size(value("vault_chunk_size"), 0)
        if chunk_size % MiB or chunk_size <= 0:
            raise ConfigError("vault_chunk_size must be a multiple of 1 MiB")
        aws = AwsConfig.from_settings(settings)
        # The vault API needs a region: the profile's region_name even when left at its default.
        region = aws.region or str(settings.get("region_name") or "us-east-1")
        return cls(
            vault=str(vault),
            region=region,
            endpoint_url=value("glacier_endpoint_url"),
            part_size=part_size,
            chunk_size=chunk_size,
            aws=dataclasses.replace(aws, region=region),
            retrieval=RetrievalConfig.from_settings(settings),
        )


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


#: The tables of this backend (``retrievals`` is shared with S3 restores).
TABLES = [GlacierArchives, Retrievals]


def _require_catalog() -> None:
    if not catalog_ready(TABLES):
        raise ConfigError("the vault API keeps archive ids in the catalog: bind it first (bakthat.models.bind)")


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



class VaultBackend(base.Backend):
    """Archives in a legacy Glacier vault; archive ids and jobs kept in the catalog."""

    name = "glacier"

    vault_inventory = True
    archive_retrievals = True

    def __init__(self, conf: Mapping[str, Any]):
        super().__init__(conf)
        self.config = VaultConfig.from_settings(conf)
        self.vault = self.config.vault
        self.region = self.config.region
        self.part_size = self.config.part_size
        self.chunk_size = self.config.chunk_size
        self.retry_policy = RetryPolicy(attempts=self.config.aws.max_attempts)
        self._client: Any = None
        self._vault_ready = False

    @property
    def container(self) -> str:
        return f"glacier://{self.region}/{self.vault}"

    @property
    def legacy_backend_hash(self) -> str | None:
        """bakthat 0.6's ``backend_hash`` of this vault: SHA-512 of access_key + vault."""
        access_key = self.config.aws.access_key
        return hashlib.sha512(f"{access_key}{self.vault}".encode()).hexdigest() if access_key else None

    def describe(self, key: str) -> str:
        return f"{self.container}/{key}"

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws_client(self.config.aws, "glacier", endpoint_url=self.config.endpoint_url)
        return self._client

    @client.setter
    def client(self, value: Any) -> None:
        self._client = value

    def call(self, what: str, operation: Callable[[], Any]) -> Any:
        try:
            return call_with_retries(operation, what, self.retry_policy)
        except Exception as exc:
            raise translate_error(exc, what, f"in vault {self.vault}") from None

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

    def record_archive(self, key: str, archive_id: str, size: int, sha256: str, tree_hash: str) -> base.ObjectInfo:
        """Record a new archive's id under ``key`` in ``glacier_archives`` and return its info.

        Raise AlreadyExistsError, after deleting the new archive, if ``key`` is taken.
        """
        try:
            GlacierArchives.create(
                backend_hash=self.backend_hash,
                vault=self.vault,
                key=key,
                archive_id=archive_id,
                size=size,
                sha256=sha256,
                tree_hash=tree_hash,
                created=int(time.time()),
            )
        except peewee.IntegrityError:
            self.delete_archive(archive_id)
            raise AlreadyExistsError(f"{self.describe(key)} already exists; nothing was replaced") from None
        return base.ObjectInfo(key, size, time.time(), {"archive_id": archive_id, "sha256": sha256})

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
        if not catalog_ready(TABLES):
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
                raise translate_error(exc, "deleting", self.describe(key)) from None
            log.warning("%s was already gone from the vault", key)
        row.delete_instance()
        for job in Retrievals.select().where((Retrievals.backend_hash == self.backend_hash) & (Retrievals.key == key)):
            job.delete_instance()

    def url(self, key: str, expires_in: int = 3600) -> str:
        """Vault archives have no HTTP URL: return a ``glacier://`` URI naming the archive."""
        row = self._row(key)
        return f"{self.container}/{urllib.parse.quote(key)}?archive_id={row.archive_id}"

    def _job(self, key: str, kind: str = "vault-job") -> Retrievals | None:
        if not catalog_ready(TABLES):
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
                raise translate_error(exc, "checking the retrieval of", self.describe(job.key)) from None
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
        tier = self.config.retrieval.tier
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
                    jobParameters={"Type": "archive-retrieval", "ArchiveId": row.archive_id, "Tier": tier, "Description": description(key)[:1024]},
                ),
            )
            requested_now = True
            job = record_retrieval(self, key, "vault-job", "pending", tier, job_id=response["jobId"])
            log.info("Requested a %s retrieval of %s from vault %s", tier, key, self.vault)
        assert job is not None
        message = pending_message(key, "vault", job.tier, requested_now)
        job.message = message
        job.save()
        if not (wait or self.config.retrieval.wait):
            raise RetrievalPendingError(message)
        self._wait_for(job, key, "restore", sleep)

    def _wait_for(self, job: Retrievals, what: str, command: str, sleep: Callable[[float], Any]) -> None:
        """Wait (:func:`~bakthat.backends.retrieval.wait_for`) until the job is ready."""

        def check() -> tuple[str, str | None]:
            refreshed = self.refresh(job)
            return refreshed.status, refreshed.message

        wait_for(what, check, self.config.retrieval, command=command, sleep=sleep)

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
            if not (wait or self.config.retrieval.wait):
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
            self.prepare_read(key, wait=self.config.retrieval.wait)
            job = self._job(key)
        assert job is not None and job.job_id
        if not row.size:  # adopted from 0.6's inventory: the job knows the size
            described = self.client.describe_job(vaultName=self.vault, jobId=job.job_id)
            row.size = int(described.get("ArchiveSizeInBytes") or 0)
            row.save()
        return VaultReader(self, row, job.job_id)  # type: ignore[return-value]

