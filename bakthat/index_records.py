"""The record of one index entry: a compact, comparable form of an ``lstat`` result.

A record is packed bytes, not an object: a fixed 78-byte struct (device, link count,
holder | type, flags, mode, size, mtime and ctime in seconds and nanoseconds, inode,
uid, gid, device number, link-target length), then the link target, then the 32-byte
SHA-256 of the content if there is one.  The first 16 bytes (device, link count,
holder) are never compared; the rest is what :func:`changed` compares, so
"unchanged" is one bytes comparison and an index of 1 M entries stays small
(benchmarks/bench_index.py measures it).

Change detection (:func:`changed`): an entry changed when its type, size, mtime,
ctime, inode, mode, owner (uid, gid), device number or link target differ, or when it
was marked *unstable* (it changed while it was read), or when both records carry a
content digest and the digests differ.  Never by mtime alone: a file rewritten with
the same size and mtime still has a new ctime (or a new inode), and that is enough.
The device number of the filesystem (``st_dev``) is not compared: it can change at
every reboot for some filesystems, which would make every file look changed.

Paths are keys: bytes (:func:`os.fsencode`), so a name that is not valid UTF-8
round-trips exactly; the functions here that take paths accept ``str`` with
``surrogateescape`` too, as :mod:`os` does.
"""

from __future__ import annotations

import os
import stat
import struct
import sys
from collections.abc import Iterator
from typing import Any

from bakthat.errors import IntegrityError

#: Entry types, as ``find -printf %y`` prints them.
FILE, DIRECTORY, SYMLINK, FIFO, CHAR_DEVICE, BLOCK_DEVICE, SOCKET = "f", "d", "l", "p", "c", "b", "s"
TYPES: tuple[str, ...] = (FILE, DIRECTORY, SYMLINK, FIFO, CHAR_DEVICE, BLOCK_DEVICE, SOCKET)
TYPE_NAMES = {
    FILE: "regular file",
    DIRECTORY: "directory",
    SYMLINK: "symbolic link",
    FIFO: "FIFO",
    CHAR_DEVICE: "character device",
    BLOCK_DEVICE: "block device",
    SOCKET: "socket",
}
_TYPE_OF_MODE = {
    stat.S_IFREG: FILE,
    stat.S_IFDIR: DIRECTORY,
    stat.S_IFLNK: SYMLINK,
    stat.S_IFIFO: FIFO,
    stat.S_IFCHR: CHAR_DEVICE,
    stat.S_IFBLK: BLOCK_DEVICE,
    stat.S_IFSOCK: SOCKET,
}
_DEVICES = frozenset((CHAR_DEVICE, BLOCK_DEVICE))
KINDS: tuple[str, ...] = ("delta", "state")
LEVELS: tuple[str, ...] = ("full", "diff", "incr")
LEVEL_NAMES = {"full": "full", "diff": "differential", "incr": "incremental"}
DIGEST_SIZE = 32  # SHA-256

#: The entry changed while it was read: the next backup stores it whatever it looks like.
FLAG_UNSTABLE = 1

# dev, nlink, holder | type, flags, mode, size, mtime s, mtime ns, ctime s, ctime ns,
# ino, uid, gid, rdev, link length
_RECORD = struct.Struct("<QIIBBHQqIqIQIIQH")
_PACK = _RECORD.pack
_HEAD = 16  # bytes of the record that are not compared
_FIXED = _RECORD.size
#: The size of a record without link target and digest.
MIN_RECORD_SIZE = _FIXED
_LINK_LENGTH = slice(_FIXED - 2, _FIXED)
_TYPE_BYTE = _HEAD
_HOLDER = struct.Struct("<I")
_NS = 1_000_000_000
_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()
#: For a caller that inlines :func:`key_of` and :func:`changed` in a loop over every
#: entry: the encoding of keys, where the compared part of a record starts, its flags byte.
FS_ENCODING, FS_ERRORS = _FS_ENCODING, _FS_ERRORS
COMPARED_FROM = _HEAD
FLAGS_AT = _HEAD + 1
_IMODE = 0o7777
#: Limits of the record layout (the index file reader enforces the same ones).
MAX_LINK = 0xFFFF
MAX_UINT32 = 0xFFFFFFFF
MAX_UINT64 = 0xFFFFFFFFFFFFFFFF
MIN_INT64 = -(1 << 63)
MAX_INT64 = (1 << 63) - 1


