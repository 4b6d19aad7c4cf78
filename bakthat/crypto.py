"""Streaming authenticated encryption in the age v1 file format.

bakthat archives are encrypted as standard age v1 files (https://age-encryption.org/v1),
so the stock ``age`` tool opens a bakthat archive and bakthat opens an ``age`` file.

An age file is a text header followed by a binary payload::

    age-encryption.org/v1
    -> scrypt <base64 salt> <log2 work factor>     (or one "-> X25519 <share>" per recipient)
    <base64 body: the 16-byte file key, wrapped>
    --- <base64 HMAC-SHA256 of the header up to and including "---">
    <16-byte nonce><chunk 0><chunk 1>...<last chunk>

Each chunk is at most 64 KiB of plaintext sealed with ChaCha20-Poly1305 under a key
derived from the file key and the nonce; the chunk's AEAD nonce is an 11-byte big-endian
counter followed by a flag byte that is 1 on the last chunk only.  That flag is what makes
truncation detectable: a stream that ends without a chunk sealed as "last" is refused.

All primitives come from the ``cryptography`` package.  Error messages never contain the
passphrase or an identity (secret key).

A :class:`FileKey` (the file key and the header wrapping it) encrypts exactly one
file: the age specification requires a new scrypt salt or X25519 ephemeral share for
each stanza and each file, so a backup's archive and its file index each get their
own (with a passphrase, two scrypt derivations per backup).  A backup makes them in a
thread (:class:`PendingFileKey`) while it walks, its first compressed bytes waiting for
the archive's key in memory (:class:`KeyAwaitingWriter`).  Reading derives once per
stanza and process (a file read twice in one process, as a chain or a check may).

This module is longer than most (about 950 lines) because the age format is one
contract: the header parser with its safety checks, the scrypt and X25519 stanzas, the
file key they wrap, and the streaming writer and reader must agree byte for byte, and
each check of the reader is tested against the writer here; the primitives themselves
are the library's.  (Moving the bech32 key encoding out, the one separable part, would
leave about 750 lines and split the recipient checks from the stanzas that use them.)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from bakthat.errors import ConfigError, IntegrityError, PasswordRequiredError, WrongPasswordError

__all__ = [
    "AGE_MAGIC",
    "DEFAULT_WORK_FACTOR",
    "MAX_WORK_FACTOR",
    "MIN_WORK_FACTOR",
    "DecryptingReader",
    "EncryptingWriter",
    "FileKey",
    "KeyAwaitingWriter",
    "PendingFileKey",
    "generate_identity",
    "is_age",
    "load_identities",
    "recipient_from_identity",
]

DEFAULT_WORK_FACTOR = 18
"""scrypt log2(N) used when writing a passphrase-encrypted archive."""

MIN_WORK_FACTOR = 10
"""Archives whose scrypt log2(N) is below this are refused on read (weakened KDF)."""

MAX_WORK_FACTOR = 22
"""Archives whose scrypt log2(N) is above this are refused on read (memory/CPU DoS)."""

AGE_MAGIC = b"age-encryption.org/v1\n"

_CHUNK = 64 * 1024  # plaintext bytes per STREAM chunk
_TAG = 16  # Poly1305 tag
_CT_CHUNK = _CHUNK + _TAG  # ciphertext bytes per full chunk
#: Sealed chunks are handed to the sink together once they hold this many bytes: one
#: write (a hash update, a system call) per 16 chunks rather than one per chunk.
_WRITE_BATCH = 16 * _CT_CHUNK
_FILE_KEY_LEN = 16
_PAYLOAD_NONCE_LEN = 16
_MAX_HEADER = 1024 * 1024  # a header larger than this is refused as damaged
_HEADER_READ = 4096
_ZERO_NONCE = bytes(12)
_SCRYPT_LABEL = b"age-encryption.org/v1/scrypt"
_X25519_LABEL = b"age-encryption.org/v1/X25519"
_IDENTITY_HRP = "age-secret-key-"
_RECIPIENT_HRP = "age"

_B64_RE = re.compile(rb"[A-Za-z0-9+/]*")
_ARG_RE = re.compile(rb"[\x21-\x7e]+")
_WORK_FACTOR_RE = re.compile(r"[1-9][0-9]?")


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int | None: ...


class _Source(Protocol):
    def read(self, n: int = ..., /) -> bytes: ...


class _Malformed(Exception):
    """Internal: the header does not follow the age v1 grammar."""


# --------------------------------------------------------------------------- encoding


def _b64encode(data: bytes) -> bytes:
    """Given bytes, return standard base64 without ``=`` padding."""
    return base64.b64encode(data).rstrip(b"=")


def _b64decode(text: bytes) -> bytes:
    """Given unpadded canonical base64, return its bytes. Raise _Malformed if it is not."""
    if not _B64_RE.fullmatch(text) or len(text) % 4 == 1:
        raise _Malformed("invalid base64")
    try:
        data = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except binascii.Error as exc:  # pragma: no cover - the regex already filters
        raise _Malformed("invalid base64") from exc
    if _b64encode(data) != text:  # non-zero trailing bits: not canonical
        raise _Malformed("non-canonical base64")
    return data


_BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_VALUES = {c: i for i, c in enumerate(_BECH32_CHARSET)}
_BECH32_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _bech32_polymod(values: Sequence[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = ((chk & 0x1FFFFFF) << 5) ^ value
        for i, gen in enumerate(_BECH32_GEN):
            if (top >> i) & 1:
                chk ^= gen
    return chk


def _bech32_hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert_bits(data: Sequence[int], from_bits: int, to_bits: int, pad: bool) -> list[int]:
    """Given groups of from_bits, return groups of to_bits. Raise ValueError on bad padding."""
    acc = 0
    bits = 0
    out: list[int] = []
    maxv = (1 << to_bits) - 1
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (to_bits - bits)) & maxv)
    elif bits >= from_bits or (acc << (to_bits - bits)) & maxv:
        raise ValueError("invalid padding")
    return out


def _bech32_encode(hrp: str, data: bytes) -> str:
    """Given a lowercase human-readable part and bytes, return the lowercase bech32 string."""
    words = _convert_bits(data, 8, 5, pad=True)
    polymod = _bech32_polymod(_bech32_hrp_expand(hrp) + words + [0] * 6) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_BECH32_CHARSET[w] for w in words + checksum)


def _bech32_decode(text: str) -> tuple[str, bytes]:
    """Given a bech32 string, return (lowercase hrp, bytes). Raise ValueError naming the flaw."""
    if not text or any(ord(c) < 33 or ord(c) > 126 for c in text):
        raise ValueError("invalid characters")
    if text.lower() != text and text.upper() != text:
        raise ValueError("mixed case")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1:
        raise ValueError("missing separator")
    if len(text) - pos - 1 < 6:
        raise ValueError("too short")
    hrp = text[:pos]
    try:
        words = [_BECH32_VALUES[c] for c in text[pos + 1 :]]
    except KeyError:
        raise ValueError("invalid character in data part") from None
    if _bech32_polymod(_bech32_hrp_expand(hrp) + words) != 1:
        raise ValueError("bad checksum")
    return hrp, bytes(_convert_bits(words[:-6], 5, 8, pad=False))


def _parse_recipient(recipient: str) -> bytes:
    """Given an ``age1...`` recipient, return its 32-byte X25519 public key.

    Raise ConfigError (naming the recipient, which is public) if it is malformed.
    """
    if not isinstance(recipient, str):
        raise ConfigError(f"recipient must be a string, not {type(recipient).__name__}")
    text = recipient.strip()
    if text.upper().startswith("AGE-SECRET-KEY-"):
        raise ConfigError(
            "an age identity (secret key) was given where a recipient (age1...) is expected"
        )
    if not text.lower().startswith("age1"):
        # Not shaped like a public recipient: do not echo it, it may be a secret.
        raise ConfigError("malformed age recipient: it must start with 'age1'")
    try:
        hrp, key = _bech32_decode(text)
    except ValueError as exc:
        raise ConfigError(f"malformed age recipient {text!r}: {exc}") from None
    if hrp != _RECIPIENT_HRP or len(key) != 32:
        raise ConfigError(f"malformed age recipient {text!r}: not a 32-byte X25519 key")
    return key


def _parse_identity(identity: str) -> X25519PrivateKey:
    """Given an ``AGE-SECRET-KEY-1...`` identity, return its X25519 private key.

    Raise ConfigError if it is malformed; the message never contains the identity.
    """
    if not isinstance(identity, str):
        raise ConfigError(f"identity must be a string, not {type(identity).__name__}")
    try:
        hrp, key = _bech32_decode(identity.strip())
    except ValueError as exc:
        raise ConfigError(f"malformed age identity: {exc}") from None
    if hrp != _IDENTITY_HRP:
        raise ConfigError("malformed age identity: it must start with 'AGE-SECRET-KEY-1'")
    if len(key) != 32:
        raise ConfigError("malformed age identity: wrong key length")
    return X25519PrivateKey.from_private_bytes(key)


# --------------------------------------------------------------------------- key derivation


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """Given key material, salt and info, return 32 bytes of HKDF-SHA256."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt or None, info=info).derive(ikm)


