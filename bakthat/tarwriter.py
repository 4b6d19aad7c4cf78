"""Write a file or directory tree as a PAX tar stream, faithfully and in one pass.

:func:`write_tar` stores every kind of entry a restore can recreate: regular files (with
holes kept, in GNU's sparse format 1.0), directories, symbolic links (their target
verbatim), hard links within the tree, FIFOs and device nodes, each with its mode,
owner and group (ids and names), nanosecond mtime, extended attributes and POSIX ACLs.
Sockets cannot be archived: they are skipped, named and counted.

The tree is walked through directory file descriptors opened without following links,
so a path up to PATH_MAX below the source can always be read, and an entry replaced
by a link while the backup runs is never followed.  Only the source itself is
followed when it is a symbolic link: ``bakthat backup ~/www`` stores the directory the
link points to, as ``tar -h`` and restic do for a named argument.

A regular file is checked before and after it is read (size, mtime, identity): one that
grew, shrank, was rewritten, replaced or removed meanwhile is named in a warning and
listed in :attr:`TarStats.changed`.  Unreadable entries are listed in
:attr:`TarStats.skipped`.  Either makes the backup partial.  Entries that exclude
patterns, bakthat's own files or a plugin's file filter (:mod:`bakthat.file_filters`)
leave out are counted in :attr:`TarStats.excluded`.

This module is longer than most (about 640 lines) because the walk, the decisions about
each entry (excludes, filters, the planner of a differential or incremental) and the
header and data writer share one pass over each entry: split, they would pass each
entry's stat, descriptors and read buffer between modules on the hot path (the
per-file Python work on the walker's thread is what bounds a backup of small files
beside zstd's workers).  The cold parts (TarStats, bakthat's own paths, pseudo file
systems) are about 130 lines; moving them out would not change that reason.

With a ``planner`` (a :class:`bakthat.changes.ChangeSet`), the walk is the same but only
the entries the planner wants are written (a differential or incremental): each entry
is shown to the planner before it is read, so an unchanged file is never opened; the
directories and hard links the planner's tail lists are appended after the walk.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import re
import stat
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bakthat import file_filters, fsmeta, tarheader
from bakthat.errors import BakthatError

log = logging.getLogger("bakthat")

BUFFER_SIZE = 1 << 20
#: Regular files up to this size are read in one call and written with their header.
SMALL_FILE = 64 << 10
#: How many excluded entries the stats keep by name (the count is always complete).
NAMED_EXCLUDED = 20
SOCKET = "a socket cannot be archived"
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_DIRECTORY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_HEADER_KINDS = {
    stat.S_IFDIR: tarfile.DIRTYPE,
    stat.S_IFLNK: tarfile.SYMTYPE,
    stat.S_IFIFO: tarfile.FIFOTYPE,
    stat.S_IFCHR: tarfile.CHRTYPE,
    stat.S_IFBLK: tarfile.BLKTYPE,
}


class SourceError(BakthatError):
    """The source to back up is missing or cannot be read (exit code 2)."""

    exit_code = 2


@dataclass
class TarStats:
    """What :func:`write_tar` put in the archive, and what it left out.

    ``skipped`` and ``changed`` hold ``{"path": ..., "reason": ...}`` entries;
    ``excluded`` counts entries matched by an exclude pattern or belonging to bakthat
    itself (a pruned directory counts once), the first of them named in ``excluded_names``.
    """

    files: int = 0
    bytes: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    changed: list[dict[str, str]] = field(default_factory=list)
    excluded: int = 0
    excluded_names: list[str] = field(default_factory=list)
    #: Of the excluded entries, those a plugin's file filter left out (names capped as above).
    filtered: int = 0
    filtered_names: list[str] = field(default_factory=list)

    @property
    def partial(self) -> bool:
        """True if an entry is missing from the archive (sockets included) or may be
        inconsistent in it."""
        return bool(self.skipped or self.changed)

    def skip(self, path: str, reason: str) -> None:
        log.warning("Skipping %s: %s", path, reason)
        self.skipped.append({"path": path, "reason": reason})

    def change(self, path: str, reason: str) -> None:
        log.warning("%s %s", path, reason)
        self.changed.append({"path": path, "reason": reason})

    def report(self) -> None:
        """Log what was left out: the counts, and the first excluded names at debug level."""
        if self.excluded or self.skipped or self.changed:
            log.info("%d entries excluded, %d skipped, %d changed while being read",
                     self.excluded, len(self.skipped), len(self.changed))
        if self.excluded_names:
            more = self.excluded - len(self.excluded_names)
            log.debug("Excluded: %s%s", ", ".join(self.excluded_names), f" and {more} more" if more else "")

    def exclude(self, relative: str, why: str) -> None:
        self.excluded += 1
        if len(self.excluded_names) < NAMED_EXCLUDED:
            self.excluded_names.append(relative)
        log.debug("Excluding %s (%s)", relative, why)


class _CountingSink(io.RawIOBase):
    """The raw end of the tar writer's buffer: forwards writes and counts them (``tell``)."""

    def __init__(self, sink: Any):
        self._sink = sink
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._sink.write(data)
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        """Leave the wrapped stream open: the caller finishes it."""
        super().close()


