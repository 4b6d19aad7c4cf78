"""Restoring the files bakthat 0.6 stored with ``compress: false`` (one file, no archive),
from a local store, S3 (moto server), Swift (the local one) and a Glacier vault.

The 0.6 objects come from tests/legacy_writer.py, which shares no code with bakthat.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone

import pytest

import bakthat
from bakthat.errors import IntegrityError, UnverifiableError, WrongPasswordError
from bakthat.sync import sync
from tests.backends.conftest import aws, moto_server, s3_client  # noqa: F401
from tests.conftest import run_cli
from tests.legacy_writer import raw_object

JUNE = datetime(2013, 6, 4, 19, 10, 55, tzinfo=timezone.utc)
JULY = datetime(2013, 7, 4, 8, 0, 0, tzinfo=timezone.utc)
PASSWORD = "0.6-password"
PLAIN = "dump.sql.20130604191055"
ENCRYPTED = "dump.sql.20130704080000.enc"


@pytest.fixture
def dump(tmp_path):
    """The file 0.6 backed up: 70 KB of text and random bytes."""
    path = tmp_path / "0.6-host" / "dump.sql"
    path.parent.mkdir()
    path.write_bytes(b"INSERT INTO t VALUES (1);\n" * 2000 + os.urandom(20_000))
    return path


def objects_06(dump) -> dict[str, bytes]:
    return dict([raw_object(dump, JUNE), raw_object(dump, JULY, password=PASSWORD)])


@pytest.fixture
def store(home, dump):
    """The default local store holding 0.6's two uploads of ``dump`` (plain, encrypted), adopted."""
    path = home / ".bakthat_store"
    path.mkdir()
    for name, data in objects_06(dump).items():
        (path / name).write_bytes(data)
    assert len(sync()) == 2
    return path


def restore_cli(stored: str, target, *extra: str, password: str | None = None):
    return run_cli("restore", stored, "--target", str(target), *extra, env={"BAKTHAT_PASSWORD": password} if password else None)


def umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def wrong_password(stored: bytes, padding_ok: bool) -> str:
    """Return a wrong password whose decryption of ``stored`` ends with a last byte
    beefish could (``padding_ok``) or could not have written (found with
    ``cryptography`` here, independently of bakthat)."""
    from cryptography.hazmat.decrepit.ciphers.algorithms import Blowfish
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    for attempt in range(10_000):
        candidate = f"not-it-{attempt}"
        decryptor = Cipher(Blowfish(candidate.encode()), modes.CBC(stored[-16:-8])).decryptor()
        last = (decryptor.update(stored[-8:]) + decryptor.finalize())[-1]
        if (1 <= last <= 248) == padding_ok:
            return candidate
    raise AssertionError("no such password found")


# --------------------------------------------------------------------------- local store


def test_a_06_file_restores_as_that_file_byte_for_byte(store, dump, tmp_path):
    target = tmp_path / "target"
    done = restore_cli("dump.sql", target, "--unverified", password=PASSWORD)  # the newest: the encrypted one
    assert done.returncode == 0, done.stderr
    assert (target / "dump.sql").read_bytes() == dump.read_bytes()
    assert sorted(os.listdir(target)) == ["dump.sql"]
    assert "unverified" in done.stderr and PASSWORD not in done.stderr + done.stdout
    plain = restore_cli(PLAIN, tmp_path / "plain")
    assert plain.returncode == 0, plain.stderr
    restored = tmp_path / "plain" / "dump.sql"
    assert restored.read_bytes() == dump.read_bytes()
    assert restored.stat().st_mode & 0o777 == 0o666 & ~umask()  # as 0.6's open(..., "wb") made it
    assert "unverified" not in plain.stderr


