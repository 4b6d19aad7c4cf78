"""Reading bakthat 0.6's formats: names, Blowfish-CBC (beefish), archives, KeyValue values.

The 0.6 data comes from tests/legacy_writer.py, an implementation of 0.6's writer that
shares no code with bakthat.legacy; a published Blowfish-CBC vector checks the cipher.
"""

from __future__ import annotations

import calendar
import io
import os
import tarfile
from datetime import datetime, timezone

import pytest

import bakthat
from bakthat import legacy
from bakthat.errors import IntegrityError, PasswordRequiredError, WrongPasswordError
from tests.backends.conftest import aws, moto_server  # noqa: F401
from tests.conftest import run_cli, snapshot
from tests.legacy_writer import backup_object, beefish_encrypt, keyvalue_object, tgz

WHEN = datetime(2013, 6, 4, 19, 10, 55, tzinfo=timezone.utc)


def read_in_pieces(reader, size: int) -> bytes:
    out = []
    while chunk := reader.read(size):
        out.append(chunk)
    return b"".join(out)


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("key", "name", "stamp", "encrypted", "dotless"),
    [
        ("mydir.20130604191055.tgz", "mydir", "2013-06-04 19:10:55", False, False),
        ("mydir.20130305193615.tgz.enc", "mydir", "2013-03-05 19:36:15", True, False),
        ("my.dotted.dir.20130604191055.tgz", "my.dotted.dir", "2013-06-04 19:10:55", False, False),
        ("backup2.20130101120000.tgz", "backup2", "2013-01-01 12:00:00", False, False),
        ("myhost_mysql_Ljhg7N.20130704120000.tgz.enc", "myhost_mysql_Ljhg7N", "2013-07-04 12:00:00", True, False),
        ("db20121231235959.tgz", "db", "2012-12-31 23:59:59", False, True),
        ("db120121231235959.tgz.enc", "db1", "2012-12-31 23:59:59", True, True),
    ],
)
def test_06_names_give_the_backup_name_its_utc_date_and_encryption(key, name, stamp, encrypted, dotless):
    parsed = legacy.parse_name(key)
    assert parsed is not None
    expected = calendar.timegm(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").timetuple())
    assert (parsed.name, parsed.backup_date, parsed.encrypted, parsed.dotless) == (name, expected, encrypted, dotless)
    assert not parsed.raw and parsed.compression == "gzip"


@pytest.mark.parametrize(
    ("key", "name", "encrypted"),
    [
        ("mydir.20130604191055", "mydir", False),
        ("dump.sql.20130604191055", "dump.sql", False),
        ("dump.sql.20130604191055.enc", "dump.sql", True),
        ("photos.tgz.20130604191055", "photos.tgz", False),  # a tarball uploaded as it was
        ("-rf .20130604191055.enc", "-rf ", True),
    ],
)
def test_06_names_of_files_stored_without_compression_give_the_file_name(key, name, encrypted):
    parsed = legacy.parse_name(key)
    assert parsed is not None and parsed.raw and parsed.compression == "raw"
    assert (parsed.name, parsed.encrypted, parsed.dotless) == (name, encrypted, False)
    assert parsed.backup_date == calendar.timegm((2013, 6, 4, 19, 10, 55, 0, 0, 0))


@pytest.mark.parametrize(
    "key",
    [
        "...20130604191055",  # the file name would be ..
        "..20130604191055.enc",  # .
        ".20130604191055",  # empty
        "../../etc/cron.d/job.20130604191055",
        "a/b.20130604191055.enc",
        "/etc/passwd.20130604191055",
        "nul\x00byte.20130604191055",
        "folder/mydir.20130604191055.tgz",
    ],
)
def test_06_shaped_names_that_are_not_one_file_name_are_refused_but_recognised(key):
    assert legacy.parse_name(key) is None
    assert legacy.looks_like_06(key)


@pytest.mark.parametrize(
    "key",
    [
        "mydir.20130604191055.tar.zst",  # bakthat 1.x
        "mydir.20130604191055.tgz.age",
        "mydir.20130604191055.tgz.manifest.json",
        "mydir.20131304191055.tgz",  # month 13
        "mydir.2013060419105.tgz",  # 13 digits
        ".20130604191055.tgz",
        "20130604191055.tgz",
        "folder/mydir.20130604191055.tgz",
        "mydir20130604191055",  # compress: false always had the dot
        "mydir.20131304191055",
        "mydir.20130604191055.enc.manifest.json",
        "notes.txt",
    ],
)
def test_other_names_are_not_06_backups(key):
    assert legacy.parse_name(key) is None


# --------------------------------------------------------------------------- Blowfish


def test_a_published_blowfish_cbc_vector_decrypts_and_its_padding_is_removed():
    # Eric Young's Blowfish CBC test vector: the 29-byte text, zero-filled to 32 bytes.
    key = bytes.fromhex("0123456789ABCDEFF0E1D2C3B4A59687")
    iv = bytes.fromhex("FEDCBA9876543210")
    ciphertext = bytes.fromhex("6B77B4D63006DEE605B156E27403979358DEB9E7154616D959F1652BD5FF92CC")
    # Its last byte, 0, is one beefish never writes: refused as padding.
    with pytest.raises(IntegrityError, match="padding"):
        legacy.BlowfishReader(io.BytesIO(iv + ciphertext), key).read()
    # In CBC, flipping a bit of the third ciphertext block flips that bit of the fourth
    # plaintext block (and garbles the third): a last byte of 8 means 8 bytes of padding.
    forged = bytearray(iv + ciphertext)
    forged[8 + 24 - 1] ^= 0x08
    plain = legacy.BlowfishReader(io.BytesIO(bytes(forged)), key).read()
    assert len(plain) == 24 and plain[:16] == b"7654321 Now is t"


def one_block(last_byte: int, password: str = "password") -> bytes:
    """A one-block beefish-shaped ciphertext whose plaintext ends with ``last_byte``
    (encrypted here with ``cryptography``, not by bakthat)."""
    from cryptography.hazmat.decrepit.ciphers.algorithms import Blowfish
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    iv = os.urandom(8)
    encryptor = Cipher(Blowfish(password.encode()), modes.CBC(iv)).encryptor()
    return iv + encryptor.update(b"ABCDEFG" + bytes([last_byte])) + encryptor.finalize()


def test_every_last_byte_beefish_writes_is_read_as_its_padding_length():
    for flag in range(1, 249):
        pad = flag % 8 or 8
        assert legacy.BlowfishReader(io.BytesIO(one_block(flag)), "password").read() == b"ABCDEFG"[: 8 - pad]


@pytest.mark.parametrize("flag", [0, *range(249, 256)])
def test_a_last_byte_beefish_never_writes_is_refused_as_the_caller_says(flag):
    with pytest.raises(IntegrityError, match="damaged: .* padding"):
        legacy.BlowfishReader(io.BytesIO(one_block(flag)), "password").read()
    reader = legacy.BlowfishReader(io.BytesIO(one_block(flag, "Sekr3t-key")), "Sekr3t-key", bad_padding=WrongPasswordError)
    with pytest.raises(WrongPasswordError, match="wrong password: .* padding") as raised:
        reader.read()
    assert "Sekr3t" not in str(raised.value)


@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 4095, 4096, 4097, 8191, 8192, 70_001])
@pytest.mark.parametrize("piece", [1, 5, 4096, 1 << 20])
def test_what_beefish_encrypted_decrypts_exactly_whatever_the_sizes(size, piece):
    data = os.urandom(size)
    encrypted = beefish_encrypt(data, "pass word ü")
    assert (len(encrypted) - 8) % 8 == 0 and len(encrypted) > size + 8
    assert read_in_pieces(legacy.BlowfishReader(io.BytesIO(encrypted), "pass word ü"), piece) == data


