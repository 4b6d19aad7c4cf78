"""The catalog: no side effects at import, WAL concurrency, schema, legacy access."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from bakthat import models
from tests.conftest import ROOT, run_cli


def test_importing_bakthat_reads_no_config_and_creates_nothing(tmp_path):
    home = tmp_path / "fresh-home"
    home.mkdir()
    (home / ".bakthat.yml").write_text("this: [is not: valid yaml\n")
    code = (
        "import bakthat, bakthat.models, bakthat.core, bakthat.cli, sys;"
        "heavy = [m for m in ('zstandard', 'cryptography', 'boto3') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "HOME": str(home), "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in home.iterdir()) == [".bakthat.yml"]


def test_the_catalog_path_comes_from_config(tree, home, tmp_path):
    import bakthat

    database = tmp_path / "elsewhere" / "catalog.sqlite"
    bakthat.backup(str(tree), password="", conf={"database": str(database)})
    assert database.exists()
    assert not (home / ".bakthat.sqlite").exists()
    assert oct(database.stat().st_mode & 0o777) == "0o600"


def test_the_catalog_uses_wal_and_a_busy_timeout(home):
    models.bind(str(home / "c.sqlite"))
    assert models.database.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert models.database.obj.timeout == 30


def test_rows_allow_dict_style_access_for_old_scripts(home):
    models.bind(str(home / "c.sqlite"))
    row = models.Backups.create(backend="local", backup_date=1, filename="a", last_updated=1,
                                size=3, stored_filename="a.1.tgz", metadata={"client": "h"})
    assert row["size"] == 3 and row["client"] == "h"
    with pytest.raises(KeyError):
        row["nope"]


def test_two_processes_backing_up_at_once_both_get_their_row(tmp_path, home):
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        for index in range(200):
            (tmp_path / name / f"f{index}").write_bytes(os.urandom(2000))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bakthat", "backup", str(tmp_path / name), "--prompt", "no"],
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for name in ("one", "two") for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    models.bind(str(home / ".bakthat.sqlite"))
    names = sorted(r.filename for r in models.Backups.select())
    assert names == ["one", "one", "two", "two"]


def test_listing_while_a_backup_writes_neither_errors_nor_waits(tmp_path, home):
    big = tmp_path / "big"
    big.mkdir()
    for index in range(40):
        (big / f"f{index}").write_bytes(os.urandom(1_000_000))
    writer = subprocess.Popen(
        [sys.executable, "-m", "bakthat", "backup", str(big), "--prompt", "no", "--compression", "gzip"],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    listings = []
    while writer.poll() is None and len(listings) < 5:
        result = run_cli("show", "--json")
        # (exit code, stderr, whether the backup was still running when the listing ended)
        listings.append((result.returncode, result.stderr, writer.poll() is None))
    writer.communicate(timeout=120)
    assert writer.returncode == 0
    assert listings and all(code == 0 for code, _, _ in listings), listings
    assert any(still_writing for _, _, still_writing in listings), "no listing overlapped the backup"


def test_listing_succeeds_while_another_process_holds_the_catalog_write_lock(tree, home):
    import sqlite3

    import bakthat

    row = bakthat.backup(str(tree), password="")
    models.unbind()
    holder = sqlite3.connect(str(home / ".bakthat.sqlite"), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # a writer mid-transaction, as a backup recording its row
        holder.execute("UPDATE backups SET tags = 'held' WHERE id = ?", (row.id,))
        result = run_cli("show", "--json")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 0, result.stderr
    assert [shown["stored_filename"] for shown in json.loads(result.stdout)] == [row.stored_filename]
    assert json.loads(result.stdout)[0]["tags"] != "held"  # a reader sees the last committed state
