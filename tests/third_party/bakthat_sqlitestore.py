"""A storage backend as a third party would write it: every object a row of one SQLite file.

It would be published with an entry point (``bakthat.backends: sqlitestore =
bakthat_sqlitestore:SqliteStore``); its test registers it with
:func:`bakthat.backends.register` instead.  It declares its one profile key in
``SETTINGS``, builds its typed config once, implements the five primitives and
``container``, and keeps the contract: nothing visible before ``commit`` (the bytes
wait in the upload), an existing object never replaced (the table's primary key), a
missing key is NotFoundError.  It is tested in test_bakthat_sqlitestore.py with
bakthat's kit (``bakthat.testing``) and nothing else.
"""

from __future__ import annotations

import io
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import quote

from bakthat.backends.base import Backend, ObjectInfo, Upload
from bakthat.conf import Setting
from bakthat.errors import AlreadyExistsError, ConfigError, NotFoundError

SETTINGS: dict[str, Setting] = {
    "sqlitestore_path": Setting(str, None, "SQLite file holding the objects of destination sqlitestore"),
}


@dataclass(frozen=True)
class SqliteStoreConfig:
    path: str

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> SqliteStoreConfig:
        path = settings.get("sqlitestore_path") or SETTINGS["sqlitestore_path"].default
        if not path:
            raise ConfigError("destination sqlitestore needs sqlitestore_path in the profile")
        return cls(os.path.expanduser(str(path)))


class SqliteUpload(Upload):
    def __init__(self, store: SqliteStore, key: str):
        self.store, self.key = store, key
        self._chunks: list[bytes] = []
        self._open = True

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def commit(self) -> ObjectInfo:
        data, now = b"".join(self._chunks), time.time()
        try:
            with self.store.connect() as connection:
                connection.execute("INSERT INTO objects VALUES (?, ?, ?)", (self.key, data, now))
        except sqlite3.IntegrityError:
            raise AlreadyExistsError(f"sqlitestore: {self.key} already exists; nothing was replaced") from None
        self.abort()
        return ObjectInfo(self.key, len(data), now)

    def abort(self) -> None:
        self._chunks, self._open = [], False


class SqliteStore(Backend):
    """Objects as rows (key, data, modified) of the table ``objects`` in one SQLite file."""

    name = "sqlitestore"

    def __init__(self, conf: Mapping[str, Any]):
        super().__init__(conf)
        self.config = SqliteStoreConfig.from_settings(conf)

    @property
    def container(self) -> str:
        return self.config.path

    def connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.config.path)
        connection.execute("CREATE TABLE IF NOT EXISTS objects (key TEXT PRIMARY KEY, data BLOB, modified REAL)")
        return connection

    def _row(self, key: str) -> tuple[bytes, float]:
        with self.connect() as connection:
            row = connection.execute("SELECT data, modified FROM objects WHERE key = ?", (self.check_key(key),)).fetchone()
        if row is None:
            raise NotFoundError(f"sqlitestore: no object {key}")
        return row

    def open_upload(self, key: str, metadata: dict[str, str] | None = None) -> SqliteUpload:
        if self.exists(self.check_key(key)):
            raise AlreadyExistsError(f"sqlitestore: {key} already exists; nothing was replaced")
        return SqliteUpload(self, key)

    def open_read(self, key: str) -> IO[bytes]:
        return io.BytesIO(self._row(key)[0])

    def stat(self, key: str) -> ObjectInfo:
        data, modified = self._row(key)
        return ObjectInfo(key, len(data), modified)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        with self.connect() as connection:
            rows = connection.execute("SELECT key, length(data), modified FROM objects ORDER BY key").fetchall()
        for key, size, modified in rows:
            if key.startswith(prefix):
                yield ObjectInfo(key, size, modified)

    def delete(self, key: str) -> None:
        with self.connect() as connection:
            deleted = connection.execute("DELETE FROM objects WHERE key = ?", (self.check_key(key),)).rowcount
        if not deleted:
            raise NotFoundError(f"sqlitestore: no object {key}")

    def url(self, key: str, expires_in: int = 3600) -> str:
        self._row(key)
        return f"sqlitestore://{quote(self.config.path)}#{quote(key)}"