class BadIndexError(IntegrityError):
    """An index is malformed, inconsistent or hostile (exit code 6).

    Raised for an index read from the store that breaks its format or its caps, and
    for a chain whose indexes do not fit together.  The message names the object.
    """


def key_of(path: str | bytes) -> bytes:
    """Given an archive path as ``str`` (surrogateescape) or ``bytes``, return its key
    (what :func:`os.fsencode` returns, without its per-call overhead)."""
    return path.encode(_FS_ENCODING, _FS_ERRORS) if type(path) is str else path  # type: ignore[union-attr]


def parent_of(key: bytes) -> bytes | None:
    """Given a key, return its parent's key, or None for a top-level path."""
    cut = key.rfind(b"/")
    return None if cut < 0 else key[:cut]


def ancestors_of(key: bytes) -> Iterator[bytes]:
    """Yield the keys of every ancestor of ``key``, nearest first."""
    cut = key.rfind(b"/")
    while cut >= 0:
        key = key[:cut]
        yield key
        cut = key.rfind(b"/")


def pack(
    *,
    type: str,
    size: int,
    mtime_ns: int,
    ctime_ns: int,
    ino: int,
    dev: int,
    nlink: int,
    mode: int,
    uid: int,
    gid: int,
    rdev: int = 0,
    link: bytes = b"",
    digest: bytes = b"",
    flags: int = 0,
    holder: int = 0,
) -> bytes:
    """Given the fields of one entry, return its record.

    ``mode`` is the permission part (``stat.S_IMODE``); ``link`` the raw link target
    (symbolic links only); ``digest`` empty or the 32-byte SHA-256 of the content.
    Raise ValueError if a field is out of the layout's range.
    """
    if len(link) > MAX_LINK:
        raise ValueError(f"link target of {len(link)} bytes is longer than {MAX_LINK}")
    if len(digest) not in (0, DIGEST_SIZE):
        raise ValueError(f"a digest is {DIGEST_SIZE} bytes, not {len(digest)}")
    return pack_fields(
        dev, nlink, holder, type, flags, mode, size, mtime_ns, ctime_ns, ino, uid, gid, rdev, link, digest
    )


def pack_fields(
    dev: int, nlink: int, holder: int, type: str, flags: int, mode: int, size: int, mtime_ns: int, ctime_ns: int,
    ino: int, uid: int, gid: int, rdev: int, link: bytes, digest: bytes,
) -> bytes:
    """:func:`pack` with positional arguments and no length checks on ``link`` and
    ``digest`` (for callers that checked them already: the index file reader)."""
    mtime_s, mtime_sub = divmod(mtime_ns, _NS)
    ctime_s, ctime_sub = divmod(ctime_ns, _NS)
    try:
        fixed = _RECORD.pack(
            dev, nlink, holder, ord(type), flags, mode, size, mtime_s, mtime_sub,
            ctime_s, ctime_sub, ino, uid, gid, rdev, len(link),
        )
    except (struct.error, TypeError) as exc:
        raise ValueError(f"index field out of range: {exc}") from None
    return fixed + link + digest if link or digest else fixed


