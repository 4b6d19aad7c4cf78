"""Rebuilding the catalog from the store's manifests (bakthat sync)."""

from __future__ import annotations

import json
import os

import bakthat
from bakthat import models
from bakthat.sync import sync
from tests.conftest import run_cli, snapshot


def lose_catalog(home) -> None:
    models.unbind()
    for suffix in ("", "-wal", "-shm"):
        path = home / f".bakthat.sqlite{suffix}"
        if path.exists():
            os.remove(path)


def test_a_lost_catalog_is_rebuilt_from_the_manifests_and_restores_work(tree, home, tmp_path):
    first = bakthat.backup(str(tree), password="pw", tags="daily db", conf={"scrypt_work_factor": 10})
    second = bakthat.backup(str(tree), password="", custom_filename="other")
    lose_catalog(home)
    assert bakthat.search() == []

    added = sync()

    assert [row.stored_filename for row in added] == [first.stored_filename, second.stored_filename]
    rebuilt = {row.stored_filename: row for row in bakthat.search()}
    for original in (first, second):
        row = rebuilt[original.stored_filename]
        for field in ("filename", "backup_date", "size", "sha256", "tags", "compression", "encryption", "host"):
            assert getattr(row, field) == getattr(original, field), field
    bakthat.restore("mydir", password="pw", target=tmp_path / "out", conf={"scrypt_work_factor": 10})
    assert snapshot(tmp_path / "out" / "mydir") == snapshot(tree)


def test_sync_adds_only_what_the_catalog_lacks_and_a_dry_run_adds_nothing(tree, home):
    bakthat.backup(str(tree), password="")
    assert sync() == []
    lose_catalog(home)
    assert len(sync(dry_run=True)) == 1
    assert bakthat.search() == []
    assert len(sync()) == 1
    assert sync() == []


def test_a_second_host_sharing_the_store_sees_the_first_hosts_backups(tree, tmp_path):
    store = str(tmp_path / "shared-store")
    host_a = {"local_path": store, "database": str(tmp_path / "a.sqlite")}
    host_b = {"local_path": store, "database": str(tmp_path / "b.sqlite")}
    row = bakthat.backup(str(tree), password="", conf=host_a)
    models.unbind()
    assert bakthat.search(conf=host_b) == []
    assert [r.stored_filename for r in sync(conf=host_b)] == [row.stored_filename]
    bakthat.restore("mydir", target=tmp_path / "out", conf=host_b)
    assert snapshot(tmp_path / "out" / "mydir") == snapshot(tree)


def test_damaged_or_orphaned_manifests_are_skipped_with_a_warning(tree, home, caplog):
    row = bakthat.backup(str(tree), password="")
    orphan = bakthat.backup(str(tree), password="", custom_filename="orphan")
    store = home / ".bakthat_store"
    (store / orphan.stored_filename).unlink()
    manifest = store / (row.stored_filename + ".manifest.json")
    data = json.loads(manifest.read_text())
    data["size"] += 1
    manifest.write_text(json.dumps(data))
    (store / "junk.tar.zst.manifest.json").write_text("{not json")
    lose_catalog(home)
    assert sync() == []
    assert "its archive is missing" in caplog.text
    assert "the manifest says" in caplog.text
    assert "junk.tar.zst.manifest.json" in caplog.text


def test_the_sync_command_rebuilds_the_catalog(tree, home):
    assert run_cli("backup", str(tree), "--prompt", "no").returncode == 0
    lose_catalog(home)
    dry = run_cli("sync", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert [row["filename"] for row in json.loads(dry.stdout)] == ["mydir"]
    assert json.loads(run_cli("show", "--json").stdout) == []
    done = run_cli("sync")
    assert done.returncode == 0 and "1 backup(s) added" in done.stdout
    assert json.loads(run_cli("show", "--json").stdout)[0]["filename"] == "mydir"
