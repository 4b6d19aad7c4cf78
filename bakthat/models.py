"""The catalog: peewee models on a database bound at first use.

Importing this module opens nothing.  :func:`bind` (called by the API when an action
needs the catalog) connects the proxy to SQLite (``~/.bakthat.sqlite`` by default, WAL
mode, a busy timeout) or to PostgreSQL from a ``postgresql://`` URL, and brings its
schema to the current version (:mod:`bakthat.migrations`: a new catalog is created, an
older one, bakthat 0.6's included, is upgraded in place).  The core looks models up as
``models.Backups`` at call time, so a plugin that rebinds ``bakthat.models.Backups``
changes what every later action uses; a subclass of a model keeps its table.

Every database error is raised as :class:`~bakthat.errors.CatalogError` naming the
catalog (a damaged file, a full disk, an unreachable server), except peewee's
IntegrityError, which callers handle; opening a database and those messages are in
:mod:`bakthat.catalog_db`.

The schema is documented in ``docs/catalog.md``; rows of ``backups`` exist only for
archives the storage has confirmed.  Every catalog table (``backups``, ``config``,
``reservations``, and the job, source and hook runs of ``bakthat run``) is here: one
home for the schema, which the migrations mirror.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from typing import Any

import peewee

from bakthat.catalog_db import (  # noqa: F401 - re-exported: opening a catalog and its errors stay importable from here
    PG_CONNECT_TIMEOUT,
    SQLITE_PRAGMAS,
    CatalogPostgresql,
    CatalogSqlite,
    catalog_error,
    open_database,
)
from bakthat.utils import strict_keywords

database = peewee.DatabaseProxy()
_bound: dict[str, Any] = {"key": None, "kind": None, "display": None}
_adopted: set[tuple[str, str, str]] = set()

class JsonField(peewee.TextField):
    """A text column holding JSON; reads back as Python objects."""

    def db_value(self, value: Any) -> str | None:
        return None if value is None else json.dumps(value, sort_keys=True)

    def python_value(self, value: Any) -> Any:
        if value is None:
            return None
        try:
            return json.loads(value)
        except (TypeError, ValueError):
            # A damaged row must not stop every listing: keep what it holds, visibly.
            return {"unreadable_json": str(value)[:200]}


def _table_of(model: type[peewee.Model]) -> str:
    """Return the table of a model: the one of the nearest catalog model it derives from.

    peewee names a subclass's table after the subclass (``MyBackups`` -> ``mybackups``);
    a plugin that replaces ``bakthat.models.Backups`` by a subclass (plain assignment,
    ``self.patch`` or the developer guide's ``global``) must keep the ``backups`` table.
    """
    for klass in model.__mro__:
        table = vars(klass).get("_catalog_table")
        if table:
            return str(table)
    return re.sub(r"[^\w]+", "_", model.__name__.lower())  # peewee's own default


class BaseModel(peewee.Model):
    class Meta:
        database = database
        table_function = _table_of


class Backups(BaseModel):
    """One stored archive.  The first ten fields are bakthat 0.6's, with its meanings."""

    backend = peewee.CharField(index=True)
    backend_hash = peewee.CharField(index=True, null=True)
    backup_date = peewee.IntegerField(index=True)
    filename = peewee.TextField(index=True)
    is_deleted = peewee.BooleanField(default=False)
    last_updated = peewee.IntegerField()
    metadata = JsonField(default=dict)
    size = peewee.IntegerField()
    stored_filename = peewee.TextField(unique=True)
    tags = peewee.CharField(default="")
    # Added by bakthat 1.x
    state = peewee.CharField(default="ok", index=True)  # ok | deleting | deleted
    session_id = peewee.CharField(null=True)
    sha256 = peewee.CharField(null=True)
    compression = peewee.CharField(null=True)
    encryption = peewee.CharField(default="none")
    host = peewee.CharField(null=True)
    profile = peewee.CharField(default="default")
    source_path = peewee.TextField(null=True)
    source_size = peewee.BigIntegerField(null=True)
    file_count = peewee.IntegerField(null=True)
    format_version = peewee.IntegerField(default=1)
    # Added by schema version 2 (backup levels and check, see bakthat.levels and bakthat.check)
    level = peewee.CharField(null=True, default="full")  # full | diff | incr (None: full, an older row)
    base = peewee.TextField(null=True)  # stored filename of the base (diff and incr)
    checked_at = peewee.IntegerField(null=True)  # Unix time of the last check
    check_result = peewee.TextField(null=True)  # "ok", "skipped: ..." or "damaged: ..."

    _catalog_table = "backups"
    #: A stored backup's row; the plans of dry runs have ``dry_run = True``.
    dry_run = False

    def __repr__(self) -> str:
        return f"<Backup: {self.stored_filename}>"

    __str__ = __repr__

    def __getitem__(self, key: str) -> Any:
        """Dict-style access for scripts written against older bakthat (``row["size"]``)."""
        try:
            return getattr(self, key) if key in self._meta.fields else self.metadata[key]
        except KeyError:
            raise KeyError(key) from None

    def set_deleted(self) -> None:
        """Mark the backup deleted (soft delete, as 0.6) and save."""
        self.is_deleted = True
        self.state = "deleted"
        self.last_updated = int(time.time())
        self.save()

    def is_encrypted(self) -> bool:
        """Return True if the archive is encrypted (age, or 0.6's ``.enc``)."""
        return self.encryption != "none" or self.stored_filename.endswith(".enc") or bool(
            (self.metadata or {}).get("is_enc")
        )

    def is_gzipped(self) -> bool:
        """Return True if the archive is gzip-compressed (0.6's ``.tgz``)."""
        return self.compression == "gzip" or bool((self.metadata or {}).get("is_gzipped"))

    def tag_list(self) -> list[str]:
        """Return the tags as a list (they are stored space-separated, as 0.6)."""
        return self.tags.split() if self.tags else []

    def to_dict(self) -> dict[str, Any]:
        """Return the row as a JSON-serialisable dict."""
        return {name: getattr(self, name) for name in self._meta.sorted_field_names if name != "id"}

    @classmethod
    @strict_keywords(ignored={
        "profile": "Backups.search does not scope by profile; bakthat.search(profile=...) does",
        "config": "Backups.search does not scope by profile; bakthat.search(config=...) does",
    })
    def search(
        cls,
        query: str = "",
        destination: str | list[str] | None = None,
        tags: str | list[str] | None = None,
        backend_hash: str | None = None,
        name: str | None = None,
        older_than: int | None = None,
        newer_than: int | None = None,
        backup_date: int | None = None,
        last_updated_gt: int | None = None,
        include_deleted: bool = False,
    ) -> peewee.ModelSelect:
        """Return a query of backups, newest ``backup_date`` first.

        ``query`` is a substring of the name or stored filename; ``name`` an exact name;
        ``tags`` (a list or a space-separated string) must all be present (AND);
        ``destination`` a backend name or a list of them; ``older_than``/``newer_than``
        bound ``backup_date`` (Unix seconds).  Deleted rows are left out unless asked.
        0.6's ``profile=`` and ``config=`` keywords are accepted and ignored here (with a
        warning); the public :func:`bakthat.search` scopes by profile.  Raise TypeError
        for any other keyword.
        """
        select = cls.select()
        if not include_deleted:
            select = select.where(cls.is_deleted == False)  # noqa: E712 - peewee expression
        if query:
            select = select.where(cls.filename.contains(query) | cls.stored_filename.contains(query))
        if name is not None:
            select = select.where(cls.filename == name)
        if destination:
            wanted = [destination] if isinstance(destination, str) else list(destination)
            select = select.where(cls.backend.in_(wanted))
        if backend_hash is not None:
            select = select.where(cls.backend_hash == backend_hash)
        for tag in (tags.split() if isinstance(tags, str) else list(tags or [])):
            padded = peewee.fn.COALESCE(" " + cls.tags + " ", "")
            select = select.where(padded.contains(f" {tag} "))
        if older_than is not None:
            select = select.where(cls.backup_date < older_than)
        if newer_than is not None:
            select = select.where(cls.backup_date > newer_than)
        if backup_date is not None:
            select = select.where(cls.backup_date == backup_date)
        if last_updated_gt is not None:
            select = select.where(cls.last_updated > last_updated_gt)
        return select.order_by(cls.backup_date.desc(), cls.id.desc())


class Config(BaseModel):
    """Key to JSON value store for bakthat's own state (0.6's ``config`` table)."""

    key = peewee.CharField(unique=True)
    value = JsonField(null=True)

    _catalog_table = "config"

    @classmethod
    def get_key(cls, key: str, default: Any = None) -> Any:
        row = cls.get_or_none(cls.key == key)
        return default if row is None else row.value

    @classmethod
    def set_key(cls, key: str, value: Any) -> None:
        cls.insert(key=key, value=value).on_conflict(
            conflict_target=[cls.key], update={cls.value: value}
        ).execute()


class Reservations(BaseModel):
    """A stored filename claimed by a backup in progress.

    The unique constraint makes two concurrent backups (even on two hosts sharing a
    PostgreSQL catalog) pick different names.  The row is removed when the backup's
    ``backups`` row is written or the backup fails; one left by a killed process is
    recognised by its host and pid and swept by the next backup on that host.
    """

    stored_filename = peewee.TextField(unique=True)
    session_id = peewee.CharField()
    host = peewee.CharField()
    pid = peewee.IntegerField()
    created = peewee.IntegerField()

    _catalog_table = "reservations"


class JobRuns(BaseModel):
    """One run of a job (``bakthat run``): when, where, how it ended (ok, partial, failed)."""

    session_id = peewee.CharField(unique=True)
    job = peewee.CharField(index=True)
    profile = peewee.CharField()
    host = peewee.CharField()
    pid = peewee.IntegerField()
    dry_run = peewee.BooleanField(default=False)
    started = peewee.FloatField(index=True)
    finished = peewee.FloatField(null=True)
    status = peewee.CharField(index=True)
    error = peewee.TextField(null=True)

    _catalog_table = "job_runs"


class SourceRuns(BaseModel):
    """One source of a job run: its status, what it stored, sizes, duration, error."""

    job_run = peewee.CharField(index=True)
    session_id = peewee.CharField(unique=True)
    position = peewee.IntegerField()
    kind = peewee.CharField()
    name = peewee.TextField()
    source = peewee.TextField()
    status = peewee.CharField()
    stored_filename = peewee.TextField(null=True)
    size = peewee.BigIntegerField(null=True)
    source_size = peewee.BigIntegerField(null=True)
    started = peewee.FloatField()
    duration = peewee.FloatField(null=True)
    rotated = peewee.IntegerField(null=True)
    error = peewee.TextField(null=True)

    _catalog_table = "source_runs"


class HookRuns(BaseModel):
    """One command hook that ran: its place (``jobs.nightly.hooks.before[0]``), phase,
    command (secrets masked), exit status, duration and bounded output."""

    job_run = peewee.CharField(index=True)
    source_run = peewee.CharField(null=True, index=True)
    hook = peewee.TextField()
    phase = peewee.CharField()
    command = peewee.TextField()
    started = peewee.FloatField()
    duration = peewee.FloatField()
    exit_status = peewee.IntegerField(null=True)
    timed_out = peewee.BooleanField(default=False)
    output = peewee.TextField(default="")
    output_bytes = peewee.BigIntegerField(default=0)
    error = peewee.TextField(null=True)

    _catalog_table = "hook_runs"


def models() -> list[type[peewee.Model]]:
    """Return the model classes as currently bound in this module (plugins may replace them)."""
    module_globals = globals()
    return [module_globals[name] for name in ("Backups", "Config", "Reservations", "JobRuns", "SourceRuns", "HookRuns")]


def bind(location: str) -> None:
    """Given a SQLite path or a database URL, bind the catalog and bring its schema up to date.

    A path (``~`` expanded) opens SQLite in WAL mode with a 30 s busy timeout; its file
    is created 0600 (its directory too, if missing).  A ``postgresql://`` or
    ``sqlite:///`` URL is accepted as a ``database_url``.  The schema is then created
    or upgraded (:func:`bakthat.migrations.upgrade`).  Binding again to the same
    location is a no-op.  Raise ConfigError for an unsupported URL scheme, CatalogError
    (naming the catalog) if it cannot be opened, read or upgraded.
    """
    from bakthat import migrations

    key = location if "://" in location else os.path.abspath(os.path.expanduser(location))
    if _bound["key"] == key:
        return
    db = open_database(location)
    if _bound["key"] is not None:
        database.close()
    _bound.update(key=None, kind=None, display=None)
    database.initialize(db)
    database.connect(reuse_if_open=True)
    migrations.upgrade(database, db.display, db.path)
    _bound.update(key=key, kind=db.kind, display=db.display)


def catalog_location(settings: Mapping[str, Any]) -> str:
    """Given resolved settings, return the catalog they name: ``database_url`` when set,
    else ``database`` (a SQLite path, ``~/.bakthat.sqlite`` by default, or a URL)."""
    return str(settings.get("database_url") or settings.get("database") or "~/.bakthat.sqlite")


def bind_settings(settings: Mapping[str, Any]) -> None:
    """Bind the catalog named by resolved settings (:func:`catalog_location`).

    This is the one way an action, a command or KeyValue binds the catalog.
    """
    bind(catalog_location(settings))


def find_backup(
    wanted: str,
    *,
    destination: str | None = None,
    backend_hash: str | None = None,
    deleted_by_stored_name: bool = False,
) -> Any:
    """Given a backup name or a stored filename, return the backup it names.

    That is the newest live backup named ``wanted``, else the backup stored as
    ``wanted`` (with ``deleted_by_stored_name``, even one marked deleted), within
    ``destination`` and ``backend_hash`` when given.  Raise NotFoundError naming
    ``wanted`` (and close names, when there are) if there is none.
    """
    from bakthat.errors import NotFoundError

    table = globals()["Backups"]  # looked up now: a plugin may have replaced the model
    scope = table.search(destination=destination, backend_hash=backend_hash)
    row = scope.where(table.filename == wanted).first()
    if row is None:
        stored = table.search(destination=destination, backend_hash=backend_hash, include_deleted=deleted_by_stored_name)
        row = stored.where(table.stored_filename == wanted).first()
    if row is None:
        close = sorted({r.filename for r in scope.where(table.filename.startswith(wanted[:3])).limit(20)})
        hint = f" (similar names: {', '.join(close)})" if close else ""
        where = f" in destination {destination}" if destination else ""
        raise NotFoundError(f"no backup named {wanted!r}{where}{hint}")
    return row


def unbind() -> None:
    """Close the catalog connection and forget the binding (used by tests and at exit)."""
    if _bound["key"] is not None:
        database.close()
    _bound.update(key=None, kind=None, display=None)


def kind() -> str | None:
    """Return ``sqlite`` or ``postgresql`` for the bound catalog, None when unbound."""
    return _bound["kind"]


def display() -> str:
    """Return the bound catalog for messages: its path, or its URL without password."""
    return _bound["display"] or "the catalog"


def ensure_tables(tables: list[type[peewee.Model]]) -> None:
    """Create the tables of extra models (a backend's) in the bound catalog if missing.

    Creation is serialised with the schema lock, so processes starting at once on a
    shared PostgreSQL catalog do not collide.
    """
    from bakthat import migrations

    with migrations.schema_lock(database):
        database.create_tables(tables, safe=True)


def adopt_legacy_rows(destination: str, legacy_hash: str, backend_hash: str) -> int:
    """Give bakthat 0.6 rows of a store (0.6's ``backend_hash``) the store's current hash.

    bakthat 0.6 identified a store by the SHA-512 of ``access_key + bucket``; rows it
    wrote are found again by restore, delete and rotation once they carry the current
    hash.  Return the number of rows changed (done once per process and store).
    """
    marker = (str(_bound["key"]), legacy_hash, backend_hash)
    if marker in _adopted or legacy_hash == backend_hash:
        return 0
    changed = (
        Backups.update(backend_hash=backend_hash)
        .where((Backups.backend == destination) & (Backups.backend_hash == legacy_hash))
        .execute()
    )
    _adopted.add(marker)
    return int(changed or 0)