def record_from_stat(
    st: os.stat_result,
    link: bytes | str | None = None,
    *,
    digest: bytes = b"",
    unstable: bool = False,
    holder: int = 0,
) -> bytes:
    """Given an ``lstat`` result (and the link target of a symbolic link), return a record.

    Raise ValueError for an unknown file type, a link target on a non-link, or a field
    out of range.
    """
    mode = st.st_mode
    kind = _TYPE_OF_MODE.get(mode & 0o170000)
    if kind is None:
        raise ValueError(f"unknown file type in mode {mode:#o}")
    if link is None and not digest:
        # The common case (called once per entry of a walk): one struct call.
        mtime_s, mtime_sub = divmod(st.st_mtime_ns, _NS)
        ctime_s, ctime_sub = divmod(st.st_ctime_ns, _NS)
        try:
            return _PACK(
                st.st_dev, st.st_nlink, holder, ord(kind), FLAG_UNSTABLE if unstable else 0, mode & _IMODE,
                st.st_size, mtime_s, mtime_sub, ctime_s, ctime_sub, st.st_ino, st.st_uid, st.st_gid,
                st.st_rdev if kind in _DEVICES else 0, 0,
            )
        except (struct.error, TypeError) as exc:
            raise ValueError(f"index field out of range: {exc}") from None
    if link is None:
        raw = b""
    else:
        raw = key_of(link)
        if kind != SYMLINK:
            raise ValueError(f"a link target is only recorded for a symbolic link, not a {TYPE_NAMES[kind]}")
        if len(raw) > MAX_LINK:
            raise ValueError(f"link target of {len(raw)} bytes is longer than {MAX_LINK}")
    if digest and len(digest) != DIGEST_SIZE:
        raise ValueError(f"a digest is {DIGEST_SIZE} bytes, not {len(digest)}")
    return pack_fields(
        st.st_dev, st.st_nlink, holder, kind, FLAG_UNSTABLE if unstable else 0, mode & _IMODE, st.st_size,
        st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_uid, st.st_gid, st.st_rdev if kind in _DEVICES else 0,
        raw, digest,
    )


def _compared_end(record: bytes) -> int:
    return _FIXED + int.from_bytes(record[_LINK_LENGTH], "little")


def changed(old: bytes, new: bytes) -> bool:
    """Given the previous and the current record of one path, return True if it changed.

    True when type, size, mtime, ctime, inode, mode, uid, gid, device number or link
    target differ, when either record is marked unstable, or when both carry a digest
    and the digests differ.  Device, link count and holder are not compared; a digest
    present on one side only does not count.
    """
    if old[_HEAD:] == new[_HEAD:]:
        return bool(old[_HEAD + 1] & FLAG_UNSTABLE)
    old_end, new_end = _compared_end(old), _compared_end(new)
    if old[_HEAD:old_end] != new[_HEAD:new_end] or old[_HEAD + 1] & FLAG_UNSTABLE:
        return True
    old_digest, new_digest = old[old_end:], new[new_end:]
    return bool(old_digest) and bool(new_digest) and old_digest != new_digest


def record_type(record: bytes) -> str:
    """Return the type letter of a record."""
    return chr(record[_TYPE_BYTE])


def record_holder(record: bytes) -> int:
    """Return the holder (position in :attr:`Index.holders`) of a record."""
    return _HOLDER.unpack_from(record, 12)[0]


def with_holder(record: bytes, holder: int) -> bytes:
    """Return ``record`` with its holder set to ``holder``."""
    return record[:12] + _HOLDER.pack(holder) + record[_HEAD:]


def with_digest(record: bytes, digest: bytes) -> bytes:
    """Return ``record`` with its content digest replaced by ``digest`` (32 bytes or empty)."""
    if len(digest) not in (0, DIGEST_SIZE):
        raise ValueError(f"a digest is {DIGEST_SIZE} bytes, not {len(digest)}")
    return record[:_compared_end(record)] + digest


def with_flags(record: bytes, flags: int) -> bytes:
    """Return ``record`` with its flags set to ``flags``."""
    return record[:_HEAD + 1] + bytes((flags,)) + record[_HEAD + 2:]


def unpack(record: bytes) -> tuple[Any, ...]:
    """Given a record, return ``(type, size, mtime_ns, ctime_ns, ino, dev, nlink, mode,
    uid, gid, rdev, link bytes, digest bytes, flags, holder)``."""
    (dev, nlink, holder, kind, flags, mode, size, mtime_s, mtime_sub, ctime_s, ctime_sub,
     ino, uid, gid, rdev, link_length) = _RECORD.unpack_from(record)
    end = _FIXED + link_length
    return (
        chr(kind), size, mtime_s * _NS + mtime_sub, ctime_s * _NS + ctime_sub, ino, dev, nlink,
        mode, uid, gid, rdev, record[_FIXED:end], record[end:], flags, holder,
    )