#: One scrypt derivation at a time in this process: each takes 128 * r * N bytes (256 MiB
#: at the default work factor), and a backup makes its file keys in threads while its
#: planner may be reading an index, so without this two could overlap (512 MiB).
_SCRYPT_MEMORY = threading.Lock()


def _scrypt_key(passphrase: str, salt: bytes, work_factor: int) -> bytes:
    """Given a passphrase, 16-byte salt and log2(N), return the 32-byte scrypt wrap key.
    Derivations of several threads run one after the other (memory)."""
    kdf = Scrypt(salt=_SCRYPT_LABEL + salt, length=32, n=1 << work_factor, r=8, p=1)
    with _SCRYPT_MEMORY:
        return kdf.derive(passphrase.encode("utf-8"))


#: Wrap keys derived by this process for reading, by (salted passphrase digest, salt,
#: work factor): a file read twice in one process (a chain, a check) derives once.  A
#: few entries: a chain or a check reads a handful.
_DERIVED: dict[tuple[bytes, bytes, int], bytes] = {}
_DERIVED_MAX = 16


_DERIVING = threading.Lock()  # one derivation at a time: a second reader of the stanza waits for it


def _read_wrap_key(passphrase: str, salt: bytes, work_factor: int) -> bytes:
    """:func:`_scrypt_key`, derived at most once per process for the same stanza
    (readers in several threads included)."""
    tag = (hashlib.sha256(salt + passphrase.encode("utf-8")).digest(), salt, work_factor)
    with _DERIVING:
        found = _DERIVED.get(tag)
        if found is None:
            found = _scrypt_key(passphrase, salt, work_factor)
            if len(_DERIVED) >= _DERIVED_MAX:
                _DERIVED.pop(next(iter(_DERIVED)), None)
            _DERIVED[tag] = found
    return found