class _OwnPaths:
    """bakthat's own files (store, catalog and its side files, the archive being written),
    recognised by device and inode however they are reached, or by name in their
    directory for side files that may appear during the walk."""

    def __init__(self, paths: Iterable[str]):
        self.identities: set[tuple[int, int]] = set()
        self.names: set[tuple[int, int, str]] = set()
        for path in paths:
            path = os.path.abspath(os.path.expanduser(os.fspath(path)))
            try:
                st = os.stat(path)
                self.identities.add((st.st_dev, st.st_ino))
            except OSError:
                pass
            parent, name = os.path.split(path)
            try:
                st = os.stat(parent)
                self.names.add((st.st_dev, st.st_ino, name))
            except OSError:
                pass
        self.parents = {(dev, ino) for dev, ino, _ in self.names}

    def holds(self, st: os.stat_result, parent: tuple[int, int], name: str) -> bool:
        if (st.st_dev, st.st_ino) in self.identities:
            return True
        return parent in self.parents and (*parent, name) in self.names


#: File systems that hold no data, only views of the kernel (``/proc``, ``/sys``...):
#: reached during a walk, such a mount point is archived as an empty directory.
PSEUDO_FILE_SYSTEMS = frozenset({
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts", "efivarfs",
    "fusectl", "mqueue", "nsfs", "proc", "pstore", "rpc_pipefs", "securityfs", "selinuxfs", "sysfs", "tracefs",
})


def _pseudo_devices() -> dict[int, str]:
    """Return {device number: file system type} of the mounted pseudo file systems
    (from /proc/self/mountinfo; empty where there is none)."""
    found: dict[int, str] = {}
    try:
        with open("/proc/self/mountinfo", "rb") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split(b" ")
        if b"-" not in fields:
            continue
        kind = fields[fields.index(b"-") + 1].decode("ascii", "replace")
        if kind in PSEUDO_FILE_SYSTEMS:
            mount_point = re.sub(rb"\\([0-7]{3})", lambda match: bytes([int(match.group(1), 8)]), fields[4])
            try:
                found[os.stat(mount_point).st_dev] = kind
            except OSError:
                continue
    return found


def _arc_path(arcname: str, relative: str) -> str:
    return f"{arcname}/{relative}" if relative else arcname


