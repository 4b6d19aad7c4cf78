"""Read the members of a tar stream front to back: restore's header parser.

Python's ``tarfile`` spent more CPU parsing headers than zstd spent decompressing
(about 190 us a member on the benchmark's 23,000 small files: a PAX header per member,
each parsed with regular expressions through a stream buffer that copies itself on
every read); this reader parses a header block with one ``struct`` call and a PAX
record with two ``find`` calls, about ten times faster.  It reads what ``tarfile``
reads (ustar, GNU and PAX headers, GNU long names, PAX global headers, GNU sparse
0.0, 0.1 and 1.0) and yields :class:`tarfile.TarInfo` objects with the fields tarfile
would set, so the member check (:mod:`bakthat.extract_members`) and the code creating
members on disk work on the standard type.

It holds the header-size limits of the member check's rule 9: a PAX header (extended
or global) larger than ``MAX_PAX_HEADER``, a GNU long name or link larger than
``MAX_LONG_NAME``, a sparse map with more than ``MAX_SPARSE_SEGMENTS`` segments, and an
old-style GNU sparse member are refused with UnsafeArchiveError before they are read.

Damage is an IntegrityError ("truncated or damaged archive: ..."): a header with a bad
checksum or field, a stream ending before the end-of-archive marker, data after it.
Before raising it, the reader reads the rest of its source, so that a checksum or an
authentication check upstream raises its own, more precise error first.
"""

from __future__ import annotations

import logging
import struct
import tarfile
from collections.abc import Iterator
from typing import Any

from bakthat.errors import BakthatError, IntegrityError
from bakthat.extract_members import MAX_LONG_NAME, MAX_PAX_HEADER, unsafe
from bakthat.fsmeta import MAX_SPARSE_SEGMENTS
from bakthat.tarheader import byte_sum

__all__ = ["TarReader"]

log = logging.getLogger("bakthat")

BLOCK = tarfile.BLOCKSIZE
_ZERO_BLOCK = bytes(BLOCK)
# name mode uid gid size mtime chksum type linkname magic version uname gname
# devmajor devminor prefix (padding)
_HEADER = struct.Struct("100s8s8s8s12s12s8s1s100s6s2s32s32s8s8s155s12x")
_PAX_TYPES = (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE)
_LONG_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
_DATA_TYPES = frozenset(tarfile.REGULAR_TYPES) | (frozenset(bytes([n]) for n in range(256)) - frozenset(tarfile.SUPPORTED_TYPES))
_TERMINATORS = b"\0 "
_NUMBER_RECORDS = {"mtime": float, "uid": int, "gid": int, "size": int}
_TEXT_RECORDS = {"path": "name", "linkpath": "linkname", "uname": "uname", "gname": "gname"}
#: The bytes asked of the source at a time (a ReadAhead then hands over its chunks
#: whole, without a copy); until the first member has been parsed, reads ask for less,
#: so a refused first header has cost little reading.
READ_SIZE = 1 << 20
_HEADER_READ = 64 << 10
_KNOWN_PAX = 64


class _Damaged(Exception):
    """A header that cannot be parsed (turned into IntegrityError by the reader)."""


def _text(field: bytes) -> str:
    if not field or not field[0]:  # an empty field (link name, prefix): the usual case
        return ""
    end = field.find(0)
    return (field if end < 0 else field[:end]).decode("utf-8", "surrogateescape")


def _number(field: bytes) -> int:
    """Decode a numeric header field: octal digits, or GNU base-256."""
    last = field[-1]
    if last in _TERMINATORS:  # the usual "0000644\0" or a checksum's "001234\0 ": one conversion
        try:
            return int(field[:-2] if last == 0x20 and field[-2] == 0 else field[:-1], 8)
        except ValueError:
            pass
    first = field[0]
    if first == 0o200 or first == 0o377:
        value = int.from_bytes(field[1:], "big")
        return value - 256 ** (len(field) - 1) if first == 0o377 else value
    end = field.find(0)
    digits = (field if end < 0 else field[:end]).strip()
    try:
        return int(digits or b"0", 8)
    except ValueError:
        raise _Damaged("invalid number field") from None