def _stream_nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


# --------------------------------------------------------------------------- header


@dataclass(frozen=True)
class _Stanza:
    type: str
    args: tuple[str, ...]
    body: bytes


def _encode_stanza(stanza: _Stanza) -> bytes:
    """Given a stanza, return its header lines (argument line and wrapped base64 body)."""
    line = " ".join((stanza.type, *stanza.args)).encode("ascii")
    body = _b64encode(stanza.body)
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    if len(body) % 64 == 0:
        lines.append(b"")  # the body always ends with a line shorter than 64 columns
    return b"-> " + line + b"\n" + b"".join(part + b"\n" for part in lines)


def _header_mac(file_key: bytes, header_through_dashes: bytes) -> bytes:
    mac_key = _hkdf(file_key, b"", b"header")
    return hmac.new(mac_key, header_through_dashes, hashlib.sha256).digest()


def _build_header(file_key: bytes, stanzas: Sequence[_Stanza]) -> bytes:
    """Given the file key and stanzas, return the full header through the MAC line."""
    head = AGE_MAGIC + b"".join(_encode_stanza(s) for s in stanzas) + b"---"
    return head + b" " + _b64encode(_header_mac(file_key, head)) + b"\n"


def _scrypt_stanza(
    file_key: bytes, passphrase: str, work_factor: int, salt: bytes | None = None
) -> _Stanza:
    salt = os.urandom(16) if salt is None else salt
    wrap_key = _scrypt_key(passphrase, salt, work_factor)
    body = ChaCha20Poly1305(wrap_key).encrypt(_ZERO_NONCE, file_key, None)
    return _Stanza("scrypt", (_b64encode(salt).decode("ascii"), str(work_factor)), body)


def _x25519_stanza(file_key: bytes, recipient_key: bytes) -> _Stanza:
    ephemeral = X25519PrivateKey.generate()
    share = ephemeral.public_key().public_bytes_raw()
    try:
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient_key))
    except ValueError:  # all-zero shared secret: a low-order point, not a real key
        raise ConfigError(
            f"age recipient {_bech32_encode(_RECIPIENT_HRP, recipient_key)!r} is not a usable key"
        ) from None
    wrap_key = _hkdf(shared, share + recipient_key, _X25519_LABEL)
    body = ChaCha20Poly1305(wrap_key).encrypt(_ZERO_NONCE, file_key, None)
    return _Stanza("X25519", (_b64encode(share).decode("ascii"),), body)


def _parse_header(header: bytes) -> tuple[list[_Stanza], bytes, bytes]:
    """Given complete header bytes (through the MAC line's newline), return
    (stanzas, mac, the bytes the MAC covers: the header up to and including "---").

    Raise _Malformed if the bytes do not follow the age v1 header grammar.
    """
    if not header.startswith(AGE_MAGIC) or not header.endswith(b"\n"):
        raise _Malformed("missing age v1 magic line")
    lines = header[len(AGE_MAGIC) : -1].split(b"\n")
    stanzas: list[_Stanza] = []
    i = 0
    while True:
        if i >= len(lines):
            raise _Malformed("missing MAC line")
        line = lines[i]
        i += 1
        if line.startswith(b"-> "):
            args = line[3:].split(b" ")
            if not all(_ARG_RE.fullmatch(a) for a in args):
                raise _Malformed("invalid stanza argument")
            body_lines: list[bytes] = []
            while True:
                if i >= len(lines):
                    raise _Malformed("unterminated stanza body")
                body_line = lines[i]
                i += 1
                if len(body_line) > 64:
                    raise _Malformed("stanza body line too long")
                body_lines.append(body_line)
                if len(body_line) < 64:
                    break
            body = _b64decode(b"".join(body_lines))
            decoded = [a.decode("ascii") for a in args]
            stanzas.append(_Stanza(decoded[0], tuple(decoded[1:]), body))
        elif line.startswith(b"--- "):
            if i != len(lines):
                raise _Malformed("data after the MAC line")
            mac = _b64decode(line[4:])
            if len(mac) != 32:
                raise _Malformed("MAC of wrong length")
            if not stanzas:
                raise _Malformed("no recipient stanza")
            return stanzas, mac, header[: len(header) - len(line) - 1 + 3]
        else:
            raise _Malformed("unexpected header line")


