"""File metadata that tar headers carry beyond name, size and mode, in one place for both
directions: owner names, nanosecond times, extended attributes, POSIX ACLs, sparse maps.

The PAX records are the ones GNU tar and star use, so an archive stays readable by them:
``mtime`` with nanoseconds, ``SCHILY.xattr.<name>`` for an extended attribute (raw bytes),
``SCHILY.acl.access`` / ``SCHILY.acl.default`` for a POSIX ACL in its short text form
(``user::rw-,user:1000:r--,group::r--,mask::r--,other::r--``), and the GNU sparse format
1.0 (``GNU.sparse.*`` records plus a map at the start of the member's data).

Nothing here raises for a platform without extended attributes: readers return nothing,
writers report what they could not set.
"""

from __future__ import annotations

import errno
import functools
import os
import struct
from collections.abc import Iterable

XATTR_PREFIX = "SCHILY.xattr."
ACL_RECORDS = {"SCHILY.acl.access": "system.posix_acl_access", "SCHILY.acl.default": "system.posix_acl_default"}
ACL_XATTRS = {xattr: record for record, xattr in ACL_RECORDS.items()}
#: Extended attribute namespaces that are archived (``system.*`` holds kernel views such
#: as ACLs, which are archived in their own records).
XATTR_NAMESPACES = ("user.", "trusted.", "security.")
#: errno values meaning "this file system or file kind cannot hold this attribute"
#: (ENOSPC: no room left for attributes in the inode or its attribute block).
UNSUPPORTED = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA, errno.EPERM, errno.EACCES, errno.E2BIG, errno.ERANGE, errno.ENOSPC}

# -- owners ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def user_name(uid: int) -> str:
    """Return the user name of ``uid``, or "" if the system does not know it."""
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return ""


@functools.lru_cache(maxsize=1024)
def group_name(gid: int) -> str:
    """Return the group name of ``gid``, or "" if the system does not know it."""
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except (KeyError, OverflowError):
        return ""


@functools.lru_cache(maxsize=1024)
def user_id(name: str, fallback: int) -> int:
    """Return the uid of user ``name`` on this system, or ``fallback`` if there is none."""
    import pwd

    if not name:
        return fallback
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return fallback


@functools.lru_cache(maxsize=1024)
def group_id(name: str, fallback: int) -> int:
    """Return the gid of group ``name`` on this system, or ``fallback`` if there is none."""
    import grp

    if not name:
        return fallback
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return fallback


# -- times ----------------------------------------------------------------------------


def format_ns(ns: int) -> str:
    """Given a time in nanoseconds since the epoch, return it as a PAX decimal (``1.5``,
    ``-0.25``)."""
    seconds, fraction = divmod(abs(ns), 1_000_000_000)
    text = f"{'-' if ns < 0 else ''}{seconds}"
    return f"{text}.{fraction:09d}".rstrip("0") if fraction else text


def parse_ns(text: str) -> int:
    """Given a PAX time (``1600000000.123456789``, maybe negative), return nanoseconds.

    Raise ValueError if it is not a decimal number.
    """
    text = text.strip()
    negative = text.startswith("-")
    whole, _, fraction = text.lstrip("+-").partition(".")
    if not whole.isdigit() or (fraction and not fraction.isdigit()):
        raise ValueError(f"not a time: {text!r}")
    ns = int(whole) * 1_000_000_000 + int((fraction + "000000000")[:9])
    return -ns if negative else ns


# -- extended attributes and ACLs -------------------------------------------------------


def read_xattrs(target: int | str) -> dict[str, str]:
    """Given an open file descriptor or a path (not followed if it is a symbolic link),
    return its extended attributes and POSIX ACLs as PAX records (values decoded with
    surrogateescape, so any bytes survive).  Return {} where the platform or the file
    system has none, or they cannot be read."""
    if not hasattr(os, "listxattr"):
        return {}
    follow = isinstance(target, int)
    try:
        names = os.listxattr(target, follow_symlinks=follow)
    except OSError:
        return {}
    records: dict[str, str] = {}
    for name in sorted(names):
        acl_record = ACL_XATTRS.get(name)
        if acl_record is None and not name.startswith(XATTR_NAMESPACES):
            continue
        try:
            value = os.getxattr(target, name, follow_symlinks=follow)
        except OSError:
            continue
        if acl_record is not None:
            text = acl_to_text(value)
            if text:
                records[acl_record] = text
        else:
            records[XATTR_PREFIX + name] = value.decode("utf-8", "surrogateescape")
    return records


def xattrs_from_records(records: dict[str, str]) -> list[tuple[str, bytes]]:
    """Given a member's PAX records, return the ``(xattr name, value)`` pairs to set.

    Raise ValueError for an ACL record that cannot be parsed.
    """
    found = []
    for key, value in records.items():
        if key.startswith(XATTR_PREFIX) and len(key) > len(XATTR_PREFIX):
            found.append((key[len(XATTR_PREFIX):], value.encode("utf-8", "surrogateescape")))
        elif key in ACL_RECORDS:
            found.append((ACL_RECORDS[key], acl_from_text(value)))
    return found


