"""The catalog: peewee models on a database bound at first use.

Importing this module opens nothing.  :func:`bind` (called by the API when an action
needs the catalog) connects the proxy to SQLite (``~/.bakthat.sqlite`` by default, WAL
mode, a busy timeout) or to PostgreSQL from a ``postgresql://`` URL, and creates missing
tables.  The core looks models up as ``models.Backups`` at call time, so a plugin that
rebinds ``bakthat.models.Backups`` changes what every later action uses.

The schema is documented in ``docs/catalog.md``; rows of ``backups`` exist only for
archives the storage has confirmed.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import peewee

from bakthat.utils import strict_keywords

database = peewee.DatabaseProxy()
_bound: dict[str, Any] = {"key": None}

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",
    "foreign_keys": 1,
    "cache_size": -16 * 1024,
}


class JsonField(peewee.TextField):
    """A text column holding JSON; reads back as Python objects."""

    def db_value(self, value: Any) -> str | None:
        return None if value is None else json.dumps(value, sort_keys=True)

    def python_value(self, value: Any) -> Any:
        return None if value is None else json.loads(value)


class BaseModel(peewee.Model):
    class Meta:
        database = database


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

    class Meta:
        table_name = "backups"

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

    class Meta:
        table_name = "config"

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

    class Meta:
        table_name = "reservations"


def models() -> list[type[peewee.Model]]:
    """Return the model classes as currently bound in this module (plugins may replace them)."""
    module_globals = globals()
    return [module_globals["Backups"], module_globals["Config"], module_globals["Reservations"]]


def bind(location: str) -> None:
    """Given a SQLite path or a database URL, bind the catalog and create missing tables.

    A path (``~`` expanded) opens SQLite in WAL mode with a 30 s busy timeout; its file
    is created 0600 in a directory that must exist.  A ``postgresql://`` or
    ``sqlite:///`` URL is opened with peewee's ``db_url``.  Binding again to the same
    location is a no-op.
    """
    key = location if "://" in location else os.path.abspath(os.path.expanduser(location))
    if _bound["key"] == key:
        return
    if "://" in location:
        from playhouse.db_url import connect

        db = connect(location)
    else:
        path = Path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        db = peewee.SqliteDatabase(str(path), pragmas=SQLITE_PRAGMAS, timeout=30)
    if _bound["key"] is not None:
        database.close()
    database.initialize(db)
    database.connect(reuse_if_open=True)
    database.create_tables(models(), safe=True)
    _bound["key"] = key


def unbind() -> None:
    """Close the catalog connection and forget the binding (used by tests and at exit)."""
    if _bound["key"] is not None:
        database.close()
    _bound["key"] = None
