"""An independent writer of bakthat 0.6's formats, for tests only.

It follows 0.6's backup pipeline as documented (../shared/reference/bakthat-0.6.md §4-5
and §9): ``tarfile`` mode ``w:gz`` with the arcname as the top-level entry into a named
temporary file (or, with the profile's ``compress: false``, the file as it is), then
beefish's ``encrypt`` (Blowfish-CBC, the password as key, an
8-byte random IV first, 4096-byte chunks, its padding with a flag byte drawn by
``random.randrange``).  It shares no code with bakthat's reader (``bakthat.legacy``);
the Blowfish block function comes from ``cryptography``, as a stand-in for PyCrypto.
It also writes a 0.6-shaped ``~/.bakthat.sqlite`` and 0.6 KeyValue objects.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import sqlite3
import tarfile
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.decrepit.ciphers.algorithms import Blowfish
from cryptography.hazmat.primitives.ciphers import Cipher, modes

BLOCK = 8


def _padding(file_size: int) -> bytes:
    pad_bytes = BLOCK - (file_size % BLOCK)
    filler = os.urandom(pad_bytes - 1)
    flag = random.randrange(BLOCK - 2, 256 - BLOCK)
    flag -= flag % BLOCK - pad_bytes
    return filler + bytes([flag])


def beefish_encrypt(plain: bytes, password: str, chunk_size: int = 4096) -> bytes:
    """Return ``plain`` encrypted as beefish's ``encrypt(in_buf, out_buf, key)`` wrote it."""
    iv = os.urandom(BLOCK)
    encryptor = Cipher(Blowfish(password.encode()), modes.CBC(iv)).encryptor()
    source = io.BytesIO(plain)
    out = [iv]
    bytes_read = 0
    wrote_padding = False
    while True:
        buffer = source.read(chunk_size)
        bytes_read += len(buffer)
        if buffer:
            if len(buffer) < chunk_size:
                buffer += _padding(bytes_read)
                wrote_padding = True
            out.append(encryptor.update(buffer))
        else:
            if not wrote_padding:
                out.append(encryptor.update(_padding(bytes_read)))
            break
    encryptor.finalize()
    return b"".join(out)


