"""Reading what bakthat 0.6 wrote: its stored names, its Blowfish encryption, its archives.

bakthat only *reads* these formats; it never writes them.

**Names.**  0.6 stored a backup as ``<name>.<YYYYmmddHHMMSS>.tgz`` (``.tgz.enc`` when
encrypted), the stamp being the UTC time of the backup; before 0.4 there was no dot
before the stamp (``<name>20130101120000.tgz``).  With the profile's ``compress:
false`` it uploaded a single file as it was, named ``<name>.<YYYYmmddHHMMSS>`` (plus
``.enc``): a *raw* object.  :func:`parse_name` reads all three.

**Archives.**  A ``.tgz`` is a gzip-compressed tar whose top-level entry is the name.
A raw object is the file itself (:mod:`bakthat.legacy_raw` restores it).

**Encryption** (``.enc``, written by the beefish library with its default cipher):
Blowfish in CBC mode, the password's bytes used directly as the key (4 to 56 bytes,
no salt, no key derivation), an 8-byte random IV first, then the ciphertext of the
data followed by 1 to 8 padding bytes: random filler and a last byte whose value
modulo 8 is the padding's length (0 meaning 8).  The ciphertext after the IV is
therefore a non-empty multiple of 8 bytes.

beefish draws the last byte so that it lies in 1..248; any other value cannot come from
beefish, so a wrong password shows there about once in 32 tries (see
:class:`BlowfishReader`).  Beyond that the format has no MAC and no header, so a wrong
password decrypts to garbage without any error from the cipher.  :func:`open_archive` refuses such garbage before anything
is restored: the plaintext must start with a gzip header (magic, method deflate,
reserved flags clear: 27 fixed bits), the deflate stream must decode, the gzip
trailer's CRC-32 and length must match what was decompressed, nothing may follow it,
and the tar stream must parse (restore checks that part).  A plaintext that does not
start with a gzip header means a wrong password (or a damaged first block: the two
cannot be told apart) and raises :class:`~bakthat.errors.WrongPasswordError`; any
later failure is damage and raises :class:`~bakthat.errors.IntegrityError`.

Blowfish itself comes from ``cryptography``'s decrepit algorithms: no cipher is
implemented here.
"""

from __future__ import annotations

import calendar
import gzip
import io
import json
import re
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bakthat.errors import BakthatError, IntegrityError, PasswordRequiredError, WrongPasswordError

__all__ = [
    "BLOCK",
    "ENCRYPTION",
    "RAW",
    "BlowfishReader",
    "LegacyName",
    "decode_value",
    "is_legacy_encrypted",
    "is_raw",
    "looks_like_06",
    "open_archive",
    "parse_name",
]

#: The ``encryption`` catalog value of an archive encrypted by bakthat 0.6.
ENCRYPTION = "beefish"
#: ``metadata.adopted`` of a catalog row for a backup bakthat 0.6 wrote (see :mod:`bakthat.adopt`).
ADOPTED = "0.6"
#: The ``compression`` catalog value of a 0.6 ``compress: false`` upload: one file, no tar.
RAW = "raw"
#: Blowfish's block size, also the size of 0.6's IV.
BLOCK = 8
MIN_KEY = 4
MAX_KEY = 56
_READ = 64 * 1024
_GZIP_MAGIC = b"\x1f\x8b\x08"
_GZIP_RESERVED_FLAGS = 0xE0
#: The flag byte beefish writes last is ``randrange(6, 248)`` rounded to the padding
#: length: always 1..248.
_FLAGS = range(1, 249)
_NAME = re.compile(r"(?P<name>.*?)(?P<dot>\.?)(?P<stamp>\d{14})\.tgz(?P<enc>\.enc)?")
_RAW_NAME = re.compile(r"(?P<name>.*)(?P<dot>\.)(?P<stamp>\d{14})(?P<enc>\.enc)?")


class _Source(Protocol):
    def read(self, n: int = ..., /) -> bytes: ...


# --------------------------------------------------------------------------- names


@dataclass(frozen=True)
class LegacyName:
    """What a 0.6 stored name says about its backup."""

    stored_filename: str
    name: str
    #: The stamp of the name as a Unix time (it is UTC).
    backup_date: int
    encrypted: bool
    #: True for the pre-0.4 form without a dot before the stamp.
    dotless: bool
    #: True for a ``compress: false`` upload: the object is the file itself, not a tgz.
    raw: bool = False

    @property
    def compression(self) -> str:
        """The catalog's ``compression`` value: ``gzip``, or :data:`RAW`."""
        return RAW if self.raw else "gzip"


def _match(key: str) -> tuple[re.Match[str], bool] | None:
    """Return the match of a 0.6 name pattern (tgz first, then raw) and whether it is raw."""
    match = _NAME.fullmatch(key)
    if match is not None:
        return match, False
    match = _RAW_NAME.fullmatch(key)
    return (match, True) if match is not None else None


