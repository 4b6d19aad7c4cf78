"""Opening a catalog database, and the catalog's error messages.

:func:`open_database` turns a SQLite path or a ``postgresql://``/``sqlite:///`` URL
into an unconnected peewee database (a SQLite file is created 0600, opened in WAL mode
with a 30 s busy timeout); :mod:`bakthat.models` binds it.  Every driver error of
these databases is raised as a :class:`~bakthat.errors.CatalogError` naming the
catalog and saying what to do (:func:`catalog_error`), except peewee's IntegrityError,
which callers handle.  The names stay importable from :mod:`bakthat.models`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import peewee

from bakthat.conf import DATABASE_SCHEMES as SCHEMES
from bakthat.conf import redact_url, url_problem
from bakthat.errors import CatalogError, ConfigError

PG_CONNECT_TIMEOUT = 10

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",
    "foreign_keys": 1,
    "cache_size": -16 * 1024,
}


def open_database(location: str) -> peewee.Database:
    """Given a SQLite path or a database URL, return an unconnected catalog database.

    Raise ConfigError for an unsupported URL scheme.
    """
    if "://" not in location:
        path = Path(os.path.abspath(os.path.expanduser(location)))
        return _sqlite(path)
    problem = url_problem(location)
    if problem:
        raise ConfigError(f"database_url: {problem}")
    from playhouse.db_url import parse

    scheme = SCHEMES[location.split("://", 1)[0].lower()]
    options = parse(location)
    if scheme == "sqlite":
        return _sqlite(Path(os.path.abspath(os.path.expanduser(str(options["database"])))))
    options.setdefault("connect_timeout", PG_CONNECT_TIMEOUT)
    db = CatalogPostgresql(**options)
    db.display, db.path, db.kind = redact_url(location), None, "postgresql"
    return db


def _sqlite(path: Path) -> peewee.Database:
    from bakthat.utils import display_path

    shown = display_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
    except OSError as exc:
        raise CatalogError(f"cannot create the catalog {shown}: {exc.strerror or exc}") from None
    if path.is_dir():
        raise CatalogError(f"the catalog {shown} is a directory, not a SQLite file: set database to a file path")
    db = CatalogSqlite(str(path), pragmas=SQLITE_PRAGMAS, timeout=30)
    db.display, db.path, db.kind = shown, path, "sqlite"
    return db


def _disk_full(path: Path | None) -> bool:
    """Return True if the filesystem holding ``path`` has no space left for us."""
    if path is None:
        return False
    try:
        found = os.statvfs(path.parent)
    except OSError:
        return False
    return found.f_bavail * found.f_frsize < 64 * 1024


def catalog_error(shown: str, exc: BaseException, path: Path | None = None) -> CatalogError:
    """Given the catalog's display name (and SQLite file) and a driver error, return a CatalogError that says what to do."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    lowered = text.lower()
    if ("i/o error" in lowered or "disk is full" in lowered or "unable to open" in lowered) and _disk_full(path):
        return CatalogError(f"the catalog {shown} cannot be written: no space left on its disk ({text})")
    if "not a database" in lowered or "malformed" in lowered or "disk image" in lowered:
        return CatalogError(
            f"the catalog {shown} is damaged or not a SQLite database ({text}); move it aside and run "
            "bakthat sync to rebuild it from the store"
        )
    if "disk is full" in lowered or "no space" in lowered:
        return CatalogError(f"the catalog {shown} cannot be written: no space left on its disk ({text})")
    if "readonly" in lowered or "read-only" in lowered:
        return CatalogError(f"the catalog {shown} cannot be written: {text}")
    if "database is locked" in lowered or "busy" in lowered:
        return CatalogError(f"the catalog {shown} is locked by another process (waited 30 s): {text}")
    if "unable to open" in lowered:
        return CatalogError(f"cannot open the catalog {shown}: {text}")
    if "driver not installed" in lowered:
        return CatalogError(f"the catalog {shown} needs the PostgreSQL driver: pip install psycopg2-binary")
    if isinstance(exc, (peewee.OperationalError, peewee.InterfaceError)) and "://" in shown:
        return CatalogError(f"cannot use the catalog {shown}: {text}")
    return CatalogError(f"the catalog {shown}: {text}")


class _CatalogErrors:
    """Mixin for peewee databases: driver errors become CatalogError (IntegrityError stays)."""

    display = "the catalog"
    path: Path | None = None
    kind = "sqlite"

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except peewee.IntegrityError:
            raise
        except (peewee.DatabaseError, peewee.InterfaceError, peewee.ImproperlyConfigured) as exc:
            raise catalog_error(self.display, exc, self.path) from exc

    def connect(self, reuse_if_open: bool = False) -> bool:
        with self._translated():
            return super().connect(reuse_if_open)  # type: ignore[misc]

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        with self._translated():
            return super().execute_sql(sql, params)  # type: ignore[misc]

    def begin(self, *args: Any, **kwargs: Any) -> Any:
        with self._translated():
            return super().begin(*args, **kwargs)  # type: ignore[misc]

    def commit(self) -> Any:
        with self._translated():
            return super().commit()  # type: ignore[misc]


class CatalogSqlite(_CatalogErrors, peewee.SqliteDatabase):
    """The SQLite catalog, with bakthat's error messages."""


class CatalogPostgresql(_CatalogErrors, peewee.PostgresqlDatabase):
    """A PostgreSQL catalog, with bakthat's error messages."""

    kind = "postgresql"
