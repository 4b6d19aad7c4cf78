"""Encode one tar member's header: a POSIX ustar block, preceded by a PAX extended
header when a field does not fit ustar (a long or non-ASCII name, a large size, a
sub-second mtime) or the member has extra records (extended attributes, ACLs, sparse
map information).

The output is what :meth:`tarfile.TarInfo.tobuf` writes in ``PAX_FORMAT`` (tarfile
and GNU tar read it), built directly: tarfile's general encoder cost more CPU than
compressing the data for trees of small files.  Values that are not valid UTF-8 (file
names in another encoding, held as surrogate escapes) are written as their raw bytes
under ``hdrcharset=BINARY``, as POSIX specifies and tarfile does.
"""

from __future__ import annotations

import functools
import struct
import tarfile
import zlib

from bakthat.fsmeta import format_ns

_PAX_NAME = b"././@PaxHeader".ljust(100, b"\0")
_MAGIC = tarfile.POSIX_MAGIC  # b"ustar\x0000"
_ZERO8 = b"0000000\0"
# name mode uid gid size mtime checksum (spaces while it is computed) type linkname
# magic+version uname gname devmajor devminor, then prefix and padding left as NULs
_CHECKSUM_SPACES = 8 * ord(" ")
_USTAR = struct.Struct("100s8s8s8s12s12s8x1s100s8s32s32s8s8s167x")


def byte_sum(block: bytes) -> int:
    """Given a header block (any bytes-like object), return the sum of its bytes, as a
    tar checksum counts them.  Adler-32's first half is 1 + the sum of the bytes modulo
    65,521; over 256 bytes (at most 65,280) it cannot wrap, so two C calls per block
    replace a Python-level sum of 512 integers (5x less CPU per header)."""
    if len(block) <= 256:
        return (zlib.adler32(block) & 0xFFFF) - 1
    if len(block) == 512:  # a header block: no loop
        return (zlib.adler32(block[:256]) & 0xFFFF) + (zlib.adler32(block[256:]) & 0xFFFF) - 2
    total = 0
    for start in range(0, len(block), 256):
        total += (zlib.adler32(block[start : start + 256]) & 0xFFFF) - 1
    return total


def _text_field(value: str, width: int, keyword: str, records: dict[str, str]) -> bytes:
    """Return ``value`` for a fixed-width ustar field, moving it to a PAX record when it
    is not ASCII or too long (the field then holds a truncated stand-in)."""
    try:
        data = value.encode("ascii")
    except UnicodeEncodeError:
        records[keyword] = value
        return value.encode("ascii", "replace")[:width]
    if len(data) > width:
        records[keyword] = value
        return data[:width]
    return data


def _number_field(value: int, digits: int, keyword: str, records: dict[str, str]) -> bytes:
    """Return ``value`` as ``digits`` octal digits and a NUL, or zeros and a PAX record
    when it does not fit."""
    if 0 <= value < 8**digits:
        return b"%0*o\0" % (digits, value)
    records.setdefault(keyword, str(value))
    return b"0" * digits + b"\0"


def _size_field(size: int, records: dict[str, str]) -> bytes:
    """Return the size field.  A sparse member's stored size that does not fit the
    octal field is written in base-256 (the GNU encoding every tar reader knows), not
    as a PAX ``size`` record: tarfile would let such a record override the sparse
    ``realsize`` and then look for the next header at the wrong place."""
    if size >= 8**11 and "GNU.sparse.realsize" in records:
        return b"\x80" + size.to_bytes(11, "big")
    return _number_field(size, 11, "size", records)


def _pax_record(keyword: str, value: bytes) -> bytes:
    body = b" " + keyword.encode("utf-8") + b"=" + value + b"\n"
    length = len(body)
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return str(length).encode("ascii") + body


@functools.lru_cache(maxsize=256)
def _pax_header(length: int) -> bytes:
    """Return the ustar block announcing a PAX extended header of ``length`` bytes (the
    same for every member but for its size field, so it is built once per length)."""
    return _ustar(_PAX_NAME, 0, b"0000000\0", b"0000000\0", _number_field(length, 11, "size", {}),
                  b"00000000000\0", tarfile.XHDTYPE, b"", b"", b"", _ZERO8, _ZERO8)


def _pax_block(records: dict[str, str]) -> bytes:
    try:
        encoded = [(key, value.encode("utf-8")) for key, value in records.items()]
        data = b"".join([_pax_record(key, value) for key, value in encoded])
    except UnicodeEncodeError:  # bytes that are not UTF-8: write them raw
        encoded = [(key, value.encode("utf-8", "surrogateescape")) for key, value in records.items()]
        data = _pax_record("hdrcharset", b"BINARY") + b"".join(_pax_record(key, value) for key, value in encoded)
    return _pax_header(len(data)) + data + bytes(-len(data) % tarfile.BLOCKSIZE)


def _ustar(name: bytes, mode: int, uid: bytes, gid: bytes, size: bytes, mtime: bytes, kind: bytes,
           linkname: bytes, uname: bytes, gname: bytes, devmajor: bytes, devminor: bytes) -> bytes:
    block = _USTAR.pack(name, b"%07o\0" % mode, uid, gid, size, mtime, kind, linkname, _MAGIC, uname, gname,
                        devmajor, devminor)
    return block[:148] + b"%06o\0 " % (byte_sum(block) + _CHECKSUM_SPACES) + block[156:]


def encode(
    name: str,
    kind: bytes,
    mode: int,
    uid: int,
    gid: int,
    mtime_ns: int,
    *,
    size: int = 0,
    linkname: str = "",
    uname: str = "",
    gname: str = "",
    devmajor: int = 0,
    devminor: int = 0,
    records: dict[str, str] | None = None,
) -> bytes:
    """Given a member's fields (``kind`` a tarfile type such as ``tarfile.REGTYPE``;
    ``records`` extra PAX records, kept in their order and first), return its header
    blocks."""
    pax = dict(records) if records else {}
    if kind == tarfile.DIRTYPE and not name.endswith("/"):
        name += "/"
    name_field = _text_field(name, 100, "path", pax)
    link_field = _text_field(linkname, 100, "linkpath", pax) if linkname else b""
    uname_field = _text_field(uname, 32, "uname", pax)
    gname_field = _text_field(gname, 32, "gname", pax)
    seconds, fraction = divmod(mtime_ns, 1_000_000_000)
    in_range = 0 <= seconds < 8**11
    if fraction or not in_range:
        pax.setdefault("mtime", format_ns(mtime_ns))
    block = _ustar(
        name_field, mode & 0o7777,
        _number_field(uid, 7, "uid", pax), _number_field(gid, 7, "gid", pax),
        _size_field(size, pax),
        b"%011o\0" % seconds if in_range else b"00000000000\0",
        kind, link_field, uname_field, gname_field,
        b"%07o\0" % devmajor if 0 <= devmajor < 8**7 else _ZERO8,
        b"%07o\0" % devminor if 0 <= devminor < 8**7 else _ZERO8,
    )
    return _pax_block(pax) + block if pax else block
