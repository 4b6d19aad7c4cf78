"""The age v1 header grammar, rule by rule: each malformed header is refused with the
reason of its own rule (bakthat.crypto's header parser: _parse_header, _check_stanzas,
_b64decode), and reaches the caller of DecryptingReader as an IntegrityError.

docs/restore-safety.md lists every check with the test that fails without it.
"""

from __future__ import annotations

import base64
import io

import pytest

from bakthat.crypto import AGE_MAGIC, DecryptingReader, _b64decode, _check_stanzas, _Malformed, _parse_header, _Stanza
from bakthat.errors import IntegrityError

MAC = base64.b64encode(bytes(range(32))).rstrip(b"=")  # 43 characters, canonical
SALT = base64.b64encode(bytes(16)).rstrip(b"=").decode()
SHARE = base64.b64encode(bytes(32)).rstrip(b"=").decode()
BODY = bytes(32)  # a wrapped file key: 16 bytes and a 16-byte tag


def header(*lines: bytes) -> bytes:
    return AGE_MAGIC + b"".join(line + b"\n" for line in lines)


def refused(data: bytes, reason: str) -> None:
    with pytest.raises(_Malformed) as raised:
        _parse_header(data)
    assert str(raised.value) == reason


def test_a_well_formed_header_parses_into_stanzas_the_mac_and_what_it_covers():
    data = header(b"-> X25519 " + SHARE.encode(), base64.b64encode(BODY).rstrip(b"="), b"--- " + MAC)
    stanzas, mac, covered = _parse_header(data)
    assert [(s.type, s.args, s.body) for s in stanzas] == [("X25519", (SHARE,), BODY)]
    assert mac == bytes(range(32))
    assert covered == data[: data.index(b"\n---") + 4]


def test_the_magic_line_must_open_the_header_and_a_newline_end_it():
    refused(b"age-encryption.org/v2\n--- " + MAC + b"\n", "missing age v1 magic line")
    refused(header(b"-> a", b"", b"--- " + MAC)[:-1], "missing age v1 magic line")


def test_a_header_without_a_mac_line_is_refused():
    refused(header(b"-> a", b""), "missing MAC line")


@pytest.mark.parametrize("line", [b"-> a  b", b"-> a \x01", b"-> ", b"-> a \xc3\xa9"])
def test_a_stanza_argument_must_be_printable_ascii_and_not_empty(line):
    refused(header(line, b"", b"--- " + MAC), "invalid stanza argument")


def test_a_stanza_body_ends_with_a_line_shorter_than_64_columns():
    refused(header(b"-> a", b"A" * 64), "unterminated stanza body")


def test_a_stanza_body_line_is_at_most_64_columns():
    refused(header(b"-> a", b"A" * 65, b"--- " + MAC), "stanza body line too long")


def test_nothing_may_follow_the_mac_line():
    refused(header(b"-> a", b"", b"--- " + MAC, b"more"), "data after the MAC line")


def test_the_mac_is_32_bytes():
    short = base64.b64encode(bytes(31)).rstrip(b"=")
    refused(header(b"-> a", b"", b"--- " + short), "MAC of wrong length")


def test_a_header_needs_at_least_one_recipient_stanza():
    refused(header(b"--- " + MAC), "no recipient stanza")


def test_a_line_that_is_neither_a_stanza_nor_the_mac_is_refused():
    refused(header(b"hello", b"--- " + MAC), "unexpected header line")


# -- base64: unpadded and canonical, as age writes it ---------------------------------------


@pytest.mark.parametrize("text", [b"AAAA=", b"AA AA", b"A", b"AAAAA", b"A-_A"])
def test_base64_that_is_padded_spaced_url_safe_or_of_impossible_length_is_refused(text):
    with pytest.raises(_Malformed, match="^invalid base64$"):
        _b64decode(text)


def test_base64_with_non_zero_trailing_bits_is_refused_as_non_canonical():
    assert _b64decode(b"AA") == b"\x00"
    with pytest.raises(_Malformed, match="^non-canonical base64$"):
        _b64decode(b"AB")  # decodes to the same byte: accepting it would make headers malleable


def test_a_mac_written_non_canonically_is_refused_even_though_it_decodes_to_the_right_bytes():
    from bakthat.crypto import EncryptingWriter

    sink = io.BytesIO()
    with EncryptingWriter(sink, passphrase="pw", work_factor=10) as writer:
        writer.write(b"data")
    archive = sink.getvalue()
    mac_line = archive.index(b"\n--- ") + 5
    mac_end = archive.index(b"\n", mac_line)
    last = archive[mac_end - 1 : mac_end]
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    value = alphabet.index(last)
    assert value % 4 == 0  # 32 bytes in 43 characters: the last one carries 2 unused bits
    tampered = archive[: mac_end - 1] + alphabet[value + 1 : value + 2] + archive[mac_end:]
    with pytest.raises(IntegrityError, match="non-canonical base64"):
        DecryptingReader(io.BytesIO(tampered), passphrase="pw")


# -- the stanzas bakthat reads ---------------------------------------------------------------


def stanza(kind, *args, body=BODY):
    return _Stanza(kind, tuple(args), body)


@pytest.mark.parametrize(
    ("stanzas", "reason"),
    [
        ([stanza("scrypt", SALT, "10"), stanza("X25519", SHARE)], "an scrypt stanza must be the only stanza"),
        ([stanza("scrypt", SALT)], "invalid scrypt stanza"),
        ([stanza("scrypt", SALT, "010")], "invalid scrypt stanza"),
        ([stanza("scrypt", SALT, "10", "x")], "invalid scrypt stanza"),
        ([stanza("scrypt", base64.b64encode(bytes(15)).rstrip(b"=").decode(), "10")], "invalid scrypt salt"),
        ([stanza("scrypt", SALT, "10", body=bytes(31))], "invalid scrypt stanza body"),
        ([stanza("X25519")], "invalid X25519 stanza"),
        ([stanza("X25519", base64.b64encode(bytes(31)).rstrip(b"=").decode())], "invalid X25519 stanza"),
        ([stanza("X25519", SHARE, body=bytes(33))], "invalid X25519 stanza body"),
    ],
)
def test_an_ill_formed_stanza_of_a_known_type_is_refused(stanzas, reason):
    with pytest.raises(_Malformed) as raised:
        _check_stanzas(stanzas)
    assert str(raised.value) == reason


def test_well_formed_stanzas_and_unknown_types_pass():
    _check_stanzas([stanza("scrypt", SALT, "18")])
    _check_stanzas([stanza("X25519", SHARE), stanza("ssh-ed25519", "abc", body=b"anything")])