class _Writer:
    """Writes headers and data to the buffered sink; remembers hard-link groups."""

    def __init__(self, sink: io.BufferedWriter, stats: TarStats, progress: Callable[[int], None] | None):
        self._sink = sink  # headers and small files: buffered
        self._raw = sink.raw  # large files' data: straight from the read buffer, after a flush
        self._offset = 0
        # File data is read into this one buffer (no new 1 MiB object, and no fresh
        # pages to fault in, per read); the sink copies what it keeps.
        self._buffer = bytearray(BUFFER_SIZE)
        self._view = memoryview(self._buffer)
        self._stats = stats
        self._progress = progress
        # (dev, ino) -> [archive name of the first link, links still to come]
        self._links: dict[tuple[int, int], list[Any]] = {}

    @staticmethod
    def header(st: os.stat_result, name: str, records: dict[str, str], kind: bytes, **fields: Any) -> bytes:
        """Return the header blocks of a member with the metadata of ``st``."""
        return tarheader.encode(
            name, kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns,
            uname=fsmeta.user_name(st.st_uid), gname=fsmeta.group_name(st.st_gid), records=records, **fields,
        )

    def write(self, data: bytes) -> None:
        self._sink.write(data)
        self._offset += len(data)

    def write_header(self, header: bytes) -> None:
        self.write(header)
        self._stats.files += 1

    def linked(self, st: os.stat_result, name: str) -> str | None:
        """Return the archive name this inode was already stored under, if any."""
        if st.st_nlink < 2:
            return None
        key = (st.st_dev, st.st_ino)
        entry = self._links.get(key)
        if entry is None:
            return None
        entry[1] -= 1
        if entry[1] <= 0:
            del self._links[key]  # every link seen: keep memory flat
        return entry[0]

    def remember(self, st: os.stat_result, name: str) -> None:
        if st.st_nlink > 1:
            self._links[(st.st_dev, st.st_ino)] = [name, st.st_nlink - 1]

    def copy(self, fd: int, size: int, segments: list[tuple[int, int]] | None) -> int:
        """Copy ``size`` bytes of file data (or the ``segments`` of a sparse file) and
        pad to a block.  Return how many bytes the file was short of (zero-filled)."""
        missing = 0
        if segments is None:
            missing = self._copy_range(fd, None, size)
            written = size
        else:
            written = 0
            for offset, length in segments:
                missing += self._copy_range(fd, offset, length)
                written += length
        self.write(bytes(-written % tarfile.BLOCKSIZE))
        self._stats.bytes += size
        return missing

    def small(self, header: bytes, fd: int, size: int) -> int:
        """Write a regular file of at most SMALL_FILE bytes, header, data and padding in
        one write; return how many bytes it was short of (zero-filled)."""
        data = os.read(fd, size) if size else b""
        if len(data) < size:
            more = self._read_rest(fd, size - len(data))
            data += more
        missing = size - len(data)
        self.write(header + data + bytes(missing + (-size % tarfile.BLOCKSIZE)))
        self._stats.files += 1
        self._stats.bytes += size
        if self._progress is not None and data:
            self._progress(len(data))
        return missing

    @staticmethod
    def _read_rest(fd: int, left: int) -> bytes:
        """Read up to ``left`` more bytes (a short read is not always the end)."""
        parts = []
        while left:
            chunk = os.read(fd, left)
            if not chunk:
                break
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)

    def _copy_range(self, fd: int, offset: int | None, length: int) -> int:
        if offset is not None:
            os.lseek(fd, offset, os.SEEK_SET)
        left = length
        buffer, view, progress = [self._buffer], self._view, self._progress
        self._sink.flush()  # what is buffered goes first; the data is not copied into the buffer
        sink = self._raw
        while left:
            if left < BUFFER_SIZE:
                buffer = [view[:left]]
            count = os.readv(fd, buffer)
            if not count:
                self.write(bytes(left))  # the file shrank: keep the archive well-formed
                return left
            sink.write(view[:count])
            self._offset += count
            left -= count
            if progress is not None:
                progress(count)
        return 0

    def finish(self) -> None:
        """Write the end-of-archive marker and pad to a whole record, as tar does."""
        self.write(bytes(2 * tarfile.BLOCKSIZE))
        self.write(bytes(-self._offset % tarfile.RECORDSIZE))


