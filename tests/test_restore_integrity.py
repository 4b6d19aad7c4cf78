"""A damaged archive is refused by restore, naming the archive, and nothing is written;
on the local store and on S3 (a moto server) alike.

Every store takes one pass: damage is found while the archive streams through
decryption (age's per-chunk authentication), decompression (zstd's checksum, gzip's
CRC-32), the tar reader, and the SHA-256 hashed on the way, compared after the last
member and before the staged files are moved into the target.  The two stores differ in
how a read is served (a local file, or HTTP GETs), and each test runs on both.
"""

from __future__ import annotations

import os
import re

import pytest

import bakthat
from bakthat.backends import get_backend
from bakthat.errors import IntegrityError, WrongPasswordError
from tests.backends.conftest import aws, moto_server, s3_client  # noqa: F401 - fixtures

FAST = {"scrypt_work_factor": 10}
BUCKET = "damaged-archives"


class Store:
    """Where the archive is stored, and how a test damages it there."""

    def __init__(self, name: str, home):
        self.name = name
        self.home = home
        self.conf = dict(FAST) if name == "local" else {**FAST, "s3_bucket": BUCKET}

    @property
    def streams(self) -> bool:
        """True when the store declares reads as costly (S3, Glacier); restore takes the
        same single pass either way."""
        return not get_backend(self.name, self.conf).cheap_reads

    def read(self, row) -> bytes:
        if self.name == "local":
            return (self.home / ".bakthat_store" / row.stored_filename).read_bytes()
        return s3_client().get_object(Bucket=BUCKET, Key=row.stored_filename)["Body"].read()

    def write(self, row, data: bytes) -> None:
        if self.name == "local":
            (self.home / ".bakthat_store" / row.stored_filename).write_bytes(data)
        else:
            s3_client().put_object(Bucket=BUCKET, Key=row.stored_filename, Body=data)

    def flip(self, row, offset: int) -> None:
        """Flip one byte (XOR 0xFF: never a no-op) at offset (negative counts from the end)."""
        data = bytearray(self.read(row))
        data[offset] ^= 0xFF
        self.write(row, bytes(data))

    def backup(self, tree, password: str, compression: str = "zstd"):
        return bakthat.backup(str(tree), destination=self.name, password=password, compression=compression, conf=self.conf)

    def restore(self, target, password: str | None, name: str = "mydir"):
        bakthat.restore(name, destination=self.name, password=password, target=target, conf=self.conf)


@pytest.fixture(params=["local", "s3"])
def store(request, home):
    if request.param == "s3":
        request.getfixturevalue("aws")
    return Store(request.param, home)


def test_the_local_store_declares_cheap_reads_and_s3_does_not(store):
    assert store.streams is (store.name == "s3")