@pytest.mark.parametrize("password", ["abc", "x" * 57])
def test_a_password_0_6_could_not_have_used_is_a_wrong_password(password):
    with pytest.raises(WrongPasswordError, match="4 to 56 bytes"):
        legacy.BlowfishReader(io.BytesIO(b"\x00" * 16), password)


@pytest.mark.parametrize("cut", [3, 9_997])
def test_a_ciphertext_cut_inside_a_block_is_refused(cut):
    data = beefish_encrypt(os.urandom(20_000), "password")
    reader = legacy.BlowfishReader(io.BytesIO(data[:-cut]), "password")
    with pytest.raises(IntegrityError, match="multiple of 8"):
        read_in_pieces(reader, 4096)


def test_an_iv_alone_or_less_is_refused():
    with pytest.raises(IntegrityError, match="IV"):
        legacy.BlowfishReader(io.BytesIO(b"1234"), "password")
    with pytest.raises(IntegrityError, match="nothing follows"):
        legacy.BlowfishReader(io.BytesIO(b"12345678"), "password").read()


# --------------------------------------------------------------------------- archives


@pytest.fixture
def source(tmp_path):
    root = tmp_path / "src" / "mydir"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("hello 0.6\n" * 100)
    (root / "sub" / "b.bin").write_bytes(os.urandom(50_000))
    return root


def test_open_archive_yields_the_tar_of_a_06_encrypted_backup(source):
    stream = legacy.open_archive(io.BytesIO(beefish_encrypt(tgz(source), "s3cret")), "s3cret")
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        names = [member.name for member in tar]
    assert names == ["mydir", "mydir/a.txt", "mydir/sub", "mydir/sub/b.bin"]


def test_a_wrong_password_is_refused_before_anything_is_read_further(source):
    with pytest.raises(WrongPasswordError, match="wrong password"):
        legacy.open_archive(io.BytesIO(beefish_encrypt(tgz(source), "s3cret")), "s3cret!")