def _checksum_matches(block: bytes, stored: int) -> bool:
    unsigned = byte_sum(block) - byte_sum(block[148:156]) + 256
    if stored == unsigned:
        return True
    signed = 256 + sum(struct.unpack_from("148b8x356b", block))
    return stored == signed


def _pax_records(data: bytes, into: dict[str, str], sparse_00: list[list[int]] | None) -> None:
    """Parse PAX records (``"<length> <keyword>=<value>\\n"``) into ``into``, in order.
    GNU sparse 0.0 offsets and sizes, which repeat, are appended to ``sparse_00``."""
    pos = 0
    size = len(data)
    while pos < size:
        if data[pos] == 0:  # NUL padding inside the declared size
            break
        space = data.find(b" ", pos, pos + 24)
        try:
            length = int(data[pos:space]) if space > pos else 0
        except ValueError:
            length = 0
        end = pos + length
        if length <= 0 or end > size or data[end - 1] != 0x0A:
            raise _Damaged("malformed PAX record")
        equals = data.find(b"=", space + 1, end)
        if equals < 0:
            raise _Damaged("malformed PAX record")
        keyword = data[space + 1 : equals].decode("utf-8", "surrogateescape")
        value = data[equals + 1 : end - 1].decode("utf-8", "surrogateescape")
        if sparse_00 is not None and keyword in ("GNU.sparse.offset", "GNU.sparse.numbytes"):
            try:
                sparse_00[keyword == "GNU.sparse.numbytes"].append(int(value))
            except ValueError:
                raise _Damaged("malformed GNU sparse record") from None
        into[keyword] = value
        pos = end