def _check_stanzas(stanzas: Sequence[_Stanza]) -> None:
    """Given parsed stanzas, raise _Malformed if a stanza bakthat knows is ill-formed."""
    types = [s.type for s in stanzas]
    if "scrypt" in types and len(stanzas) != 1:
        raise _Malformed("an scrypt stanza must be the only stanza")
    for stanza in stanzas:
        if stanza.type == "scrypt":
            if len(stanza.args) != 2 or not _WORK_FACTOR_RE.fullmatch(stanza.args[1]):
                raise _Malformed("invalid scrypt stanza")
            if len(_b64decode(stanza.args[0].encode("ascii"))) != 16:
                raise _Malformed("invalid scrypt salt")
            if len(stanza.body) != _FILE_KEY_LEN + _TAG:
                raise _Malformed("invalid scrypt stanza body")
        elif stanza.type == "X25519":
            if len(stanza.args) != 1 or len(_b64decode(stanza.args[0].encode("ascii"))) != 32:
                raise _Malformed("invalid X25519 stanza")
            if len(stanza.body) != _FILE_KEY_LEN + _TAG:
                raise _Malformed("invalid X25519 stanza body")


def _damaged(reason: str) -> IntegrityError:
    return IntegrityError(f"not an age archive or damaged header ({reason})")


# --------------------------------------------------------------------------- public helpers


def is_age(prefix: bytes) -> bool:
    """Given the first bytes of a file, return True if they begin with the age v1 magic line.

    A prefix shorter than :data:`AGE_MAGIC` (22 bytes) gives False.
    """
    return bytes(prefix[: len(AGE_MAGIC)]) == AGE_MAGIC


def generate_identity() -> tuple[str, str]:
    """Given nothing, return a new (identity ``AGE-SECRET-KEY-1...``, recipient ``age1...``)."""
    key = X25519PrivateKey.generate()
    identity = _bech32_encode(_IDENTITY_HRP, key.private_bytes_raw()).upper()
    recipient = _bech32_encode(_RECIPIENT_HRP, key.public_key().public_bytes_raw())
    return identity, recipient


def recipient_from_identity(identity: str) -> str:
    """Given an ``AGE-SECRET-KEY-1...`` identity, return its ``age1...`` recipient.

    Raise ConfigError if the identity is malformed (the message never contains it).
    """
    public = _parse_identity(identity).public_key().public_bytes_raw()
    return _bech32_encode(_RECIPIENT_HRP, public)