def test_plain_bytes_that_are_not_gzip_are_damage():
    with pytest.raises(IntegrityError, match="gzip header"):
        legacy.open_archive(io.BytesIO(b"PK\x03\x04 not a tgz"), None)


@pytest.fixture
def adopted(source, home):
    """A local store holding one 0.6 .tgz.enc of ``source``, adopted by sync."""
    store = home / ".bakthat_store"
    store.mkdir()
    name, data = backup_object(source, WHEN, "s3cret")
    (store / name).write_bytes(data)
    from bakthat.sync import sync

    assert [row.stored_filename for row in sync()] == [name]
    return store / name


def test_a_06_encrypted_backup_restores_byte_for_byte(adopted, source, tmp_path):
    bakthat.restore("mydir", password="s3cret", target=tmp_path / "out")
    assert snapshot(tmp_path / "out" / "mydir") == snapshot(source)


def test_a_wrong_password_exits_5_and_writes_nothing(adopted, tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    done = run_cli("restore", "mydir", "--target", str(target), env={"BAKTHAT_PASSWORD": "not-it"})
    assert done.returncode == 5, done.stderr
    assert "wrong password" in done.stderr and "not-it" not in done.stderr
    assert list(target.iterdir()) == []


def test_a_flipped_byte_exits_6_and_writes_nothing(adopted, tmp_path):
    data = bytearray(adopted.read_bytes())
    data[len(data) // 2] ^= 0x10
    adopted.write_bytes(bytes(data))
    target = tmp_path / "target"
    target.mkdir()
    done = run_cli("restore", "mydir", "--target", str(target), env={"BAKTHAT_PASSWORD": "s3cret"})
    assert done.returncode == 6, done.stderr
    assert "damaged" in done.stderr or "CRC" in done.stderr
    assert list(target.iterdir()) == []


@pytest.mark.parametrize("change", ["truncated by a block", "truncated by 5 bytes", "extended by a block"])
def test_a_truncated_or_extended_archive_is_refused_and_writes_nothing(adopted, tmp_path, change):
    data = adopted.read_bytes()
    adopted.write_bytes({"truncated by a block": data[:-8], "truncated by 5 bytes": data[:-5], "extended by a block": data + os.urandom(8)}[change])
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(IntegrityError):
        bakthat.restore("mydir", password="s3cret", target=target)
    assert list(target.iterdir()) == []


def test_every_single_byte_flip_is_refused_or_changes_nothing_restored(tmp_path):
    """0.6's format has no MAC: what gzip and tar check must catch every damage that matters."""
    root = tmp_path / "small" / "tiny"
    root.mkdir(parents=True)
    (root / "f.txt").write_bytes(os.urandom(300) + b"text " * 100)
    data = beefish_encrypt(tgz(root), "s3cret")
    expected = (root / "f.txt").read_bytes()
    outcomes = {"refused": 0, "identical": 0}
    for position in range(len(data)):
        damaged = bytearray(data)
        damaged[position] ^= 0x01
        try:
            stream = legacy.open_archive(io.BytesIO(bytes(damaged)), "s3cret")
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                contents = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
            while stream.read(1 << 16):
                pass
        except (WrongPasswordError, IntegrityError, tarfile.TarError, EOFError):
            outcomes["refused"] += 1
            continue
        assert contents == {"tiny/f.txt": expected}, f"byte {position} changed the restored data undetected"
        outcomes["identical"] += 1
    # only bytes of the gzip header that no check covers (mtime, name) may flip unnoticed
    assert outcomes["refused"] > len(data) * 0.9


# --------------------------------------------------------------------------- KeyValue


@pytest.fixture
def kv(aws):
    from bakthat.helper import KeyValue
    from tests.backends.conftest import s3_client

    s3_client().create_bucket(Bucket="kv-06")
    return KeyValue(conf={"s3_bucket": "kv-06"})


def put_06(key: str, data: bytes) -> None:
    from tests.backends.conftest import s3_client

    s3_client().put_object(Bucket="kv-06", Key=key, Body=data)


@pytest.mark.parametrize(("password", "compress"), [(None, True), (None, False), ("kv-pass", True), ("kv-pass", False)])
def test_06_keyvalue_entries_are_read_through_keyvalue(kv, password, compress):
    value = {"some": ["data", 1, None], "ü": True}
    put_06("legacy-key", keyvalue_object(value, password=password, compress=compress))
    assert kv.get_key("legacy-key", password=password) == value


def test_a_06_encrypted_keyvalue_entry_needs_the_right_password(kv):
    put_06("legacy-key", keyvalue_object({"a": 1}, password="kv-pass"))
    with pytest.raises(PasswordRequiredError):
        kv.get_key("legacy-key")
    for compress in (True, False):
        put_06(f"legacy-{compress}", keyvalue_object({"a": 1}, password="kv-pass", compress=compress))
        with pytest.raises(WrongPasswordError):
            kv.get_key(f"legacy-{compress}", password="other-pass")
