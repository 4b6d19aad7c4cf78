"""Rebuilding the catalog from the store's manifests (bakthat sync)."""

from __future__ import annotations

import json
import os
import time

import bakthat
from bakthat import models
from bakthat.sync import sync
from tests.backends.conftest import aws, moto_server  # noqa: F401 - fixtures
from tests.conftest import lose_catalog, run_cli, snapshot


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


# -- untrusted input ---------------------------------------------------------------------------


def forge(home, stored: str, **changes) -> str:
    """Copy a real backup under another stored name, with a manifest changed as given; return the stored name."""
    import shutil

    store = home / ".bakthat_store"
    source = next(p for p in store.iterdir() if p.name.endswith(".tar.zst"))
    shutil.copy(source, store / stored)
    manifest = json.loads((store / (source.name + ".manifest.json")).read_text())
    manifest.update(stored_filename=stored, **changes)
    (store / (stored + ".manifest.json")).write_text(json.dumps(manifest))
    return stored


def test_a_manifest_with_a_wrong_field_is_skipped_and_the_rest_is_synced(tree, home, caplog):
    # every field's check and message: tests/test_manifest.py
    good = bakthat.backup(str(tree), password="")
    bad = forge(home, "bad.20260101000000.tar.zst", size=-1)
    lose_catalog(home)
    added = sync()
    assert [row.stored_filename for row in added] == [good.stored_filename]
    assert f"Skipping '{bad}.manifest.json': size -1 is out of range" in caplog.text
    assert added.skipped == [(bad + ".manifest.json", next(why for key, why in added.skipped))]


def test_unsafe_keys_in_a_bucket_are_skipped_with_a_warning_and_the_rest_is_synced(aws, tree, caplog):
    from tests.backends.conftest import s3_client

    conf = {"s3_bucket": "shared", "default_destination": "s3"}
    good = bakthat.backup(str(tree), password="", conf=conf)
    s3 = s3_client()
    manifest = s3.get_object(Bucket="shared", Key=good.stored_filename + ".manifest.json")["Body"].read()
    hostile = ["../evil.20260101000000.tar.zst", "a//b.20260101000000.tar.zst", "/abs.20260101000000.tar.zst",
               "./dot.20260101000000.tar.zst"]
    for key in hostile:
        s3.put_object(Bucket="shared", Key=key, Body=b"x")
        s3.put_object(Bucket="shared", Key=key + ".manifest.json", Body=manifest)
    models.unbind()
    rebuilt = sync(conf={**conf, "database": str(tree.parent / "other.sqlite")})
    assert [row.stored_filename for row in rebuilt] == [good.stored_filename]
    for key in hostile:
        assert f"Skipping {key!r}: its key is unsafe" in caplog.text
        assert f"Skipping {key + '.manifest.json'!r}: its key is unsafe" in caplog.text
    assert rebuilt.orphans == []


def test_one_hostile_row_does_not_stop_show_or_info_for_everyone(tree, home):
    import sqlite3

    bakthat.backup(str(tree), password="")
    models.unbind()
    with sqlite3.connect(home / ".bakthat.sqlite") as db:
        db.execute(
            "INSERT INTO backups (backend, backend_hash, backup_date, filename, is_deleted, last_updated, metadata, "
            "size, stored_filename, tags, state, encryption, profile, format_version) "
            "VALUES ('local', 'h', ?, 'hostile', 0, 0, '{not json', 5, 'hostile.x', '', 'ok', 'none', 'default', 1)",
            (10**15,),
        )
    for args in (("show",), ("show", "--json"), ("info",), ("info", "hostile")):
        result = run_cli(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert "hostile" in result.stdout and "mydir" in result.stdout or args == ("info", "hostile")


# -- orphans ------------------------------------------------------------------------------------


def age(path, seconds: int = 2 * 3600) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_orphans_are_reported_and_removed_with_remove_orphans_after_a_dry_run(tree, home):
    store = home / ".bakthat_store"
    kept = bakthat.backup(str(tree), password="")
    killed = bakthat.backup(str(tree), password="", custom_filename="killed")
    recent = bakthat.backup(str(tree), password="", custom_filename="recent")
    legacy_like = bakthat.backup(str(tree), password="", compression="gzip", custom_filename="gz")
    lost_archive = bakthat.backup(str(tree), password="", custom_filename="lost")
    for row in (killed, recent, legacy_like):  # killed between the archive and its manifest
        (store / (row.stored_filename + ".manifest.json")).unlink()
    (store / lost_archive.stored_filename).unlink()
    (store / "notes.txt").write_text("not a bakthat object")
    models.unbind()
    import sqlite3

    with sqlite3.connect(home / ".bakthat.sqlite") as db:
        db.execute("DELETE FROM backups WHERE filename != 'mydir'")
    for path in store.iterdir():
        if path.is_file() and not path.name.startswith("recent."):
            age(path)

    report = run_cli("sync")
    assert report.returncode == 0, report.stderr
    assert "1 backup(s) added" in report.stdout  # the .tgz is named as bakthat 0.6 names: adopted, not an orphan
    orphan_lines = [line for line in report.stdout.splitlines() if line.startswith("kept ")]
    assert len(orphan_lines) == 4, report.stdout  # the lost backup's manifest and its index
    assert "remove them with: bakthat sync --remove-orphans" in report.stdout
    assert f"Orphan archive {killed.stored_filename}" in report.stderr
    assert f"Orphan manifest {lost_archive.stored_filename}.manifest.json" in report.stderr
    assert f"Orphan index {lost_archive.stored_filename}.index.jsonl.zst" in report.stderr
    assert "notes.txt" not in report.stdout + report.stderr
    before = sorted(p.name for p in store.iterdir())

    dry = run_cli("sync", "--remove-orphans", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert sorted(p.name for p in store.iterdir()) == before
    assert f"would remove  archive" in dry.stdout and killed.stored_filename in dry.stdout

    done = run_cli("sync", "--remove-orphans", "--json")
    assert done.returncode == 0 and json.loads(done.stdout) == []
    left = sorted(p.name for p in store.iterdir() if p.is_file())
    assert killed.stored_filename not in left and lost_archive.stored_filename + ".manifest.json" not in left
    assert lost_archive.stored_filename + ".index.jsonl.zst" not in left
    assert recent.stored_filename in left, "a recent orphan may belong to a running backup"
    assert legacy_like.stored_filename in left, "adopted as a bakthat 0.6 backup"
    assert kept.stored_filename in left and "notes.txt" in left
    bakthat.restore("mydir", target=tree.parent / "out")
