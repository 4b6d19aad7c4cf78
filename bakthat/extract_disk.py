"""Create checked archive members below a directory, never following a link: the second
layer of restore safety.

Every entry is created relative to a directory file descriptor, and every directory on
the way is opened with ``O_NOFOLLOW | O_DIRECTORY``: a symbolic link (or a file) where
a directory is expected stops the restore with UnsafeArchiveError, even if the member
check (:mod:`bakthat.extract_members`) let the member through.  Files are created with
``O_CREAT | O_EXCL | O_NOFOLLOW``, so an existing entry is never opened.  No full path
is ever handed to the system, so a path up to PATH_MAX below the restore target works
however long the staging directory's own path is.

What is recreated: file data (holes of sparse members kept), directories, symbolic
links with their exact target, hard links, FIFOs, and devices when running as root
(otherwise each is skipped with a warning).  Then mtimes to the nanosecond, extended
attributes and ACLs where the file system takes them, and, as root, owners (by name,
falling back to the ids) and modes exactly; without root, setuid and setgid are
dropped, as GNU tar does, and the files belong to the user running the restore.
Directory attributes are applied last, deepest first, once their contents exist.
"""

from __future__ import annotations

import copy
import errno
import logging
import os
import stat
import tarfile
from typing import Any

from bakthat import fsmeta
from bakthat.extract_members import BLOCK_DEVICE, CHAR_DEVICE, DIR, FIFO, FILE, HARDLINK, KINDS, SYMLINK, unsafe

log = logging.getLogger("bakthat")

_BUFSIZE = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
#: Directory file descriptors kept open along the current path; deeper directories are
#: reached from the deepest kept one, so a restore never needs more descriptors.
_KEPT_DIRS = 64


_NODE_TYPES = {FIFO: stat.S_IFIFO, CHAR_DEVICE: stat.S_IFCHR, BLOCK_DEVICE: stat.S_IFBLK}


def _create(make: Any, name: str, parent: int) -> Any:
    """Run ``make`` (which creates ``name`` below ``parent`` and fails if it exists); if
    the archive already put a non-directory there (a member listed twice with the same
    kind: the later one wins, as with tar), remove it and run ``make`` again."""
    try:
        return make()
    except FileExistsError:
        os.unlink(name, dir_fd=parent)
        return make()