def write_xattrs(target: int | str, pairs: Iterable[tuple[str, bytes]], dir_fd: int | None = None) -> list[str]:
    """Set extended attributes on an open file descriptor, or on a path (relative to
    ``dir_fd`` when given, never following a symbolic link).  Return the names that the
    file system refused; raise OSError for any other failure."""
    refused = []
    if isinstance(target, str) and dir_fd is not None:
        target = f"/proc/self/fd/{dir_fd}/{target}"
    for name, value in pairs:
        try:
            if isinstance(target, int):
                os.setxattr(target, name, value)
            else:
                os.setxattr(target, name, value, follow_symlinks=False)
        except (OSError, AttributeError) as exc:
            # ENOENT for a path: no /proc to reach an entry by its directory descriptor.
            if isinstance(exc, OSError) and exc.errno not in UNSUPPORTED and not (
                exc.errno == errno.ENOENT and isinstance(target, str)
            ):
                raise
            refused.append(name)
    return refused


# Linux's binary form of a POSIX ACL (posix_acl_xattr.h): a version, then entries of
# (tag: u16, permissions: u16, id: u32), all little-endian.
_ACL_VERSION = 2
_ACL_TAGS = {0x01: "user", 0x02: "user", 0x04: "group", 0x08: "group", 0x10: "mask", 0x20: "other"}
_ACL_NAMED = {0x02, 0x08}
_ACL_UNDEFINED_ID = 0xFFFFFFFF


def _permissions(bits: int) -> str:
    return "".join(letter if bits & flag else "-" for letter, flag in (("r", 4), ("w", 2), ("x", 1)))


def acl_to_text(data: bytes) -> str:
    """Given Linux's binary POSIX ACL, return its short text form with numeric ids.

    Return "" for data that is not a version 2 ACL.
    """
    if len(data) < 4 or (len(data) - 4) % 8 or struct.unpack_from("<I", data)[0] != _ACL_VERSION:
        return ""
    entries = []
    for offset in range(4, len(data), 8):
        tag, perm, ident = struct.unpack_from("<HHI", data, offset)
        kind = _ACL_TAGS.get(tag)
        if kind is None:
            return ""
        qualifier = str(ident) if tag in _ACL_NAMED else ""
        entries.append(f"{kind}:{qualifier}:{_permissions(perm)}")
    return ",".join(entries)


def acl_from_text(text: str) -> bytes:
    """Given an ACL in short text form (``user:alice:r-x`` or ``u:1000:r-x``; star's
    trailing ``:uid`` is accepted), return Linux's binary form.  A name unknown on this
    system falls back to star's trailing id, else to a number.  Raise ValueError if the
    text is not an ACL."""
    tags = {"user": (0x01, 0x02), "u": (0x01, 0x02), "group": (0x04, 0x08), "g": (0x04, 0x08),
            "mask": (0x10, 0x10), "m": (0x10, 0x10), "other": (0x20, 0x20), "o": (0x20, 0x20)}
    out = [struct.pack("<I", _ACL_VERSION)]
    for entry in text.replace("\n", ",").split(","):
        entry = entry.split("#", 1)[0].strip()
        if not entry:
            continue
        fields = entry.split(":")
        if len(fields) < 3 or fields[0] not in tags:
            raise ValueError(f"not an ACL entry: {entry!r}")
        kind, qualifier, perms = fields[0], fields[1], fields[2]
        unnamed, named = tags[kind]
        bits = sum(flag for letter, flag in (("r", 4), ("w", 2), ("x", 1)) if letter in perms)
        if not qualifier or unnamed == named:
            out.append(struct.pack("<HHI", unnamed, bits, _ACL_UNDEFINED_ID))
            continue
        fallback = fields[3] if len(fields) > 3 and fields[3].isdigit() else qualifier
        if qualifier.isdigit():
            ident = int(qualifier)
        elif not fallback.isdigit():
            lookup = user_id if named == 0x02 else group_id
            ident = lookup(qualifier, -1)
            if ident < 0:
                raise ValueError(f"ACL entry {entry!r} names {qualifier!r}, unknown on this system")
        else:
            lookup = user_id if named == 0x02 else group_id
            ident = lookup(qualifier, int(fallback))
        out.append(struct.pack("<HHI", named, bits, ident))
    return b"".join(out)


# -- sparse files -----------------------------------------------------------------------

#: The most data segments a sparse file is stored with: a restore reads the whole map
#: into memory and refuses longer ones; a file with more is stored without its holes.
MAX_SPARSE_SEGMENTS = 1 << 16


def data_segments(fd: int, size: int) -> list[tuple[int, int]] | None:
    """Given an open regular file and its size, return its data segments as
    ``(offset, length)`` pairs when it has holes, ending with ``(size, 0)`` if it ends
    in a hole; return None if it has no hole or the system cannot tell."""
    segments = []
    position = 0
    try:
        while position < size:
            try:
                start = os.lseek(fd, position, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # only a hole is left
                    break
                raise
            if start >= size:
                break
            end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
            segments.append((start, end - start))
            position = end
        os.lseek(fd, 0, os.SEEK_SET)
    except (OSError, AttributeError):
        return None
    if segments == [(0, size)]:
        return None
    if not segments or segments[-1][0] + segments[-1][1] < size:
        segments.append((size, 0))
    return segments


def sparse_map(segments: list[tuple[int, int]]) -> bytes:
    """Return the GNU sparse 1.0 map of ``segments``, padded to whole 512-byte blocks."""
    text = f"{len(segments)}\n" + "".join(f"{offset}\n{length}\n" for offset, length in segments)
    data = text.encode("ascii")
    return data + bytes(-len(data) % 512)