def looks_like_06(key: str) -> bool:
    """Return True if ``key`` has the shape of a 0.6 name (a valid stamp at its place),
    whether or not its name part is acceptable; :func:`parse_name` says which are."""
    found = _match(key)
    if found is None:
        return False
    try:
        datetime.strptime(found[0].group("stamp"), "%Y%m%d%H%M%S")
    except ValueError:
        return False
    return True


def safe_name(name: str) -> bool:
    """Return True if ``name`` can be the one path component 0.6 stored: non-empty,
    no ``/``, no NUL, not ``.`` or ``..``."""
    return bool(name) and "/" not in name and "\x00" not in name and name not in {".", ".."}


def parse_name(key: str) -> LegacyName | None:
    """Given a stored key, return what its 0.6 name says, or None if it is not a 0.6 name.

    ``<name>.<YYYYmmddHHMMSS>.tgz`` and ``<name><YYYYmmddHHMMSS>.tgz``, each optionally
    followed by ``.enc``; and 0.6's ``compress: false`` form ``<name>.<YYYYmmddHHMMSS>``
    (optionally ``.enc``; always with the dot), returned with ``raw`` set.  The stamp
    must be a real date; the name must be one path component (:func:`safe_name`: 0.6
    names were the last component of a path, and a raw name is the file restore writes).
    """
    found = _match(key)
    if found is None or not looks_like_06(key):
        return None
    match, raw = found
    name = match.group("name")
    if not safe_name(name):
        return None
    stamp = datetime.strptime(match.group("stamp"), "%Y%m%d%H%M%S")
    return LegacyName(
        stored_filename=key,
        name=name,
        backup_date=calendar.timegm(stamp.timetuple()),
        encrypted=match.group("enc") is not None,
        dotless=not match.group("dot"),
        raw=raw,
    )


def is_raw(row: Any) -> bool:
    """Return True if a catalog row is a 0.6 ``compress: false`` upload (a file, no tar).

    Adopted rows say so in ``compression``; rows of an upgraded 0.6 catalog say
    ``none`` (0.6 recorded no compression), so their stored name decides.
    """
    compression = getattr(row, "compression", None)
    if compression == RAW:
        return True
    metadata = getattr(row, "metadata", None) or {}
    if compression not in (None, "none") or metadata.get("KeyValue") or not metadata.get("adopted"):
        return False
    parsed = parse_name(str(row.stored_filename))
    return parsed is not None and parsed.raw


def is_legacy_encrypted(row: Any) -> bool:
    """Return True if a catalog row is encrypted in 0.6's Blowfish format (not age)."""
    encryption = getattr(row, "encryption", None) or "none"
    return encryption == ENCRYPTION or (encryption == "none" and row.is_encrypted())


# --------------------------------------------------------------------------- Blowfish


def _cipher_key(password: str | bytes) -> bytes:
    key = password if isinstance(password, bytes) else password.encode("utf-8")
    if not MIN_KEY <= len(key) <= MAX_KEY:
        # 0.6 could not have encrypted with it: PyCrypto took 4 to 56-byte Blowfish keys.
        raise WrongPasswordError(
            f"wrong password: bakthat 0.6 passwords are {MIN_KEY} to {MAX_KEY} bytes long, this one is {len(key)}"
        )
    return key


class BlowfishReader:
    """File-like reader: 0.6 (beefish) ciphertext from ``source``, plaintext out.

    Given a source (anything with ``.read(n)``; short reads are fine) and the password
    (text is encoded as UTF-8, as 0.6 on a UTF-8 terminal; bytes are the key itself),
    read the IV at once; then decrypt as the caller reads, holding back the last block
    until the source ends so that the padding can be removed.  Memory is bounded by the
    read size.  Raise WrongPasswordError if the password cannot be a 0.6 key (not 4 to
    56 bytes); IntegrityError (on read) if the ciphertext is not a non-empty multiple
    of 8 bytes after the IV.  At the end, a last byte beefish cannot have written (0 or
    249..255) raises ``bad_padding`` (IntegrityError by default: where an inner format
    already vouched for the password, it means damage; WrongPasswordError where nothing
    else can tell).  Any other wrong password of the right length is NOT detected here
    (the format cannot tell): see :func:`open_archive`.  The source is not closed.
    """

    def __init__(
        self, source: _Source, password: str | bytes, bad_padding: type[BakthatError] = IntegrityError
    ) -> None:
        from cryptography.hazmat.decrepit.ciphers.algorithms import Blowfish
        from cryptography.hazmat.primitives.ciphers import Cipher, modes

        key = _cipher_key(password)
        self._source = source
        iv = _read_exactly(source, BLOCK)
        if len(iv) < BLOCK:
            raise IntegrityError("the 0.6 encrypted archive is truncated: it is shorter than its 8-byte IV")
        self._decryptor = Cipher(Blowfish(key), modes.CBC(iv)).decryptor()
        self._pending = b""  # ciphertext not yet a whole block
        self._held = b""  # the newest plaintext block: it may be the padded last one
        self._out = bytearray()
        self._blocks = 0
        self._done = False
        self._bad_padding = bad_padding

    def readable(self) -> bool:
        return True

    def _step(self) -> None:
        """Decrypt the next piece of the source into ``_out``; at its end, strip the padding."""
        data = self._source.read(_READ)
        if data:
            data = self._pending + data
            whole = len(data) - len(data) % BLOCK
            self._pending = data[whole:]
            if whole:
                plain = self._held + self._decryptor.update(data[:whole])
                self._blocks += whole // BLOCK
                self._out += plain[:-BLOCK]
                self._held = plain[-BLOCK:]
            return
        self._done = True
        if self._pending:
            raise IntegrityError(
                "the 0.6 encrypted archive is truncated or damaged: its length is not a multiple of 8 bytes"
            )
        if not self._blocks:
            raise IntegrityError("the 0.6 encrypted archive is truncated: nothing follows its IV")
        self._decryptor.finalize()
        if self._held[-1] not in _FLAGS:
            cause = "wrong password" if issubclass(self._bad_padding, WrongPasswordError) else "damaged"
            raise self._bad_padding(
                f"{cause}: the 0.6 encrypted data does not end with beefish's padding "
                "(a wrong password, or a damaged last block: 0.6's format cannot tell which)"
            )
        pad = self._held[-1] % BLOCK or BLOCK
        self._out += self._held[:-pad]
        self._held = b""

    def read(self, n: int | None = -1) -> bytes:
        """Return up to ``n`` plaintext bytes (all with a negative ``n``); b"" at the end."""
        want = None if n is None or n < 0 else n
        while not self._done and (want is None or len(self._out) < want):
            self._step()
        if want is None:
            data, self._out = bytes(self._out), bytearray()
        else:
            data = bytes(self._out[:want])
            del self._out[:want]
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _read_exactly(source: _Source, n: int) -> bytes:
    parts = []
    while n > 0:
        data = source.read(n)
        if not data:
            break
        parts.append(data)
        n -= len(data)
    return b"".join(parts)


