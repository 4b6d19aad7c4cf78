"""Catalog schema versions: a bakthat 0.6 ``~/.bakthat.sqlite`` and older catalogs are upgraded in place.

The 0.6 catalog is built here from the schema bakthat 0.6 documents (tables ``backups``,
``config``, ``inventory``, ``jobs``, ``history``, as peewee 2 created them), with rows
shaped as 0.6 wrote them; it is not made by bakthat.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import sqlite3
import subprocess
import sys
import tarfile

import pytest

import bakthat
from bakthat import migrations, models
from bakthat.errors import CatalogError
from tests.backends.conftest import aws, moto_server, s3_client  # noqa: F401 - fixtures
from tests.conftest import ROOT, cli_ok, run_cli
from tests.legacy_writer import SCHEMA_06

ACCESS_KEY = "AKIAOLDBAKTHAT"
BUCKET = "old-bakthat-bucket"
VAULT = "old-vault"


def hash_0_6(container: str) -> str:
    """0.6's backend_hash: SHA-512 of access_key + container (bucket or vault)."""
    return hashlib.sha512((ACCESS_KEY + container).encode()).hexdigest()


def gzipped_tar(name: str, files: dict[str, bytes]) -> bytes:
    """A 0.6-style archive: a gzip tar whose top-level entry is ``name``."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        top = tarfile.TarInfo(name)
        top.type, top.mode, top.mtime = tarfile.DIRTYPE, 0o755, 1370373055
        tar.addfile(top)
        for relative, content in files.items():
            info = tarfile.TarInfo(f"{name}/{relative}")
            info.size, info.mode, info.mtime = len(content), 0o644, 1370373055
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


WWW = gzipped_tar("www", {"index.html": b"<h1>2013</h1>\n", "css/site.css": b"body {}\n"})

ROWS_0_6 = [
    # backend, hash, date, filename, deleted, metadata, size, stored_filename, tags
    ("s3", hash_0_6(BUCKET), 1370373055, "www", 0, {"is_enc": False, "client": "oldhost"}, len(WWW),
     "www.20130604191055.tgz", "daily web"),
    ("s3", hash_0_6(BUCKET), 1370459455, "www", 0, {"is_enc": True, "client": "oldhost"}, 4242,
     "www.20130605191055.tgz.enc", "daily"),
    ("s3", hash_0_6(BUCKET), 1325376000, "old", 1, {"is_enc": False, "client": "oldhost"}, 10,
     "old.20120101000000.tgz", ""),
    ("s3", hash_0_6(BUCKET), 1370000000, "mykey", 0, {"KeyValue": True, "is_enc": False, "is_gzipped": True}, 30,
     "mykey", ""),
    ("glacier", hash_0_6(VAULT), 1357000000, "db", 0, {"is_enc": False, "client": "dbhost"}, 999,
     "db.20130101003320.tgz", "db"),
]


def make_0_6_catalog(path) -> None:
    """Write a catalog as bakthat 0.6 left it: schema, backups, Glacier inventory and jobs, sync state."""
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA_06)
        for backend, backend_hash, date, name, deleted, metadata, size, stored, tags in ROWS_0_6:
            db.execute(
                "INSERT INTO backups (backend, backend_hash, backup_date, filename, is_deleted, last_updated, "
                "metadata, size, stored_filename, tags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (backend, backend_hash, date, name, deleted, date, json.dumps(metadata), size, stored, tags),
            )
        db.execute("INSERT INTO inventory (filename, archive_id) VALUES (?, ?)", ("db.20130101003320.tgz", "ARCHIVE-ID-1"))
        db.execute("INSERT INTO jobs (filename, job_id) VALUES (?, ?)", ("db.20130101003320.tgz", "JOB-1"))
        db.execute("INSERT INTO config (key, value) VALUES (?, ?)", ("client_id", json.dumps("5190d4c1")))
        db.execute("INSERT INTO config (key, value) VALUES (?, ?)", ("sync_ts", json.dumps(1370459455)))
        db.execute(
            "INSERT INTO history (data, ts, action, model, pk) VALUES (?, ?, ?, ?, ?)",
            ("{}", 1370459455, "create", "Backups", "www.20130605191055.tgz.enc"),
        )


def table_rows(path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(sql).fetchall()


def columns(path, table: str) -> list[str]:
    return [row[1] for row in table_rows(path, f"PRAGMA table_info({table})")]


def test_a_0_6_catalog_is_upgraded_on_first_use_after_a_copy_is_kept_beside_it(home):
    catalog = home / ".bakthat.sqlite"
    make_0_6_catalog(catalog)
    original = table_rows(catalog, "SELECT * FROM backups ORDER BY id")

    result = run_cli("show", "--json")

    assert result.returncode == 0, result.stderr
    shown = {row["stored_filename"]: row for row in json.loads(result.stdout)}
    assert sorted(shown) == ["db.20130101003320.tgz", "mykey", "www.20130604191055.tgz", "www.20130605191055.tgz.enc"]
    www = shown["www.20130604191055.tgz"]
    assert (www["filename"], www["backup_date"], www["size"], www["tags"], www["backend"]) == (
        "www", 1370373055, len(WWW), "daily web", "s3"
    )
    assert (www["state"], www["compression"], www["encryption"], www["host"]) == ("ok", "gzip", "none", "oldhost")
    assert shown["www.20130605191055.tgz.enc"]["encryption"] == "beefish"
    assert www["metadata"] == {"is_enc": False, "client": "oldhost", "adopted": "0.6"}
    assert shown["mykey"]["metadata"] == {"KeyValue": True, "is_enc": False, "is_gzipped": True}
    copy = home / ".bakthat.sqlite.schema-0.bak"
    assert "Upgraded the catalog ~/.bakthat.sqlite from schema version 0 (bakthat 0.6)" in result.stderr
    assert "kept as ~/.bakthat.sqlite.schema-0.bak" in result.stderr
    assert oct(copy.stat().st_mode & 0o777) == "0o600"
    assert "state" not in columns(copy, "backups")
    assert table_rows(copy, "SELECT * FROM backups ORDER BY id") == original
    assert "state" in columns(catalog, "backups")
    assert table_rows(catalog, "SELECT value FROM config WHERE key = 'schema_version'") == [(json.dumps(migrations.latest()),)]
    assert table_rows(catalog, "SELECT state FROM backups WHERE stored_filename = 'old.20120101000000.tgz'") == [("deleted",)]
    # 0.6's other tables are left as they were (the Glacier vault backend reads inventory).
    assert table_rows(catalog, "SELECT filename, archive_id FROM inventory") == [("db.20130101003320.tgz", "ARCHIVE-ID-1")]
    assert table_rows(catalog, "SELECT job_id FROM jobs") == [("JOB-1",)]
    assert len(table_rows(catalog, "SELECT * FROM history")) == 1
    assert table_rows(catalog, "SELECT value FROM config WHERE key = 'sync_ts'") == [("1370459455",)]
    again = run_cli("show", "--json")
    assert again.returncode == 0 and "Upgraded" not in again.stderr
    assert sorted(p.name for p in home.iterdir() if p.name.startswith(".bakthat.sqlite.schema")) == [copy.name]


def test_a_backup_into_a_0_6_catalog_succeeds_and_leaves_no_orphan(home, tree):
    make_0_6_catalog(home / ".bakthat.sqlite")
    result = run_cli("backup", str(tree), "--prompt", "no", "--json")
    assert result.returncode == 0, result.stderr
    stored = json.loads(result.stdout)["stored_filename"]
    assert sorted(p.name for p in (home / ".bakthat_store").iterdir() if p.is_file()) == [
        stored, stored + ".index.jsonl.zst", stored + ".manifest.json"
    ]
    names = [row["filename"] for row in json.loads(cli_ok("show", "--json").stdout)]
    assert names.count("mydir") == 1 and "www" in names


def test_0_6_rows_restore_and_delete_where_the_store_holds_them(aws, home, tmp_path, caplog):
    make_0_6_catalog(home / ".bakthat.sqlite")
    s3 = s3_client()
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="www.20130604191055.tgz", Body=WWW)
    (home / ".bakthat.yml").write_text(
        f"default:\n  default_destination: s3\n  access_key: {ACCESS_KEY}\n  secret_key: oldsecret\n"
        f"  s3_bucket: {BUCKET}\n  glacier_vault: {VAULT}\n"
    )
    os.chmod(home / ".bakthat.yml", 0o600)

    restored = bakthat.restore("www.20130604191055.tgz", target=tmp_path / "out")

    assert restored.stored_filename == "www.20130604191055.tgz"
    assert (tmp_path / "out" / "www" / "index.html").read_bytes() == b"<h1>2013</h1>\n"
    assert (tmp_path / "out" / "www" / "css" / "site.css").read_bytes() == b"body {}\n"
    with caplog.at_level(logging.WARNING, logger="bakthat"):
        deleted = bakthat.delete("www.20130604191055.tgz")
    assert deleted.state == "deleted"
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)
    assert "already gone" not in caplog.text  # an adopted 0.6 backup has no manifest to delete


def test_a_catalog_of_a_newer_schema_is_refused_and_left_alone(home, tmp_path):
    catalog = home / ".bakthat.sqlite"
    models.bind(str(catalog))
    models.Config.set_key("schema_version", migrations.latest() + 1)
    models.unbind()
    before = catalog.read_bytes()
    result = run_cli("show")
    assert result.returncode == 13, result.stderr
    assert f"bakthat: error: the catalog ~/.bakthat.sqlite has schema version {migrations.latest() + 1}" in result.stderr
    assert "upgrade bakthat" in result.stderr
    models.unbind()
    assert catalog.read_bytes() == before
    with pytest.raises(CatalogError, match="written by a newer bakthat"):
        models.bind(str(catalog))


def test_a_catalog_of_bakthat_1_0_without_a_version_gets_one_and_no_copy(home, tree):
    """A catalog whose version row was lost is recognised by its tables and columns
    (job_runs: version 2; backups.check_result: version 3)."""
    catalog = home / ".bakthat.sqlite"
    models.bind(str(catalog))
    bakthat.backup(str(tree), password="")
    models.database.execute_sql("DELETE FROM config WHERE key = 'schema_version'")
    models.unbind()
    assert migrations.detect(_open(catalog)) == (migrations.latest(), False)
    models.bind(str(catalog))
    assert migrations.detect(models.database) == (migrations.latest(), True)
    assert [row.filename for row in bakthat.search()] == ["mydir"]
    assert not list(home.glob(".bakthat.sqlite.schema-*"))


def _open(path):
    db = models.open_database(str(path))
    db.connect()
    return db


def test_a_new_migration_is_one_function(home, monkeypatch):
    """The extension point later schema changes use: a numbered function, run once, recorded."""
    catalog = home / ".bakthat.sqlite"
    models.bind(str(catalog))
    models.unbind()
    current = migrations.latest()
    ran = []

    def add_notes(step):
        ran.append(step.columns("backups"))
        step.migrate(step.migrator.add_column("backups", "notes", models.peewee.TextField(null=True)))
        step.execute("UPDATE backups SET notes = {p}", ("from the next migration",))

    current = migrations.latest()
    monkeypatch.setitem(migrations.MIGRATIONS, current + 1, migrations.Migration(current + 1, "notes", add_notes))
    models.bind(str(catalog))
    models.unbind()
    models.bind(str(catalog))
    assert len(ran) == 1 and "state" in ran[0]
    assert migrations.detect(models.database) == (current + 1, True)
    assert "notes" in columns(catalog, "backups")
    assert (home / f".bakthat.sqlite.schema-{current}.bak").exists()


def test_processes_first_using_one_0_6_catalog_at_once_all_succeed(home):
    make_0_6_catalog(home / ".bakthat.sqlite")
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "bakthat", "show", "--json"],
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0, 0], outputs
    assert all(len(json.loads(stdout)) == 4 for stdout, _ in outputs)
    assert sum("Upgraded the catalog" in stderr for _, stderr in outputs) == 1
    assert len(list(home.glob(".bakthat.sqlite.schema-*"))) == 1
