"""Adopting the backups bakthat 0.6 left in a store (bakthat sync), in a local store, S3,
a legacy Glacier vault and Swift.  The 0.6 objects come from tests/legacy_writer.py."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone

import pytest

import bakthat
from bakthat import models
from bakthat.errors import IntegrityError, RetrievalPendingError, WrongPasswordError
from bakthat.sync import sync
from tests.backends.conftest import aws, moto_server, s3_client  # noqa: F401
from tests.conftest import cli_ok, run_cli, snapshot
from tests.legacy_writer import backup_object, raw_object

JUNE = datetime(2013, 6, 4, 19, 10, 55, tzinfo=timezone.utc)
JULY = datetime(2013, 7, 4, 8, 0, 0, tzinfo=timezone.utc)
OLD = datetime(2012, 1, 1, 0, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def source(tmp_path):
    root = tmp_path / "src" / "mydir"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("written by bakthat 0.6\n")
    (root / "sub" / "b.bin").write_bytes(os.urandom(40_000))
    return root


def objects_06(source) -> dict[str, bytes]:
    """0.6's backups of ``source``: plain, encrypted, and one in the pre-0.4 dot-less form."""
    return dict(
        [
            backup_object(source, JUNE),
            backup_object(source, JULY, password="s3cret"),
            backup_object(source, OLD, dotless=True),
        ]
    )


@pytest.fixture
def store(home, source):
    """The default local store holding 0.6's backups of ``source``; their names."""
    path = home / ".bakthat_store"
    path.mkdir()
    for name, data in objects_06(source).items():
        (path / name).write_bytes(data)
    return path


def listing(path) -> dict[str, bytes]:
    """The store's objects (its temp directory, .bakthat-tmp, left out)."""
    return {entry.name: entry.read_bytes() for entry in sorted(path.iterdir()) if entry.is_file()}


# --------------------------------------------------------------------------- local store


def test_sync_catalogues_06_backups_with_what_their_names_and_sizes_say(store):
    rows = sync()
    assert [row.stored_filename for row in rows] == [
        "mydir20120101000000.tgz",
        "mydir.20130604191055.tgz",
        "mydir.20130704080000.tgz.enc",
    ]
    for row in bakthat.search():
        assert row.filename == "mydir"
        assert row.size == (store / row.stored_filename).stat().st_size
        assert row.backend == "local" and row.compression == "gzip" and row.sha256 is None
        assert row.metadata["adopted"] == "0.6" and row.format_version == 0
        assert row.encryption == ("beefish" if row.stored_filename.endswith(".enc") else "none")
        assert row.is_encrypted() == row.stored_filename.endswith(".enc")
    dates = {row.stored_filename: row.backup_date for row in rows}
    assert dates["mydir.20130604191055.tgz"] == int(JUNE.timestamp())
    assert dates["mydir20120101000000.tgz"] == int(OLD.timestamp())
    assert sync() == []


def test_a_dry_run_adopts_nothing_and_sync_writes_nothing_to_the_store(store):
    before = listing(store)
    assert len(sync(dry_run=True)) == 3
    assert bakthat.search() == []
    assert len(sync()) == 3
    assert listing(store) == before


def test_adopted_backups_show_restore_and_delete_like_others(store, source, tmp_path):
    assert run_cli("sync").returncode == 0
    shown = json.loads(cli_ok("show", "--json").stdout)
    assert [row["stored_filename"] for row in shown] == [
        "mydir.20130704080000.tgz.enc",
        "mydir.20130604191055.tgz",
        "mydir20120101000000.tgz",
    ]
    for stored, password in [("mydir.20130704080000.tgz.enc", "s3cret"), ("mydir.20130604191055.tgz", None), ("mydir20120101000000.tgz", None)]:
        target = tmp_path / stored
        bakthat.restore(stored, password=password, target=target)
        assert snapshot(target / "mydir") == snapshot(source)
    done = run_cli("delete", "mydir.20130604191055.tgz")
    assert done.returncode == 0, done.stderr
    assert "already gone" not in done.stderr
    assert sorted(listing(store)) == ["mydir.20130704080000.tgz.enc", "mydir20120101000000.tgz"]


