"""The index file: an :class:`~bakthat.index.Index` as zstd-compressed JSON lines.

Stock tools read it (``zstd -dc FILE | jq``); in the store it is encrypted like the
archive, by the pipeline that wraps the binary streams given here.  One JSON value a
line, in this order:

1. a header object: ``{"format": "bakthat-index", "format_version": 1, "kind":
   "delta", "backup": ..., "level": ..., "base": ..., "root": ..., "holders": [...],
   "fields": [...]}``;
2. the owner names: ``{"uid": 1000, "user": "alice"}`` and ``{"gid": 100, "group":
   "users"}``;
3. the deleted paths (delta of a differential or incremental), topmost first:
   ``{"deleted": "www/old"}``;
4. one array per entry, in the order of ``fields``: ``["www/a.txt", "f", 12,
   1795363502000000000, ...]``;
5. a trailer: ``{"end": {"entries": N, "deletions": M, "names": K}}``.

A path or link target that is not valid UTF-8 is written as ``{"base64": "..."}`` of
its bytes instead of a string.  ``sha256`` is hex or null; ``holder`` is a position in
``holders`` (a state's entries) or null (a delta's: the backup itself).

:func:`read_index` treats the file as untrusted input (it comes from the store): every
line is bounded, every value checked for type and range, paths must be relative,
normalised, under the root and free of NUL, ``.`` and ``..``; duplicates, a missing
trailer, counts that disagree, or anything after the trailer are refused with a
:class:`~bakthat.index.BadIndexError` naming the object and the line.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Iterator
from typing import Any, BinaryIO

from bakthat.index import Index
from bakthat.index_records import (
    DIGEST_SIZE,
    KINDS,
    LEVELS,
    MAX_INT64,
    MAX_LINK,
    MAX_UINT32,
    MAX_UINT64,
    MIN_INT64,
    SYMLINK,
    TYPES,
    BadIndexError,
    key_of,
    pack_fields,
    unpack,
)

FORMAT = "bakthat-index"
FORMAT_VERSION = 1
FIELDS: tuple[str, ...] = (
    "path", "type", "size", "mtime_ns", "ctime_ns", "ino", "dev", "nlink", "mode",
    "uid", "gid", "rdev", "link", "sha256", "holder", "flags",
)
#: Caps on what :func:`read_index` accepts.
MAX_LINE = 64 * 1024
MAX_PATH = 16 * 1024
MAX_ENTRIES = 50_000_000
MAX_HOLDERS = 100_000
MAX_NAMES = 1_000_000
MAX_NAME_LENGTH = 256
_NS = 1_000_000_000
_BATCH = 2048
_READ_SIZE = 64 * 1024
_HEX = frozenset("0123456789abcdef")
_TYPE_SET = frozenset(TYPES)
_OPENERS = (b"[", b"{")
_CLOSERS = (b"]", b"}")
#: The integer fields of an entry with their ranges (entry() checks the same ranges
#: inline; these name the field in the error).
_NUMBER_FIELDS = ("size", "mtime_ns", "ctime_ns", "ino", "dev", "nlink", "mode", "uid", "gid", "rdev", "flags")
_MIN_NS, _MAX_NS = MIN_INT64 * _NS, MAX_INT64 * _NS
_RANGES = (
    (0, MAX_INT64), (_MIN_NS, _MAX_NS), (_MIN_NS, _MAX_NS), (0, MAX_UINT64),
    (0, MAX_UINT64), (0, MAX_UINT32), (0, 0o7777), (0, MAX_UINT32), (0, MAX_UINT32), (0, MAX_UINT64), (0, 1),
)


_line = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode
_string = json.encoder.encode_basestring  # type: ignore[attr-defined]


def _json_text(raw: bytes) -> str:
    """Return ``raw`` as a JSON string, or as ``{"base64": ...}`` if it is not UTF-8."""
    try:
        return _string(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return _line({"base64": base64.b64encode(raw).decode("ascii")})


def _lines(index: Index) -> Iterator[str]:
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": index.kind,
        "backup": index.backup,
        "level": index.level,
        "base": index.base,
        "root": index.root,
        "holders": list(index.holders),
        "fields": list(FIELDS),
    }
    yield _line(header)
    for uid, user in sorted(index.users.items()):
        yield _line({"uid": uid, "user": user})
    for gid, group in sorted(index.groups.items()):
        yield _line({"gid": gid, "group": group})
    for key in index.deletions:
        yield f'{{"deleted":{_json_text(key)}}}'
    state = index.kind == "state"
    for key, record in index.items():
        # Written by hand (the same text json.dumps gives): one encoder call a line is
        # most of the cost of writing 1 M entries.
        (kind, size, mtime_ns, ctime_ns, ino, dev, nlink, mode, uid, gid, rdev, link, digest,
         flags, holder) = unpack(record)
        link_text = _json_text(link) if kind == SYMLINK else "null"
        digest_text = f'"{digest.hex()}"' if digest else "null"
        holder_text = holder if state else "null"
        yield (
            f'[{_json_text(key)},"{kind}",{size},{mtime_ns},{ctime_ns},{ino},{dev},{nlink},{mode},{uid},{gid},'
            f"{rdev},{link_text},{digest_text},{holder_text},{flags}]"
        )
    names = len(index.users) + len(index.groups)
    yield _line({"end": {"entries": len(index), "deletions": len(index.deletions), "names": names}})


def write_index(index: Index, sink: BinaryIO, *, level: int = 3) -> None:
    """Given an index and a writable binary stream, write the index file to it.

    The output is one zstd frame with its content checksum.  ``sink`` is written to but
    neither flushed-and-closed nor seeked: the caller finishes it (the pipeline's
    encrypting writer, an upload, a file).
    """
    import zstandard

    writer = zstandard.ZstdCompressor(level=level, write_checksum=True).stream_writer(sink, closefd=False)
    batch: list[str] = []
    for line in _lines(index):
        batch.append(line)
        if len(batch) >= _BATCH:
            writer.write(("\n".join(batch) + "\n").encode("utf-8"))
            batch.clear()
    if batch:
        writer.write(("\n".join(batch) + "\n").encode("utf-8"))
    writer.close()


def index_bytes(index: Index, *, level: int = 3) -> bytes:
    """Return the index file of ``index`` as bytes."""
    buffer = io.BytesIO()
    write_index(index, buffer, level=level)
    return buffer.getvalue()


class _Reader:
    """Check one index file line by line, building the Index."""

    def __init__(self, name: str, expect_backup: str | None, expect_root: str | None, max_entries: int):
        self.name = name
        self.expect_backup = expect_backup
        self.expect_root = expect_root
        self.max_entries = max_entries
        self.line = 0
        self.index: Index | None = None
        self.root_key = b""
        self.root_prefix = b""
        self.deletions: set[bytes] = set()
        self.names = 0
        self.ended = False

    def fail_next(self, why: str) -> BadIndexError:
        self.line += 1
        return self.fail(why)

    def fail(self, why: str) -> BadIndexError:
        where = f"line {self.line}" if self.line else "header"
        return BadIndexError(f"index {self.name}: {where}: {why}")

    # -- values ----------------------------------------------------------------------

    def path(self, value: Any, what: str) -> bytes:
        raw = self.raw(value, what, MAX_PATH)
        if raw.startswith(b"/"):
            raise self.fail(f"{what} {_show(raw)} is absolute")
        parts = raw.split(b"/")
        if b"" in parts or b"." in parts or b".." in parts:
            raise self.fail(f"{what} {_show(raw)} has an empty, '.' or '..' component")
        if raw != self.root_key and not raw.startswith(self.root_prefix):
            raise self.fail(f"{what} {_show(raw)} is not under the root {self.index.root!r}")  # type: ignore[union-attr]
        return raw

    def raw(self, value: Any, what: str, limit: int) -> bytes:
        if type(value) is str:
            try:
                raw = value.encode("utf-8")
            except UnicodeEncodeError:
                raise self.fail(f"{what} is not valid text") from None
        elif isinstance(value, dict) and len(value) == 1 and isinstance(value.get("base64"), str):
            try:
                raw = base64.b64decode(value["base64"], validate=True)
            except (binascii.Error, ValueError):
                raise self.fail(f"{what} has bad base64") from None
        else:
            raise self.fail(f"{what} must be a string or {{\"base64\": ...}}, not {_kind(value)}")
        if not raw:
            raise self.fail(f"{what} is empty")
        if len(raw) > limit:
            raise self.fail(f"{what} is longer than {limit} bytes")
        if b"\0" in raw:
            raise self.fail(f"{what} {_show(raw)} contains a NUL byte")
        return raw

    def integer(self, value: Any, what: str, low: int, high: int) -> int:
        if type(value) is not int or not low <= value <= high:
            raise self.fail(f"{what} must be an integer from {low} to {high}, not {_kind(value)}")
        return value

    # -- lines -----------------------------------------------------------------------

    def header(self, value: Any) -> None:
        if not isinstance(value, dict) or value.get("format") != FORMAT:
            raise self.fail("not a bakthat index (no 'format': 'bakthat-index' header)")
        version = value.get("format_version")
        if version != FORMAT_VERSION:
            raise self.fail(
                f"format_version {version!r} is not supported (this bakthat reads version {FORMAT_VERSION}; "
                "a newer bakthat wrote it?)"
            )
        kind, level = value.get("kind"), value.get("level")
        if kind not in KINDS:
            raise self.fail(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        if level not in LEVELS:
            raise self.fail(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
        backup, base, root = value.get("backup"), value.get("base"), value.get("root")
        if not isinstance(backup, str) or not backup:
            raise self.fail("backup must be the stored filename of the backup")
        if self.expect_backup is not None and backup != self.expect_backup:
            raise self.fail(f"it is the index of {backup!r}, not of {self.expect_backup!r}")
        if level == "full" and base is not None:
            raise self.fail("a full backup has no base")
        if level != "full" and (not isinstance(base, str) or not base):
            raise self.fail(f"a {level} backup needs the stored filename of its base")
        if not isinstance(root, str) or not root or "/" in root or root in (".", "..") or "\0" in root:
            raise self.fail(f"root must be one path component (the backup name), not {root!r}")
        if self.expect_root is not None and root != self.expect_root:
            raise self.fail(f"its root is {root!r}, not {self.expect_root!r}")
        holders = value.get("holders")
        if (
            not isinstance(holders, list)
            or not 1 <= len(holders) <= MAX_HOLDERS
            or not all(isinstance(holder, str) and holder for holder in holders)
            or holders[-1] != backup
            or (kind == "delta" and len(holders) != 1)
        ):
            raise self.fail("holders must list the chain's stored filenames, ending with the backup's own")
        if value.get("fields") != list(FIELDS):
            raise self.fail(f"fields must be {list(FIELDS)}")
        self.index = Index(kind, backup=backup, level=level, base=base, root=root, holders=holders)
        self.root_key = key_of(root)
        self.root_prefix = self.root_key + b"/"

    def entry(self, value: list[Any]) -> None:
        index = self.index
        assert index is not None
        if len(value) != len(FIELDS):
            raise self.fail(f"an entry has {len(FIELDS)} fields, not {len(value)}")
        if len(index) >= self.max_entries:
            raise self.fail(f"more than {self.max_entries} entries")
        (path, kind, size, mtime_ns, ctime_ns, ino, dev, nlink, mode, uid, gid, rdev, link, digest,
         holder, flags) = value
        key = self.path(path, "path")
        if kind not in _TYPE_SET:
            raise self.fail(f"{_show(key)}: type must be one of {', '.join(TYPES)}, not {_kind(kind)}")
        # One expression (no loop): this check runs for every entry of the index.
        if not (
            type(size) is int and 0 <= size <= MAX_INT64
            and type(mtime_ns) is int and _MIN_NS <= mtime_ns <= _MAX_NS
            and type(ctime_ns) is int and _MIN_NS <= ctime_ns <= _MAX_NS
            and type(ino) is int and 0 <= ino <= MAX_UINT64
            and type(dev) is int and 0 <= dev <= MAX_UINT64
            and type(nlink) is int and 0 <= nlink <= MAX_UINT32
            and type(mode) is int and 0 <= mode <= 0o7777
            and type(uid) is int and 0 <= uid <= MAX_UINT32
            and type(gid) is int and 0 <= gid <= MAX_UINT32
            and type(rdev) is int and 0 <= rdev <= MAX_UINT64
            and (flags == 0 or flags == 1) and type(flags) is int
        ):
            self.bad_numbers(key, (size, mtime_ns, ctime_ns, ino, dev, nlink, mode, uid, gid, rdev, flags))
        if kind == SYMLINK:
            raw_link = self.raw(link, f"{_show(key)}: link target", MAX_LINK)
        elif link is not None:
            raise self.fail(f"{_show(key)}: only a symbolic link has a link target")
        else:
            raw_link = b""
        if digest is None:
            raw_digest = b""
        elif type(digest) is str and len(digest) == 2 * DIGEST_SIZE and _HEX.issuperset(digest):
            raw_digest = bytes.fromhex(digest)
        else:
            raise self.fail(f"{_show(key)}: sha256 must be 64 lowercase hex digits or null")
        if index.kind == "state":
            if type(holder) is not int or not 0 <= holder < len(index.holders):
                self.integer(holder, f"{_show(key)}: holder", 0, len(index.holders) - 1)
        elif holder is not None:
            raise self.fail(f"{_show(key)}: a delta's entries have no holder")
        record = pack_fields(
            dev, nlink, holder or 0, kind, flags, mode, size, mtime_ns, ctime_ns, ino, uid, gid, rdev,
            raw_link, raw_digest,
        )
        if index.setdefault(key, record) is not record:
            raise self.fail(f"{_show(key)} appears twice")

    def bad_numbers(self, key: bytes, numbers: tuple[Any, ...]) -> None:
        """Raise the error naming the first number of an entry that is out of range."""
        for number, (low, high), name in zip(numbers, _RANGES, _NUMBER_FIELDS):
            self.integer(number, f"{_show(key)}: {name}", low, high)
        raise AssertionError("bad_numbers() called on good numbers")

    def other(self, value: dict[str, Any]) -> None:
        index = self.index
        assert index is not None
        if "deleted" in value and len(value) == 1:
            if index.kind != "delta" or index.level == "full":
                raise self.fail("only the index of a differential or incremental records deleted paths")
            if len(index):
                raise self.fail("deleted paths come before the entries")
            key = self.path(value["deleted"], "deleted path")
            if key in self.deletions:
                raise self.fail(f"deleted path {_show(key)} appears twice")
            if len(self.deletions) >= self.max_entries:
                raise self.fail(f"more than {self.max_entries} deleted paths")
            self.deletions.add(key)
            index.deletions.append(key)
        elif set(value) in ({"uid", "user"}, {"gid", "group"}):
            owner = "uid" in value
            number = self.integer(value["uid" if owner else "gid"], "uid" if owner else "gid", 0, MAX_UINT32)
            name = value["user" if owner else "group"]
            if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_LENGTH or "\0" in name:
                raise self.fail(f"a {'user' if owner else 'group'} name must be a short string")
            table = index.users if owner else index.groups
            if number in table:
                raise self.fail(f"{'uid' if owner else 'gid'} {number} is named twice")
            self.names += 1
            if self.names > MAX_NAMES:
                raise self.fail(f"more than {MAX_NAMES} owner names")
            table[number] = name
        elif set(value) == {"end"}:
            end = value["end"]
            expected = {"entries": len(index), "deletions": len(index.deletions), "names": self.names}
            if end != expected:
                raise self.fail(f"the trailer says {end!r} but the file holds {expected}")
            self.ended = True
        else:
            raise self.fail(f"unknown line with keys {sorted(value)[:5]}")

    def feed_lines(self, lines: list[bytes]) -> None:
        """Check a run of complete lines (without their newlines).

        Lines that each look like one JSON array or object are decoded in one call (much
        faster than one call a line); if that fails, or gives another number of values,
        they are decoded one by one so the error names the line.
        """
        for offset, text in enumerate(lines):
            if len(text) >= MAX_LINE:
                self.line += offset
                raise self.fail_next(f"a line is longer than {MAX_LINE} bytes")
        values = None
        if self.index is not None and len(lines) > 1 and all(
            text[:1] in _OPENERS and text[-1:] in _CLOSERS for text in lines
        ):
            try:
                values = json.loads(b"[" + b",".join(lines) + b"]")
            except (ValueError, UnicodeDecodeError):
                values = None
        if values is None or len(values) != len(lines):
            values = None
        for position, text in enumerate(lines):
            self.line += 1
            if self.ended:
                raise self.fail("data after the trailer")
            if values is not None:
                value = values[position]
            else:
                try:
                    value = json.loads(text)
                except (ValueError, UnicodeDecodeError) as exc:
                    raise self.fail(f"not JSON ({exc})") from None
            if self.index is None:
                self.header(value)
            elif type(value) is list:
                self.entry(value)
            elif type(value) is dict:
                self.other(value)
            else:
                raise self.fail(f"a line must be an object or an array, not {_kind(value)}")


def _kind(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return f"a JSON {'object' if isinstance(value, dict) else 'array'}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _show(raw: bytes) -> str:
    text = repr(raw.decode("utf-8", "backslashreplace"))
    return text if len(text) <= 80 else text[:77] + "...'"


def read_index(
    source: BinaryIO,
    name: str,
    *,
    expect_backup: str | None = None,
    expect_root: str | None = None,
    max_entries: int = MAX_ENTRIES,
) -> Index:
    """Given a readable binary stream holding an index file (zstd-compressed, already
    decrypted) and the name of the stored object (for messages), return the Index.

    ``expect_backup`` and ``expect_root``, if given, must be the backup and root the
    header names (an index copied beside another backup is refused).  The stream is
    read to its end.  Raise BadIndexError (an IntegrityError, exit code 6) naming
    ``name`` for damaged compressed data and for any line that breaks the format or its
    caps: a line over 64 KiB, more than ``max_entries`` entries, a value of the wrong
    type or range, an absolute path, a path with an empty, ``.`` or ``..`` component or
    a NUL byte, a path outside the root, a duplicate, a missing or wrong trailer, data
    after it.
    """
    import zstandard

    reader = _Reader(name, expect_backup, expect_root, max_entries)
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    pending = b""
    try:
        while not decompressor.eof:
            chunk = source.read(_READ_SIZE)
            if not chunk:
                break
            pending += decompressor.decompress(chunk)
            lines = pending.split(b"\n")
            pending = lines.pop()
            reader.feed_lines(lines)
            if len(pending) >= MAX_LINE:
                raise reader.fail_next(f"a line is longer than {MAX_LINE} bytes")
    except zstandard.ZstdError as exc:
        raise BadIndexError(f"index {name}: damaged compressed data ({exc})") from None
    if not decompressor.eof:
        raise BadIndexError(f"index {name}: the compressed data is truncated")
    if decompressor.unused_data or source.read(1):
        raise BadIndexError(f"index {name}: data follows the end of the compressed index")
    if pending:
        raise reader.fail_next("the last line is not terminated")
    if reader.index is None:
        raise BadIndexError(f"index {name}: it is empty")
    if not reader.ended:
        raise BadIndexError(f"index {name}: it ends without its trailer")
    return reader.index


def index_from_bytes(data: bytes, name: str, **expect: Any) -> Index:
    """Return the Index held in ``data`` (see :func:`read_index`)."""
    return read_index(io.BytesIO(data), name, **expect)
