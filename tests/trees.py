"""Trees to back up and a faithful comparison of two trees, for round-trip tests.

:func:`tree_state` describes everything a restore must reproduce: kind, mode (setuid
and sticky bits included), mtime to the nanosecond, owner and group ids, size, content
(data segments only for sparse files, so a 10 GiB file with 2 MiB of data is hashed
in milliseconds), link target, device numbers, extended attributes and ACLs,
hard-link grouping and, for sparse files, the map of allocated data.  It reads the
file system directly (lseek SEEK_DATA/SEEK_HOLE, listxattr) and never bakthat's own
helpers, so a bug there cannot hide itself.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import struct
from pathlib import Path

GIB = 1 << 30
MIB = 1 << 20
BASE_NS = 1_600_000_000_123_456_789


def _segments(path: str, size: int) -> list[tuple[int, int]]:
    """Return the data segments of a file as the file system reports them."""
    fd = os.open(path, os.O_RDONLY)
    try:
        segments, position = [], 0
        while position < size:
            try:
                start = os.lseek(fd, position, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:
                    break
                raise
            end = os.lseek(fd, start, os.SEEK_HOLE)
            segments.append((start, end - start))
            position = end
        return segments
    finally:
        os.close(fd)


def _content(path: str, segments: list[tuple[int, int]]) -> str:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        for offset, length in segments:
            os.lseek(fd, offset, os.SEEK_SET)
            left = length
            while left:
                chunk = os.read(fd, min(left, 4 * MIB))
                assert chunk, f"{path}: short read"
                digest.update(offset.to_bytes(8, "little") if left == length else b"")
                digest.update(chunk)
                left -= len(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest()


def _xattrs(path: str) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    return {name: os.getxattr(path, name, follow_symlinks=False) for name in sorted(names)}


def tree_state(root: Path) -> dict[str, tuple]:
    """Return {relative path: description} for ``root`` and everything below it."""
    root_text = os.fspath(root)
    state: dict[str, tuple] = {}
    inodes: dict[tuple[int, int], list[str]] = {}
    paths = [root_text]
    for directory, dirnames, filenames in os.walk(root_text):
        paths += [os.path.join(directory, name) for name in dirnames + filenames]
    for path in paths:
        st = os.lstat(path)
        relative = os.path.relpath(path, root_text)
        kind = stat.S_IFMT(st.st_mode)
        common = (kind, stat.S_IMODE(st.st_mode), st.st_mtime_ns, st.st_uid, st.st_gid, _xattrs(path))
        if stat.S_ISREG(st.st_mode):
            inodes.setdefault((st.st_dev, st.st_ino), []).append(relative)
            sparse = st.st_blocks * 512 < st.st_size
            segments = _segments(path, st.st_size) if sparse else [(0, st.st_size)]
            allocation = (st.st_blocks, tuple(segments)) if sparse else None
            state[relative] = (*common, st.st_size, _content(path, segments), allocation)
        elif stat.S_ISLNK(st.st_mode):
            state[relative] = (*common, os.readlink(path))
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            state[relative] = (*common, os.major(st.st_rdev), os.minor(st.st_rdev))
        else:
            state[relative] = common
    for group in inodes.values():
        for relative in group:
            state[relative] = (*state[relative], tuple(sorted(group)))
    return state


def differences(expected: dict[str, tuple], actual: dict[str, tuple]) -> list[str]:
    """Return one readable line per path that differs between two tree states."""
    lines = []
    for path in sorted(set(expected) | set(actual)):
        if expected.get(path) != actual.get(path):
            lines.append(f"{path!r}: expected {expected.get(path)!r}, got {actual.get(path)!r}")
    return lines


def posix_acl(entries: list[tuple[int, int, int]]) -> bytes:
    """Linux's binary POSIX ACL for ``(tag, permissions, id)`` entries, written here
    independently of bakthat.fsmeta."""
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, ident) for tag, perm, ident in entries)


UNDEFINED = 0xFFFFFFFF
#: user::rw-, user:1000:r--, group::r--, mask::r--, other::---
FILE_ACL = posix_acl([(0x01, 6, UNDEFINED), (0x02, 4, 1000), (0x04, 4, UNDEFINED), (0x10, 4, UNDEFINED), (0x20, 0, UNDEFINED)])
#: default: user::rwx, group:1000:r-x, group::r-x, mask::r-x, other::---
DIR_DEFAULT_ACL = posix_acl([(0x01, 7, UNDEFINED), (0x04, 5, UNDEFINED), (0x08, 5, 1000), (0x10, 5, UNDEFINED), (0x20, 0, UNDEFINED)])


def build_crafted_tree(root: Path, devices: bool = True) -> None:
    """Create a tree with every kind of entry and attribute bakthat must round-trip.

    ``root``'s absolute path must be short (under 60 bytes): the tree holds a path of
    4,000 bytes below it.  Runs as root (owners, devices); ``devices=False`` leaves the
    device nodes out.
    """
    root.mkdir()
    (root / "plain.txt").write_bytes(b"hello\n")
    (root / "empty").write_bytes(b"")
    (root / "random.bin").write_bytes(os.urandom(3 * MIB + 123))
    for name, mode in (("setuid", 0o4755), ("setgid", 0o2750), ("private", 0o600), ("read-only", 0o444), ("none", 0o000)):
        (root / name).write_bytes(name.encode())
        os.chmod(root / name, mode)
    (root / "sticky").mkdir()
    os.chmod(root / "sticky", 0o1777)
    (root / "locked").mkdir()
    (root / "locked" / "inside").write_bytes(b"in a 0555 directory\n")
    # links of every kind: a link is data, whatever it points to
    os.symlink("/etc/passwd", root / "absolute")
    os.symlink("plain.txt", root / "relative")
    os.symlink("no/such/file", root / "dangling")
    os.symlink("../../outside", root / "outward")
    os.symlink("sticky", root / "to-dir")
    os.mkfifo(root / "fifo", 0o640)
    # hard links, one group across directories
    (root / "links").mkdir()
    (root / "links" / "first").write_bytes(b"shared inode\n")
    os.link(root / "links" / "first", root / "links" / "second")
    os.link(root / "links" / "first", root / "hard-top")
    # sparse files: 10 GiB holding 2 MiB, one ending with data, one only a hole
    with open(root / "sparse-10g", "wb") as handle:
        handle.truncate(10 * GIB)
        handle.seek(0)
        handle.write(os.urandom(MIB))
        handle.seek(5 * GIB)
        handle.write(os.urandom(MIB))
    with open(root / "sparse-tail", "wb") as handle:
        handle.seek(64 * MIB)
        handle.write(b"tail" * 1024)
    with open(root / "only-hole", "wb") as handle:
        handle.truncate(GIB)
    if devices:
        os.mknod(root / "null-device", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.mknod(root / "block-device", 0o660 | stat.S_IFBLK, os.makedev(7, 200))
    # extended attributes and ACLs
    os.setxattr(root / "plain.txt", "user.comment", b"binary \xff\x00 value")
    os.setxattr(root / "links", "user.kind", b"directory attribute")
    os.setxattr(root / "private", "system.posix_acl_access", FILE_ACL)
    (root / "acl-dir").mkdir()
    os.setxattr(root / "acl-dir", "system.posix_acl_default", DIR_DEFAULT_ACL)
    os.chmod(root / "private", 0o640)  # the ACL's mask follows the group bits
    # owners: a named user, and ids this system has no name for
    os.chown(root / "plain.txt", 65534, 65534)
    os.chown(root / "random.bin", 4321, 8765)
    os.chown(root / "relative", 4321, 8765, follow_symlinks=False)
    # names: not UTF-8, 255 bytes, and a path of 4,000 bytes
    (root / os.fsdecode(b"caf\xe9")).write_bytes(b"latin-1 name\n")
    (root / os.fsdecode(b"dir-\xff\xfe")).mkdir()
    (root / os.fsdecode(b"dir-\xff\xfe") / "inside").write_bytes(b"x")
    (root / ("n" * 255)).write_bytes(b"255 bytes\n")
    (root / ("é" * 127 + "x")).write_bytes(b"255 bytes of UTF-8\n")
    deep = root.joinpath("long", *["d" * 200] * 19, "f" * 176)  # 4 + 19 * 201 + 1 + 176 bytes
    deep.parent.mkdir(parents=True)
    deep.write_bytes(b"at the end of a 4,000-byte path\n")
    assert len(os.fsencode(os.path.relpath(deep, root))) == 4000
    # sub-second mtimes everywhere, deepest first, then the read-only directory's mode
    everything = [Path(d) / n for d, dirs, files in os.walk(root) for n in dirs + files]
    for index, path in enumerate(sorted(everything, key=lambda p: len(p.parts), reverse=True)):
        os.utime(path, ns=(BASE_NS + index * 1_001, BASE_NS + index * 1_000_001), follow_symlinks=False)
    os.chmod(root / "locked", 0o555)
    os.utime(root / "locked", ns=(BASE_NS, BASE_NS + 7))
    os.utime(root, ns=(BASE_NS, BASE_NS + 42))