class _Walk:
    """One backup's walk: the source, what to leave out, where to write."""

    def __init__(
        self, root: str, arcname: str, writer: _Writer, stats: TarStats, excludes: Any, own: _OwnPaths,
        planner: Any = None,
    ):
        self.root = root
        self.planner = planner
        self.stored_links: dict[tuple[int, int], str] = {}  # (dev, ino) -> stored name (with a planner)
        self.arcname = arcname
        self.writer = writer
        self.stats = stats
        self.excludes = excludes
        self.own = own
        self.pseudo = _pseudo_devices()
        self.filter = file_filters.active()  # None without plugin filters: nothing more per entry

    def shown(self, relative: str) -> str:
        return os.path.join(self.root, relative) if relative else self.root

    def wanted(self, relative: str, st: os.stat_result, link: str | None = None) -> bool:
        """Show an entry to the planner; return True if the archive stores it."""
        if self.planner is None:
            return True
        return self.planner.see(
            _arc_path(self.arcname, relative), st, link,
            user=fsmeta.user_name(st.st_uid) or None, group=fsmeta.group_name(st.st_gid) or None,
        )

    def lost(self, relative: str, reason: str) -> None:
        """Skip an entry the planner was shown already: it is not in this backup."""
        self.stats.skip(self.shown(relative), reason)
        if self.planner is not None:
            self.planner.forget(_arc_path(self.arcname, relative))

    def unstable(self, relative: str, reason: str) -> None:
        """Report a stored file that changed while it was read (the next backup stores it again)."""
        self.stats.change(self.shown(relative), reason)
        if self.planner is not None:
            self.planner.mark_unstable(_arc_path(self.arcname, relative))

    def tree(self, fd: int, st: os.stat_result, relative: str) -> None:
        """Archive the directory open as ``fd`` (its stat ``st``) and everything below it,
        depth first, entries sorted by name.  ``fd`` is closed."""
        try:
            if self.wanted(relative, st):
                self.writer.write_header(self.writer.header(
                    st, _arc_path(self.arcname, relative), fsmeta.read_xattrs(fd), kind=tarfile.DIRTYPE
                ))
            try:
                names = sorted(os.listdir(fd))  # names only: no DirEntry objects, no sort key
            except OSError as exc:
                if not relative:
                    raise SourceError(f"cannot read directory {self.root}: {exc.strerror}") from None
                self.stats.skip(self.shown(relative), f"its contents cannot be read ({exc.strerror})")
                return
            parent = (st.st_dev, st.st_ino)
            prefix = f"{relative}/" if relative else ""
            for name in names:
                self.entry(fd, parent, name, prefix + name)
        finally:
            os.close(fd)

    def entry(self, dir_fd: int, parent: tuple[int, int], name: str, relative: str) -> None:
        parent_device = parent[0]
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            self.stats.skip(self.shown(relative), "it disappeared during the backup")
            return
        except OSError as exc:
            self.stats.skip(self.shown(relative), f"it cannot be read ({exc.strerror})")
            return
        if self.own.holds(st, parent, name):
            log.info("Leaving out %s: it is bakthat's own store or catalog", self.shown(relative))
            self.stats.exclude(relative, "bakthat's own store or catalog")
            return
        kind = stat.S_IFMT(st.st_mode)
        if self.excludes is not None and self.excludes.match_file(relative + "/" if kind == stat.S_IFDIR else relative):
            self.stats.exclude(relative, "exclude pattern")
            return
        if self.filter is not None:
            reason = self.filter(self.shown(relative), st)
            if reason:
                log.debug("Leaving out %s: %s", self.shown(relative), reason)
                self.stats.exclude(relative, reason)
                self.stats.filtered += 1
                if len(self.stats.filtered_names) < NAMED_EXCLUDED:
                    self.stats.filtered_names.append(relative)
                return
        if kind == stat.S_IFDIR and st.st_dev != parent_device and st.st_dev in self.pseudo:
            self.special(st, relative, dir_fd, name)  # the mount point, not the kernel's view below it
            self.stats.exclude(relative + "/*", f"a {self.pseudo[st.st_dev]} file system")
            return
        if kind == stat.S_IFDIR:
            try:
                fd = os.open(name, _DIR_FLAGS | _NOFOLLOW, dir_fd=dir_fd)
            except OSError as exc:
                self.special(st, relative, dir_fd, name)  # keep the directory itself
                self.stats.skip(self.shown(relative), f"its contents cannot be read ({exc.strerror})")
                return
            opened = os.fstat(fd)
            if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
                self.stats.change(self.shown(relative), "was replaced while being backed up; the new directory is archived")
            self.tree(fd, opened, relative)
        elif kind == stat.S_IFREG:
            if self.planner is None or self.wanted(relative, st):
                self.file(dir_fd, name, relative)
        elif kind == stat.S_IFSOCK:
            self.stats.skip(self.shown(relative), SOCKET)
        elif kind in _HEADER_KINDS:
            self.special(st, relative, dir_fd, name)
        else:
            self.stats.skip(self.shown(relative), f"unknown file type {kind:#o}")

    def special(self, st: os.stat_result, relative: str, dir_fd: int | None, name: str) -> None:
        """Archive an entry that is only a header: a symbolic link, FIFO, device, or a
        directory whose contents cannot be read."""
        kind = stat.S_IFMT(st.st_mode)
        fields: dict[str, Any] = {"kind": _HEADER_KINDS[kind]}
        if kind == stat.S_IFLNK:
            try:
                fields["linkname"] = os.readlink(name, dir_fd=dir_fd)
            except OSError as exc:
                self.stats.skip(self.shown(relative), f"its link target cannot be read ({exc.strerror})")
                return
        if not self.wanted(relative, st, fields.get("linkname")):
            return
        if kind in (stat.S_IFCHR, stat.S_IFBLK):
            fields["devmajor"], fields["devminor"] = os.major(st.st_rdev), os.minor(st.st_rdev)
        # Linux's /proc names the entry without a full path (no PATH_MAX limit); elsewhere
        # the lookup fails and the entry is archived without extended attributes.
        records = fsmeta.read_xattrs(name if dir_fd is None else f"/proc/self/fd/{dir_fd}/{name}")
        self.writer.write_header(self.writer.header(st, _arc_path(self.arcname, relative), records, **fields))

    def file(self, dir_fd: int | None, name: str, relative: str) -> None:
        try:
            fd = os.open(name, _READ_FLAGS if dir_fd is not None else _READ_FLAGS & ~_NOFOLLOW, dir_fd=dir_fd)
        except FileNotFoundError:
            self.lost(relative, "it disappeared during the backup")
            return
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                self.lost(relative, "it was replaced by a symbolic link during the backup")
            elif not relative:
                raise SourceError(f"cannot read {self.shown(relative)}: {exc.strerror}") from None
            else:
                self.lost(relative, f"it cannot be read ({exc.strerror})")
            return
        try:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                self.lost(relative, "it stopped being a regular file during the backup")
                return
            arc = _arc_path(self.arcname, relative)
            first = self.writer.linked(before, arc)
            if first is not None:
                self.writer.write_header(self.writer.header(before, arc, fsmeta.read_xattrs(fd), kind=tarfile.LNKTYPE, linkname=first))
                return
            missing = self._contents(fd, before, arc)
            self.writer.remember(before, arc)
            if self.planner is not None and before.st_nlink > 1:
                self.stored_links.setdefault((before.st_dev, before.st_ino), arc)
            if missing:
                self.unstable(relative, f"shrank by {missing} bytes while being read; it is kept in the archive "
                                         f"at its earlier size of {before.st_size} bytes, the missing end filled with zeros")
            else:
                self._compare(fd, before, dir_fd, name, relative)
        finally:
            os.close(fd)

    def _contents(self, fd: int, before: os.stat_result, arc: str) -> int:
        """Write the header and data of the regular file open as ``fd``; return how many
        bytes it turned out to be short of (zero-filled in the archive)."""
        size = before.st_size
        records = fsmeta.read_xattrs(fd)
        segments = None
        if before.st_blocks * 512 < size:
            segments = fsmeta.data_segments(fd, size)
            if segments is not None and len(segments) > fsmeta.MAX_SPARSE_SEGMENTS:
                segments = None
        if segments is None:
            header = self.writer.header(before, arc, records, tarfile.REGTYPE, size=size)
            if size <= SMALL_FILE:
                return self.writer.small(header, fd, size)
        else:
            head, _, tail = arc.rpartition("/")
            stand_in = f"{head or '.'}/GNUSparseFile.0/{tail}"
            sparse = {"path": stand_in, "GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                      "GNU.sparse.name": arc, "GNU.sparse.realsize": str(size)}
            table = fsmeta.sparse_map(segments)
            header = self.writer.header(before, stand_in, {**sparse, **records}, tarfile.REGTYPE,
                                        size=len(table) + sum(length for _, length in segments))
        self.writer.write_header(header)
        if segments is not None:
            self.writer.write(table)
        return self.writer.copy(fd, size, segments)

    def _compare(self, fd: int, before: os.stat_result, dir_fd: int | None, name: str, relative: str) -> None:
        """Report a file that changed while it was read (it had the stat ``before``)."""
        after = os.fstat(fd)
        if after.st_size > before.st_size:
            reason = (f"grew from {before.st_size} to {after.st_size} bytes while being read; "
                      f"the archive holds its first {before.st_size} bytes")
        elif after.st_size < before.st_size:
            reason = f"shrank from {before.st_size} to {after.st_size} bytes after being read; the archive holds it as it was read"
        elif after.st_mtime_ns != before.st_mtime_ns:
            reason = "was modified while being read; the archived copy may mix old and new contents"
        else:
            try:
                now = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                now = None
            if now is None:
                reason = "was removed while being read; the archive holds the version read"
            elif (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino):
                reason = "was replaced while being read; the archive holds the earlier version"
            else:
                return
        self.unstable(relative, reason)

    def append_tail(self) -> None:
        """Write what the planner's tail lists after the walk: the headers of unchanged
        directories (so a restore sets their times again) and unchanged names of partly
        stored hard-link groups (as hard links to the name stored in this archive)."""
        if self.planner is None:
            return
        for arc in self.planner.tail():
            relative = "" if arc == self.arcname else arc[len(self.arcname) + 1:]
            path = self.shown(relative)
            try:
                st = os.lstat(path)
            except OSError as exc:
                self.stats.change(path, f"disappeared before its header could be written ({exc.strerror})")
                continue
            if stat.S_ISDIR(st.st_mode):
                try:
                    fd = os.open(path, _DIR_FLAGS | _NOFOLLOW)
                except OSError as exc:
                    self.stats.change(path, f"its header could not be written ({exc.strerror})")
                    continue
                try:
                    records = fsmeta.read_xattrs(fd)
                finally:
                    os.close(fd)
                self.writer.write_header(self.writer.header(st, arc, records, kind=tarfile.DIRTYPE))
                continue
            first = self.stored_links.get((st.st_dev, st.st_ino)) if stat.S_ISREG(st.st_mode) else None
            if first is None:
                self.stats.change(path, "changed while the backup ran: its hard link could not be written")
                continue
            self.writer.write_header(self.writer.header(st, arc, fsmeta.read_xattrs(path), kind=tarfile.LNKTYPE, linkname=first))


def write_tar(
    source: str | os.PathLike[str],
    arcname: str,
    fileobj: Any,
    excludes: Any = None,
    skip: Iterable[str] = (),
    progress: Callable[[int], None] | None = None,
    planner: Any = None,
    stats: TarStats | None = None,
) -> TarStats:
    """Given a file or directory, write it as a PAX tar stream to ``fileobj``.

    The top-level member is ``arcname``; a directory's contents follow under it, sorted,
    minus what ``excludes`` (a pathspec matched against paths relative to the source)
    matches and bakthat's own files in ``skip`` (compared by device and inode).  When
    ``source`` is a symbolic link, what it points to is archived.  ``progress`` is called
    with the byte count of each chunk of file data read.  ``fileobj.write`` may be
    handed a view of a buffer that is reused once it returns: it copies what it keeps
    (compressors, ``io.BytesIO`` and :class:`bakthat.streams.WriteBehind` do).  Return the counts (see
    :class:`TarStats`).  With a ``planner`` (:class:`bakthat.changes.ChangeSet`), only
    the entries it wants are written, then what its tail lists (the caller then calls
    its ``finish()``).  The counts go into ``stats`` if given (a fresh TarStats), so
    another thread can read ``files`` and ``bytes`` while the walk runs (progress you
    can poll, without a call per member).  Raise SourceError if the source is missing,
    a socket, or cannot be read at all.
    """
    root = os.fspath(source)
    try:
        st = os.stat(root)
    except FileNotFoundError:
        if os.path.islink(root):
            raise SourceError(f"nothing to back up: {root} is a symbolic link to {os.readlink(root)!r}, which does not exist") from None
        raise SourceError(f"nothing to back up: {root} does not exist") from None
    except OSError as exc:
        raise SourceError(f"cannot read {root}: {exc.strerror}") from None
    stats = TarStats() if stats is None else stats
    # A buffered sink: writing each 512-byte header straight into the compressor is slow.
    sink = io.BufferedWriter(_CountingSink(fileobj), buffer_size=BUFFER_SIZE)
    writer = _Writer(sink, stats, progress)
    walk = _Walk(root, arcname, writer, stats, excludes, _OwnPaths(skip), planner)
    if stat.S_ISDIR(st.st_mode):
        try:
            fd = os.open(root, _DIR_FLAGS)
        except OSError as exc:
            raise SourceError(f"cannot read directory {root}: {exc.strerror}") from None
        walk.tree(fd, os.fstat(fd), "")
    elif stat.S_ISREG(st.st_mode):
        if walk.wanted("", st):
            walk.file(None, root, "")
    elif stat.S_ISSOCK(st.st_mode):
        raise SourceError(f"cannot back up {root}: {SOCKET}")
    else:
        walk.special(st, "", None, root)
    walk.append_tail()
    writer.finish()
    sink.flush()
    return stats
