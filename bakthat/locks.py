"""The catalog-level lock of one backup name: deletions and rotations never overlap.

``rotate_backups``, ``delete_older_than`` and ``delete`` hold the lock of (store, name)
while they read the rows of a name and delete some of them, so two runs, on one host
or on several hosts sharing a catalog, never plan from the same rows at once.

- A SQLite catalog (one host): ``flock`` on a file in ``.bakthat.locks`` beside the
  catalog.  The kernel releases it when its process dies, so it is never stale.
- A PostgreSQL catalog (a fleet): a session-level advisory lock keyed by the name,
  held by the catalog connection.  The server releases it when the connection ends.

Waiting is bounded (``timeout`` seconds, then LockedError naming the holder).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import struct
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bakthat.errors import BakthatError, LockedError

DEFAULT_LOCK_TIMEOUT = 60.0
_POLL = 0.05


def lock_directory(settings: Mapping[str, Any]) -> Path:
    """Return the directory of lock files: ``.bakthat.locks`` beside the SQLite catalog.

    For a catalog given by URL, ``~/.bakthat.locks`` (a PostgreSQL catalog uses
    advisory locks instead, see :func:`name_lock`).
    """
    from bakthat.models import catalog_location

    database = catalog_location(settings)
    if "://" in database:
        return Path(os.path.expanduser("~/.bakthat.locks"))
    return Path(os.path.abspath(os.path.expanduser(database))).parent / ".bakthat.locks"


def uses_postgresql(settings: Mapping[str, Any]) -> bool:
    """Return True if the settings' catalog is a PostgreSQL database."""
    from bakthat.models import catalog_location

    return catalog_location(settings).split("://", 1)[0].lower() in ("postgresql", "postgres")


def advisory_key(backend_hash: str, name: str) -> int:
    """Return the signed 64-bit PostgreSQL advisory lock key of (store, name)."""
    digest = hashlib.sha256(f"bakthat name lock\0{backend_hash}\0{name}".encode()).digest()
    return int(struct.unpack(">q", digest[:8])[0])


@contextmanager
def name_lock(
    settings: Mapping[str, Any], backend_hash: str, name: str, timeout: float = DEFAULT_LOCK_TIMEOUT
) -> Iterator[Any]:
    """Hold the exclusive lock of one backup name in one store for the block.

    Given resolved settings (which say where the catalog is), the store's
    ``backend_hash`` and the name, wait up to ``timeout`` seconds for the lock, then
    raise LockedError naming the holder.  Yield the lock file's path (SQLite) or the
    advisory key (PostgreSQL; the catalog must be bound to it).
    """
    locker = _advisory_lock if uses_postgresql(settings) else _file_lock
    with locker(settings, backend_hash, name, max(0.0, float(timeout))) as held:
        yield held


def _locked(name: str, where: str, holder: str, timeout: float) -> LockedError:
    return LockedError(
        f"another bakthat process is deleting backups of {name!r} in this destination "
        f"({where}, held by {holder}); waited {timeout:g} s"
    )


@contextmanager
def _file_lock(settings: Mapping[str, Any], backend_hash: str, name: str, timeout: float) -> Iterator[Path]:
    directory = lock_directory(settings)
    digest = hashlib.sha256(f"{backend_hash}\0{name}".encode()).hexdigest()[:40]
    path = directory / f"{digest}.lock"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise BakthatError(f"cannot open the lock file {path}: {exc.strerror or exc}") from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    try:
                        holder = path.read_text(encoding="utf-8").strip() or "unknown"
                    except OSError:
                        holder = "unknown"
                    raise _locked(name, f"lock {path}", holder, timeout) from None
                time.sleep(min(_POLL, remaining))
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {_now_iso()}\n".encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def _advisory_lock(settings: Mapping[str, Any], backend_hash: str, name: str, timeout: float) -> Iterator[int]:
    from bakthat import models

    key = advisory_key(backend_hash, name)
    deadline = time.monotonic() + timeout
    while not models.database.execute_sql("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _locked(name, f"PostgreSQL advisory lock {key} in {models.display()}", _pg_holder(key), timeout)
        time.sleep(min(_POLL * 4, remaining))
    try:
        yield key
    finally:
        models.database.execute_sql("SELECT pg_advisory_unlock(%s)", (key,))


def _pg_holder(key: int) -> str:
    """Describe the server session holding an advisory lock (pid, client address)."""
    from bakthat import models

    high, low = (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF
    try:
        row = models.database.execute_sql(
            "SELECT a.pid, a.client_addr, a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s AND l.objsubid = 1",
            (high, low),
        ).fetchone()
    except BakthatError:
        row = None
    if not row:
        return "unknown"
    pid, address, started = row
    since = f" since {started:%Y-%m-%d %H:%M:%S}" if started else ""
    return f"server process {pid} for client {address or 'local'}{since}"


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