def load_identities(path: str) -> list[str]:
    """Given the path of an age identity file, return the identities it holds, in order.

    Blank lines and lines starting with ``#`` are ignored (``age-keygen`` output works as is).
    Raise ConfigError if the file cannot be read, holds no identity, or a line is not an
    X25519 identity; the message names the file and line, never the line's content.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise ConfigError(f"cannot read identity file {path}: {reason}") from None
    identities: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            _parse_identity(line)
        except ConfigError as exc:
            raise ConfigError(f"identity file {path}, line {lineno}: {exc}") from None
        identities.append(line)
    if not identities:
        raise ConfigError(f"identity file {path} holds no identity")
    return identities


# --------------------------------------------------------------------------- writer


class FileKey:
    """The file key of age files and the header that wraps it, made once.

    Given either a passphrase (one scrypt stanza with a fresh salt: one key
    derivation, at ``work_factor``) or a non-empty sequence of ``age1...`` recipients
    (one X25519 stanza each, with a fresh ephemeral share), draw a random 16-byte file
    key and build the header, before the file is written (so the derivation's cost is
    paid, and its errors raised, up front).  One :class:`EncryptingWriter` uses it:
    the age specification requires a new salt or ephemeral share for each file, so a
    second writer given the same key raises ValueError.

    Raise ValueError unless exactly one of passphrase / recipients is given, or if the
    work factor is outside [MIN_WORK_FACTOR, MAX_WORK_FACTOR]; raise ConfigError if a
    recipient is malformed.
    """

    header: bytes
    """The header every file encrypted with this key starts with, through ``--- <mac>\\n``."""

    def __init__(
        self,
        *,
        passphrase: str | None = None,
        recipients: Sequence[str] = (),
        work_factor: int = DEFAULT_WORK_FACTOR,
    ) -> None:
        if isinstance(recipients, (str, bytes)):
            raise TypeError("recipients must be a sequence of strings, not a single string")
        recipients = list(recipients)
        if bool(passphrase) == bool(recipients):
            raise ValueError(
                "give exactly one of a non-empty passphrase or a non-empty list of recipients"
            )
        if (
            isinstance(work_factor, bool)
            or not isinstance(work_factor, int)
            or not MIN_WORK_FACTOR <= work_factor <= MAX_WORK_FACTOR
        ):
            raise ValueError(
                f"work_factor must be an integer from {MIN_WORK_FACTOR} to {MAX_WORK_FACTOR}"
            )
        keys: list[bytes] = []
        for recipient in recipients:
            key = _parse_recipient(recipient)
            if key not in keys:
                keys.append(key)
        self._file_key = os.urandom(_FILE_KEY_LEN)
        if passphrase:
            stanzas = [_scrypt_stanza(self._file_key, passphrase, work_factor)]
        else:
            stanzas = [_x25519_stanza(self._file_key, key) for key in keys]
        self.header = _build_header(self._file_key, stanzas)
        self._used = False

    def __repr__(self) -> str:
        return "FileKey(<secret>)"


class PendingFileKey:
    """A :class:`FileKey` being made in a thread of its own, so that its scrypt
    derivation (which releases the GIL) overlaps other work.

    Given :class:`FileKey`'s arguments, start making the key at once; :meth:`result`
    returns it, or raises what :class:`FileKey` raised.  With ``after``, the key is
    made once that one is (a backup's archive key comes first, its index key second:
    one derivation at a time, the first needed first).  Each pending key is a FileKey of
    its own, with its own file key and salt or ephemeral shares: only the moment it is
    made changes.
    """

    def __init__(
        self,
        *,
        passphrase: str | None = None,
        recipients: Sequence[str] = (),
        work_factor: int = DEFAULT_WORK_FACTOR,
        after: PendingFileKey | None = None,
    ) -> None:
        self._key: FileKey | None = None
        self._error: BaseException | None = None

        def make() -> None:
            if after is not None:
                after._thread.join()
            try:
                self._key = FileKey(passphrase=passphrase, recipients=recipients, work_factor=work_factor)
            except BaseException as exc:  # noqa: BLE001 - raised again by result()
                self._error = exc

        self._thread = threading.Thread(target=make, name="bakthat-file-key", daemon=True)
        self._thread.start()

    def ready(self) -> bool:
        """Return True once the key is made (or its making failed)."""
        return not self._thread.is_alive()

    def result(self) -> FileKey:
        """Wait for the key and return it; raise what making it raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._key is not None
        return self._key

    def __repr__(self) -> str:
        return "PendingFileKey(<secret>)"


#: What a :class:`KeyAwaitingWriter` holds at most while its key is being made.
AWAITING_LIMIT = 64 << 20


class KeyAwaitingWriter:
    """An :class:`EncryptingWriter` whose key may still be in the making.

    Given a sink and a :class:`PendingFileKey`, take writes at once: while the key is
    not made, up to ``limit`` bytes are held in memory (the ``bytes`` given, not copies:
    the caller must not change them); beyond that, or once the key is made, the
    EncryptingWriter is made (waiting for the key) and everything held is encrypted
    first, in order.  :meth:`close` does the same, then seals the file.  What reaches
    the sink is exactly what an EncryptingWriter given the made key writes.  Raise what
    making the key raised, from the write or close that needed it.
    """

    def __init__(self, sink: _Sink, key: PendingFileKey, limit: int = AWAITING_LIMIT) -> None:
        self._sink = sink
        self._pending = key
        self._limit = limit
        self._held: list[bytes] = []
        self._held_size = 0
        self._writer: EncryptingWriter | None = None

    @property
    def header(self) -> bytes:
        """The header written (see :attr:`EncryptingWriter.header`); once data or close came."""
        if self._writer is None:
            raise ValueError("no header yet: the key is still being made")
        return self._writer.header

    def _encrypter(self) -> EncryptingWriter:
        writer = self._writer
        if writer is None:
            writer = self._writer = EncryptingWriter(self._sink, key=self._pending.result())
            held, self._held = self._held, []
            self._held_size = 0
            for data in held:
                writer.write(data)
        return writer

    def write(self, data: bytes) -> int:
        """Given plaintext bytes, hold or encrypt them; return how many were taken (all)."""
        if self._writer is None and not self._pending.ready() and self._held_size + len(data) <= self._limit:
            self._held.append(bytes(data) if not isinstance(data, bytes) else data)
            self._held_size += len(data)
            return len(data)
        return self._encrypter().write(data)

    def flush(self) -> None:
        """Flush the sink once encrypting (nothing to flush before)."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Encrypt what is held and seal the final chunk (waiting for the key)."""
        self._encrypter().close()