def test_retention_rotates_adopted_backups_with_the_others(store, source):
    sync()
    mine = bakthat.backup(str(source), password="")
    deleted = bakthat.delete_older_than("mydir", "1Y")
    assert sorted(row.stored_filename for row in deleted) == [
        "mydir.20130604191055.tgz",
        "mydir.20130704080000.tgz.enc",
        "mydir20120101000000.tgz",
    ]
    assert sorted(listing(store)) == sorted(
        [mine.stored_filename, mine.stored_filename + ".index.jsonl.zst", mine.stored_filename + ".manifest.json"]
    )


def test_write_manifests_describes_each_adopted_backup_for_other_hosts(store, home, tmp_path, source):
    rows = sync(write_manifests=True)
    import hashlib

    for row in rows:
        manifest = json.loads((store / (row.stored_filename + ".manifest.json")).read_text())
        assert manifest["sha256"] == hashlib.sha256((store / row.stored_filename).read_bytes()).hexdigest()
        assert manifest["encryption"] == row.encryption and manifest["name"] == "mydir"
        assert row.sha256 == manifest["sha256"]
    other_host = {"database": str(tmp_path / "other.sqlite")}
    models.unbind()
    again = sync(conf=other_host)
    assert sorted(row.stored_filename for row in again) == sorted(row.stored_filename for row in rows)
    assert all(row.sha256 for row in bakthat.search(conf=other_host))
    bakthat.restore("mydir", password="s3cret", target=tmp_path / "out", conf=other_host)
    assert snapshot(tmp_path / "out" / "mydir") == snapshot(source)


def test_a_damaged_adopted_archive_with_a_manifest_is_caught_by_its_sha256(store, tmp_path):
    sync(write_manifests=True)
    path = store / "mydir.20130604191055.tgz"
    data = bytearray(path.read_bytes())
    data[-20] ^= 0x01  # in the gzip data near the end
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        bakthat.restore("mydir.20130604191055.tgz", target=tmp_path / "out")
    assert not (tmp_path / "out" / "mydir").exists()


def test_bakthats_own_gzip_backups_are_not_adopted_but_synced_from_their_manifests(home, source):
    mine = bakthat.backup(str(source), password="", compression="gzip")
    assert mine.stored_filename.endswith(".tgz")
    models.unbind()
    os.remove(home / ".bakthat.sqlite")
    rows = sync()
    assert [(row.stored_filename, row.sha256, row.metadata.get("adopted")) for row in rows] == [(mine.stored_filename, mine.sha256, None)]


def test_06_files_stored_without_compression_are_adopted_as_raw_files(home, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="bakthat")
    store = home / ".bakthat_store"
    store.mkdir()
    dump = tmp_path / "dump.sql"
    dump.write_bytes(os.urandom(10_000))
    objects = dict([raw_object(dump, JUNE), raw_object(dump, JULY, password="s3cret")])
    for name, data in objects.items():
        (store / name).write_bytes(data)
    assert sorted(row.stored_filename for row in sync(dry_run=True)) == sorted(objects)
    assert bakthat.search() == []
    rows = {row.stored_filename: row for row in sync()}
    assert sorted(rows) == ["dump.sql.20130604191055", "dump.sql.20130704080000.enc"]
    for stored, row in rows.items():
        assert (row.filename, row.compression, row.size, row.sha256) == ("dump.sql", "raw", len(objects[stored]), None)
        assert row.metadata["adopted"] == "0.6" and row.metadata["is_gzipped"] is False and "etag" not in row.metadata
        assert row.encryption == ("beefish" if stored.endswith(".enc") else "none")
    assert rows["dump.sql.20130604191055"].backup_date == int(JUNE.timestamp())
    assert "Not adopted" not in caplog.text
    assert "dump.sql.20130704080000.enc (bakthat 0.6, a file stored without compression, encrypted)" in caplog.text
    assert listing(store) == objects


