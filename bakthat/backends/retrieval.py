"""Retrievals of archived objects: the settings, the catalog table, and the one wait loop.

An object in an archive class (S3 GLACIER and DEEP_ARCHIVE, or a legacy Glacier vault)
is read in two steps: a retrieval is requested, and the object is readable once it is
done (minutes to hours, depending on the tier).  The S3 backend requests restores
(:mod:`bakthat.backends.s3`), the vault backend archive-retrieval and inventory jobs
(:mod:`bakthat.backends.vault`); both record each retrieval here, in the catalog
table ``retrievals`` (the successor of 0.6's ``jobs``), both build the same message
for a retrieval still running, and both wait with :func:`wait_for`.  ``bakthat
retrievals`` lists the rows through :func:`retrievals`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import peewee

from bakthat import models
from bakthat.backends import base
from bakthat.backends._config import positive_int, setting_value
from bakthat import profile_keys
from bakthat.errors import ConfigError, RetrievalPendingError, StorageError

log = logging.getLogger("bakthat.backends")

TIERS = profile_keys.RETRIEVAL_TIERS
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

#: The profile keys read here, declared in :mod:`bakthat.profile_keys` (read without importing this module).
SETTINGS = profile_keys.RETRIEVAL


@dataclass(frozen=True)
class RetrievalConfig:
    """How retrievals are requested and awaited: tier, days kept, whether and how to wait."""

    tier: str = "Standard"
    days: int = 3
    wait: bool = False
    poll_interval: float = 300
    timeout: float = 172800

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> RetrievalConfig:
        """Given profile settings, return their retrieval config.  Raise ConfigError if
        retrieval_tier is not a tier or retrieval_days is below 1."""

        def value(name: str) -> Any:
            return setting_value(settings, SETTINGS, name)

        tier = str(value("retrieval_tier")).capitalize()
        if tier not in TIERS:
            raise ConfigError(f"retrieval_tier must be one of {', '.join(TIERS)}")
        return cls(
            tier=tier,
            days=positive_int("retrieval_days", value("retrieval_days")),
            wait=bool(value("retrieval_wait")),
            poll_interval=float(value("retrieval_poll_interval")),
            timeout=float(value("retrieval_wait_timeout")),
        )


class Retrievals(models.BaseModel):
    """A retrieval of an archived object: an S3 restore or a vault archive-retrieval job.

    ``status`` is pending, ready, failed or expired.  The successor of 0.6's ``jobs``.
    """

    backend = peewee.CharField()
    backend_hash = peewee.CharField(index=True)
    key = peewee.TextField()
    kind = peewee.CharField()  # s3-restore | vault-job | vault-inventory
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


_created: dict[tuple[str, ...], Any] = {}


def catalog_ready(tables: list[type[peewee.Model]] | None = None) -> bool:
    """Create ``tables`` (default: ``retrievals``) in the bound catalog, once per binding.

    Return False if no catalog is bound.
    """
    tables = tables or [Retrievals]
    bound = models._bound.get("key")
    if bound is None:
        return False
    names = tuple(sorted(table._meta.table_name for table in tables))
    if _created.get(names) != bound:
        models.ensure_tables(tables)
        _created[names] = bound
    return True


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
    """Create or update the newest retrieval row of ``key``; None if no catalog is bound.

    A new row is started when there is none, when the newest one failed or expired and
    a new retrieval is pending, or when a pending retrieval has another job id.
    """
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


def pending_message(key: str, where: str, tier: str, requested_now: bool) -> str:
    """Return what to tell the user about a running retrieval of ``key`` from ``where``
    (a storage class, or "vault"): that it runs, how long it takes, and what to do."""
    typical = TYPICAL_WAIT.get((where, tier), "a few hours")
    what = "was requested now" if requested_now else "is in progress"
    return (
        f"{key} is archived in {where}: a {tier} retrieval {what} (typically {typical}). "
        "Run the same restore again once it is ready, or add --wait to wait for it; "
        "`bakthat retrievals` shows pending retrievals."
    )


def wait_for(
    what: str,
    check: Callable[[], tuple[str, str | None]],
    config: RetrievalConfig,
    *,
    command: str = "restore",
    sleep: Callable[[float], Any] = time.sleep,
) -> None:
    """Poll a running retrieval every ``config.poll_interval`` seconds until it is ready.

    ``check`` returns the retrieval's (status, message): ready, pending, or anything
    else for a retrieval that failed or expired.  Return once it is ready.  Raise
    StorageError naming ``what`` if it failed or expired, RetrievalPendingError after
    ``config.timeout`` seconds (telling to run ``command`` again later).
    """
    deadline = time.monotonic() + config.timeout
    log.info("Waiting for the retrieval of %s (checking every %gs)", what, config.poll_interval)
    while True:
        sleep(config.poll_interval)
        status, message = check()
        if status == "ready":
            log.info("%s is retrieved and readable", what)
            return
        if status != "pending":
            raise StorageError(f"{what}: the retrieval {status}: {message}")
        if time.monotonic() > deadline:
            raise RetrievalPendingError(
                f"{what}: the retrieval is still running after {config.timeout:g}s of waiting; run {command} again later"
            )


def retrievals(backend: base.Backend | None = None, refresh: bool = True, include_done: bool = False) -> list[Retrievals]:
    """Return retrieval rows (pending ones unless ``include_done``), newest first.

    With a backend, only its rows, refreshed from the store first when ``refresh`` and
    the backend declares :attr:`~bakthat.backends.base.Backend.archive_retrievals`.
    """
    if not catalog_ready():
        return []
    query = Retrievals.select().order_by(Retrievals.requested.desc())
    if backend is not None:
        query = query.where(Retrievals.backend_hash == backend.backend_hash)
    rows = list(query)
    if backend is not None and refresh and backend.archive_retrievals:
        rows = [backend.refresh(row) if row.status in ("pending", "ready") else row for row in rows]
    if not include_done:
        rows = [row for row in rows if row.status == "pending"]
    return rows