class EncryptingWriter:
    """File-like writer: plaintext in, age ciphertext written to ``sink``.

    Given a sink (anything with ``.write(bytes)``) and either a passphrase or a non-empty
    sequence of ``age1...`` recipients (a :class:`FileKey` is made of them), or a
    ``key`` made earlier (shared by several files), write the age header and payload
    nonce to the sink at once, then encrypt what is written in 64 KiB chunks, handed to
    the sink in batches of 16 (as ``bytes``) and by :meth:`flush`.  :meth:`close` seals the final
    chunk; until then the sink holds an unfinished archive that readers refuse as truncated.
    Leaving a ``with`` block through an exception does *not* seal the archive, so a partial
    plaintext can never look like a complete archive.  The sink is never closed.

    Raise ValueError unless exactly one of key / passphrase / recipients is given, or if
    the work factor is outside [MIN_WORK_FACTOR, MAX_WORK_FACTOR]; raise ConfigError if a
    recipient is malformed.
    """

    header: bytes
    """The exact header bytes written, through the ``--- <mac>\\n`` line."""

    def __init__(
        self,
        sink: _Sink,
        *,
        passphrase: str | None = None,
        recipients: Sequence[str] = (),
        work_factor: int = DEFAULT_WORK_FACTOR,
        key: FileKey | None = None,
    ) -> None:
        if key is None:
            key = FileKey(passphrase=passphrase, recipients=recipients, work_factor=work_factor)
        elif passphrase or recipients:
            raise ValueError("give either a FileKey or a passphrase or recipients, not both")
        if key._used:
            raise ValueError(
                "this FileKey has encrypted a file already: age requires a new salt or "
                "ephemeral share (a new FileKey) for each file"
            )
        key._used = True
        self.header = key.header
        nonce = os.urandom(_PAYLOAD_NONCE_LEN)
        self._aead = ChaCha20Poly1305(_hkdf(key._file_key, nonce, b"payload"))
        self._sink = sink
        self._buf = bytearray()
        self._sealed: list[bytes] = []  # sealed chunks not yet handed to the sink
        self._sealed_size = 0
        self._counter = 0
        self._closed = False
        self._failed = False
        self._write_out(self.header + nonce)

    # io-like surface
    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> EncryptingWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._closed = True  # abandon: never seal a partial plaintext as complete

    def _write_out(self, data: bytes) -> None:
        try:
            written = self._sink.write(data)
            if written is not None and written < len(data):  # raw sinks may write short
                view = memoryview(data)[written:]
                while view:
                    n = self._sink.write(view)
                    if not n:
                        raise OSError("sink accepted no data")
                    view = view[n:]
        except BaseException:
            self._failed = True
            raise

    def _emit(self, plaintext: bytes | bytearray | memoryview, last: bool) -> None:
        ciphertext = self._aead.encrypt(_stream_nonce(self._counter, last), plaintext, None)
        self._counter += 1
        self._sealed.append(ciphertext)
        self._sealed_size += len(ciphertext)
        if self._sealed_size >= _WRITE_BATCH:
            self._hand_over()

    def _hand_over(self) -> None:
        """Write the sealed chunks held to the sink, in one write."""
        if self._sealed:
            sealed = b"".join(self._sealed)  # one chunk: joined, it is that same object
            self._sealed.clear()
            self._sealed_size = 0
            self._write_out(sealed)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Given plaintext bytes, buffer and encrypt them; return how many were taken (all).

        A full chunk is sealed only once more data follows it, so close() can mark the
        final chunk.  Raise ValueError if the writer is closed.
        """
        if self._closed:
            raise ValueError("write to a closed EncryptingWriter")
        if self._failed:
            raise ValueError("EncryptingWriter is unusable after a failed write to its sink")
        with memoryview(data) as outer:
            view = outer.cast("B") if outer.format != "B" or outer.ndim != 1 else outer
            total = len(view)
            buf = self._buf
            if buf:
                need = _CHUNK - len(buf)
                if total <= need:
                    buf += view
                    return total
                buf += view[:need]
                self._emit(buf, last=False)
                buf.clear()
                view = view[need:]
            while len(view) > _CHUNK:
                self._emit(view[:_CHUNK], last=False)
                view = view[_CHUNK:]
            buf += view
        return total

    def flush(self) -> None:
        """Hand the sealed chunks to the sink and flush it if it can be; never emits a
        partial chunk."""
        if self._failed:
            return
        self._hand_over()
        flush = getattr(self._sink, "flush", None)
        if flush is not None:
            flush()

    def close(self) -> None:
        """Seal the final chunk and flush the sink (not closing it). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._failed:
            return
        self._emit(self._buf, last=True)
        self._buf = bytearray()
        self.flush()


# --------------------------------------------------------------------------- reader


