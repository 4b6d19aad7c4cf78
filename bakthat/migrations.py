"""Catalog schema versions, and the migrations that bring an older catalog up to date.

A catalog records its schema version in its ``config`` table, under the key
``schema_version``.  Versions:

0. bakthat 0.6's ``~/.bakthat.sqlite``: tables ``backups`` (ten columns), ``config``,
   ``inventory``, ``jobs``, ``history``; no version recorded.
1. bakthat 1.0: ``backups`` with the columns bakthat 1.x adds (``state``, ``sha256``,
   ``compression``, ...), ``config``, ``reservations``.  Catalogs made by 1.0
   development versions have these tables but no version recorded; they are recognised
   by the ``state`` column.
2. ``job_runs``, ``source_runs``, ``hook_runs``: what ``bakthat run`` did.

:func:`upgrade` runs when a catalog is bound (first use in a process):

- an empty catalog gets every table of the current schema and the current version;
- an older one is upgraded in place, one migration per version, each in its own
  transaction; a SQLite file is first copied beside itself, as
  ``<file>.schema-<old version>.bak`` (mode 0600), and a warning names the copy;
- a catalog of a newer schema is refused with CatalogError, so an older bakthat never
  writes into a catalog it does not understand.

All of this runs under the schema lock (:func:`schema_lock`: a ``BEGIN IMMEDIATE``
transaction on SQLite, a transaction-scoped advisory lock on PostgreSQL), so processes
that start at once on one catalog never race on ``CREATE TABLE``.

Adding a migration is one function, numbered one above the last; the models it needs
are added to :func:`bakthat.models.models` so that new catalogs get them directly::

    @migration(2, "job runs and source runs")
    def _job_runs(step: Step) -> None:
        step.create(models.JobRuns, models.SourceRuns)
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import peewee

from bakthat import models
from bakthat.errors import CatalogError

log = logging.getLogger("bakthat")

SCHEMA_KEY = "schema_version"
#: Key of the PostgreSQL advisory lock that serialises schema changes (any 64-bit
#: integer; this one spells "bakthat" in ASCII, so other applications do not use it).
SCHEMA_LOCK_KEY = 0x62616B74686174


@dataclass
class Step:
    """What a migration works with: the database and a playhouse migrator for it."""

    database: Any

    @property
    def migrator(self) -> Any:
        from playhouse.migrate import SchemaMigrator

        return SchemaMigrator.from_database(self.database.obj if hasattr(self.database, "obj") else self.database)

    def tables(self) -> set[str]:
        return set(self.database.get_tables())

    def columns(self, table: str) -> set[str]:
        return {column.name for column in self.database.get_columns(table)}

    def migrate(self, *operations: Any) -> None:
        """Run playhouse.migrate operations (``self.migrator.add_column(...)``...)."""
        from playhouse.migrate import migrate

        migrate(*operations)

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        """Run SQL; write ``{p}`` where a parameter goes (``?`` or ``%s`` by database)."""
        return self.database.execute_sql(sql.format(p=self.database.param), params)

    def create(self, *tables: type[peewee.Model]) -> None:
        """Create the tables of these models (and their indexes) if missing."""
        self.database.create_tables(list(tables), safe=True)


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Step], None]


MIGRATIONS: dict[int, Migration] = {}


def migration(version: int, description: str) -> Callable[[Callable[[Step], None]], Callable[[Step], None]]:
    """Register the function that upgrades a catalog from ``version - 1`` to ``version``."""

    def register(function: Callable[[Step], None]) -> Callable[[Step], None]:
        if version in MIGRATIONS:
            raise ValueError(f"two migrations to schema version {version}")
        MIGRATIONS[version] = Migration(version, description, function)
        return function

    return register


def latest() -> int:
    """Return the schema version this bakthat writes."""
    return max(MIGRATIONS)


# -- the migrations ----------------------------------------------------------------------


#: Columns bakthat 1.x adds to 0.6's ``backups`` table.  They are added nullable and
#: filled from what 0.6 recorded; bakthat always writes them.
_COLUMNS_1_0 = {
    "state": lambda: peewee.CharField(null=True, index=True),
    "session_id": lambda: peewee.CharField(null=True),
    "sha256": lambda: peewee.CharField(null=True),
    "compression": lambda: peewee.CharField(null=True),
    "encryption": lambda: peewee.CharField(null=True),
    "host": lambda: peewee.CharField(null=True),
    "profile": lambda: peewee.CharField(null=True),
    "source_path": lambda: peewee.TextField(null=True),
    "source_size": lambda: peewee.BigIntegerField(null=True),
    "file_count": lambda: peewee.IntegerField(null=True),
    "format_version": lambda: peewee.IntegerField(null=True),
}


def _legacy_fields(stored_filename: str, metadata_text: Any, is_deleted: Any) -> tuple[str, str, str, str | None, str]:
    """Given a 0.6 row, return (state, compression, encryption, host, metadata as JSON).

    A backup (not a KeyValue entry) is marked adopted, as :mod:`bakthat.adopt` marks the
    0.6 backups it finds in a store: it has no manifest.
    """
    from bakthat.legacy import ADOPTED

    try:
        metadata = json.loads(metadata_text) if metadata_text else {}
    except (TypeError, ValueError):
        metadata = {}
    if not isinstance(metadata, dict):
        metadata = {}
    if not metadata.get("KeyValue"):
        metadata["adopted"] = ADOPTED
    name = stored_filename or ""
    encrypted = name.endswith(".enc") or bool(metadata.get("is_enc"))
    plain = name[: -len(".enc")] if name.endswith(".enc") else name
    if metadata.get("KeyValue"):
        compression = "gzip" if metadata.get("is_gzipped") else "none"
    else:
        compression = "gzip" if plain.endswith((".tgz", ".tar.gz")) else "none"
    host = metadata.get("client")
    state = "deleted" if is_deleted else "ok"
    return state, compression, ("beefish" if encrypted else "none"), (str(host) if host else None), json.dumps(
        metadata, sort_keys=True
    )


@migration(1, "bakthat 0.6 catalog: the columns bakthat 1.x adds to backups, and its tables")
def _from_bakthat_0_6(step: Step) -> None:
    present = step.columns("backups")
    operations = [
        step.migrator.add_column("backups", name, make())
        for name, make in _COLUMNS_1_0.items()
        if name not in present
    ]
    if operations:
        step.migrate(*operations)
    rows = step.execute("SELECT id, stored_filename, metadata, is_deleted FROM backups WHERE state IS NULL").fetchall()
    for row_id, stored_filename, metadata_text, is_deleted in rows:
        state, compression, encryption, host, metadata = _legacy_fields(stored_filename, metadata_text, is_deleted)
        step.execute(
            "UPDATE backups SET state = {p}, compression = {p}, encryption = {p}, host = {p}, "
            "profile = {p}, format_version = {p}, metadata = {p} WHERE id = {p}",
            (state, compression, encryption, host, "default", 0, metadata, row_id),
        )
    step.create(models.Config, models.Reservations)


@migration(2, "job runs, source runs and hook runs (bakthat run)")
def _job_runs(step: Step) -> None:
    step.create(models.JobRuns, models.SourceRuns, models.HookRuns)


# -- running them --------------------------------------------------------------------------


@migration(3, "backup levels and checks: level, base, checked_at and check_result of backups")
def _levels_and_checks(step: Step) -> None:
    have = step.columns("backups")
    columns = {
        "level": lambda: peewee.CharField(null=True),
        "base": lambda: peewee.TextField(null=True),
        "checked_at": lambda: peewee.IntegerField(null=True),
        "check_result": lambda: peewee.TextField(null=True),
    }
    operations = [step.migrator.add_column("backups", name, make()) for name, make in columns.items() if name not in have]
    if operations:
        step.migrate(*operations)
    step.execute("UPDATE backups SET level = 'full' WHERE level IS NULL")


def _kind(database: Any) -> str:
    target = getattr(database, "obj", database)
    return getattr(target, "kind", None) or ("postgresql" if isinstance(target, peewee.PostgresqlDatabase) else "sqlite")


@contextmanager
def schema_lock(database: Any) -> Iterator[None]:
    """Hold the catalog's schema lock, in a transaction, for the block.

    SQLite: ``BEGIN IMMEDIATE`` (one writer; others wait up to the busy timeout).
    PostgreSQL: ``pg_advisory_xact_lock``, released when the transaction ends.
    """
    if _kind(database) == "postgresql":
        with database.atomic():
            database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
            yield
    else:
        with database.atomic(lock_type="IMMEDIATE"):
            yield


def detect(database: Any) -> tuple[int | None, bool]:
    """Return ``(schema version, recorded)``; version None for an empty catalog."""
    tables = set(database.get_tables())
    if "config" in tables:
        row = database.execute_sql(
            f"SELECT value FROM config WHERE key = {database.param}", (SCHEMA_KEY,)
        ).fetchone()
        if row is not None:
            try:
                return int(json.loads(row[0])), True
            except (TypeError, ValueError):
                raise CatalogError(f"schema_version {row[0]!r} in the config table is not a number") from None
    if "backups" not in tables:
        return None, False
    columns = {column.name for column in database.get_columns("backups")}
    if "check_result" in columns:
        return 3, False
    if "job_runs" in tables:
        return 2, False
    return (1 if "state" in columns else 0), False


def _record(version: int) -> None:
    models.Config.set_key(SCHEMA_KEY, version)


def _keep_copy(path: Path, version: int) -> Path:
    """Copy a SQLite catalog beside itself (consistent, through SQLite's backup API)."""
    target = path.with_name(f"{path.name}.schema-{version}.bak")
    if target.exists():
        target = path.with_name(f"{path.name}.schema-{version}.{time.strftime('%Y%m%d%H%M%S')}.bak")
    from bakthat.atomic import replacing

    try:
        with replacing(target, prefix=f".{target.name}.", suffix=".tmp") as temp:
            source = sqlite3.connect(str(path), timeout=30)
            copy = sqlite3.connect(str(temp))
            try:
                source.backup(copy)
                copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            finally:
                copy.close()
                source.close()
    except (OSError, sqlite3.Error) as exc:
        raise CatalogError(f"cannot keep a copy of the catalog before upgrading it ({target}): {exc}") from None
    return target


def upgrade(database: Any, shown: str, path: Path | None) -> None:
    """Bring the bound catalog to the current schema version (see the module docstring).

    ``shown`` names the catalog in messages; ``path`` is the SQLite file (None for
    PostgreSQL), copied beside itself before an upgrade.  Raise CatalogError for a
    catalog of a newer schema or one that cannot be upgraded.
    """
    newest = latest()
    version, recorded = detect(database)
    if recorded and version == newest:
        return
    if version is not None and version > newest:
        raise _too_new(shown, version, newest)
    with schema_lock(database):
        version, recorded = detect(database)
        if version is None:
            database.create_tables(models.models(), safe=True)
            _record(newest)
            return
        if version > newest:
            raise _too_new(shown, version, newest)
        copy = _keep_copy(path, version) if path is not None and version < newest else None
        for number in range(version + 1, newest + 1):
            step = MIGRATIONS[number]
            log.debug("catalog %s: migration %d (%s)", shown, number, step.description)
            with database.atomic():
                step.apply(Step(database))
                _record(number)
        if not recorded or version == newest:
            _record(newest)
    if version < newest:
        from bakthat.utils import display_path

        where = f"; the catalog as it was is kept as {display_path(copy)}" if copy else ""
        log.warning(
            "Upgraded the catalog %s from schema version %d%s to %d%s",
            shown, version, " (bakthat 0.6)" if version == 0 else "", newest, where,
        )


def _too_new(shown: str, version: int, newest: int) -> CatalogError:
    return CatalogError(
        f"the catalog {shown} has schema version {version}, written by a newer bakthat; this one knows "
        f"versions up to {newest}: upgrade bakthat (nothing was changed)"
    )
