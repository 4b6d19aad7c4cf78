"""An in-memory storage backend: destination ``memory``, for tests of plugins, scripts and backends.

``bakthat backup ... -d memory`` (or ``destination="memory"``) stores objects in this
process's memory; they are gone when the process exits.  **State is per process**: a
``bakthat`` command run as a subprocess has its own, empty store, so use ``-d memory``
in-process (``bakthat.backup(..., destination="memory")``, ``bakthat.cli.main([...])``).
Every backend instance of a process shares the one store; :func:`reset` empties it
(call it between tests), :func:`objects` shows what it holds.

The backend keeps the whole contract of :class:`bakthat.backends.base.Backend`: nothing
visible before ``commit``, an existing object never replaced, keys checked, listing
sorted.  It declares ``conditional_writes`` (each object's ETag is the SHA-256 of its
bytes), so KeyValue works on it, and ``cheap_reads``.  It is what
:mod:`bakthat.testing.conformance` is first run against, and the shortest example of a
backend: read it before writing one (docs/backends.md, "Writing a backend").
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from bakthat.backends import base
from bakthat.errors import AlreadyExistsError, NotFoundError, StorageError


@dataclass(frozen=True)
class _Object:
    data: bytes
    modified: float
    etag: str
    metadata: dict[str, str] = field(default_factory=dict)


_store: dict[str, _Object] = {}
_lock = threading.Lock()


def reset() -> None:
    """Forget every object of the in-memory store (of this process)."""
    with _lock:
        _store.clear()


def objects() -> dict[str, bytes]:
    """Return a copy of the in-memory store: key -> bytes."""
    with _lock:
        return {key: stored.data for key, stored in _store.items()}


class MemoryReader(io.BytesIO):
    """The bytes of one object, with its ``etag`` (as KeyValue reads it)."""

    def __init__(self, stored: _Object):
        super().__init__(stored.data)
        self.etag = stored.etag


class MemoryUpload(base.Upload):
    """Bytes kept aside until :meth:`commit` puts them under the key (or fails, keeping nothing)."""

    def __init__(self, key: str, metadata: Mapping[str, str] | None, if_match: str | None):
        self.key = key
        self.metadata = {name: str(value) for name, value in (metadata or {}).items()}
        self.if_match = if_match
        self._buffer = bytearray()
        self._state = "open"

    def write(self, data: bytes) -> int:
        if self._state != "open":
            raise StorageError(f"memory store: the upload of {self.key} is {self._state}")
        self._buffer += data
        return len(data)

    def commit(self) -> base.ObjectInfo:
        """Store the bytes.  Raise AlreadyExistsError if the key exists (or, with
        ``if_match``, if it no longer holds that version)."""
        if self._state != "open":
            raise StorageError(f"memory store: the upload of {self.key} is {self._state}")
        data = bytes(self._buffer)
        stored = _Object(data, time.time(), hashlib.sha256(data).hexdigest(), self.metadata)
        with _lock:
            current = _store.get(self.key)
            if self.if_match is None and current is not None:
                raise AlreadyExistsError(f"memory store: {self.key} already exists; nothing was replaced")
            if self.if_match is not None and (current is None or current.etag != self.if_match):
                raise AlreadyExistsError(f"memory store: {self.key} was changed or deleted meanwhile; nothing was replaced")
            _store[self.key] = stored
        self._state = "committed"
        self._buffer = bytearray()
        return _info(self.key, stored)

    def abort(self) -> None:
        if self._state == "open":
            self._state = "aborted"
            self._buffer = bytearray()


def _info(key: str, stored: _Object) -> base.ObjectInfo:
    return base.ObjectInfo(key, len(stored.data), stored.modified, {**stored.metadata, "etag": stored.etag})


class MemoryBackend(base.Backend):
    """Objects in this process's memory (see the module's docstring).  Takes no settings."""

    name = "memory"
    cheap_reads = True
    conditional_writes = True

    def __init__(self, conf: Mapping[str, Any] | None = None):
        super().__init__(conf if conf is not None else {})

    @property
    def container(self) -> str:
        return "memory://"

    def _get(self, key: str) -> _Object:
        with _lock:
            stored = _store.get(self.check_key(key))
        if stored is None:
            raise NotFoundError(f"memory store: no object {key}")
        return stored

    def open_upload(self, key: str, metadata: dict[str, str] | None = None, *, if_match: str | None = None) -> MemoryUpload:
        """Start an upload of ``key``.  Raise AlreadyExistsError at once if it exists
        (unless ``if_match``: then commit replaces that version only)."""
        self.check_key(key)
        if if_match is None and self.exists(key):
            raise AlreadyExistsError(f"memory store: {key} already exists; nothing was replaced")
        return MemoryUpload(key, metadata, if_match)

    def open_read(self, key: str) -> IO[bytes]:
        return MemoryReader(self._get(key))

    def stat(self, key: str) -> base.ObjectInfo:
        return _info(key, self._get(key))

    def list(self, prefix: str = "") -> Iterator[base.ObjectInfo]:
        with _lock:
            found = sorted((key, stored) for key, stored in _store.items() if key.startswith(prefix))
        for key, stored in found:
            yield _info(key, stored)

    def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Delete ``key``.  Raise NotFoundError if it is missing, AlreadyExistsError if
        ``if_match`` is given and the object changed meanwhile."""
        self.check_key(key)
        with _lock:
            stored = _store.get(key)
            if stored is None:
                raise NotFoundError(f"memory store: no object {key}")
            if if_match is not None and stored.etag != if_match:
                raise AlreadyExistsError(f"memory store: {key} changed meanwhile; not deleted")
            del _store[key]

    def url(self, key: str, expires_in: int = 3600) -> str:
        self._get(key)
        return f"memory:///{key}"
