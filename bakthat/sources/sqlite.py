"""SQLite databases: a consistent copy through SQLite's online backup API.

Spec: ``sqlite:///absolute/path/app.db`` (or ``sqlite:relative.db``, taken from the
current directory), or ``{url: ..., name, hooks}``.  Named after the file (``app.db``)
unless ``name`` is given; stored as ``<name>.sqlite``.

**Why a temporary copy, unlike the other sources.**  A live SQLite file is never copied
raw: a writer may change it mid-read and the copy would be corrupt.  The online backup
API (``sqlite3.Connection.backup``) is SQLite's way to take a consistent copy while
others write; it copies in one step (``pages=-1``) inside one read transaction (in WAL
mode writers are not blocked; in rollback mode they wait for the copy), but it writes
**a database file**, which needs seeking, so it cannot write into a pipe.  The copy goes
to a private directory (0700) under the profile's ``sqlite_temp_dir`` (default: the temp
directory; point it at a disk, not a small tmpfs, for big databases), is opened, then
unlinked at once, so nothing is left behind even if bakthat is killed while streaming it.
Disk use: one database size, for the duration of the copy; memory: one buffer.

**Restore into** a file path: the dump is written to a private temporary file beside the
target and checked with ``PRAGMA quick_check``; a new target is then moved into place
atomically; an existing one is replaced only with ``overwrite``, through the backup API
(transactional, safe while other connections use it).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from bakthat.atomic import fsync_directory
from bakthat import profile_keys
from bakthat.context import RunContext
from bakthat.errors import ConfigError, TargetExistsError
from bakthat.sources.base import CHUNK, DumpError, FileDump, RestoreIntoError, Source, check_keys, check_name

SCHEMES = ("sqlite",)
KEY = None
KEYS = ("url",)
#: Seconds to wait for a lock held by a writer before the copy fails.
BUSY_TIMEOUT = 60.0

#: The profile keys read here, declared in :mod:`bakthat.profile_keys` (read without importing this module).
SETTINGS = profile_keys.SQLITE


@dataclass(frozen=True)
class SqliteSource(Source):
    """A SQLite database file."""

    path: str = ""


def parse(spec: Mapping[str, Any], where: str) -> SqliteSource:
    """Given ``{url: sqlite:///path, ...}`` and its place in the configuration, return the
    source (the path made absolute).  Raise ConfigError for a URL with a host or no path."""
    check_keys(spec, KEYS, where)
    parts = urlsplit(spec["url"])
    if parts.netloc:
        raise ConfigError(f"{where}.url: write sqlite:///absolute/path.db (three slashes), not a host")
    path = unquote(parts.path)
    if not path or path.endswith("/"):
        raise ConfigError(f"{where}.url: give the database file: sqlite:///path/to/app.db")
    path = os.path.abspath(os.path.expanduser(path))
    return SqliteSource(
        kind="sqlite",
        name=check_name(spec.get("name", os.path.basename(path)), where),
        display=f"sqlite://{path}",
        extension="sqlite",
        hooks=spec.get("hooks"),
        path=path,
    )


def _backup(origin: sqlite3.Connection, destination: str | os.PathLike[str]) -> None:
    """Copy the database open as ``origin`` into ``destination`` through the online backup
    API, in one step (one read transaction: a consistent copy); close both."""
    try:
        target = sqlite3.connect(destination, timeout=BUSY_TIMEOUT)
        try:
            origin.backup(target, pages=-1)
        finally:
            target.close()
    finally:
        origin.close()


def _connect_read_only(path: str) -> sqlite3.Connection:
    uri = f"file:{quote(path)}?mode=ro"
    connection = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT)
    connection.execute("PRAGMA schema_version").fetchone()  # fails here if it is not a database
    return connection


def open_dump(source: SqliteSource, settings: Mapping[str, Any], context: RunContext | None = None) -> FileDump:
    """Take a consistent copy of the database and return it as a dump (already complete:
    ``finish()`` only checks it was read to its end).

    Raise DumpError if the file is missing, is not a SQLite database, or the copy fails.
    """
    if not os.path.isfile(source.path):
        raise DumpError(f"{source.display}: no such database file")
    directory = tempfile.mkdtemp(prefix="bakthat-sqlite-", dir=settings.get("sqlite_temp_dir") or None)
    copy = os.path.join(directory, "copy.sqlite")
    try:
        try:
            _backup(_connect_read_only(source.path), copy)
        except sqlite3.Error as exc:
            raise DumpError(f"{source.display}: cannot copy the database: {exc}") from None
        stream = open(copy, "rb")  # noqa: SIM115 - owned by the FileDump
    finally:
        shutil.rmtree(directory, ignore_errors=True)  # the open stream keeps the data
    return FileDump(stream, source.display)


def _check(path: str, display: str) -> None:
    try:
        connection = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True)
        try:
            verdict = connection.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise RestoreIntoError(f"{display}: the dump is not a usable SQLite database: {exc}") from None
    if verdict != "ok":
        raise RestoreIntoError(f"{display}: the dump failed SQLite's quick_check: {verdict}")


def restore_into(source: SqliteSource, stream: Any, settings: Mapping[str, Any], *, overwrite: bool = False) -> None:
    """Given a target file and a readable dump, restore the database there.

    Raise TargetExistsError if the target exists and ``overwrite`` is false;
    RestoreIntoError if the dump is not a sound SQLite database (the target is then
    untouched).  A new target appears atomically and complete, or not at all.
    """
    target = Path(source.path)
    if target.exists() and not overwrite:
        raise TargetExistsError(f"{source.display} exists: restore to a new file, or ask to overwrite")
    if not target.parent.is_dir():
        raise ConfigError(f"{source.display}: directory {target.parent} does not exist")
    fd, temporary = tempfile.mkstemp(prefix=".bakthat-restore-", suffix=".sqlite", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            while chunk := stream.read(CHUNK):
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        _check(temporary, source.display)
        if not target.exists():
            os.link(temporary, target)  # fails rather than replace a file created meanwhile
            fsync_directory(target.parent)
            return
        _backup(sqlite3.connect(temporary), target)
    finally:
        os.unlink(temporary)
