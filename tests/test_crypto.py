"""Tests for bakthat.crypto: age v1 streaming encryption, its failure modes and interop."""

from __future__ import annotations

import array
import base64
import hashlib
import io
import os
import random
import select
import shutil
import subprocess
import sys
import time

import pytest

from bakthat import crypto
from bakthat.crypto import (
    AGE_MAGIC,
    DEFAULT_WORK_FACTOR,
    MAX_WORK_FACTOR,
    MIN_WORK_FACTOR,
    DecryptingReader,
    EncryptingWriter,
    generate_identity,
    is_age,
    load_identities,
    recipient_from_identity,
)
from bakthat.errors import (
    ConfigError,
    IntegrityError,
    PasswordRequiredError,
    WrongPasswordError,
)
from tests.services import require_binary

WF = MIN_WORK_FACTOR  # cheap scrypt for tests
PASSWORD = "correct horse battery staple"
CHUNK = 64 * 1024
CT_CHUNK = CHUNK + 16
SIZES = [0, 1, 65535, 65536, 65537, 3 * 65536, 1_000_003]

AGE = shutil.which("age")
AGE_KEYGEN = shutil.which("age-keygen")


@pytest.fixture
def _age_binaries():
    require_binary("age", "age-keygen")


needs_age = pytest.mark.usefixtures("_age_binaries")


# --------------------------------------------------------------------------- helpers


def plaintext(size: int) -> bytes:
    return random.Random(size).randbytes(size)


def encrypt(data: bytes, write_size: int | None = None, **kwargs) -> tuple[bytes, bytes]:
    """Return (archive bytes, header) for data; writes in write_size pieces if given."""
    kwargs.setdefault("work_factor", WF)
    if "recipients" not in kwargs:
        kwargs.setdefault("passphrase", PASSWORD)
    sink = io.BytesIO()
    writer = EncryptingWriter(sink, **kwargs)
    if write_size is None:
        writer.write(data)
    else:
        for i in range(0, len(data), write_size):
            writer.write(data[i : i + write_size])
    writer.close()
    return sink.getvalue(), writer.header


def decrypt(archive: bytes, **kwargs) -> bytes:
    if "identities" not in kwargs:
        kwargs.setdefault("passphrase", PASSWORD)
    return DecryptingReader(io.BytesIO(archive), **kwargs).read()


def read_until_error(
    archive: bytes, read_size: int = CHUNK, **kwargs
) -> tuple[bytes, BaseException | None]:
    """Read in read_size pieces; return (all plaintext returned, the exception raised or None).

    A read that hits a damaged chunk raises and returns nothing, so with read_size = CHUNK
    the plaintext returned is exactly that of the chunks before the damaged one.
    """
    if "identities" not in kwargs:
        kwargs.setdefault("passphrase", PASSWORD)
    got = bytearray()
    try:
        reader = DecryptingReader(io.BytesIO(archive), **kwargs)
        while piece := reader.read(read_size):
            got += piece
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        return bytes(got), exc
    return bytes(got), None


def flip(data: bytes, offset: int) -> bytes:
    damaged = bytearray(data)
    damaged[offset] ^= 0xFF
    return bytes(damaged)


def chunk_offset(header: bytes, index: int) -> int:
    return len(header) + 16 + index * CT_CHUNK


class ShortReads:
    """A source whose read(n) returns between 1 and 777 bytes at a time."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self._rng = random.Random(7)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = 1 << 30
        return self._data.read(min(n, self._rng.randint(1, 777)))


class EndsOnce(io.RawIOBase):
    """A stream that fails the test when it is read again and again after its end (a
    reader that misses the end would loop forever: the suite must fail, not stall)."""

    def __init__(self, data: bytes):
        self.data = io.BytesIO(data)
        self.reads_after_the_end = 0

    def readable(self):
        return True

    def read(self, size=-1):
        chunk = self.data.read(size)
        if not chunk:
            self.reads_after_the_end += 1
            assert self.reads_after_the_end < 100, "the reader keeps reading after the end of the stream"
        return chunk


def craft(file_key: bytes, stanzas, chunks: list[tuple[bytes, bool]]) -> bytes:
    """Build an archive by hand from the module's building blocks (for malformed cases)."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    nonce = os.urandom(16)
    aead = ChaCha20Poly1305(crypto._hkdf(file_key, nonce, b"payload"))
    body = b"".join(
        aead.encrypt(crypto._stream_nonce(i, last), data, None)
        for i, (data, last) in enumerate(chunks)
    )
    return crypto._build_header(file_key, stanzas) + nonce + body


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("size", SIZES)
def test_passphrase_round_trip_returns_the_plaintext(size):
    data = plaintext(size)
    archive, _ = encrypt(data)
    assert decrypt(archive) == data


@pytest.mark.parametrize("size", SIZES)
def test_two_recipient_round_trip_opens_with_each_identity(size):
    data = plaintext(size)
    (id1, rcpt1), (id2, rcpt2) = generate_identity(), generate_identity()
    archive, header = encrypt(data, recipients=[rcpt1, rcpt2])
    assert header.count(b"\n-> X25519 ") == 2
    assert decrypt(archive, identities=[id1]) == data
    assert decrypt(archive, identities=[id2]) == data