def refused(store, target, password, error=IntegrityError, row=None):
    """Restore must raise ``error`` naming the archive, and leave the target empty."""
    target.mkdir()
    with pytest.raises(error, match=re.escape(row.stored_filename)) as raised:
        store.restore(target, password)
    assert list(target.iterdir()) == []
    return raised.value


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_a_flipped_byte_in_an_unencrypted_archive_is_an_integrity_error(store, tree, tmp_path, where, compression):
    row = store.backup(tree, password="", compression=compression)
    store.flip(row, {"start": 10, "middle": row.size // 2, "end": -3}[where])
    refused(store, tmp_path / "out", None, row=row)


@pytest.mark.parametrize("where", ["header", "nonce", "middle", "end"])
def test_a_flipped_byte_in_an_encrypted_archive_is_an_integrity_error(store, tree, tmp_path, where):
    row = store.backup(tree, password="pw")
    header_end = store.read(row).index(b"\n---") + 48  # the MAC line, then the 16-byte nonce
    offset = {"header": 40, "nonce": header_end + 3, "middle": row.size // 2, "end": -3}[where]
    store.flip(row, offset)
    refused(store, tmp_path / "out", "pw", row=row)


@pytest.mark.parametrize("change", ["truncate", "extend", "empty"])
@pytest.mark.parametrize("password", ["", "pw"])
def test_a_truncated_or_extended_archive_is_an_integrity_error(store, tree, tmp_path, change, password):
    row = store.backup(tree, password=password)
    data = store.read(row)
    store.write(row, {"truncate": data[: len(data) - 1000], "extend": data + b"extra bytes", "empty": b""}[change])
    refused(store, tmp_path / "out", password or None, row=row)


def test_a_wrong_password_names_the_archive(store, tree, tmp_path):
    row = store.backup(tree, password="right")
    error = refused(store, tmp_path / "out", "wrong", WrongPasswordError, row=row)
    assert "wrong" in str(error) and "right" not in str(error)


def test_an_archive_replaced_by_another_valid_one_is_refused_by_its_checksum(store, tree, tmp_path):
    """Every layer reads the replacement as a sound archive: only the SHA-256 recorded at
    backup time tells it is not the one asked for (the pre-check on the local store, the
    check before anything is moved into the target on S3)."""
    older = store.backup(tree, password="")
    (tree / "text.txt").write_text("changed since\n")
    newer = store.backup(tree, password="")
    store.write(older, store.read(newer))
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(IntegrityError, match=re.escape(older.stored_filename)) as raised:
        store.restore(target, None, name=older.stored_filename)
    expected = "SHA-256 mismatch"  # one pass on every store: the checksum is compared before the commit
    assert expected in str(raised.value)
    assert list(target.iterdir()) == []


def test_a_header_altered_into_another_valid_one_is_damage_not_a_wrong_password(store, tree, tmp_path):
    """A changed scrypt salt still parses: the header's SHA-256 recorded at backup time is
    what tells damage from a wrong password."""
    row = store.backup(tree, password="pw")
    data = bytearray(store.read(row))
    salt = data.index(b"-> scrypt ") + len(b"-> scrypt ")
    data[salt] = ord("B") if data[salt] != ord("B") else ord("C")
    store.write(row, bytes(data))
    error = refused(store, tmp_path / "out", "pw", row=row)
    expected = "SHA-256 differs from the one recorded"
    assert expected in str(error)


def test_an_archive_replaced_by_a_hostile_one_is_reported_as_altered_and_writes_nothing(store, tree, tmp_path):
    """On S3 the member check refuses the '..' member first; the rest of the stream is then
    read and compared with the recorded SHA-256, so the error says what happened: the
    stored archive is not the one backed up."""
    import io
    import tarfile

    row = store.backup(tree, password="", compression="none")
    hostile = io.BytesIO()
    with tarfile.open(fileobj=hostile, mode="w", format=tarfile.PAX_FORMAT) as tar:
        member = tarfile.TarInfo("mydir/../../escaped")
        member.size = 5
        tar.addfile(member, io.BytesIO(b"evil\n"))
    store.write(row, hostile.getvalue())
    error = refused(store, tmp_path / "out", None, row=row)
    expected = "SHA-256 mismatch, the stored archive is damaged or altered (refusing to restore"
    assert expected in str(error)
    assert not (tmp_path / "escaped").exists() and not (tmp_path.parent / "escaped").exists()


def test_without_a_recorded_checksum_the_stream_s_own_check_tells_damage_from_hostility(store, tree, tmp_path):
    """A row without a SHA-256 (as bakthat 0.6's, adopted): after the member check refuses
    a member, the rest of the stream is read, and gzip's CRC-32 reports the damage."""
    import gzip
    import io
    import tarfile

    from bakthat import models

    row = store.backup(tree, password="", compression="gzip")
    models.Backups.update(sha256=None).where(models.Backups.id == row.id).execute()
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w", format=tarfile.PAX_FORMAT) as tar:
        member = tarfile.TarInfo("mydir/../../escaped")
        member.size = 5
        tar.addfile(member, io.BytesIO(b"evil\n"))
        filler = tarfile.TarInfo("mydir/filler")  # the CRC-32 comes megabytes after the refusal
        filler.size = 8 << 20
        tar.addfile(filler, io.BytesIO(os.urandom(8 << 20)))
    damaged = bytearray(gzip.compress(plain.getvalue(), mtime=0))
    damaged[-8] ^= 0xFF  # the CRC-32 of the gzip trailer
    store.write(row, bytes(damaged))
    error = refused(store, tmp_path / "out", None, row=row)
    assert "damaged gzip data" in str(error) and "CRC" in str(error)


def test_without_a_recorded_checksum_damage_after_the_last_member_is_found_before_the_commit(store, tree, tmp_path):
    """A row without a SHA-256 (as bakthat 0.6's, adopted), whose gzip trailer is damaged:
    the members are sound, so only reading the stream to its end (gzip's CRC-32) before
    the commit refuses it."""
    from bakthat import models

    row = store.backup(tree, password="", compression="gzip")
    models.Backups.update(sha256=None).where(models.Backups.id == row.id).execute()
    store.flip(row, -8)  # the CRC-32 of the gzip trailer
    with pytest.raises(IntegrityError, match="CRC"):
        bakthat.restore("mydir", destination=store.name, target=tmp_path / "out", conf=store.conf, dry_run=True)
    error = refused(store, tmp_path / "out", None, row=row)
    assert "CRC" in str(error)