def test_an_existing_file_is_kept_unless_overwrite(store, dump, tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "dump.sql").write_text("mine")
    kept = restore_cli(PLAIN, target)
    assert kept.returncode == 8, kept.stderr
    assert (target / "dump.sql").read_text() == "mine" and sorted(os.listdir(target)) == ["dump.sql"]
    replaced = restore_cli(PLAIN, target, "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert (target / "dump.sql").read_bytes() == dump.read_bytes() and sorted(os.listdir(target)) == ["dump.sql"]


def test_a_directory_in_the_way_is_not_replaced_even_with_overwrite(store, tmp_path):
    (tmp_path / "target" / "dump.sql").mkdir(parents=True)
    done = restore_cli(PLAIN, tmp_path / "target", "--overwrite")
    assert done.returncode == 8, done.stderr
    assert (tmp_path / "target" / "dump.sql").is_dir()


def test_an_encrypted_06_file_needs_unverified_before_any_password_or_download(store, tmp_path):
    done = restore_cli(ENCRYPTED, tmp_path / "target")  # no password anywhere: not asked for
    assert done.returncode == 2, done.stderr
    assert "--unverified" in done.stderr and "compress: false" in done.stderr and "no checksum" in done.stderr
    assert not (tmp_path / "target").exists()
    with pytest.raises(UnverifiableError, match="unverified=True"):
        bakthat.restore(ENCRYPTED, password=PASSWORD, target=tmp_path / "target")
    with pytest.raises(TypeError, match="did you mean 'unverified'"):
        bakthat.restore(ENCRYPTED, password=PASSWORD, target=tmp_path / "target", unverifed=True)
    assert not (tmp_path / "target").exists()
    bakthat.restore(ENCRYPTED, password=PASSWORD, target=tmp_path / "target", unverified=True)
    assert sorted(os.listdir(tmp_path / "target")) == ["dump.sql"]


def test_a_wrong_password_betrayed_by_the_padding_exits_5_and_writes_nothing(store, tmp_path):
    password = wrong_password((store / ENCRYPTED).read_bytes(), padding_ok=False)
    target = tmp_path / "target"
    target.mkdir()
    done = restore_cli(ENCRYPTED, target, "--unverified", password=password)
    assert done.returncode == 5, done.stderr
    assert "wrong password" in done.stderr and "padding" in done.stderr and password not in done.stderr
    assert os.listdir(target) == []


def test_a_wrong_password_with_a_plausible_padding_gives_garbage_which_is_why_unverified_is_asked(store, dump, tmp_path):
    password = wrong_password((store / ENCRYPTED).read_bytes(), padding_ok=True)
    bakthat.restore(ENCRYPTED, password=password, target=tmp_path / "target", unverified=True)
    assert (tmp_path / "target" / "dump.sql").read_bytes() != dump.read_bytes()


def cut_to_an_impossible_padding(stored: bytes) -> int:
    """Return how many whole blocks' bytes to cut from ``stored`` so that its new last
    block decrypts (with the right password) to a last byte beefish never writes."""
    from cryptography.hazmat.decrepit.ciphers.algorithms import Blowfish
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    for cut in range(8, len(stored) - 16, 8):
        end = len(stored) - cut
        decryptor = Cipher(Blowfish(PASSWORD.encode()), modes.CBC(stored[end - 16 : end - 8])).decryptor()
        last = (decryptor.update(stored[end - 8 : end]) + decryptor.finalize())[-1]
        if not 1 <= last <= 248:
            return cut
    raise AssertionError("no such cut")


@pytest.mark.parametrize("change", ["truncated by a block", "truncated to an impossible padding", "truncated by 3 bytes", "extended by a block"])
@pytest.mark.parametrize("stored", [PLAIN, ENCRYPTED])
def test_a_06_file_whose_size_changed_is_refused_as_damage_and_nothing_written(store, tmp_path, stored, change):
    data = (store / stored).read_bytes()
    changed = {
        "truncated by a block": data[:-8],
        "truncated to an impossible padding": data[: -cut_to_an_impossible_padding(data)],  # not a wrong password
        "truncated by 3 bytes": data[:-3],
        "extended by a block": data + os.urandom(8),
    }[change]
    (store / stored).write_bytes(changed)
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(IntegrityError, match=f"{stored}: read {len(changed)} bytes, the catalog recorded {len(data)}|multiple of 8"):
        bakthat.restore(stored, password=PASSWORD, target=target, unverified=True)
    assert os.listdir(target) == []


def test_a_stored_name_longer_than_a_file_name_can_be_is_refused(aws, tmp_path):
    client = s3_client()
    client.create_bucket(Bucket="bucket-06")
    stored = "n" * 256 + ".20130604191055"
    client.put_object(Bucket="bucket-06", Key=stored, Body=b"payload")
    conf = {"s3_bucket": "bucket-06", "default_destination": "s3"}
    assert [row.stored_filename for row in sync(conf=conf)] == [stored]
    from bakthat.errors import UnsafeArchiveError

    with pytest.raises(UnsafeArchiveError, match="not a single file name"):
        bakthat.restore(stored, target=tmp_path / "target", conf=conf)
    assert not (tmp_path / "target").exists()


@pytest.mark.parametrize("stored", [PLAIN, ENCRYPTED])
def test_a_flipped_byte_is_caught_by_the_sha256_write_manifests_recorded(home, dump, tmp_path, stored):
    path = home / ".bakthat_store"
    path.mkdir()
    for name, data in objects_06(dump).items():
        (path / name).write_bytes(data)
    rows = {row.stored_filename: row for row in sync(write_manifests=True)}
    assert rows[stored].sha256 == hashlib.sha256((path / stored).read_bytes()).hexdigest()
    manifest = json.loads((path / (stored + ".manifest.json")).read_text())
    assert manifest["compression"] == "raw" and manifest["format_version"] == 0
    data = bytearray((path / stored).read_bytes())
    data[len(data) // 2] ^= 0x01
    (path / stored).write_bytes(bytes(data))
    target = tmp_path / "target"
    target.mkdir()
    done = restore_cli(stored, target, "--unverified", password=PASSWORD)
    assert done.returncode == 6, done.stderr
    assert "SHA-256 mismatch" in done.stderr and os.listdir(target) == []


def test_another_host_finds_a_06_file_through_its_manifest_and_restores_it(home, dump, tmp_path):
    path = home / ".bakthat_store"
    path.mkdir()
    for name, data in objects_06(dump).items():
        (path / name).write_bytes(data)
    sync(write_manifests=True)
    other = {"database": str(tmp_path / "other-host.sqlite")}
    from bakthat import models

    models.unbind()
    rows = {row.stored_filename: row for row in sync(conf=other)}
    assert {stored: row.compression for stored, row in rows.items()} == {PLAIN: "raw", ENCRYPTED: "raw"}
    bakthat.restore(PLAIN, target=tmp_path / "out", conf=other)
    assert (tmp_path / "out" / "dump.sql").read_bytes() == dump.read_bytes()


def test_a_dry_run_reads_and_checks_the_file_and_writes_nothing(store, dump, tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "dump.sql").write_text("mine")
    done = run_cli("restore", PLAIN, "--target", str(target), "--dry-run", "--json")
    assert done.returncode == 8, done.stderr  # the real restore would stop on the existing file
    plan = json.loads(done.stdout)
    assert (plan["would_write"], plan["bytes"], plan["verified"], plan["refused"]) == (["dump.sql"], dump.stat().st_size, True, True)
    encrypted = run_cli("restore", ENCRYPTED, "--target", str(tmp_path / "t2"), "--dry-run", "--unverified", "--json", env={"BAKTHAT_PASSWORD": PASSWORD})
    assert encrypted.returncode == 0, encrypted.stderr
    assert json.loads(encrypted.stdout)["verified"] is False
    assert (target / "dump.sql").read_text() == "mine" and not (tmp_path / "t2").exists()


def test_check_read_data_reads_06_files_with_the_checks_of_restore(store, tmp_path):
    result = bakthat.check(read_data=True, password=PASSWORD)
    assert result.ok and {outcome.stored_filename: outcome.data_read for outcome in result.backups} == {PLAIN: True, ENCRYPTED: True}
    data = (store / PLAIN).read_bytes()
    (store / PLAIN).write_bytes(data + b"more")
    damaged = bakthat.check(PLAIN, read_data=True)
    assert not damaged.ok and [outcome.stored_filename for outcome in damaged.damaged] == [PLAIN]
    done = run_cli("check", "--read-data", env={"BAKTHAT_PASSWORD": PASSWORD})
    assert done.returncode == 6 and PLAIN in done.stdout + done.stderr, done.stderr


def test_a_hostile_stored_name_from_a_store_is_refused_before_anything_is_read(aws, tmp_path):
    """A store (or its manifests) is not trusted: a name that is not one file name never reaches the disk."""
    client = s3_client()
    client.create_bucket(Bucket="bucket-06")
    stored = "dir/..evil.20130604191055"
    client.put_object(Bucket="bucket-06", Key=stored, Body=b"payload")
    manifest = {
        "format": "bakthat-manifest", "name": "evil", "stored_filename": stored, "backup_date": int(JUNE.timestamp()),
        "size": 7, "sha256": hashlib.sha256(b"payload").hexdigest(), "compression": "raw", "encryption": "none",
        "format_version": 0, "adopted": "0.6",
    }
    client.put_object(Bucket="bucket-06", Key=stored + ".manifest.json", Body=json.dumps(manifest).encode())
    conf = {"s3_bucket": "bucket-06", "default_destination": "s3"}
    assert [row.stored_filename for row in sync(conf=conf)] == [stored]
    config = tmp_path / "bakthat.yml"
    config.write_text(json.dumps({"default": conf}))
    target = tmp_path / "target"
    target.mkdir()
    done = run_cli("restore", stored, "--target", str(target), "-c", str(config))
    assert done.returncode == 7, done.stderr
    assert "not a single file name" in done.stderr
    assert os.listdir(target) == [] and not (tmp_path / "evil").exists()


# --------------------------------------------------------------------------- S3


def test_06_files_adopted_from_s3_restore_with_their_etag_checked(aws, dump, tmp_path):
    client = s3_client()
    client.create_bucket(Bucket="bucket-06")
    objects = objects_06(dump)
    for name, data in objects.items():
        client.put_object(Bucket="bucket-06", Key=name, Body=data)  # 0.6: one PUT each
    conf = {"s3_bucket": "bucket-06", "default_destination": "s3"}
    rows = {row.stored_filename: row for row in sync(conf=conf)}
    for stored, data in objects.items():
        assert rows[stored].metadata["etag"] == hashlib.md5(data).hexdigest()  # noqa: S324
    bakthat.restore(PLAIN, target=tmp_path / "plain", conf=conf)
    bakthat.restore(ENCRYPTED, password=PASSWORD, target=tmp_path / "encrypted", conf=conf, unverified=True)
    for restored in (tmp_path / "plain" / "dump.sql", tmp_path / "encrypted" / "dump.sql"):
        assert restored.read_bytes() == dump.read_bytes()
    # the object replaced since it was adopted (same size, one byte flipped): its MD5 is not the recorded one
    for stored, data in objects.items():
        flipped = bytearray(data)
        flipped[100] ^= 0x01
        client.put_object(Bucket="bucket-06", Key=stored, Body=bytes(flipped))
        with pytest.raises(IntegrityError, match="differs from the ETag recorded when it was adopted"):
            bakthat.restore(stored, password=PASSWORD, target=tmp_path / "again", conf=conf, unverified=True)
        assert not (tmp_path / "again").exists()


def test_a_wrong_password_is_refused_from_s3_too(aws, dump, tmp_path):
    client = s3_client()
    client.create_bucket(Bucket="bucket-06")
    objects = objects_06(dump)
    for name, data in objects.items():
        client.put_object(Bucket="bucket-06", Key=name, Body=data)
    conf = {"s3_bucket": "bucket-06", "default_destination": "s3"}
    sync(conf=conf)
    password = wrong_password(objects[ENCRYPTED], padding_ok=False)
    with pytest.raises(WrongPasswordError):
        bakthat.restore(ENCRYPTED, password=password, target=tmp_path / "target", conf=conf, unverified=True)
    assert not (tmp_path / "target").exists()


def test_the_bytes_read_must_match_the_etag_the_store_sends_with_them():
    """Damage in transit (or at rest behind a correct listing) shows as an MD5 that is not
    the ETag of the GET response; moto cannot serve such bytes, so the check runs here on
    a response-like reader."""
    import io
    from types import SimpleNamespace

    from bakthat import legacy_raw
    from bakthat.pipeline import HashingReader

    data = os.urandom(5000)
    row = SimpleNamespace(stored_filename=PLAIN, size=len(data), sha256=None, metadata={"adopted": "0.6"})
    for etag, damaged in [(hashlib.md5(data).hexdigest(), False), ("0" * 32, True), ("abc-2", False)]:  # noqa: S324
        stored = SimpleNamespace(etag=f'"{etag}"')
        hashed = HashingReader(io.BytesIO(data))
        md5 = legacy_raw._MD5Reader(hashed)
        _, verify = legacy_raw._verifier(row, stored, hashed, md5, md5)
        if damaged:
            with pytest.raises(IntegrityError, match="do not match the store's ETag"):
                verify()
        else:
            verify()  # a matching MD5, or a multipart ETag (no MD5 to compare)


# --------------------------------------------------------------------------- Swift and Glacier


def test_06_files_adopted_from_swift_restore(swift_conf, dump, tmp_path):
    from tests.services import swift_connection

    connection = swift_connection()
    connection.put_container(swift_conf["swift_container"])
    objects = objects_06(dump)
    for name, data in objects.items():
        connection.put_object(swift_conf["swift_container"], name, data)  # as 0.6's put_object did
    conf = {**swift_conf, "default_destination": "swift"}
    rows = {row.stored_filename: row for row in sync(conf=conf)}
    assert {stored: row.compression for stored, row in rows.items()} == {PLAIN: "raw", ENCRYPTED: "raw"}
    assert rows[PLAIN].metadata["etag"] == hashlib.md5(objects[PLAIN]).hexdigest()  # noqa: S324
    bakthat.restore(PLAIN, target=tmp_path / "plain", conf=conf)
    bakthat.restore(ENCRYPTED, password=PASSWORD, target=tmp_path / "encrypted", conf=conf, unverified=True)
    for restored in (tmp_path / "plain" / "dump.sql", tmp_path / "encrypted" / "dump.sql"):
        assert restored.read_bytes() == dump.read_bytes()
    flipped = bytearray(objects[PLAIN])
    flipped[100] ^= 0x01
    connection.put_object(swift_conf["swift_container"], PLAIN, bytes(flipped))
    with pytest.raises(IntegrityError):
        bakthat.restore(PLAIN, target=tmp_path / "again", conf=conf)
    assert not (tmp_path / "again").exists()


def test_06_files_adopted_from_a_glacier_vault_restore(aws, dump, tmp_path):
    import boto3

    glacier = boto3.client("glacier", region_name="us-east-1")
    glacier.create_vault(vaultName="vault-06")
    for name, data in objects_06(dump).items():
        glacier.upload_archive(vaultName="vault-06", archiveDescription=name, body=data)
    conf = {"glacier_vault": "vault-06", "default_destination": "glacier", "retrieval_poll_interval": 0.5, "retrieval_tier": "Expedited"}
    rows = {row.stored_filename: row for row in sync(conf=conf, wait=True)}
    assert {stored: row.compression for stored, row in rows.items()} == {PLAIN: "raw", ENCRYPTED: "raw"}
    waiting = {**conf, "retrieval_wait": True}
    bakthat.restore(PLAIN, target=tmp_path / "plain", conf=waiting)
    bakthat.restore(ENCRYPTED, password=PASSWORD, target=tmp_path / "encrypted", conf=waiting, unverified=True)
    for restored in (tmp_path / "plain" / "dump.sql", tmp_path / "encrypted" / "dump.sql"):
        assert restored.read_bytes() == dump.read_bytes()
