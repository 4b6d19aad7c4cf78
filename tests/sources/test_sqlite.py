"""bakthat.sources.sqlite: a consistent copy of a live database, and a restore that is whole or nothing."""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
import time

import pytest

from bakthat import sources
from bakthat.errors import TargetExistsError
from bakthat.sources.base import DumpError, RestoreIntoError

WRITER = r"""
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
i = 0
while True:
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO a(v, pad) VALUES (?, randomblob(2000))", (i,))
    db.execute("INSERT INTO b(v) VALUES (?)", (i,))
    db.execute("UPDATE totals SET n = n + 1, s = s + ?", (i,))
    db.execute("COMMIT")
    i += 1
    if i == 50:
        print("ready", flush=True)
"""


def make_database(path, journal_mode: str) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"PRAGMA journal_mode={journal_mode}")
    db.execute("CREATE TABLE a (id INTEGER PRIMARY KEY, v INTEGER, pad BLOB)")
    db.execute("CREATE TABLE b (id INTEGER PRIMARY KEY, v INTEGER)")
    db.execute("CREATE TABLE totals (n INTEGER, s INTEGER)")
    db.execute("CREATE TABLE ballast (data BLOB)")
    db.execute("BEGIN")
    db.execute("INSERT INTO totals VALUES (0, 0)")
    for _ in range(400):
        db.execute("INSERT INTO ballast VALUES (randomblob(50000))")  # 20 MB: the copy takes a while
    db.execute("COMMIT")
    db.close()


def dump_to_bytes(source, settings=None) -> bytes:
    with sources.open_dump(source, settings or {}) as dump:
        sink = io.BytesIO()
        dump.copy_to(sink)
        dump.finish()
    return sink.getvalue()


def invariant(path) -> tuple[int, int, int, int, int]:
    db = sqlite3.connect(path, timeout=60)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        a, sum_a = db.execute("SELECT count(*), coalesce(sum(v), 0) FROM a").fetchone()
        b = db.execute("SELECT count(*) FROM b").fetchone()[0]
        n, s = db.execute("SELECT n, s FROM totals").fetchone()
    finally:
        db.close()
    return a, b, n, sum_a, s


@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_a_database_under_concurrent_writes_gives_a_consistent_copy(tmp_path, journal_mode):
    path = tmp_path / "app.db"
    make_database(path, journal_mode)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        before = invariant(path)[0]
        data = dump_to_bytes(sources.parse(f"sqlite://{path}"))
        time.sleep(0.2)
        after = invariant(path)[0]
    finally:
        writer.kill()
        writer.wait()
    assert after > before, "the writer made no progress during the copy"
    restored = tmp_path / "restored.db"
    sources.restore_into(sources.parse(f"sqlite://{restored}"), io.BytesIO(data), {})
    a, b, n, sum_a, s = invariant(restored)
    assert a == b == n and sum_a == s  # every transaction whole, none half
    assert a >= 50


def test_the_copy_leaves_nothing_in_its_temp_directory(tmp_path):
    path = tmp_path / "app.db"
    make_database(path, "wal")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    dump = sources.open_dump(sources.parse(f"sqlite://{path}"), {"sqlite_temp_dir": str(scratch)})
    try:
        assert list(scratch.iterdir()) == []  # unlinked before the first byte is read
        assert dump.copy_to(io.BytesIO()) > 20_000_000
        dump.finish()
    finally:
        dump.abort()


def test_restore_into_a_new_file_recreates_the_same_content(tmp_path):
    path = tmp_path / "app.db"
    make_database(path, "delete")
    data = dump_to_bytes(sources.parse({"url": f"sqlite://{path}", "name": "app"}))
    target = tmp_path / "out" / "copy.db"
    target.parent.mkdir()
    sources.restore_into(sources.parse(f"sqlite://{target}"), io.BytesIO(data), {})
    original, copy = sqlite3.connect(path), sqlite3.connect(target)
    assert list(original.iterdump()) == list(copy.iterdump())
    assert [name for name in os.listdir(target.parent)] == ["copy.db"]


def test_restore_into_an_existing_file_is_refused_unless_overwrite(tmp_path):
    path = tmp_path / "app.db"
    make_database(path, "delete")
    data = dump_to_bytes(sources.parse(f"sqlite://{path}"))
    target = tmp_path / "existing.db"
    db = sqlite3.connect(target)
    db.execute("CREATE TABLE keep (x)")
    db.commit()
    db.close()
    with pytest.raises(TargetExistsError, match="existing.db exists"):
        sources.restore_into(sources.parse(f"sqlite://{target}"), io.BytesIO(data), {})
    assert [row[0] for row in sqlite3.connect(target).execute("SELECT name FROM sqlite_master")] == ["keep"]
    sources.restore_into(sources.parse(f"sqlite://{target}"), io.BytesIO(data), {}, overwrite=True)
    assert "ballast" in [row[0] for row in sqlite3.connect(target).execute("SELECT name FROM sqlite_master")]


def test_a_damaged_dump_is_refused_and_no_target_appears(tmp_path):
    path = tmp_path / "app.db"
    make_database(path, "delete")
    data = bytearray(dump_to_bytes(sources.parse(f"sqlite://{path}")))
    for offset in range(4096, len(data), 4096):  # every page after the first
        data[offset + 100] ^= 0xFF
    data[40:44] = b"\xff\xff\xff\xff"
    target = tmp_path / "out" / "restored.db"
    target.parent.mkdir()
    with pytest.raises(RestoreIntoError):
        sources.restore_into(sources.parse(f"sqlite://{target}"), io.BytesIO(b"not a database" * 100), {})
    with pytest.raises(RestoreIntoError):
        sources.restore_into(sources.parse(f"sqlite://{target}"), io.BytesIO(bytes(data)), {})
    assert os.listdir(target.parent) == []


def test_a_missing_file_or_a_file_that_is_no_database_cannot_be_dumped(tmp_path):
    with pytest.raises(DumpError, match="no such database file"):
        sources.open_dump(sources.parse(f"sqlite://{tmp_path}/missing.db"), {})
    (tmp_path / "text.db").write_text("hello" * 1000)
    with pytest.raises(DumpError, match="cannot copy the database: file is not a database"):
        sources.open_dump(sources.parse(f"sqlite://{tmp_path}/text.db"), {})