def test_06_shaped_objects_whose_name_is_not_one_file_name_are_named_in_a_warning(aws, caplog):
    client = s3_client()
    client.create_bucket(Bucket="bucket-06")
    hostile = ["...20130604191055.enc", "folder/dump.sql.20130604191055", "folder/mydir.20130604191055.tgz"]
    for key in [*hostile, "../../etc/cron.d/job.20130604191055", "notes.txt", "mydir.20130604191055.tar.zst"]:
        client.put_object(Bucket="bucket-06", Key=key, Body=b"x" * 16)
    assert sync(conf={"s3_bucket": "bucket-06", "default_destination": "s3"}) == []
    warned = [record.getMessage() for record in caplog.records if record.getMessage().startswith("Not adopted")]
    assert sorted(warned) == sorted(
        f"Not adopted: {key!r} looks like a bakthat 0.6 backup, but its name part is not a single file name "
        "(restoring it could write outside the target); bakthat ls lists it"
        for key in hostile
    )
    assert "Skipping '../../etc/cron.d/job.20130604191055': its key is unsafe" in caplog.text  # sync's own guard


# --------------------------------------------------------------------------- S3


def test_sync_adopts_06_backups_from_an_s3_bucket(aws, source, tmp_path):
    client = s3_client()
    client.create_bucket(Bucket="bucket-06")
    for name, data in objects_06(source).items():
        client.put_object(Bucket="bucket-06", Key=name, Body=data)
    conf = {"s3_bucket": "bucket-06", "default_destination": "s3"}
    assert len(sync(conf=conf)) == 3
    assert {row.backend for row in bakthat.search(conf=conf)} == {"s3"}
    bakthat.restore("mydir", password="s3cret", target=tmp_path / "out", conf=conf)
    assert snapshot(tmp_path / "out" / "mydir") == snapshot(source)
    keys = sorted(item["Key"] for item in client.list_objects_v2(Bucket="bucket-06")["Contents"])
    assert keys == sorted(objects_06(source))


# --------------------------------------------------------------------------- Glacier vault


def test_sync_adopts_06_archives_from_a_vault_through_its_inventory(aws, source, tmp_path):
    import boto3

    glacier = boto3.client("glacier", region_name="us-east-1")
    glacier.create_vault(vaultName="vault-06")
    for name, data in objects_06(source).items():
        glacier.upload_archive(vaultName="vault-06", archiveDescription=name, body=data)
    conf = {"glacier_vault": "vault-06", "default_destination": "glacier", "retrieval_poll_interval": 0.5, "retrieval_tier": "Expedited"}
    with pytest.raises(RetrievalPendingError, match="inventory of vault vault-06 was requested"):
        sync(conf=conf)
    assert bakthat.search(conf=conf) == []
    rows = sync(conf=conf, wait=True)
    assert sorted(row.stored_filename for row in rows) == sorted(objects_06(source))
    from bakthat.backends.vault import GlacierArchives

    assert sorted(archive.key for archive in GlacierArchives.select()) == sorted(objects_06(source))
    bakthat.restore("mydir", password="s3cret", target=tmp_path / "out", conf={**conf, "retrieval_wait": True})
    assert snapshot(tmp_path / "out" / "mydir") == snapshot(source)


# --------------------------------------------------------------------------- Swift


def test_sync_adopts_06_backups_from_a_swift_container(swift_conf, source, tmp_path):
    from tests.services import swift_connection

    connection = swift_connection()
    connection.put_container(swift_conf["swift_container"])
    for name, data in objects_06(source).items():
        connection.put_object(swift_conf["swift_container"], name, data)  # as 0.6's put_object did
    conf = {**swift_conf, "default_destination": "swift"}
    assert len(sync(conf=conf)) == 3
    bakthat.restore("mydir", password="s3cret", target=tmp_path / "out", conf=conf)
    assert snapshot(tmp_path / "out" / "mydir") == snapshot(source)
    with pytest.raises(WrongPasswordError):
        bakthat.restore("mydir", password="not-it", target=tmp_path / "again", conf=conf)
    assert not (tmp_path / "again").exists()