def tgz(source: Path, arcname: str | None = None) -> bytes:
    """Return 0.6's compressed archive of ``source``: ``w:gz`` into a named temp file (GNU tar format, Python 2.7's default)."""
    arcname = arcname or source.name
    with tempfile.NamedTemporaryFile(delete=False) as out:
        path = out.name
    try:
        with tarfile.open(path, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:  # Python 2.7's default format
            tar.add(str(source), arcname=arcname)
        return Path(path).read_bytes()
    finally:
        os.unlink(path)


def stamp(when: datetime) -> str:
    """Return 0.6's stored-name stamp of a UTC time."""
    return when.astimezone(timezone.utc).strftime("%Y%m%d%H%M%S")


def stored_name(arcname: str, when: datetime, encrypted: bool, dotless: bool = False) -> str:
    return f"{arcname}{'' if dotless else '.'}{stamp(when)}.tgz" + (".enc" if encrypted else "")


def backup_object(source: Path, when: datetime, password: str = "", dotless: bool = False) -> tuple[str, bytes]:
    """Return ``(stored filename, object bytes)`` of 0.6's backup of ``source`` at ``when``."""
    data = tgz(source)
    if password:
        data = beefish_encrypt(data, password)
    return stored_name(source.name, when, bool(password), dotless), data


def raw_object(source: Path, when: datetime, password: str = "") -> tuple[str, bytes]:
    """Return ``(stored filename, object bytes)`` of 0.6's backup of the file ``source``
    with the profile's ``compress: false``: the file's bytes uploaded as they are (or
    beefish-encrypted), named ``<file name>.<stamp>`` (plus ``.enc``)."""
    data = source.read_bytes()
    if password:
        data = beefish_encrypt(data, password)
    return f"{source.name}.{stamp(when)}" + (".enc" if password else ""), data


def keyvalue_object(value, password: str | None = None, compress: bool = True) -> bytes:
    """Return the bytes 0.6's ``KeyValue.set_key`` uploaded for ``value``."""
    data = json.dumps(value).encode()
    if compress:
        buffer = io.BytesIO()
        with gzip.GzipFile(fileobj=buffer, mode="wb") as zipped:
            zipped.write(data)
        data = buffer.getvalue()
    if password:
        data = beefish_encrypt(data, password)
    return data


# --------------------------------------------------------------------------- the 0.6 catalog

SCHEMA_06 = """
CREATE TABLE "backups" ("id" INTEGER NOT NULL PRIMARY KEY, "backend" VARCHAR(255) NOT NULL,
  "backend_hash" VARCHAR(255), "backup_date" INTEGER NOT NULL, "filename" TEXT NOT NULL,
  "is_deleted" SMALLINT NOT NULL, "last_updated" INTEGER NOT NULL, "metadata" VARCHAR(255) NOT NULL,
  "size" INTEGER NOT NULL, "stored_filename" TEXT NOT NULL, "tags" VARCHAR(255) NOT NULL);
CREATE INDEX "backups_backend" ON "backups" ("backend");
CREATE INDEX "backups_backend_hash" ON "backups" ("backend_hash");
CREATE INDEX "backups_backup_date" ON "backups" ("backup_date");
CREATE INDEX "backups_filename" ON "backups" ("filename");
CREATE UNIQUE INDEX "backups_stored_filename" ON "backups" ("stored_filename");
CREATE TABLE "config" ("id" INTEGER NOT NULL PRIMARY KEY, "key" VARCHAR(255) NOT NULL, "value" VARCHAR(255) NOT NULL);
CREATE UNIQUE INDEX "config_key" ON "config" ("key");
CREATE TABLE "inventory" ("id" INTEGER NOT NULL PRIMARY KEY, "filename" VARCHAR(255) NOT NULL, "archive_id" VARCHAR(255) NOT NULL);
CREATE UNIQUE INDEX "inventory_archive_id" ON "inventory" ("archive_id");
CREATE INDEX "inventory_filename" ON "inventory" ("filename");
CREATE TABLE "jobs" ("id" INTEGER NOT NULL PRIMARY KEY, "filename" VARCHAR(255) NOT NULL, "job_id" VARCHAR(255) NOT NULL);
CREATE INDEX "jobs_filename" ON "jobs" ("filename");
CREATE TABLE "history" ("id" INTEGER NOT NULL PRIMARY KEY, "data" VARCHAR(255) NOT NULL, "ts" INTEGER NOT NULL,
  "action" VARCHAR(255) NOT NULL, "model" VARCHAR(255) NOT NULL, "pk" VARCHAR(255) NOT NULL);
"""


def write_catalog(path: Path, rows: list[dict]) -> None:
    """Write a 0.6-shaped ``~/.bakthat.sqlite`` holding ``rows`` of its ``backups`` table.

    Each row: backend, backend_hash, backup_date, filename, stored_filename, size, tags,
    metadata (a dict), and optionally is_deleted.
    """
    connection = sqlite3.connect(path)
    try:
        connection.executescript(SCHEMA_06)
        now = int(time.time())
        for row in rows:
            connection.execute(
                'INSERT INTO "backups" (backend, backend_hash, backup_date, filename, is_deleted, '
                "last_updated, metadata, size, stored_filename, tags) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    row["backend"],
                    row.get("backend_hash"),
                    row["backup_date"],
                    row["filename"],
                    int(row.get("is_deleted", False)),
                    now,
                    json.dumps(row.get("metadata", {})),
                    row["size"],
                    row["stored_filename"],
                    row.get("tags", ""),
                ),
            )
        connection.execute("INSERT INTO config (key, value) VALUES ('sync_ts', '0')")
        connection.commit()
    finally:
        connection.close()