@pytest.mark.parametrize("size", SIZES)
def test_archive_size_follows_age_chunking(size):
    archive, header = encrypt(plaintext(size))
    chunks = max(1, -(-size // CHUNK))  # a full 64 KiB chunk may be the last one
    assert len(archive) == len(header) + 16 + size + 16 * chunks


@pytest.mark.parametrize("write_size", [1, 511, 10240, 65536, 65537, 200_000])
def test_any_write_size_gives_the_same_plaintext_back(write_size):
    data = plaintext(300_001) if write_size > 1 else plaintext(140_000)
    archive, _ = encrypt(data, write_size=write_size)
    assert decrypt(archive) == data


def test_write_accepts_bytearray_memoryview_and_typed_arrays():
    typed = array.array("I", range(50_000))
    pieces = [b"abc", bytearray(b"defg"), memoryview(b"hij"), typed]
    sink = io.BytesIO()
    with EncryptingWriter(sink, passphrase=PASSWORD, work_factor=WF) as writer:
        counts = [writer.write(p) for p in pieces]
    assert counts == [3, 4, 3, len(typed) * typed.itemsize]
    assert decrypt(sink.getvalue()) == b"abcdefghij" + typed.tobytes()


def test_reader_tolerates_short_reads_from_the_source():
    data = plaintext(1_000_003)
    archive, _ = encrypt(data)
    reader = DecryptingReader(ShortReads(archive), passphrase=PASSWORD)
    assert reader.read() == data


def test_read_returns_exactly_n_bytes_until_the_end_then_empty():
    data = plaintext(3 * 65536 + 10)
    archive, _ = encrypt(data)
    reader = DecryptingReader(io.BytesIO(archive), passphrase=PASSWORD)
    got = []
    while piece := reader.read(100_000):
        got.append(piece)
    assert [len(p) for p in got] == [100_000, 96_618]
    assert b"".join(got) == data
    assert reader.read() == b"" and reader.read(10) == b""


def test_readinto_fills_the_buffer_with_plaintext():
    data = plaintext(70_000)
    archive, _ = encrypt(data)
    reader = DecryptingReader(io.BytesIO(archive), passphrase=PASSWORD)
    buf = bytearray(50_000)
    assert reader.readinto(buf) == 50_000 and bytes(buf) == data[:50_000]
    assert reader.readinto(buf) == 20_000 and bytes(buf[:20_000]) == data[50_000:]
    assert reader.readinto(buf) == 0


def test_same_plaintext_and_password_encrypt_to_different_ciphertexts():
    data = plaintext(100_000)
    first, header1 = encrypt(data)
    second, header2 = encrypt(data)
    assert first != second
    assert header1 != header2  # fresh scrypt salt and file key
    assert first[len(header1) :][:16] != second[len(header2) :][:16]  # fresh payload nonce


def test_default_work_factor_is_written_and_read_back():
    assert DEFAULT_WORK_FACTOR == 18
    sink = io.BytesIO()
    with EncryptingWriter(sink, passphrase=PASSWORD) as writer:
        writer.write(b"default")
    assert writer.header.split(b"\n")[1].endswith(b" 18")
    assert decrypt(sink.getvalue()) == b"default"


def test_header_is_the_prefix_of_the_output_and_matches_the_reader_header():
    archive, header = encrypt(b"data")
    assert archive.startswith(header)
    assert header.startswith(AGE_MAGIC) and header.split(b"\n")[-2].startswith(b"--- ")
    reader = DecryptingReader(io.BytesIO(archive), passphrase=PASSWORD)
    assert reader.header == header


def test_header_body_lines_are_wrapped_at_64_columns_without_padding():
    stanza = crypto._Stanza("test", ("a", "b"), bytes(range(48)) * 2)  # 128 base64 chars
    encoded = crypto._encode_stanza(stanza)
    lines = encoded.split(b"\n")
    assert lines[0] == b"-> test a b"
    assert [len(line) for line in lines[1:]] == [64, 64, 0, 0]  # empty final body line
    short = crypto._encode_stanza(crypto._Stanza("x", (), b"\x01\x02"))
    assert short == b"-> x\nAQI\n"


def test_expected_header_sha256_of_the_written_header_opens_the_archive():
    data = plaintext(1000)
    archive, header = encrypt(data)
    digest = hashlib.sha256(header).hexdigest()
    assert decrypt(archive, expected_header_sha256=digest) == data


# --------------------------------------------------------------------------- writer contract


def test_writer_requires_exactly_one_of_passphrase_or_recipients():
    _, recipient = generate_identity()
    with pytest.raises(ValueError):
        EncryptingWriter(io.BytesIO())
    with pytest.raises(ValueError):
        EncryptingWriter(io.BytesIO(), passphrase=PASSWORD, recipients=[recipient])
    with pytest.raises(ValueError):
        EncryptingWriter(io.BytesIO(), recipients=[])
    with pytest.raises(ValueError):
        EncryptingWriter(io.BytesIO(), passphrase="")
    with pytest.raises(TypeError):
        EncryptingWriter(io.BytesIO(), recipients=recipient)


@pytest.mark.parametrize("work_factor", [MIN_WORK_FACTOR - 1, MAX_WORK_FACTOR + 1, 12.0, True])
def test_writer_refuses_work_factors_readers_would_refuse(work_factor):
    with pytest.raises(ValueError):
        EncryptingWriter(io.BytesIO(), passphrase=PASSWORD, work_factor=work_factor)


def test_flush_does_not_emit_a_partial_chunk():
    sink = io.BytesIO()
    writer = EncryptingWriter(sink, passphrase=PASSWORD, work_factor=WF)
    start = len(sink.getvalue())
    assert start == len(writer.header) + 16
    writer.write(b"x" * 1000)
    writer.flush()
    assert len(sink.getvalue()) == start
    writer.write(b"y" * CHUNK)  # now a full chunk is known not to be the last
    writer.flush()
    assert len(sink.getvalue()) == start + CT_CHUNK


def test_sealed_chunks_reach_the_sink_in_batches_of_sixteen_as_bytes():
    writes = []

    class Sink:
        def write(self, data):
            writes.append(data)
            return len(data)

    data = plaintext(40 * CHUNK + 123)
    with EncryptingWriter(Sink(), passphrase=PASSWORD, work_factor=WF) as writer:
        writer.write(data)
        assert [len(w) for w in writes[1:]] == [16 * CT_CHUNK, 16 * CT_CHUNK]  # after the header
    assert [len(w) for w in writes[1:]] == [16 * CT_CHUNK, 16 * CT_CHUNK, 8 * CT_CHUNK + 123 + 16]
    assert all(type(w) is bytes for w in writes)
    assert decrypt(b"".join(writes)) == data


def test_close_is_idempotent_and_leaves_the_sink_open():
    sink = io.BytesIO()
    writer = EncryptingWriter(sink, passphrase=PASSWORD, work_factor=WF)
    assert writer.writable() and not writer.closed
    writer.write(b"abc")
    writer.close()
    size = len(sink.getvalue())
    writer.close()
    assert writer.closed and not sink.closed
    assert len(sink.getvalue()) == size
    with pytest.raises(ValueError):
        writer.write(b"more")
    assert decrypt(sink.getvalue()) == b"abc"


def test_an_exception_inside_the_with_block_leaves_the_archive_unsealed():
    sink = io.BytesIO()
    with pytest.raises(RuntimeError):
        with EncryptingWriter(sink, passphrase=PASSWORD, work_factor=WF) as writer:
            writer.write(plaintext(200_000))
            raise RuntimeError("backup failed half way")
    got, exc = read_until_error(sink.getvalue())
    assert isinstance(exc, IntegrityError) and "truncated" in str(exc)
    assert len(got) < 200_000


def test_writer_writes_through_a_sink_that_accepts_short_writes():
    class ShortSink:
        def __init__(self):
            self.data = bytearray()

        def write(self, b):
            taken = bytes(b[:1000])
            self.data += taken
            return len(taken)

    sink = ShortSink()
    data = plaintext(150_000)
    with EncryptingWriter(sink, passphrase=PASSWORD, work_factor=WF) as writer:
        writer.write(data)
    assert decrypt(bytes(sink.data)) == data


# --------------------------------------------------------------------------- wrong / missing keys


def test_wrong_password_raises_wrong_password_error():
    archive, _ = encrypt(b"secret data")
    with pytest.raises(WrongPasswordError) as info:
        decrypt(archive, passphrase="not the password")
    assert not isinstance(info.value, PasswordRequiredError)
    assert "wrong password, or the archive header is damaged" in str(info.value)


def test_wrong_password_with_a_verified_header_says_only_wrong_password():
    archive, header = encrypt(b"secret data")
    digest = hashlib.sha256(header).hexdigest()
    with pytest.raises(WrongPasswordError) as info:
        decrypt(archive, passphrase="not the password", expected_header_sha256=digest)
    assert "wrong password" in str(info.value) and "damaged" not in str(info.value)


def test_missing_password_raises_password_required_error():
    archive, _ = encrypt(b"secret data")
    with pytest.raises(PasswordRequiredError) as info:
        DecryptingReader(io.BytesIO(archive))
    assert "passphrase" in str(info.value)


def test_passphrase_archive_opened_with_only_an_identity_asks_for_the_passphrase():
    archive, _ = encrypt(b"secret data")
    identity, _ = generate_identity()
    with pytest.raises(PasswordRequiredError) as info:
        DecryptingReader(io.BytesIO(archive), identities=[identity])
    assert "passphrase" in str(info.value)


def test_recipient_archive_opened_without_identity_asks_for_an_identity():
    _, recipient = generate_identity()
    archive, _ = encrypt(b"secret data", recipients=[recipient])
    with pytest.raises(PasswordRequiredError) as info:
        DecryptingReader(io.BytesIO(archive), passphrase=PASSWORD)
    assert "identity" in str(info.value)


def test_wrong_identity_raises_wrong_password_error():
    _, recipient = generate_identity()
    other_identity, _ = generate_identity()
    archive, _ = encrypt(b"secret data", recipients=[recipient])
    with pytest.raises(WrongPasswordError) as info:
        decrypt(archive, identities=[other_identity])
    assert not isinstance(info.value, PasswordRequiredError)
    assert "no identity matches" in str(info.value)


def test_any_matching_identity_among_several_opens_the_archive():
    (id1, _), (id2, rcpt2) = generate_identity(), generate_identity()
    archive, _ = encrypt(b"payload", recipients=[rcpt2])
    assert decrypt(archive, identities=[id1, id2]) == b"payload"


def test_unknown_stanza_types_are_ignored_next_to_x25519():
    identity, recipient = generate_identity()
    file_key = os.urandom(16)
    stanzas = [
        crypto._Stanza("grease-type", ("x", "y"), os.urandom(40)),
        crypto._x25519_stanza(file_key, crypto._parse_recipient(recipient)),
    ]
    archive = craft(file_key, stanzas, [(b"hello", True)])
    assert decrypt(archive, identities=[identity]) == b"hello"


def test_archive_with_only_unsupported_recipient_types_raises_wrong_password_error():
    identity, _ = generate_identity()
    file_key = os.urandom(16)
    archive = craft(file_key, [crypto._Stanza("ssh-ed25519", ("abc",), b"x" * 32)], [(b"", True)])
    with pytest.raises(WrongPasswordError) as info:
        decrypt(archive, identities=[identity])
    assert "ssh-ed25519" in str(info.value)


# --------------------------------------------------------------------------- damage (B1)


def test_flipped_byte_in_the_header_mac_line_raises_integrity_error():
    archive, header = encrypt(plaintext(1000))
    with pytest.raises(IntegrityError):
        decrypt(flip(archive, len(header) - 5))


def test_validly_encoded_but_wrong_header_mac_raises_integrity_error():
    archive, header = encrypt(plaintext(1000))
    head, mac_b64 = header[:-1].rsplit(b" ", 1)
    mac = bytearray(base64.b64decode(mac_b64 + b"="))
    mac[0] ^= 0xFF
    new_header = head + b" " + base64.b64encode(bytes(mac)).rstrip(b"=") + b"\n"
    with pytest.raises(IntegrityError) as info:
        decrypt(new_header + archive[len(header) :])
    assert "MAC" in str(info.value)


def test_flipped_byte_in_the_scrypt_stanza_with_expected_header_hash_raises_integrity_error():
    archive, header = encrypt(plaintext(1000))
    digest = hashlib.sha256(header).hexdigest()
    offset = header.index(b"-> scrypt ") + len(b"-> scrypt ") + 3  # inside the salt
    with pytest.raises(IntegrityError):
        decrypt(flip(archive, offset), expected_header_sha256=digest)


def test_validly_encoded_scrypt_salt_change_is_caught_by_the_expected_header_hash():
    archive, header = encrypt(plaintext(1000))
    digest = hashlib.sha256(header).hexdigest()
    offset = header.index(b"-> scrypt ") + len(b"-> scrypt ")
    damaged = bytearray(archive)
    damaged[offset] = ord("B") if damaged[offset] != ord("B") else ord("C")
    with pytest.raises(IntegrityError) as info:
        decrypt(bytes(damaged), expected_header_sha256=digest)
    assert "archive header is damaged" in str(info.value)
    # Without the recorded hash, the damage cannot be told from a wrong password.
    with pytest.raises(WrongPasswordError) as info:
        decrypt(bytes(damaged))
    assert "or the archive header is damaged" in str(info.value)


def test_expected_header_hash_mismatch_is_reported_before_any_password_check():
    archive, _ = encrypt(b"data")
    with pytest.raises(IntegrityError) as info:
        DecryptingReader(io.BytesIO(archive), expected_header_sha256="0" * 64)
    assert "archive header is damaged" in str(info.value)


def test_flipped_byte_in_the_payload_nonce_raises_integrity_error_and_returns_nothing():
    data = plaintext(3 * 65536 + 100)
    archive, header = encrypt(data)
    got, exc = read_until_error(flip(archive, len(header) + 7))
    assert isinstance(exc, IntegrityError)
    assert got == b""


def test_flipped_byte_in_a_middle_chunk_returns_only_the_authenticated_chunks_before_it():
    data = plaintext(3 * 65536 + 100)  # chunks 0..3
    archive, header = encrypt(data)
    damaged = flip(archive, chunk_offset(header, 2) + 1234)
    got, exc = read_until_error(damaged)
    assert isinstance(exc, IntegrityError) and "chunk 2" in str(exc)
    assert got == data[: 2 * CHUNK]
    for read_size in (1, 5000, 100_000):  # never more than the authenticated prefix
        got, exc = read_until_error(damaged, read_size=read_size)
        assert isinstance(exc, IntegrityError)
        assert data[: 2 * CHUNK].startswith(got) and len(got) > 2 * CHUNK - read_size


def test_flipped_byte_in_the_last_chunk_raises_integrity_error():
    data = plaintext(3 * 65536 + 100)
    archive, header = encrypt(data)
    got, exc = read_until_error(flip(archive, len(archive) - 30))
    assert isinstance(exc, IntegrityError)
    assert got == data[: 3 * CHUNK]


def test_flipped_tag_byte_of_a_single_chunk_archive_returns_nothing():
    archive, _ = encrypt(b"tiny")
    got, exc = read_until_error(flip(archive, len(archive) - 1))
    assert isinstance(exc, IntegrityError) and got == b""


def test_reading_again_after_an_integrity_error_raises_again():
    data = plaintext(2 * 65536 + 1)
    archive, header = encrypt(data)
    damaged = flip(archive, chunk_offset(header, 1))
    reader = DecryptingReader(io.BytesIO(damaged), passphrase=PASSWORD)
    assert reader.read(CHUNK) == data[:CHUNK]
    messages = []
    for _ in range(3):
        with pytest.raises(IntegrityError) as raised:
            reader.read(1)
        messages.append(str(raised.value))
    # the same error each time: the reader does not go on past the damaged chunk
    assert messages == ["archive is damaged: chunk 1 failed authentication"] * 3


def test_data_that_is_not_an_age_archive_raises_integrity_error():
    junks = [b"", b"hello world", b"age-encryption.org/v2\n-> x\n\n--- AAAA\n", os.urandom(4096)]
    for junk in junks:
        with pytest.raises(IntegrityError) as info:
            DecryptingReader(io.BytesIO(junk), passphrase=PASSWORD)
        assert "not an age archive or damaged header" in str(info.value)


def test_header_without_an_end_is_refused_without_reading_forever():
    junk = AGE_MAGIC + b"-> x\n" + b"A" * (2 << 20)
    with pytest.raises(IntegrityError):
        DecryptingReader(io.BytesIO(junk), passphrase=PASSWORD)


def test_scrypt_stanza_next_to_another_stanza_raises_integrity_error():
    file_key = os.urandom(16)
    stanzas = [
        crypto._scrypt_stanza(file_key, PASSWORD, WF),
        crypto._Stanza("other", (), b""),
    ]
    archive = craft(file_key, stanzas, [(b"x", True)])
    with pytest.raises(IntegrityError):
        decrypt(archive)


# ------------------------------------------------------------------ truncation / extension (B2)


@pytest.mark.parametrize("size", [3 * 65536, 3 * 65536 + 5])
def test_truncating_one_whole_chunk_raises_integrity_error(size):
    data = plaintext(size)
    archive, header = encrypt(data)
    last_chunk_len = (len(archive) - len(header) - 16) - 2 * CT_CHUNK
    if size % CHUNK:
        last_chunk_len -= CT_CHUNK  # the 4th, short chunk
    got, exc = read_until_error(archive[:-last_chunk_len])
    assert isinstance(exc, IntegrityError) and "truncated" in str(exc)
    assert len(got) < size


@pytest.mark.parametrize("size", [0, 1, 65536, 3 * 65536 + 5])
def test_truncating_one_byte_raises_integrity_error(size):
    archive, _ = encrypt(plaintext(size))
    got, exc = read_until_error(archive[:-1])
    assert isinstance(exc, IntegrityError) and "truncated" in str(exc)
    assert len(got) < size or size == 0


def test_archive_cut_right_after_the_header_or_nonce_raises_integrity_error():
    archive, header = encrypt(b"data")
    for cut in (len(header), len(header) + 8, len(header) + 16, len(header) - 10):
        with pytest.raises(IntegrityError):
            DecryptingReader(EndsOnce(archive[:cut]), passphrase=PASSWORD).read()


@pytest.mark.parametrize("size", [0, 100, 65536, 3 * 65536 + 5])
@pytest.mark.parametrize("extra", [b"\x00", b"garbage appended" * 5000])
def test_appending_bytes_raises_integrity_error(size, extra):
    data = plaintext(size)
    archive, _ = encrypt(data)
    got, exc = read_until_error(archive + extra)
    assert isinstance(exc, IntegrityError)
    assert data.startswith(got) and len(got) < max(size, 1)


def test_appending_a_copy_of_the_last_chunk_raises_integrity_error():
    data = plaintext(65536)  # one full chunk that is also the last
    archive, header = encrypt(data)
    got, exc = read_until_error(archive + archive[-CT_CHUNK:])
    assert isinstance(exc, IntegrityError) and "after the end" in str(exc)
    assert got == b""


def test_empty_last_chunk_after_a_full_chunk_raises_integrity_error():
    file_key = os.urandom(16)
    stanzas = [crypto._scrypt_stanza(file_key, PASSWORD, WF)]
    archive = craft(file_key, stanzas, [(b"a" * CHUNK, False), (b"", True)])
    got, exc = read_until_error(archive)
    assert isinstance(exc, IntegrityError) and "empty last chunk" in str(exc)
    assert got == b"a" * CHUNK  # the authenticated first chunk only


def test_hand_built_archive_from_the_building_blocks_opens():
    file_key = os.urandom(16)
    stanzas = [crypto._scrypt_stanza(file_key, PASSWORD, WF)]
    archive = craft(file_key, stanzas, [(b"a" * CHUNK, False), (b"b" * CHUNK, True)])
    assert decrypt(archive) == b"a" * CHUNK + b"b" * CHUNK


# --------------------------------------------------------------------------- KDF floor (B8, B5)


def test_work_factor_lowered_below_the_floor_in_the_header_raises_integrity_error():
    archive, header = encrypt(b"data", work_factor=WF)
    lowered = header.replace(b" 10\n", b" 9\n", 1)
    assert lowered != header
    with pytest.raises(IntegrityError) as info:
        decrypt(lowered + archive[len(header) :])
    assert "KDF parameters below floor" in str(info.value)


def test_fully_valid_archive_with_a_work_factor_below_the_floor_raises_integrity_error():
    file_key = os.urandom(16)
    stanzas = [crypto._scrypt_stanza(file_key, PASSWORD, MIN_WORK_FACTOR - 1)]
    archive = craft(file_key, stanzas, [(b"data", True)])
    with pytest.raises(IntegrityError) as info:
        decrypt(archive)
    assert "KDF parameters below floor" in str(info.value)


def test_work_factor_above_the_ceiling_raises_integrity_error_without_running_scrypt():
    archive, header = encrypt(b"data", work_factor=WF)
    raised = header.replace(b" 10\n", b" 40\n", 1)
    started = time.monotonic()
    with pytest.raises(IntegrityError) as info:
        decrypt(raised + archive[len(header) :])
    assert "above" in str(info.value)
    assert time.monotonic() - started < 5


# --------------------------------------------------------------------------- keys and helpers


def test_is_age_recognises_the_magic_line():
    archive, _ = encrypt(b"x")
    assert is_age(archive[:64])
    assert is_age(AGE_MAGIC)
    assert not is_age(AGE_MAGIC[:-1])
    assert not is_age(b"\x1f\x8b\x08 gzip")
    assert not is_age(b"")


def test_generated_identity_and_recipient_have_age_encodings_and_match():
    identity, recipient = generate_identity()
    assert identity.startswith("AGE-SECRET-KEY-1") and identity == identity.upper()
    assert len(identity) == 74
    assert recipient.startswith("age1") and len(recipient) == 62
    assert recipient_from_identity(identity) == recipient
    assert generate_identity()[0] != identity


def test_bech32_round_trips_and_detects_a_changed_character():
    data = os.urandom(32)
    text = crypto._bech32_encode("age", data)
    assert crypto._bech32_decode(text) == ("age", data)
    assert crypto._bech32_decode(text.upper()) == ("age", data)
    changed = text[:10] + ("q" if text[10] != "q" else "p") + text[11:]
    with pytest.raises(ValueError):
        crypto._bech32_decode(changed)
    with pytest.raises(ValueError):
        crypto._bech32_decode(text[:5] + text[5:].upper())


@pytest.mark.parametrize(
    "recipient",
    ["", "age1", "age1qqqqqqqq", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "not a recipient"],
)
def test_malformed_recipient_raises_config_error(recipient):
    with pytest.raises(ConfigError):
        EncryptingWriter(io.BytesIO(), recipients=[recipient])


def test_recipient_with_a_bad_checksum_is_named_in_the_config_error():
    _, recipient = generate_identity()
    bad = recipient[:-1] + ("q" if recipient[-1] != "q" else "p")
    with pytest.raises(ConfigError) as info:
        EncryptingWriter(io.BytesIO(), recipients=[bad])
    assert bad in str(info.value) and "checksum" in str(info.value)


def test_identity_given_as_recipient_is_refused_without_echoing_it():
    identity, _ = generate_identity()
    with pytest.raises(ConfigError) as info:
        EncryptingWriter(io.BytesIO(), recipients=[identity])
    assert identity not in str(info.value) and identity.lower() not in str(info.value)


def test_malformed_identity_raises_config_error_without_the_secret():
    identity, _ = generate_identity()
    bad = identity[:-3] + ("Q" if identity[-3] != "Q" else "P") + identity[-2:]
    for candidate in [bad, identity.lower()[:20], "AGE-SECRET-KEY-1", "hunter2"]:
        with pytest.raises(ConfigError) as info:
            recipient_from_identity(candidate)
        assert candidate not in str(info.value)
    with pytest.raises(ConfigError):
        DecryptingReader(io.BytesIO(b""), identities=[bad])


def test_load_identities_skips_comments_and_blank_lines(tmp_path):
    (id1, rcpt1), (id2, _) = generate_identity(), generate_identity()
    path = tmp_path / "keys.txt"
    path.write_text(f"# created: today\n# public key: {rcpt1}\n{id1}\n\n   \n# more\n{id2}\n")
    assert load_identities(str(path)) == [id1, id2]


def test_load_identities_reports_the_bad_line_without_its_content(tmp_path):
    identity, _ = generate_identity()
    bad = identity[:-1] + ("Q" if identity[-1] != "Q" else "P")
    path = tmp_path / "keys.txt"
    path.write_text(f"# comment\n{identity}\n{bad}\n")
    with pytest.raises(ConfigError) as info:
        load_identities(str(path))
    assert "line 3" in str(info.value)
    assert bad not in str(info.value) and identity not in str(info.value)


def test_load_identities_refuses_missing_and_empty_files(tmp_path):
    with pytest.raises(ConfigError):
        load_identities(str(tmp_path / "absent.txt"))
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing here\n")
    with pytest.raises(ConfigError):
        load_identities(str(empty))


def test_secrets_never_appear_in_exception_messages():
    identity, recipient = generate_identity()
    other_identity, _ = generate_identity()
    pw_archive, pw_header = encrypt(plaintext(70_000))
    rc_archive, _ = encrypt(plaintext(70_000), recipients=[recipient])
    failures = []

    def collect(fn):
        try:
            fn()
        except Exception as exc:  # noqa: BLE001
            failures.append(exc)
        else:
            raise AssertionError("expected an exception")

    collect(lambda: decrypt(pw_archive, passphrase=PASSWORD + "x"))
    collect(lambda: decrypt(pw_archive[:-1]))
    collect(lambda: decrypt(flip(pw_archive, len(pw_header) + 20)))
    collect(lambda: decrypt(pw_archive, expected_header_sha256="ab" * 32))
    collect(lambda: decrypt(rc_archive, identities=[other_identity]))
    collect(lambda: decrypt(rc_archive, passphrase=PASSWORD))
    collect(lambda: decrypt(flip(rc_archive, len(rc_archive) - 1), identities=[identity]))
    collect(lambda: recipient_from_identity(identity[:-1]))
    collect(lambda: EncryptingWriter(io.BytesIO(), recipients=[PASSWORD]))
    collect(lambda: EncryptingWriter(io.BytesIO(), recipients=[identity]))
    assert len(failures) == 10
    for exc in failures:
        text = f"{exc!s} {exc!r}"
        assert PASSWORD not in text
        assert identity not in text and identity.lower() not in text
        assert other_identity not in text and identity[:-1] not in text


# --------------------------------------------------------------------------- interop with `age`


def run_with_tty(argv: list[str], answers: list[tuple[bytes, bytes]], timeout: float = 60):
    """Run argv with a pseudo-terminal as its controlling tty; answer prompts as they appear.

    Return (exit code, terminal output).  age reads passphrases from /dev/tty only.
    """
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # child
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    output = b""
    pending = list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            output += data
            while pending and pending[0][0] in output:
                prompt, answer = pending.pop(0)
                output = output.replace(prompt, b"[answered]", 1)
                os.write(fd, answer)
        else:
            os.kill(pid, 9)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), output


def age_keygen(path) -> str:
    subprocess.run([AGE_KEYGEN, "-o", str(path)], check=True, capture_output=True)
    return subprocess.run(
        [AGE_KEYGEN, "-y", str(path)], check=True, capture_output=True, text=True
    ).stdout.strip()


@needs_age
@pytest.mark.parametrize("size", [0, 65536, 1_000_003])
def test_age_binary_decrypts_our_x25519_archive(tmp_path, size):
    key_file = tmp_path / "key.txt"
    their_recipient = age_keygen(key_file)
    _, extra_recipient = generate_identity()
    data = plaintext(size)
    archive, _ = encrypt(data, recipients=[extra_recipient, their_recipient])
    (tmp_path / "a.age").write_bytes(archive)
    result = subprocess.run(
        [AGE, "-d", "-i", str(key_file), str(tmp_path / "a.age")], capture_output=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == data


@needs_age
def test_age_binary_refuses_our_truncated_archive(tmp_path):
    key_file = tmp_path / "key.txt"
    archive, _ = encrypt(plaintext(200_000), recipients=[age_keygen(key_file)])
    (tmp_path / "a.age").write_bytes(archive[:-1])
    result = subprocess.run(
        [AGE, "-d", "-i", str(key_file), str(tmp_path / "a.age")], capture_output=True
    )
    assert result.returncode != 0


@needs_age
@pytest.mark.parametrize("size", [0, 65536, 1_000_003])
def test_we_decrypt_an_archive_the_age_binary_encrypted_to_our_recipient(tmp_path, size):
    identity, recipient = generate_identity()
    _, other = generate_identity()
    data = plaintext(size)
    (tmp_path / "plain").write_bytes(data)
    subprocess.run(
        [AGE, "-r", other, "-r", recipient, "-o", str(tmp_path / "a.age"), str(tmp_path / "plain")],
        check=True,
        capture_output=True,
    )
    with open(tmp_path / "a.age", "rb") as fh:
        assert DecryptingReader(fh, identities=[identity]).read() == data


@needs_age
def test_age_keygen_identity_file_loads_and_derives_the_same_recipient(tmp_path):
    key_file = tmp_path / "key.txt"
    their_recipient = age_keygen(key_file)
    identities = load_identities(str(key_file))
    assert len(identities) == 1
    assert recipient_from_identity(identities[0]) == their_recipient
    data = plaintext(100_000)
    (tmp_path / "plain").write_bytes(data)
    subprocess.run(
        [AGE, "-r", their_recipient, "-o", str(tmp_path / "a.age"), str(tmp_path / "plain")],
        check=True,
        capture_output=True,
    )
    assert decrypt((tmp_path / "a.age").read_bytes(), identities=identities) == data


@needs_age
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pty interop tested on Linux")
def test_age_binary_decrypts_our_passphrase_archive_through_a_tty(tmp_path):
    data = plaintext(200_001)
    archive, _ = encrypt(data)
    (tmp_path / "a.age").write_bytes(archive)
    out = tmp_path / "out"
    code, tty = run_with_tty(
        [AGE, "-d", "-o", str(out), str(tmp_path / "a.age")],
        [(b"passphrase", PASSWORD.encode() + b"\n")],
    )
    assert code == 0, tty
    assert out.read_bytes() == data


@needs_age
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pty interop tested on Linux")
def test_we_decrypt_an_archive_the_age_binary_encrypted_with_a_passphrase(tmp_path):
    data = plaintext(200_001)
    (tmp_path / "plain").write_bytes(data)
    answer = PASSWORD.encode() + b"\n"
    code, tty = run_with_tty(
        [AGE, "-p", "-o", str(tmp_path / "a.age"), str(tmp_path / "plain")],
        [(b"Enter passphrase", answer), (b"Confirm passphrase", answer)],
    )
    assert code == 0, tty
    archive = (tmp_path / "a.age").read_bytes()
    assert b"\n-> scrypt " in archive[:200]
    assert decrypt(archive) == data
    with pytest.raises(WrongPasswordError):
        decrypt(archive, passphrase="wrong")


def counted_derivations(monkeypatch) -> list[int]:
    """Count scrypt derivations (their work factors) from now on, with an empty read cache."""
    calls: list[int] = []
    real = crypto._scrypt_key

    def counted(passphrase, salt, work_factor):
        calls.append(work_factor)
        return real(passphrase, salt, work_factor)

    monkeypatch.setattr(crypto, "_scrypt_key", counted)
    monkeypatch.setattr(crypto, "_DERIVED", {})
    return calls


def encrypt_with(key: crypto.FileKey, data: bytes) -> bytes:
    sink = io.BytesIO()
    writer = EncryptingWriter(sink, key=key)
    writer.write(data)
    writer.close()
    return sink.getvalue()


def test_a_file_key_encrypts_one_file_only_as_age_requires_a_new_salt_for_each_file(monkeypatch):
    derivations = counted_derivations(monkeypatch)
    key = crypto.FileKey(passphrase=PASSWORD, work_factor=WF)
    archive = encrypt_with(key, b"the archive" * 9000)
    assert derivations == [WF], "the key is derived when the FileKey is made, at the work factor asked for"
    assert archive.startswith(key.header)
    with pytest.raises(ValueError, match="new salt or ephemeral share"):
        EncryptingWriter(io.BytesIO(), key=key)
    index = encrypt_with(crypto.FileKey(passphrase=PASSWORD, work_factor=WF), b"the index")
    salt = lambda data: data.split(b"\n")[1]  # "-> scrypt <salt> <work factor>"
    assert salt(archive).startswith(b"-> scrypt ") and salt(archive) != salt(index), "each file its own salt"
    assert decrypt(archive) == b"the archive" * 9000 and decrypt(index) == b"the index"
    with pytest.raises(WrongPasswordError):
        decrypt(index, passphrase="wrong")


def gated_derivations(monkeypatch):
    """Make each scrypt derivation wait for the returned event; record the thread of each."""
    import threading

    gate, threads, real = threading.Event(), [], crypto._scrypt_key

    def gated(passphrase, salt, work_factor):
        threads.append(threading.current_thread().name)
        assert gate.wait(30), "the test never opened the gate"
        return real(passphrase, salt, work_factor)

    monkeypatch.setattr(crypto, "_scrypt_key", gated)
    return gate, threads


def test_pending_file_keys_are_made_in_a_thread_in_order_each_with_its_own_salt(monkeypatch):
    gate, threads = gated_derivations(monkeypatch)
    archive_key = crypto.PendingFileKey(passphrase=PASSWORD, work_factor=WF)
    index_key = crypto.PendingFileKey(passphrase=PASSWORD, work_factor=WF, after=archive_key)
    time.sleep(0.05)
    assert not archive_key.ready() and not index_key.ready(), "made in the background, not when asked for"
    assert threads == ["bakthat-file-key"], "the second waits for the first: one derivation at a time"
    gate.set()
    first, second = archive_key.result(), index_key.result()
    assert threads == ["bakthat-file-key", "bakthat-file-key"] and archive_key.ready()
    archive, index = encrypt_with(first, b"the archive"), encrypt_with(second, b"the index")
    salt = lambda data: data.split(b"\n")[1]
    assert salt(archive) != salt(index), "each pending key is a file key of its own"
    assert decrypt(archive) == b"the archive" and decrypt(index) == b"the index"
    with pytest.raises(ValueError, match="new salt or ephemeral share"):
        EncryptingWriter(io.BytesIO(), key=first)


def test_a_pending_file_key_raises_what_making_it_raised_when_its_result_is_asked_for():
    bad = crypto.PendingFileKey(passphrase=PASSWORD, work_factor=MIN_WORK_FACTOR - 1)
    with pytest.raises(ValueError, match="work_factor"):
        bad.result()
    with pytest.raises(ConfigError):
        crypto.PendingFileKey(recipients=["age1notarecipient"]).result()
    with pytest.raises(ValueError, match="work_factor"):
        crypto.KeyAwaitingWriter(io.BytesIO(), bad).close()


def test_a_key_awaiting_writer_holds_up_to_its_limit_then_waits_and_writes_the_same_age_file(monkeypatch):
    import threading

    gate, _ = gated_derivations(monkeypatch)
    sink = io.BytesIO()
    pending = crypto.PendingFileKey(passphrase=PASSWORD, work_factor=WF)
    writer = crypto.KeyAwaitingWriter(sink, pending, limit=3 * CHUNK)
    parts = [random.Random(number).randbytes(CHUNK) for number in range(5)]
    for part in parts[:3]:
        assert writer.write(part) == CHUNK
    assert sink.getvalue() == b"", "nothing reaches the sink before the header can be written"
    with pytest.raises(ValueError, match="still being made"):
        writer.header
    fourth = threading.Thread(target=writer.write, args=(parts[3],))
    fourth.start()
    fourth.join(0.2)
    assert fourth.is_alive() and sink.getvalue() == b"", "beyond the limit, the write waits for the key"
    gate.set()
    fourth.join(10)
    assert not fourth.is_alive()
    assert sink.getvalue().startswith(writer.header)
    writer.write(parts[4])
    writer.close()
    archive = sink.getvalue()
    assert archive.startswith(AGE_MAGIC) and decrypt(archive) == b"".join(parts), "everything held, in order"
    assert len(archive) == len(encrypt(b"".join(parts))[0]), "the same layout as an EncryptingWriter's"


def test_a_key_awaiting_writer_writes_straight_through_once_the_key_is_made():
    pending = crypto.PendingFileKey(passphrase=PASSWORD, work_factor=WF)
    pending.result()
    sink = io.BytesIO()
    writer = crypto.KeyAwaitingWriter(sink, pending)
    writer.write(b"x" * (CHUNK + 1))
    assert len(sink.getvalue()) > len(writer.header), "encrypted at once, not held"
    writer.close()
    assert decrypt(sink.getvalue()) == b"x" * (CHUNK + 1)


def test_a_file_key_to_recipients_is_one_file_s_too_each_file_its_own_ephemeral_share():
    _, recipient = generate_identity()
    first, second = (encrypt_with(crypto.FileKey(recipients=[recipient]), b"x") for _ in range(2))
    share = lambda data: data.split(b"\n")[1]  # "-> X25519 <ephemeral share>"
    assert share(first).startswith(b"-> X25519 ") and share(first) != share(second)


def test_a_file_key_is_given_instead_of_a_passphrase_not_beside_it():
    key = crypto.FileKey(passphrase=PASSWORD, work_factor=WF)
    with pytest.raises(ValueError, match="not both"):
        EncryptingWriter(io.BytesIO(), key=key, passphrase=PASSWORD)
    with pytest.raises(ValueError, match="work_factor"):
        crypto.FileKey(passphrase=PASSWORD, work_factor=MIN_WORK_FACTOR - 1)
    assert "secret" in repr(key) and PASSWORD not in repr(key)


@needs_age
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pty interop tested on Linux")
def test_age_binary_decrypts_a_file_written_with_a_file_key_made_beforehand(tmp_path):
    key = crypto.FileKey(passphrase=PASSWORD, work_factor=WF)
    (tmp_path / "b.age").write_bytes(encrypt_with(key, b"second file"))
    out = tmp_path / "out"
    code, tty = run_with_tty(
        [AGE, "-d", "-o", str(out), str(tmp_path / "b.age")], [(b"passphrase", PASSWORD.encode() + b"\n")]
    )
    assert code == 0, tty
    assert out.read_bytes() == b"second file"


def test_a_single_identity_string_is_refused_rather_than_read_as_a_sequence_of_characters():
    identity, recipient = generate_identity()
    archive, _ = encrypt(b"data", recipients=[recipient])
    with pytest.raises(TypeError, match="identities must be a sequence of strings, not a single string"):
        DecryptingReader(io.BytesIO(archive), identities=identity)
    assert decrypt(archive, identities=[identity]) == b"data"


def test_an_archive_cut_inside_the_payload_nonce_says_the_nonce_is_missing():
    archive, header = encrypt(b"data")
    for cut in (len(header), len(header) + 15):
        with pytest.raises(IntegrityError, match="payload nonce is missing"):
            decrypt(archive[:cut])


def test_a_low_order_x25519_share_is_damage_not_a_crash():
    identity, _ = generate_identity()
    stanza = crypto._Stanza("X25519", (crypto._b64encode(bytes(32)).decode("ascii"),), bytes(32))
    archive = craft(os.urandom(16), [stanza], [(b"data", True)])
    with pytest.raises(IntegrityError, match="invalid X25519 share"):
        DecryptingReader(io.BytesIO(archive), identities=[identity])


def test_a_stream_that_is_not_age_is_refused_after_its_first_bytes_not_after_a_megabyte():
    class Endless(io.RawIOBase):
        def __init__(self):
            self.bytes_read = 0

        def readable(self):
            return True

        def read(self, size=-1):
            size = 4096 if size < 0 else size
            self.bytes_read += size
            return b"x" * size

    source = Endless()
    with pytest.raises(IntegrityError, match="missing age v1 magic line"):
        DecryptingReader(source, passphrase=PASSWORD)
    assert source.bytes_read <= 2 * 4096


def test_a_header_that_never_ends_is_refused_once_it_passes_a_mebibyte():
    class EndlessHeader(io.RawIOBase):
        def __init__(self):
            self.bytes_read = 0

        def readable(self):
            return True

        def read(self, size=-1):
            size = 4096 if size < 0 else size
            assert self.bytes_read < 4 << 20, "the reader keeps reading a header that never ends"
            chunk = (AGE_MAGIC if self.bytes_read == 0 else b"") + b"-> stanza argument\n" * (size // 19 + 1)
            chunk = chunk[:size]
            self.bytes_read += len(chunk)
            return chunk

    source = EndlessHeader()
    with pytest.raises(IntegrityError, match="header too large"):
        DecryptingReader(source, passphrase=PASSWORD)
    assert source.bytes_read <= (1 << 20) + 2 * 4096


def test_a_header_cut_short_is_refused_as_truncated_without_reading_past_the_end():
    archive, header = encrypt(b"data")
    source = EndsOnce(archive[: len(header) - 20])
    with pytest.raises(IntegrityError, match="header is truncated"):
        DecryptingReader(source, passphrase=PASSWORD)


def test_an_archive_cut_within_a_chunk_s_tag_says_it_ends_in_the_middle_of_a_chunk():
    data = plaintext(CHUNK + 100)
    archive, header = encrypt(data)
    reader = DecryptingReader(io.BytesIO(archive[: chunk_offset(header, 1) + 10]), passphrase=PASSWORD)
    assert reader.read(CHUNK) == data[:CHUNK]
    with pytest.raises(IntegrityError, match="^archive is truncated: it ends in the middle of a chunk$"):
        reader.read(1)


def test_an_archive_cut_after_a_whole_chunk_says_it_ends_before_its_last_chunk():
    data = plaintext(2 * CHUNK + 5)
    archive, header = encrypt(data)
    reader = DecryptingReader(io.BytesIO(archive[: chunk_offset(header, 2)]), passphrase=PASSWORD)
    assert reader.read(CHUNK) == data[:CHUNK]
    with pytest.raises(IntegrityError, match="^archive is truncated: it ends before its last chunk$"):
        reader.read(CHUNK)


def test_scrypt_derivations_of_several_threads_never_overlap(monkeypatch):
    """Each derivation holds 128 * r * N bytes: writers and readers in threads of one
    process derive one at a time, so a backup never holds two at once."""
    import threading

    spans: list[tuple[float, float]] = []
    real = crypto.Scrypt

    class Timed:  # the library's Scrypt, each derivation's span recorded
        def __init__(self, **kwargs: object) -> None:
            self._kdf = real(**kwargs)

        def derive(self, key_material: bytes) -> bytes:
            start = time.perf_counter()
            try:
                return self._kdf.derive(key_material)
            finally:
                spans.append((start, time.perf_counter()))

    monkeypatch.setattr(crypto, "Scrypt", Timed)
    salt = os.urandom(16)
    jobs = [lambda: crypto.FileKey(passphrase="pw", work_factor=15) for _ in range(3)]
    jobs.append(lambda: crypto._read_wrap_key("pw", salt, 15))
    threads = [threading.Thread(target=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    spans.sort()
    assert len(spans) == 4
    assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:]))