def _created_owner(root_fd: int) -> tuple[int, int] | None:
    """Return the (uid, gid) a file created below ``root_fd`` gets, or None when it
    cannot be told.  The staging root was just created by this process, so its own
    owner shows how this file system assigns owners: a set-group-id directory, a
    squashing network file system or a mount with fixed ids gives None."""
    if not hasattr(os, "geteuid"):
        return None
    st = os.fstat(root_fd)
    if st.st_mode & stat.S_ISGID or (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
        return None
    return st.st_uid, st.st_gid


def _creation_umask(root_fd: int) -> int | None:
    """Return the umask a file created below ``root_fd`` gets its mode cut by, or None
    when it cannot be told: no /proc, or a default ACL on the staging root (inherited
    by the directories below it), which replaces the umask."""
    try:
        if "system.posix_acl_default" in os.listxattr(root_fd):
            return None
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def privileged() -> bool:
    """Return True when restoring as root: owners, exact modes and devices are restored."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _child(fd: int, name: str, shown: str, create: bool = True) -> int:
    """Open directory ``name`` below ``fd`` without following a link, creating it if
    missing.  Raise UnsafeArchiveError if something else than a directory is there."""
    try:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                raise
            try:
                os.mkdir(name, 0o777, dir_fd=fd)
            except FileExistsError:
                pass  # another writer thread created it meanwhile: open what is there
            return os.open(name, _DIR_FLAGS, dir_fd=fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise unsafe(shown, f"{name!r} on its path is not a directory on disk; refusing to write through it") from None
        raise


class _Directories:
    """Open directory descriptors along the most recently used path, below ``root``."""

    def __init__(self, root: int):
        self._root = root
        self._parts: list[str] = []
        self._fds: list[int] = []
        self._deep: tuple[tuple[str, ...], int] | None = None

    def open(self, parts: list[str], shown: str) -> int:
        """Return a descriptor of directory ``parts`` (missing ones are created), valid
        until the next call."""
        if len(parts) > _KEPT_DIRS:
            key = tuple(parts)
            if self._deep is not None and self._deep[0] == key:
                return self._deep[1]
            fd = self.open(parts[:_KEPT_DIRS], shown)
            for part in parts[_KEPT_DIRS:]:
                child = _child(fd, part, shown)
                if fd != self._fds[-1]:
                    os.close(fd)
                fd = child
            self._forget_deep()
            self._deep = (key, fd)
            return fd
        common = 0
        while common < min(len(parts), len(self._parts)) and parts[common] == self._parts[common]:
            common += 1
        for fd in self._fds[common:]:
            os.close(fd)
        del self._parts[common:], self._fds[common:]
        fd = self._fds[-1] if self._fds else self._root
        for part in parts[common:]:
            fd = _child(fd, part, shown)
            self._parts.append(part)
            self._fds.append(fd)
        return fd

    def _forget_deep(self) -> None:
        if self._deep is not None:
            os.close(self._deep[1])
            self._deep = None

    def close(self) -> None:
        self._forget_deep()
        for fd in self._fds:
            os.close(fd)
        self._parts, self._fds = [], []


def open_path(root: int, parts: list[str], shown: str) -> int:
    """Open existing directory ``parts`` below ``root`` without following links; the
    caller closes the returned descriptor."""
    fd = os.dup(root)
    try:
        for part in parts:
            child = _child(fd, part, shown, create=False)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def member_mtime_ns(member: tarfile.TarInfo) -> int:
    """Return a member's mtime in nanoseconds, exact when a PAX record holds it."""
    text = member.pax_headers.get("mtime") if member.pax_headers else None
    if text is not None:
        try:
            return fsmeta.parse_ns(text)
        except ValueError:
            pass
    return int(member.mtime * 1_000_000_000)


class StagingTree:
    """Creates checked members below the directory open as ``root_fd``.

    ``deferred`` lists, after :meth:`finish`, the directories (path components, mode)
    whose mode would keep their owner from moving entries out of them: without root
    they are staged owner-writable and get their mode after the commit.
    """

    def __init__(self, root_fd: int, stream: Any):
        self._root = root_fd
        self._stream = stream  # tarfile's stream: member data is read from it
        self._dirs = _Directories(root_fd)
        self._privileged = privileged()
        # A file this tree creates belongs to (euid, egid) and gets its creation mode
        # less the umask, unless a set-group-id directory hands down its group: then
        # chown and chmod are skipped where they would change nothing (see _file).
        self._owner = _created_owner(root_fd)
        self._umask = _creation_umask(root_fd)
        self._dir_members: list[tuple[list[str], tarfile.TarInfo]] = []
        self.deferred: list[tuple[list[str], int]] = []
        self.refused_xattrs: dict[str, int] = {}

    # -- members ----------------------------------------------------------------------

    def add(self, member: tarfile.TarInfo, parts: list[str]) -> None:
        """Create one checked member (its path components ``parts``)."""
        kind = KINDS[member.type]
        if kind == DIR:
            self._dirs.open(parts, member.name)
            self._dir_members.append((parts, member))
            return
        if kind in (CHAR_DEVICE, BLOCK_DEVICE) and not self._privileged:
            log.warning("Not restoring %s: creating a %s needs root", "/".join(parts), kind)
            return
        target_fd = None
        if kind == HARDLINK:  # the link target's directory, opened before the cache moves
            link_parts = [part for part in member.linkname.split("/") if part not in ("", ".")]
            target_fd = open_path(self._root, link_parts[:-1], member.name)
        try:
            parent = self._dirs.open(parts[:-1], member.name)
            name = parts[-1]
            if kind == HARDLINK:
                os.link(link_parts[-1], name, src_dir_fd=target_fd, dst_dir_fd=parent, follow_symlinks=False)
            elif kind == SYMLINK:
                _create(lambda: os.symlink(member.linkname, name, dir_fd=parent), name, parent)
                self._attributes(member, name, parent, None)
            elif kind in (FIFO, CHAR_DEVICE, BLOCK_DEVICE):
                device = os.makedev(member.devmajor, member.devminor)
                _create(lambda: os.mknod(name, 0o600 | _NODE_TYPES[kind], device, dir_fd=parent), name, parent)
                self._attributes(member, name, parent, None)
            else:
                self._file(member, name, parent)
        finally:
            if target_fd is not None:
                os.close(target_fd)

    @staticmethod
    def data_length(member: tarfile.TarInfo) -> int:
        """Return how many bytes of stream data :meth:`add` reads for ``member``
        (checked: the member check has verified a sparse map against the stored data)."""
        if KINDS[member.type] != FILE:
            return 0
        if member.sparse is None:
            return member.size
        return sum(length for _, length in member.sparse)

    def _file(self, member: tarfile.TarInfo, name: str, parent: int) -> None:
        pairs = self._xattr_pairs(member)
        mode = member.mode & 0o7777
        if not self._privileged:
            mode &= ~(stat.S_ISUID | stat.S_ISGID)
        # The final mode can be given to open() when the umask leaves it whole, no
        # set-id bit is there for chown to clear, and no extended attribute or ACL is
        # set after it (setting user.* needs write permission, and an ACL rewrites the
        # mode): then fchmod is not needed.  The staging tree is private (0700) either way.
        exact = not pairs and self._umask is not None and not mode & (0o7000 | self._umask)
        create_mode = mode if exact else 0o600
        try:
            fd = os.open(name, _CREATE_FLAGS, create_mode, dir_fd=parent)
        except FileExistsError:  # the archive lists this file twice: the later one wins
            os.unlink(name, dir_fd=parent)
            fd = os.open(name, _CREATE_FLAGS, create_mode, dir_fd=parent)
        try:
            self._stream.seek(member.offset_data)
            if member.sparse is None:
                self._copy(fd, member.size, member.name)
            else:
                for offset, length in member.sparse:
                    os.lseek(fd, offset, os.SEEK_SET)
                    self._copy(fd, length, member.name)
                os.ftruncate(fd, member.size)
            self._owners(member, fd, {})
            if pairs:
                self._set_xattrs(pairs, None, None, fd)
            if not exact:
                os.fchmod(fd, mode)
            ns = member_mtime_ns(member)
            os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)

    def _copy(self, fd: int, length: int, name: str) -> None:
        left = length
        read, write = self._stream.read, os.write
        while left:
            chunk = read(min(left, _BUFSIZE))
            if not chunk:
                raise tarfile.ReadError(f"unexpected end of data in {name!r}")
            done = write(fd, chunk)
            if done < len(chunk):
                view = memoryview(chunk)[done:]
                while view:
                    view = view[write(fd, view):]
            left -= len(chunk)

    # -- attributes ---------------------------------------------------------------------

    def _attributes(self, member: tarfile.TarInfo, name: str | None, parent: int | None, fd: int | None) -> None:
        """Apply owner, extended attributes, mode and mtime, in that order (chown clears
        setuid bits and capabilities), to ``fd`` or to ``name`` below ``parent``."""
        target: Any = fd if fd is not None else name
        at = {} if fd is not None else {"dir_fd": parent, "follow_symlinks": False}
        is_link = member.type == tarfile.SYMTYPE
        self._owners(member, target, at)
        pairs = self._xattr_pairs(member)
        if pairs:
            self._set_xattrs(pairs, name, parent, fd)
        if not is_link:
            mode = member.mode & 0o7777
            if not self._privileged:
                mode &= ~(stat.S_ISUID | stat.S_ISGID)
            if fd is not None:
                os.fchmod(fd, mode)
            else:  # a FIFO or device this restore has just created: not a link
                os.chmod(name, mode, dir_fd=parent)  # type: ignore[arg-type]
        ns = member_mtime_ns(member)
        os.utime(target, ns=(ns, ns), **at)

    def _owners(self, member: tarfile.TarInfo, target: Any, at: dict[str, Any]) -> None:
        """As root, give ``target`` the member's owner and group (by name, falling back
        to the ids); skipped when the entry, just created, has them already."""
        if not self._privileged:
            return
        uid = fsmeta.user_id(member.uname, member.uid)
        gid = fsmeta.group_id(member.gname, member.gid)
        if (uid, gid) != self._owner or at or member.type == tarfile.DIRTYPE:
            os.chown(target, uid, gid, **at)

    def _xattr_pairs(self, member: tarfile.TarInfo) -> list[tuple[str, bytes]]:
        """Return the extended attributes and ACLs to set on ``member`` (none when an
        ACL record cannot be parsed: that is logged)."""
        if not member.pax_headers or len(member.pax_headers) == 1 and "mtime" in member.pax_headers:
            return []
        try:
            return fsmeta.xattrs_from_records(member.pax_headers)
        except ValueError as exc:
            log.warning("Not restoring the ACL of %s: %s", member.name, exc)
            return []

    def _set_xattrs(self, pairs: list[tuple[str, bytes]], name: str | None, parent: int | None, fd: int | None) -> None:
        refused = fsmeta.write_xattrs(fd if fd is not None else name, pairs, dir_fd=parent)  # type: ignore[arg-type]
        for xattr in refused:
            self.refused_xattrs[xattr] = self.refused_xattrs.get(xattr, 0) + 1

    def close(self) -> None:
        """Close the directory descriptors still open (any number of times)."""
        self._dirs.close()

    def adopt(self, other: StagingTree) -> None:
        """Take over the directory members and refused attributes of ``other`` (a tree
        of another writer thread over the same root, handed different members), so
        that :meth:`finish` applies them too.  A directory listed twice went to one
        tree, in archive order, so the later listing still wins."""
        self._dir_members.extend(other._dir_members)
        other._dir_members = []
        for xattr, count in other.refused_xattrs.items():
            self.refused_xattrs[xattr] = self.refused_xattrs.get(xattr, 0) + count
        other.refused_xattrs = {}

    def finish(self) -> None:
        """Apply the archive's directory attributes, deepest first."""
        self._dirs.close()
        for parts, member in sorted(self._dir_members, key=lambda item: len(item[0]), reverse=True):
            fd = open_path(self._root, parts, member.name)
            try:
                if not self._privileged and member.mode & stat.S_IRWXU != stat.S_IRWXU:
                    self.deferred.append((parts, member.mode & 0o7777 & ~(stat.S_ISUID | stat.S_ISGID)))
                    member = copy.copy(member)
                    member.mode |= stat.S_IRWXU
                self._attributes(member, None, None, fd)
            finally:
                os.close(fd)
        for xattr, count in sorted(self.refused_xattrs.items()):
            log.warning("Extended attribute %s of %d entries not restored: the target file system refused it", xattr, count)