# --------------------------------------------------------------------------- archives


def _gzip_header_ok(head: bytes) -> bool:
    return len(head) >= 4 and head[:3] == _GZIP_MAGIC and not head[3] & _GZIP_RESERVED_FLAGS


class _Prepended:
    """A reader that returns ``head`` first, then the rest of ``source``."""

    def __init__(self, head: bytes, source: _Source) -> None:
        self._head = head
        self._source = source

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n is None or n < 0:
                data, self._head = self._head + self._source.read(), b""
                return data
            data, self._head = self._head[:n], self._head[n:]
            return data
        return self._source.read(n)


def open_archive(source: _Source, password: str | None) -> Any:
    """Given the stored bytes of a 0.6 ``.tgz`` (or, with a password, ``.tgz.enc``),
    return a reader of the uncompressed tar stream.

    The gzip header is checked here: with a password, a plaintext that does not start
    with one raises WrongPasswordError (a wrong password, or a damaged first block);
    without, IntegrityError.  Reading the returned stream raises IntegrityError when the
    deflate data is damaged, the trailer's CRC-32 or length does not match, or data
    follows the gzip stream; read it to its end (restore does) to run those checks.
    """
    from bakthat.archive import decompressor

    stream: _Source = source if password is None else BlowfishReader(source, password)
    head = _read_exactly(stream, 10)
    if not _gzip_header_ok(head):
        if password is not None:
            raise WrongPasswordError(
                "wrong password: the 0.6 archive does not decrypt to gzip data "
                "(or its first bytes are damaged; 0.6's format cannot tell which)"
            )
        raise IntegrityError("the 0.6 archive is damaged: it does not start with a gzip header")
    return decompressor(_Prepended(head, stream), "gzip")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- KeyValue


def decode_value(raw: bytes, password: str | None, is_gzipped: bool | None, key: str) -> bytes:
    """Given the stored bytes of a 0.6 encrypted KeyValue entry, return its JSON bytes.

    0.6 serialised the value as JSON, gzipped it (unless ``compress=False``), then
    encrypted it with Blowfish as above.  ``is_gzipped`` is the catalog's flag, or None
    when unknown (then a gzip header decides).  Raise PasswordRequiredError without a
    password; WrongPasswordError when the decrypted bytes are neither gzip (where gzip
    is expected) nor JSON; IntegrityError when the gzip data is damaged.
    """
    if not password:
        raise PasswordRequiredError(f"{key} is encrypted (bakthat 0.6 format): give its password")
    plain = BlowfishReader(io.BytesIO(raw), password, bad_padding=WrongPasswordError).read()
    wrong = WrongPasswordError(f"{key}: wrong password (the value does not decrypt to gzip or JSON data)")
    if is_gzipped or (is_gzipped is None and _gzip_header_ok(plain[:4])):
        if not _gzip_header_ok(plain[:4]):
            raise wrong
        try:
            plain = gzip.decompress(plain)
        except (OSError, EOFError, zlib.error) as exc:
            raise IntegrityError(f"{key}: the stored 0.6 value is damaged ({exc})") from None
        return plain
    try:
        json.loads(plain.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise wrong from None
    return plain