def _blocks(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


class TarReader:
    """Iterate over the members of the tar stream read from ``source`` (anything with
    ``read(n)``; short reads are fine), once, front to back.

    Iterating yields :class:`tarfile.TarInfo` objects (``offset_data`` is the stream
    position of the member's data, after a sparse map).  While a member is the
    current one, :meth:`seek` (forward, within it) and :meth:`read` give its data;
    whatever is not read is skipped when the next member is asked for.  After the last
    member the end-of-archive marker is checked and the source read to its end.
    ``offset`` is the stream position of the next header (tarfile's name for it), and
    ``members`` an always empty list, so :meth:`MemberChecker.members` takes a reader
    as it takes a TarFile.
    """

    def __init__(self, source: Any):
        self._source = source
        self._buf = b""
        self._pos = 0  # in _buf
        self._base = 0  # stream position of _buf[0]
        self._data_end = 0  # end of the current member's data region
        self._globals: dict[str, str] = {}
        # PAX header blocks already parsed and checked, by content: bakthat (and GNU
        # tar) write the same block before every member whose records have one length.
        self._known_pax: dict[bytes, tuple[tuple, int, int]] = {}
        self._eof = False
        self._want = _HEADER_READ  # READ_SIZE once the first member is through
        self.offset = 0
        self.members: list[tarfile.TarInfo] = []

    # -- the stream ------------------------------------------------------------------

    @property
    def position(self) -> int:
        return self._base + self._pos

    def _fill(self, want: int) -> bool:
        """Read one more piece of the source into the buffer, in place of the consumed
        one (``_pos`` is at its end); False at the end of the source."""
        if self._eof:
            return False
        data = self._source.read(want)
        if not data:
            self._eof = True
            return False
        if not isinstance(data, bytes):
            data = bytes(data)
        self._base += len(self._buf)
        self._buf, self._pos = data, 0
        return True

    def _take(self, n: int) -> bytes:
        """Return the next ``n`` bytes of the stream (fewer at its end).  Only the bytes
        returned are copied: a header that straddles two pieces of the source does not
        make the reader join the pieces themselves."""
        pos = self._pos
        end = pos + n
        if end <= len(self._buf):
            self._pos = end
            return self._buf[pos:end]
        pieces = [self._buf[pos:]]
        got = len(pieces[0])
        self._pos = len(self._buf)
        while got < n and self._fill(self._want):
            part = self._buf[: n - got]
            pieces.append(part)
            self._pos = len(part)
            got += len(part)
        return b"".join(pieces)

    def _skip_to(self, offset: int) -> None:
        while offset > self._base + len(self._buf):
            self._pos = len(self._buf)
            if not self._fill(READ_SIZE):
                return
        if offset > self._base + self._pos:
            self._pos = offset - self._base

    def seek(self, offset: int) -> None:
        """Go forward to ``offset`` within the current member's data."""
        if not self.position <= offset <= self._data_end:
            raise ValueError(f"cannot seek to byte {offset} from byte {self.position} of a tar stream")
        self._skip_to(offset)

    def read(self, n: int) -> Any:
        """Return up to ``n`` bytes (a bytes-like object) of the current member's data;
        fewer only when its data or the stream ends."""
        n = min(n, self._data_end - self._base - self._pos)
        if n <= 0:
            return b""
        if self._pos >= len(self._buf) and not self._fill(self._want):
            return b""
        end = min(self._pos + n, len(self._buf))
        view = memoryview(self._buf)[self._pos : end]
        self._pos = end
        return view

    # -- errors ----------------------------------------------------------------------

    def damaged(self, problem: str) -> IntegrityError:
        """Read the rest of the source (an upstream check may raise its own error
        meanwhile), then return the error for ``problem``."""
        try:
            while self._fill(READ_SIZE):
                self._pos = len(self._buf)
        except BakthatError:
            raise
        except Exception:  # noqa: BLE001 - the archive error being raised is the one to report
            log.debug("could not read the rest of a damaged archive", exc_info=True)
        return IntegrityError(f"truncated or damaged archive: {problem}")

    # -- members ---------------------------------------------------------------------

    def __iter__(self) -> Iterator[tarfile.TarInfo]:
        while True:
            member = self._next()
            if member is None:
                return
            yield member

    def _header(self) -> tuple[bytes, int] | None:
        """Return the next header block and its position; None at the end marker."""
        start = self.position
        block = self._take(BLOCK)
        if len(block) < BLOCK:
            raise self.damaged(f"the stream ends at byte {self.position} without an end-of-archive marker")
        if block == _ZERO_BLOCK:
            return None
        return block, start

    def _next(self) -> tarfile.TarInfo | None:
        self._skip_to(self.offset)
        if self.position < self.offset:
            raise self.damaged(f"the stream ends at byte {self.position} without an end-of-archive marker")
        first = self.position
        extended: dict[str, str] | None = None
        sparse_00: list[list[int]] = [[], []]
        long_name = long_link = None
        while True:
            found = self._header()
            if found is None:
                if extended is not None or long_name is not None or long_link is not None:
                    raise self.damaged(f"the archive ends after the extended header at byte {first}")
                self._finish()
                return None
            block, start = found
            known = self._known_pax.get(block)
            if known is not None:  # the same block as an earlier PAX header: checked then
                fields, chksum, size = known
                kind = fields[7]
            else:
                try:
                    fields = _HEADER.unpack(block)
                    chksum = _number(fields[6])
                    if not _checksum_matches(block, chksum):
                        raise _Damaged("bad checksum")
                    kind = fields[7]
                    size = _number(fields[4])
                except _Damaged:
                    raise self.damaged(f"unreadable member header at byte {start}") from None
                if kind in _PAX_TYPES and size <= MAX_PAX_HEADER:
                    if len(self._known_pax) >= _KNOWN_PAX:
                        self._known_pax.clear()
                    self._known_pax[block] = (fields, chksum, size)
            if kind in _PAX_TYPES or kind == tarfile.XGLTYPE:
                if size > MAX_PAX_HEADER:
                    raise unsafe(_text(fields[0]), f"its PAX extended header is {size} bytes long (the limit is {MAX_PAX_HEADER})")
                data = self._member_bytes(size)
                try:
                    if kind == tarfile.XGLTYPE:
                        records = dict(self._globals)
                        _pax_records(data, records, None)
                        if sum(len(key) + len(value) for key, value in records.items()) > MAX_PAX_HEADER:
                            raise unsafe(_text(fields[0]), f"its PAX global headers hold more than {MAX_PAX_HEADER} bytes")
                        self._globals = records
                        first = self.position  # a member starts after the global header
                    else:
                        extended = {} if extended is None else extended
                        _pax_records(data, extended, sparse_00)
                except _Damaged as exc:
                    raise self.damaged(f"{exc} in the header at byte {start}") from None
                continue
            if kind in _LONG_TYPES:
                if size > MAX_LONG_NAME:
                    raise unsafe(_text(fields[0]), f"its GNU long name is {size} bytes long (the limit is {MAX_LONG_NAME})")
                text = _text(self._member_bytes(size))
                if kind == tarfile.GNUTYPE_LONGNAME:
                    long_name = text
                else:
                    long_link = text
                continue
            if kind == tarfile.GNUTYPE_SPARSE:
                raise unsafe(_text(fields[0]), "it is an old-style GNU sparse file, which bakthat does not write or restore")
            self._want = READ_SIZE
            try:
                return self._member(fields, kind, size, chksum, first, extended, sparse_00, long_name, long_link)
            except _Damaged as exc:
                raise self.damaged(f"{exc} in the member at byte {first}") from None

    def _member_bytes(self, size: int) -> bytes:
        """Return the ``size`` bytes of data after a header, and skip their padding."""
        data = self._take(size)
        if len(data) < size:
            raise self.damaged(f"the stream ends at byte {self.position} inside a header")
        self._skip_to(self.position + (-size % BLOCK))
        return data

    def _member(self, fields: tuple, kind: bytes, size: int, chksum: int, first: int, extended: dict[str, str] | None,
                sparse_00: list[list[int]], long_name: str | None, long_link: str | None) -> tarfile.TarInfo:
        info = tarfile.TarInfo()
        name = _text(fields[0])
        mode, uid, gid, mtime = fields[1], fields[2], fields[3], fields[5]
        try:  # the usual octal fields ("0000644\0"), in one go; else one by one
            if not (mode[-1] in _TERMINATORS and uid[-1] in _TERMINATORS and gid[-1] in _TERMINATORS
                    and mtime[-1] in _TERMINATORS):
                raise ValueError
            info.mode, info.uid, info.gid = int(mode[:-1], 8), int(uid[:-1], 8), int(gid[:-1], 8)
            info.mtime = int(mtime[:-1], 8)
        except ValueError:
            info.mode, info.uid, info.gid, info.mtime = _number(mode), _number(uid), _number(gid), _number(mtime)
        info.chksum = chksum
        info.linkname = _text(fields[8])
        info.uname = _text(fields[11])
        info.gname = _text(fields[12])
        if kind == tarfile.CHRTYPE or kind == tarfile.BLKTYPE:
            info.devmajor = _number(fields[13])
            info.devminor = _number(fields[14])
        prefix = _text(fields[15])
        # As tarfile: an old-style directory is a regular file named with a slash, and
        # the ustar prefix is joined to the name.
        if kind == tarfile.AREGTYPE and name.endswith("/"):
            kind = tarfile.DIRTYPE
        if kind == tarfile.DIRTYPE:
            name = name.rstrip("/")
        if prefix:
            name = prefix + "/" + name
        if long_name is not None:
            name = long_name.removesuffix("/") if kind == tarfile.DIRTYPE else long_name
        if long_link is not None:
            info.linkname = long_link
        info.name = name
        info.type = kind
        info.size = size
        info.offset = first
        info.offset_data = data_start = self._base + self._pos
        pax = {**self._globals, **extended} if self._globals and extended else extended or dict(self._globals)
        stored = size
        if pax:
            try:
                stored = self._apply_pax(info, pax, size)
            except ValueError:
                raise _Damaged("malformed PAX record value") from None
        has_data = kind in _DATA_TYPES
        self.offset = data_start + _blocks(stored) if has_data else data_start
        self._data_end = data_start + stored if has_data else data_start
        if pax:
            self._sparse(info, pax, sparse_00)
        return info

    @staticmethod
    def _apply_pax(info: tarfile.TarInfo, pax: dict[str, str], size: int) -> int:
        """Apply PAX records to ``info`` in their order, as tarfile does (a number
        that does not parse is 0, except the size); return the stored data size."""
        name = info.name
        for keyword, value in pax.items():
            if keyword == "GNU.sparse.name":
                name = value
            elif keyword in ("GNU.sparse.size", "GNU.sparse.realsize"):
                info.size = int(value)
            elif keyword in _NUMBER_RECORDS:
                try:
                    setattr(info, keyword, _NUMBER_RECORDS[keyword](value))
                except ValueError:
                    setattr(info, keyword, 0)
            elif keyword == "path":
                name = value.rstrip("/")
            elif keyword in _TEXT_RECORDS:
                setattr(info, _TEXT_RECORDS[keyword], value)
        info.pax_headers = pax
        info.name = name
        return int(pax["size"]) if "size" in pax else size

    def _sparse(self, info: tarfile.TarInfo, pax: dict[str, str], sparse_00: list[list[int]]) -> None:
        """Set ``info.sparse`` (and its real size) from GNU sparse records, reading a
        version 1.0 map from the start of the member's data."""
        try:
            if "GNU.sparse.map" in pax:
                numbers = [int(number) for number in pax["GNU.sparse.map"].split(",")]
                info.sparse = list(zip(numbers[::2], numbers[1::2]))
            elif "GNU.sparse.size" in pax:
                info.sparse = list(zip(*sparse_00))
            elif pax.get("GNU.sparse.major") == "1" and pax.get("GNU.sparse.minor") == "0":
                info.sparse = self._sparse_map(info)
            else:
                return
        except ValueError:
            raise _Damaged("malformed GNU sparse information") from None
        realsize = pax.get("GNU.sparse.realsize", pax.get("GNU.sparse.size"))
        if realsize is not None:
            info.size = int(realsize)

    def _sparse_map(self, info: tarfile.TarInfo) -> list[tuple[int, int]]:
        """Read a GNU sparse 1.0 map (decimal numbers, one per line, in whole blocks at
        the start of the member's data), with a limit on its length."""
        numbers: list[int] = []
        buffer = b""
        wanted = None
        while wanted is None or len(numbers) < wanted:
            if b"\n" not in buffer:
                if self.position + BLOCK > self._data_end:
                    raise self.damaged(f"the sparse map of {info.name!r} runs past its member")
                block = self._take(BLOCK)
                if len(block) < BLOCK:
                    raise self.damaged("the archive ends inside a sparse map")
                buffer += block
                if len(buffer) > 64 + 48 * MAX_SPARSE_SEGMENTS:
                    raise unsafe(info.name, "its sparse map is too long")
                continue
            line, buffer = buffer.split(b"\n", 1)
            if not line.isdigit():
                raise unsafe(info.name, f"its sparse map holds {line[:40]!r}, not a number")
            if wanted is None:
                if int(line) > MAX_SPARSE_SEGMENTS:
                    raise unsafe(info.name, f"its sparse map has {int(line)} segments (the limit is {MAX_SPARSE_SEGMENTS})")
                wanted = 2 * int(line)
            else:
                numbers.append(int(line))
        info.offset_data = self.position
        return list(zip(numbers[::2], numbers[1::2]))

    def _finish(self) -> None:
        """After the end-of-archive block: read the stream to its end; raise
        IntegrityError if anything but NUL bytes follows."""
        clean = True
        while True:
            rest = self._buf[self._pos :]
            if clean and rest.count(0) != len(rest):
                clean = False
            self._pos = len(self._buf)
            if not self._fill(READ_SIZE):
                break
        self.offset = self.position
        if not clean:
            raise IntegrityError("truncated or damaged archive: data follows the end-of-archive marker")