class DecryptingReader:
    """File-like reader: age ciphertext from ``source``, authenticated plaintext out.

    Given a source (anything with ``.read(n)``; short reads are fine) and a passphrase
    and/or identities, parse and authenticate the header at once.  Checks, in order:

    1. not an age v1 header / malformed header -> IntegrityError;
    2. ``expected_header_sha256`` given and the header's SHA-256 differs -> IntegrityError;
    3. scrypt stanza but no passphrase, or X25519 stanzas but no identity ->
       PasswordRequiredError;
    4. scrypt work factor outside [MIN_WORK_FACTOR, MAX_WORK_FACTOR] -> IntegrityError;
    5. no stanza unwraps -> WrongPasswordError;
    6. header MAC mismatch -> IntegrityError.

    Raise ConfigError if an identity is malformed.  The source is never closed.
    """

    header: bytes
    """The exact header bytes read, through the ``--- <mac>\\n`` line."""

    def __init__(
        self,
        source: _Source,
        *,
        passphrase: str | None = None,
        identities: Sequence[str] = (),
        expected_header_sha256: str | None = None,
    ) -> None:
        if isinstance(identities, (str, bytes)):
            raise TypeError("identities must be a sequence of strings, not a single string")
        keys = [_parse_identity(identity) for identity in identities]
        self._source = source
        self._in = bytearray()
        self._eof = False
        self._closed = False
        self._done = False
        self._error: str | None = None
        self._counter = 0
        self._out = b""
        self._pos = 0

        self.header = self._read_header()
        try:
            stanzas, mac, mac_input = _parse_header(self.header)
        except _Malformed as exc:
            raise _damaged(str(exc)) from None

        if expected_header_sha256 is not None:
            actual = hashlib.sha256(self.header).hexdigest()
            expected = expected_header_sha256.strip().lower().encode("utf-8")
            if not hmac.compare_digest(actual.encode("ascii"), expected):
                raise IntegrityError(
                    "archive header is damaged: its SHA-256 differs from the one recorded "
                    "at backup time"
                )
        try:
            _check_stanzas(stanzas)
        except _Malformed as exc:
            raise _damaged(str(exc)) from None

        maybe_damaged = "" if expected_header_sha256 is not None else (
            ", or the archive header is damaged"
        )
        file_key: bytes | None
        if stanzas[0].type == "scrypt":
            stanza = stanzas[0]
            if not passphrase:
                raise PasswordRequiredError(
                    "this archive is encrypted with a passphrase: a passphrase is required "
                    "to open it"
                )
            work_factor = int(stanza.args[1])
            if work_factor < MIN_WORK_FACTOR:
                raise IntegrityError(
                    f"KDF parameters below floor: scrypt work factor {work_factor} is below "
                    f"the minimum {MIN_WORK_FACTOR}; the archive header may have been tampered with"
                )
            if work_factor > MAX_WORK_FACTOR:
                raise IntegrityError(
                    f"KDF parameters above ceiling: scrypt work factor {work_factor} is above "
                    f"the maximum {MAX_WORK_FACTOR} bakthat accepts"
                )
            salt = _b64decode(stanza.args[0].encode("ascii"))
            wrap_key = _read_wrap_key(passphrase, salt, work_factor)
            try:
                file_key = ChaCha20Poly1305(wrap_key).decrypt(_ZERO_NONCE, stanza.body, None)
            except InvalidTag:
                raise WrongPasswordError("wrong password" + maybe_damaged) from None
        else:
            x_stanzas = [s for s in stanzas if s.type == "X25519"]
            if not x_stanzas:
                kinds = ", ".join(sorted({s.type for s in stanzas}))[:200]
                raise WrongPasswordError(
                    f"this archive is encrypted to recipient types bakthat cannot open ({kinds})"
                )
            if not keys:
                raise PasswordRequiredError(
                    "this archive is encrypted to age recipients: an identity "
                    "(AGE-SECRET-KEY-1...) is required to open it"
                )
            file_key = self._unwrap_x25519(x_stanzas, keys)
            if file_key is None:
                raise WrongPasswordError("no identity matches this archive" + maybe_damaged)

        if not hmac.compare_digest(_header_mac(file_key, mac_input), mac):
            raise IntegrityError("archive header is damaged: header MAC mismatch")

        nonce = self._take(_PAYLOAD_NONCE_LEN)
        if len(nonce) < _PAYLOAD_NONCE_LEN:
            raise IntegrityError("archive is truncated: payload nonce is missing")
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))

    @staticmethod
    def _unwrap_x25519(
        stanzas: Sequence[_Stanza], keys: Sequence[X25519PrivateKey]
    ) -> bytes | None:
        """Given X25519 stanzas and private keys, return the file key, or None if none opens."""
        for key in keys:
            public = key.public_key().public_bytes_raw()
            for stanza in stanzas:
                share = _b64decode(stanza.args[0].encode("ascii"))
                try:
                    shared = key.exchange(X25519PublicKey.from_public_bytes(share))
                except ValueError:  # all-zero shared secret: low-order share
                    raise _damaged("invalid X25519 share") from None
                wrap_key = _hkdf(shared, share + public, _X25519_LABEL)
                try:
                    return ChaCha20Poly1305(wrap_key).decrypt(_ZERO_NONCE, stanza.body, None)
                except InvalidTag:
                    continue
        return None

    # ------------------------------------------------------------------ input buffering

    def _fill(self, n: int) -> None:
        """Read from the source until the input buffer holds n bytes or the source ends."""
        while len(self._in) < n and not self._eof:
            data = self._source.read(n - len(self._in))
            if not data:
                self._eof = True
                break
            self._in += data

    def _take(self, n: int) -> bytes:
        self._fill(n)
        data = bytes(self._in[:n])
        del self._in[:n]
        return data

    def _read_header(self) -> bytes:
        buf = self._in
        search_from = 0
        while True:
            prefix = bytes(buf[: len(AGE_MAGIC)])
            if AGE_MAGIC[: len(prefix)] != prefix or (self._eof and prefix != AGE_MAGIC):
                raise _damaged("missing age v1 magic line")
            idx = buf.find(b"\n---", max(search_from, len(AGE_MAGIC) - 1))
            if idx >= 0:
                end = buf.find(b"\n", idx + 1)
                if end >= 0:
                    header = bytes(buf[: end + 1])
                    del buf[: end + 1]
                    return header
            else:
                search_from = max(0, len(buf) - 3)
            if len(buf) > _MAX_HEADER:
                raise _damaged("header too large")
            if self._eof:
                raise _damaged("header is truncated")
            data = self._source.read(_HEADER_READ)
            if not data:
                self._eof = True
            else:
                buf += data

    # ------------------------------------------------------------------ chunks

    def _fail(self, message: str) -> IntegrityError:
        self._error = message
        return IntegrityError(message)

    def _try_decrypt(self, ciphertext: bytes | bytearray, last: bool) -> bytes | None:
        try:
            return self._aead.decrypt(_stream_nonce(self._counter, last), ciphertext, None)
        except InvalidTag:
            return None

    def _next_chunk(self) -> bytes | None:
        """Return the next authenticated plaintext chunk, or None at the authenticated end."""
        if self._error is not None:
            raise IntegrityError(self._error)
        if self._done:
            return None
        self._fill(_CT_CHUNK + 1)
        size = len(self._in)
        index = self._counter
        if size > _CT_CHUNK:  # more data follows: this chunk must not be the last
            ciphertext = self._in[:_CT_CHUNK]
            del self._in[:_CT_CHUNK]
            plaintext = self._try_decrypt(ciphertext, last=False)
            if plaintext is None:
                if self._try_decrypt(ciphertext, last=True) is not None:
                    raise self._fail(
                        "archive is damaged: unexpected data after the end of the archive"
                    )
                raise self._fail(f"archive is damaged: chunk {index} failed authentication")
            self._counter += 1
            return plaintext
        # The source ends within this chunk: it must be sealed as the last one.
        ciphertext = self._in
        self._in = bytearray()
        if size < _TAG:
            raise self._fail("archive is truncated: it ends in the middle of a chunk")
        plaintext = self._try_decrypt(ciphertext, last=True)
        if plaintext is None:
            if size == _CT_CHUNK and self._try_decrypt(ciphertext, last=False) is not None:
                raise self._fail("archive is truncated: it ends before its last chunk")
            raise self._fail(
                f"archive is damaged or truncated: chunk {index} failed authentication"
            )
        if not plaintext and index > 0:
            raise self._fail("archive is damaged: empty last chunk after a non-empty payload")
        self._counter += 1
        self._done = True
        return plaintext

    # ------------------------------------------------------------------ io-like surface

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> DecryptingReader:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close()

    def close(self) -> None:
        """Mark the reader closed (the source is left open). Idempotent."""
        self._closed = True
        self._out = b""
        self._pos = 0

    def read(self, n: int | None = -1) -> bytes:
        """Given a count (negative or None: all), return up to n authenticated plaintext bytes.

        Fewer than n bytes are returned only at the authenticated end; b"" means the archive
        ended properly.  Raise IntegrityError if a chunk fails authentication, the archive is
        truncated or has data after its end (and again on every later call).
        """
        if self._closed:
            raise ValueError("read from a closed DecryptingReader")
        if n is None or n < 0:
            parts = [self._out[self._pos :]] if self._pos < len(self._out) else []
            self._out, self._pos = b"", 0
            while (chunk := self._next_chunk()) is not None:
                parts.append(chunk)
            return b"".join(parts)
        available = len(self._out) - self._pos
        if n <= available:
            data = self._out[self._pos : self._pos + n]
            self._pos += n
            return data
        parts = []
        need = n
        while need > 0:
            if self._pos >= len(self._out):
                chunk = self._next_chunk()
                if chunk is None:
                    break
                self._out, self._pos = chunk, 0
            take = min(need, len(self._out) - self._pos)
            if self._pos == 0 and take == len(self._out):
                parts.append(self._out)
            else:
                parts.append(self._out[self._pos : self._pos + take])
            self._pos += take
            need -= take
        return b"".join(parts)

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Given a writable buffer, fill it with plaintext; return the count (0 at the end)."""
        with memoryview(buffer) as view:
            view = view.cast("B")
            data = self.read(len(view))
            view[: len(data)] = data
            return len(data)

    def readall(self) -> bytes:
        """Return all remaining authenticated plaintext."""
        return self.read(-1)
