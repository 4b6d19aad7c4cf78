"""The local directory store: bakthat's zero-configuration default destination.

Objects are files under ``local_path`` (default ``~/.bakthat_store``), directories 0700
and files 0600.  A write goes to ``.bakthat-tmp/<host>-<pid>-<random>`` under the store's
root, is fsynced, then hard-linked to the final name (which fails if it exists, so
nothing is ever replaced) and the directory is fsynced: a killed process never leaves a
file under a final name.  Temp files of dead processes on this host are removed by
later uploads.

The temp directory is the one name no key may use (keys under ``.bakthat-tmp/`` are
refused), so no backup name can ever collide with a temp file, and every other file
under the root is listed.
"""

from __future__ import annotations

import errno
import os
import socket
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bakthat.atomic import fsync_directory
from bakthat.backends import base
from bakthat.backends._config import setting_value
from bakthat.conf import SETTINGS as CORE_SETTINGS
from bakthat.errors import AlreadyExistsError, ConfigError, NotFoundError, StorageError
from bakthat.process import pid_alive

TEMP_DIR = ".bakthat-tmp"


def _storage_error(action: str, key: str, exc: OSError) -> StorageError:
    if exc.errno == errno.ENOSPC:
        return StorageError(f"local store full while {action} {key}: no space left on device")
    return StorageError(f"local store: {action} {key} failed: {exc.strerror or exc}")


def _is_stale_temp(name: str, host: str) -> bool:
    """Return True if a temp file name belongs to a dead process on this host."""
    parts = name.split("-")
    if len(parts) < 3 or parts[0] != host or not parts[1].isdigit():
        return False
    return not pid_alive(int(parts[1]))


#: While an upload is written, its data is handed to the disk every this many bytes
#: (asynchronously), so the fsync of commit() waits only for the last of it.
WRITEBACK_EVERY = 32 << 20


def _writeback_starter() -> Any:
    """Return ``start(fd, offset, length)``, starting the asynchronous write-out of a
    file range to disk (Linux's sync_file_range), or None where there is none."""
    try:
        import ctypes

        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    write = 2  # SYNC_FILE_RANGE_WRITE: start writing dirty pages, do not wait

    def start(fd: int, offset: int, length: int) -> None:
        function(fd, offset, length, write)  # a failure only means fsync does it all

    return start


class LocalUpload(base.Upload):
    def __init__(self, final: Path, key: str, temp_dir: Path):
        self.final = final
        self.key = key
        host = socket.gethostname().replace("-", "_")
        try:
            final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            temp_dir.mkdir(exist_ok=True, mode=0o700)
            fd, temp = tempfile.mkstemp(prefix=f"{host}-{os.getpid()}-", dir=temp_dir)
        except OSError as exc:
            raise _storage_error("creating", key, exc) from None
        self.temp = Path(temp)
        self._file = os.fdopen(fd, "wb", buffering=0)
        self._done = False
        self._written = self._flushed = 0
        self._writeback = _writeback_starter()

    def write(self, data: bytes) -> int:
        try:
            view = memoryview(data)
            while view:
                written = self._file.write(view)
                view = view[written:]
        except OSError as exc:
            raise _storage_error("writing", self.key, exc) from None
        self._written += len(data)
        if self._writeback is not None and self._written - self._flushed >= WRITEBACK_EVERY:
            self._writeback(self._file.fileno(), self._flushed, self._written - self._flushed)
            self._flushed = self._written
        return len(data)

    def commit(self) -> base.ObjectInfo:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.chmod(self.temp, 0o600)
            os.link(self.temp, self.final)
        except FileExistsError:
            raise AlreadyExistsError(f"local store: {self.key} already exists; nothing was replaced") from None
        except OSError as exc:
            raise _storage_error("committing", self.key, exc) from None
        self.abort()  # removes the temp name; the data lives on under the final name
        fsync_directory(self.final.parent)
        return base.ObjectInfo(self.key, self.final.stat().st_size, self.final.stat().st_mtime)

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        try:
            self.temp.unlink()
        except FileNotFoundError:
            pass


@dataclass(frozen=True)
class LocalConfig:
    """What the local store reads from a profile: its root directory, absolute."""

    root: Path

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> LocalConfig:
        """Given profile settings, return the config (``local_path`` is a core key,
        declared with its default in :data:`bakthat.conf.SETTINGS`)."""
        path = setting_value(settings, CORE_SETTINGS, "local_path")
        return cls(Path(os.path.expanduser(str(path))).absolute())


class Backend(base.Backend):
    """Store objects as files under a local directory."""

    name = "local"
    cheap_reads = True

    def __init__(self, conf: Mapping[str, Any]):
        super().__init__(conf)
        self.config = LocalConfig.from_settings(conf)
        self.root = self.config.root

    @property
    def container(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        self.check_key(key)
        if key.split("/", 1)[0] == TEMP_DIR:
            raise ConfigError(f"invalid storage key {key!r}: {TEMP_DIR}/ holds the local store's temp files")
        return self.root / key

    def open_upload(self, key: str, metadata: dict[str, str] | None = None) -> LocalUpload:
        path = self._path(key)
        self._remove_stale_temps()
        if path.exists():
            raise AlreadyExistsError(f"local store: {key} already exists; nothing was replaced")
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise _storage_error("creating the store for", key, exc) from None
        return LocalUpload(path, key, self.root / TEMP_DIR)

    def _remove_stale_temps(self) -> None:
        host = socket.gethostname().replace("-", "_")
        directory = self.root / TEMP_DIR
        try:
            names = os.listdir(directory)
        except OSError:
            return
        for name in names:
            if _is_stale_temp(name, host):
                try:
                    (directory / name).unlink()
                except OSError:
                    pass

    def open_read(self, key: str) -> IO[bytes]:
        try:
            return open(self._path(key), "rb")  # noqa: SIM115 - the caller closes it
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"local store: no object {key}") from None
        except OSError as exc:
            raise _storage_error("reading", key, exc) from None

    def stat(self, key: str) -> base.ObjectInfo:
        try:
            result = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"local store: no object {key}") from None
        return base.ObjectInfo(key, result.st_size, result.st_mtime)

    def list(self, prefix: str = "") -> Iterator[base.ObjectInfo]:
        if not self.root.is_dir():
            return
        found = []
        for directory, dirnames, filenames in os.walk(self.root):
            if directory == str(self.root) and TEMP_DIR in dirnames:
                dirnames.remove(TEMP_DIR)
            dirnames.sort()
            for name in filenames:
                full = Path(directory) / name
                key = full.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    result = full.stat()
                    found.append(base.ObjectInfo(key, result.st_size, result.st_mtime))
        yield from sorted(found, key=lambda info: info.key)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"local store: no object {key}") from None
        except OSError as exc:
            raise _storage_error("deleting", key, exc) from None
        fsync_directory(path.parent)

    def url(self, key: str, expires_in: int = 3600) -> str:
        return self._path(key).as_uri()
