"""Restore a tar stream into a directory without ever writing outside it.

A restore has three steps, and the target is touched only by the last one:

1. **Stage.**  The archive is streamed into a fresh, private staging directory
   (``<target>/.bakthat-restore-XXXXXXXX``, mode 0700, on the same filesystem as the
   target) with :meth:`tarfile.TarFile.extractall` and two filter layers: tarfile's
   PEP 706 ``data_filter`` and our own member check (in the spirit of borg's
   ``make_path_safe``).  Every member is checked *before* it is written; the first bad
   member stops the restore.
2. **Verify.**  After the last member the end-of-archive marker must be present, the
   rest of the stream is read to its end (so that a checksum or authentication wrapper
   upstream sees every byte and can raise), and then the caller's ``before_commit`` hook
   runs.
3. **Commit.**  The staged entries are renamed into the target (atomic per entry), or
   merged into existing directories when ``overwrite`` is true.  Conflicts are looked
   for before anything is moved, and a failure half-way through puts back what was
   already moved.

Any exception in steps 1-3, ``KeyboardInterrupt`` included, removes the staging
directory and leaves the target as it was.

Policy choices (see :func:`safe_extract` for the full contract):

* Only regular files, directories, symbolic links and hard links are restored.
* Ownership is not restored, setuid/setgid/sticky bits and group/other write bits are
  dropped (tarfile's ``data`` filter).  File modes otherwise survive as the data filter
  leaves them (it also makes files owner-readable and owner-writable).  Directory modes
  are kept too (the data filter would drop them, which would turn a private 0700
  directory such as ``~/.ssh`` into a 0755 one); they are masked with 0755 and always
  get owner rwx, so the restore can always be completed and cleaned up.
* An archive member for the archive root itself (``./``) is skipped: the target
  directory's own mode and times are left alone.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import pathlib
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import BinaryIO

from bakthat.errors import BakthatError, IntegrityError, TargetExistsError, UnsafeArchiveError

__all__ = ["list_members", "require_safe_tarfile", "safe_extract"]

log = logging.getLogger(__name__)

STAGING_PREFIX = ".bakthat-restore-"
"""Name prefix of the staging directory created inside the target."""

# tarfile's stream reader copies what is left of its buffer on every read (a 512-byte
# header included), so a large buffer makes many small members slow; 64 KiB measured
# 2.5x faster than 1 MiB on 8,000 small files.
_BUFSIZE = 64 << 10
# Bytes of the stream kept in memory so the block after the last member can be looked
# at; tarfile's stream reader is never more than one buffer ahead of its position.
_KEEP = 2 * _BUFSIZE + 4 * tarfile.BLOCKSIZE
# Linux gives up after 40 symbolic links in one lookup and macOS after 32; a chain
# longer than this can never be followed, so it cannot lead anywhere either.
_MAX_SYMLINK_HOPS = 64
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# What our second layer refuses to see left in a mode after the data filter.
_FORBIDDEN_MODE_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWGRP | stat.S_IWOTH

_FILE, _DIR, _SYMLINK, _HARDLINK = "regular file", "directory", "symbolic link", "hard link"
_KINDS = {
    tarfile.REGTYPE: _FILE,
    tarfile.AREGTYPE: _FILE,
    tarfile.DIRTYPE: _DIR,
    tarfile.SYMTYPE: _SYMLINK,
    tarfile.LNKTYPE: _HARDLINK,
}
_REFUSED_KINDS = {
    tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device",
    tarfile.FIFOTYPE: "FIFO",
    tarfile.CONTTYPE: "contiguous file",
    tarfile.GNUTYPE_SPARSE: "GNU sparse file",
}


def require_safe_tarfile(module: ModuleType = tarfile) -> None:
    """Given the ``tarfile`` module (or a stand-in), return if it has PEP 706 filters.

    Raise UnsafeArchiveError if ``module`` has no ``data_filter``: such a Python (older
    than 3.8.17, 3.9.17, 3.10.12 or 3.11.4) cannot restore safely and bakthat refuses
    rather than fall back to an unfiltered extraction.
    """
    if not hasattr(module, "data_filter"):
        raise UnsafeArchiveError(
            "this Python's tarfile module has no extraction filters (PEP 706); "
            "restoring needs Python >= 3.11.4 (or 3.8.17, 3.9.17, 3.10.12), refusing to restore"
        )


def safe_extract(
    stream: BinaryIO,
    target: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    before_commit: Callable[[], None] | None = None,
) -> list[pathlib.Path]:
    """Given a readable binary stream holding an uncompressed tar archive, restore its
    members under ``target`` (created if missing) and return the restored top-level
    paths (``target / name``, sorted).

    The stream is read once, front to back, and always to its end (it need not seek).
    Leading ``/`` are stripped from member names (``/etc/x`` lands at
    ``<target>/etc/x``).  ``before_commit``, if given, is called once the whole stream
    has been read and before anything reaches ``target``; if it raises, nothing is
    restored and its exception propagates (use it to raise IntegrityError when a
    checksum computed over the stream does not match).

    Without ``overwrite``, each top-level entry is renamed into ``target`` in one
    atomic step.  With ``overwrite``, existing directories are merged recursively (the
    archive's mode and mtime are applied to a merged directory the archive names), and
    a file, symbolic link or other non-directory in the archive atomically replaces the
    non-directory in the target; a symbolic link in the target is replaced itself,
    never written through.

    Raise UnsafeArchiveError if this Python has no tarfile ``data_filter``, or if a
    member's name is empty, holds a NUL byte or a ``..`` component; if a member is not
    a regular file, directory, symbolic link or hard link (devices, FIFOs, contiguous
    and sparse files are refused); if a symbolic link is absolute or resolves outside
    the archive's tree; if a member's path goes through a symbolic link or a file of the
    archive; if a hard link does not point to an earlier regular-file member; if a path
    appears twice with different types, or twice as a file when hard links are
    involved; or if, with ``overwrite``, the archive has a directory where the target
    has a symbolic link (restoring would write through the link, so nothing is done).
    Raise IntegrityError if the archive is truncated or damaged: a read error inside
    the archive, no end-of-archive marker, or non-zero data after it.  Raise
    TargetExistsError if ``target`` exists and is not a directory; if, without
    ``overwrite``, a top-level entry already exists in ``target``; or if, even with
    ``overwrite``, the target has a directory where the archive has a non-directory or
    the other way round (bakthat does not delete a directory tree or put one in place
    of a file).  Any other error (``OSError`` such as a full disk, or what the stream or
    ``before_commit`` raises) propagates unchanged.  Whatever is raised, the staging
    directory is removed and ``target`` is left as it was (a target directory created
    by this call is removed again).
    """
    require_safe_tarfile(tarfile)
    target_path = pathlib.Path(os.path.abspath(target))
    created = _create_directory(target_path)
    staging = None
    try:
        staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=target_path)
        root = os.path.join(staging, "root")
        os.mkdir(root, 0o700)
        checker = _MemberChecker()
        _extract_to_staging(stream, root, checker)
        if before_commit is not None:
            before_commit()
        names = _Commit(staging, root, target_path, overwrite, checker.explicit_dirs).run()
    except BaseException:
        if staging is not None:
            _remove_tree(staging)
        _remove_created(created)
        raise
    _remove_tree(staging)
    log.debug("restored %d top-level entries into %s", len(names), target_path)
    return [target_path / name for name in names]


def list_members(stream: BinaryIO) -> Iterator[tarfile.TarInfo]:
    """Given a readable binary stream holding an uncompressed tar archive, yield its
    members (as stored, unfiltered) one by one, checked as :func:`safe_extract` checks
    them, without writing anything.

    The archive-root entry (``./``) is not yielded since it is never restored.  The
    stream is read to its end once the last member has been yielded.

    Raise UnsafeArchiveError when the iteration reaches a member :func:`safe_extract`
    would refuse, and IntegrityError when it reaches damage or the end of a truncated
    archive; members before that point have already been yielded.
    """
    reader = _TrackingReader(stream)
    checker = _MemberChecker()
    with _tar_errors(reader, "read"), tarfile.open(fileobj=reader, mode="r|", bufsize=_BUFSIZE) as tar:
        yield from checker.members(tar)
        checker.finish()
        _read_to_end(tar, reader)


# ---------------------------------------------------------------------------------------
# Member checks


def _unsafe(name: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"refusing to restore archive member {name!r}: {why}")


def _path_parts(member_name: str, path: str, what: str) -> list[str]:
    """Return the components of an archive path, without '', '.' and leading '/'."""
    if not path:
        raise _unsafe(member_name, f"{what} is empty")
    if "\0" in path:
        raise _unsafe(member_name, f"{what} contains a NUL byte")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _unsafe(member_name, f"{what} {path!r} has a '..' component")
    return parts


class _MemberChecker:
    """Our own layer of member checks, fed every member in archive order.

    It keeps a model of the tree built so far (path -> kind), so it can tell whether a
    member goes through a symbolic link, whether a hard link points to an earlier
    regular file and whether a path changes type.  The staging directory is fresh, so
    the model is exactly what is on disk.
    """

    def __init__(self) -> None:
        self._kinds: dict[str, str] = {}  # normalized path -> _FILE, _DIR or _SYMLINK
        self._hardlinked: set[str] = set()  # paths that share an inode with another member
        self.symlinks: dict[str, str] = {}  # normalized path -> link target
        self.explicit_dirs: set[str] = set()  # directories the archive names itself
        self._pending: tuple[tarfile.TarInfo, list[str]] | None = None

    def check(self, member: tarfile.TarInfo) -> str | None:
        """Return the member's normalized path, or None for the archive root (skip it).

        Raise UnsafeArchiveError if the member must not be restored.
        """
        name = member.name
        parts = _path_parts(name, name, "its name")
        kind = _KINDS.get(member.type)
        if kind is None:
            what = _REFUSED_KINDS.get(member.type, f"member of unknown type {member.type!r}")
            raise _unsafe(
                name,
                f"it is a {what}; only regular files, directories, symbolic links "
                "and hard links are restored",
            )
        if not parts:
            if kind == _DIR:
                return None
            raise _unsafe(name, f"a {kind} cannot be the restore directory itself")
        path = "/".join(parts)

        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            parent_kind = self._kinds.get(parent, _DIR)
            if parent_kind != _DIR:
                raise _unsafe(name, f"its parent {parent!r} is a {parent_kind} in this archive")

        model_kind = _FILE if kind == _HARDLINK else kind
        previous = self._kinds.get(path)
        if previous is not None:
            if previous != model_kind:
                raise _unsafe(
                    name,
                    f"it was already restored as a {previous} and would be replaced by a {kind}",
                )
            if model_kind == _FILE and (kind == _HARDLINK or path in self._hardlinked):
                raise _unsafe(name, "it appears twice and is part of a hard-linked group")

        link_target = None
        if kind == _SYMLINK:
            self._check_symlink(member, parts)
        elif kind == _HARDLINK:
            link_target = self._check_hardlink(member)

        for depth in range(1, len(parts)):
            self._kinds.setdefault("/".join(parts[:depth]), _DIR)
        self._kinds[path] = model_kind
        if kind == _DIR:
            self.explicit_dirs.add(path)
        elif kind == _SYMLINK:
            self.symlinks[path] = member.linkname
        elif link_target is not None:
            self._hardlinked.update((path, link_target))
        self._pending = (member, parts)
        return path

    def _check_symlink(self, member: tarfile.TarInfo, parts: list[str]) -> None:
        link = member.linkname
        if not link:
            raise _unsafe(member.name, "it is a symbolic link with an empty target")
        if "\0" in link:
            raise _unsafe(member.name, "its link target contains a NUL byte")
        if link.startswith("/"):
            raise _unsafe(member.name, f"it is a symbolic link to the absolute path {link!r}")
        position = parts[:-1]
        for part in link.split("/"):
            if part in ("", "."):
                continue
            if part != "..":
                position.append(part)
            elif position:
                position.pop()
            else:
                raise _unsafe(
                    member.name,
                    f"it is a symbolic link to {link!r}, outside the restore directory",
                )
        if self._escapes("/".join(parts), link):
            raise _unsafe(
                member.name,
                f"its link target {link!r}, followed through the archive's other "
                "symbolic links, leads outside the restore directory",
            )

    def _check_hardlink(self, member: tarfile.TarInfo) -> str:
        link = member.linkname
        if link.startswith("/"):
            raise _unsafe(member.name, f"it is a hard link to the absolute path {link!r}")
        target = "/".join(_path_parts(member.name, link, "its hard-link target"))
        target_kind = self._kinds.get(target)
        if target_kind is None:
            raise _unsafe(
                member.name,
                f"it is a hard link to {link!r}, which is not an earlier member of the archive",
            )
        if target_kind != _FILE:
            raise _unsafe(
                member.name,
                f"it is a hard link to {link!r}, which is a {target_kind}, not a regular file",
            )
        return target

    def finish(self) -> None:
        """Raise UnsafeArchiveError if a symbolic link of the complete tree, followed
        through the archive's other symbolic links, leads outside it."""
        for path, link in self.symlinks.items():
            if self._escapes(path, link):
                raise _unsafe(
                    path,
                    f"its link target {link!r}, followed through the archive's other "
                    "symbolic links, leads outside the restore directory",
                )

    def _escapes(self, path: str, link: str) -> bool:
        position = path.split("/")[:-1]
        pending = collections.deque(link.split("/"))
        hops = 0
        while pending:
            part = pending.popleft()
            if part in ("", "."):
                continue
            if part == "..":
                if not position:
                    return True
                position.pop()
                continue
            position.append(part)
            next_link = self.symlinks.get("/".join(position))
            if next_link is not None:
                hops += 1
                if hops > _MAX_SYMLINK_HOPS:
                    return False  # the system refuses to follow it (ELOOP)
                if next_link.startswith("/"):
                    return True
                position.pop()
                pending.extendleft(reversed(next_link.split("/")))
        return False

    def members(self, tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
        """Yield the members of ``tar`` that are to be extracted, each checked first."""
        for member in tar:
            # tarfile keeps every header it reads in ``tar.members``; nothing here needs
            # them again (hard links are made from paths on disk), and keeping them
            # would make memory grow with the number of files.  TarFile's iterator
            # reads the next header whenever its index is past the list, so clearing
            # it is safe.
            tar.members.clear()
            if self.check(member) is not None:
                yield member

    def filter(self, member: tarfile.TarInfo, dest_path: str) -> tarfile.TarInfo:
        """The extraction filter: tarfile's data filter, then our second layer."""
        pending, self._pending = self._pending, None
        if pending is None or pending[0] is not member:
            raise _unsafe(member.name, "it reached extraction without being checked")
        parts = pending[1]
        try:
            filtered = tarfile.data_filter(member, dest_path)
        except tarfile.FilterError as exc:
            raise _unsafe(member.name, f"tarfile's data filter refused it ({exc})") from exc
        if filtered is None:
            raise _unsafe(member.name, "tarfile's data filter dropped it")
        if _path_parts(member.name, filtered.name, "its filtered name") != parts:
            raise _unsafe(member.name, f"the data filter renamed it to {filtered.name!r}")
        if filtered.type != member.type or filtered.linkname != member.linkname:
            raise _unsafe(member.name, "the data filter changed its type or link target")
        if filtered.isdir() and member.mode is not None:
            # Keep directory modes (the data filter drops them), masked like file modes.
            filtered = filtered.replace(mode=(member.mode & 0o755) | stat.S_IRWXU, deep=False)
        if filtered.mode is not None and filtered.mode & _FORBIDDEN_MODE_BITS:
            raise _unsafe(member.name, f"mode {filtered.mode:#o} survived the data filter")
        return filtered


# ---------------------------------------------------------------------------------------
# Reading the stream


class _TrackingReader:
    """Read-through wrapper counting bytes and keeping the most recent ones."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.position = 0
        self._recent: collections.deque[tuple[int, bytes]] = collections.deque()
        self._recent_size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        if data:
            self._recent.append((self.position, data))
            self.position += len(data)
            self._recent_size += len(data)
            while self._recent_size - len(self._recent[0][1]) >= _KEEP:
                self._recent_size -= len(self._recent.popleft()[1])
        return data

    def since(self, offset: int) -> bytes:
        """Return the bytes already read from ``offset`` on."""
        if offset >= self.position:
            return b""
        if not self._recent or offset < self._recent[0][0]:
            raise RuntimeError(f"stream bytes from offset {offset} are no longer available")
        return b"".join(
            data[max(0, offset - start) :]
            for start, data in self._recent
            if start + len(data) > offset
        )


def _is_zero(data: bytes) -> bool:
    return data.count(0) == len(data)


def _drain(reader: _TrackingReader) -> bool:
    """Read ``reader`` to its end and return whether everything read was NUL bytes."""
    clean = True
    while chunk := reader.read(_BUFSIZE):
        if clean and not _is_zero(chunk):
            clean = False
    return clean


def _drain_for_upstream(reader: _TrackingReader) -> None:
    """Read to the end so an upstream checksum wrapper can raise its own, more precise
    bakthat error; other failures are left to the caller's error."""
    try:
        _drain(reader)
    except BakthatError:
        raise
    except Exception:  # noqa: BLE001 - the archive error being raised is the one to report
        log.debug("could not read the rest of a damaged archive", exc_info=True)


def _read_to_end(tar: tarfile.TarFile, reader: _TrackingReader) -> None:
    """After the last member: check the end-of-archive marker, then read the stream to
    its end.  Raise IntegrityError if the marker is missing or damaged, or if non-zero
    bytes follow it."""
    tail = reader.since(tar.offset)
    problem = None
    if len(tail) < tarfile.BLOCKSIZE:
        problem = f"the stream ends at byte {reader.position} without an end-of-archive marker"
    elif not _is_zero(tail[: tarfile.BLOCKSIZE]):
        problem = f"unreadable member header at byte {tar.offset}"
    elif not _is_zero(tail[tarfile.BLOCKSIZE :]):
        problem = "data follows the end-of-archive marker"
    if not _drain(reader) and problem is None:
        problem = "data follows the end-of-archive marker"
    if problem is not None:
        raise IntegrityError(f"truncated or damaged archive: {problem}")


@contextlib.contextmanager
def _tar_errors(reader: _TrackingReader, verb: str) -> Iterator[None]:
    """Turn tarfile's errors into bakthat's: a truncated or unreadable stream is an
    IntegrityError (after reading the rest, so an upstream checksum can speak first)."""
    try:
        yield
    except (tarfile.ReadError, EOFError) as exc:
        _drain_for_upstream(reader)
        raise IntegrityError(f"truncated or damaged archive: {exc}") from exc
    except tarfile.TarError as exc:
        raise BakthatError(f"could not {verb} the archive: {exc}") from exc


def _extract_to_staging(stream: BinaryIO, root: str, checker: _MemberChecker) -> None:
    reader = _TrackingReader(stream)
    with _tar_errors(reader, "restore"), tarfile.open(
        fileobj=reader, mode="r|", bufsize=_BUFSIZE, errorlevel=2
    ) as tar:
        tar.copybufsize = 1 << 20
        # extractall (not extract per member): it applies directory modes and
        # mtimes at the end, after the directories' contents are written.
        tar.extractall(root, members=checker.members(tar), filter=checker.filter)
        checker.finish()
        _check_symlinks_on_disk(root, checker.symlinks)
        _read_to_end(tar, reader)


def _check_symlinks_on_disk(root: str, symlinks: Iterable[str]) -> None:
    real_root = os.path.realpath(root)
    for path in symlinks:
        resolved = os.path.realpath(os.path.join(root, path))
        if os.path.commonpath([resolved, real_root]) != real_root:
            raise _unsafe(path, "once restored, it resolves outside the restore directory")


# ---------------------------------------------------------------------------------------
# Moving the staged tree into the target


def _open_dir(base_fd: int, parts: Iterable[str]) -> int:
    """Open the directory ``parts`` below ``base_fd`` without following symbolic links."""
    fd = os.dup(base_fd)
    try:
        for part in parts:
            child = os.open(part, _DIR_FLAGS | _NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _kind_on_disk(st: os.stat_result) -> str:
    if stat.S_ISDIR(st.st_mode):
        return _DIR
    if stat.S_ISLNK(st.st_mode):
        return _SYMLINK
    if stat.S_ISREG(st.st_mode):
        return _FILE
    return "special file"


class _Commit:
    """Move the staged tree into the target, and put things back if that fails.

    All work goes through directory file descriptors opened without following symbolic
    links, so a link in the target is never walked through.  Each change is written to
    an undo log *before* it is made; undoing an entry whose change never happened is
    harmless.  Files the merge replaces are kept (hard-linked, or moved) in
    ``<staging>/replaced`` until the commit succeeds.
    """

    def __init__(
        self,
        staging: str,
        root: str,
        target: pathlib.Path,
        overwrite: bool,
        explicit_dirs: set[str],
    ) -> None:
        self._staging_name = os.path.basename(staging)
        self._replaced = os.path.join(staging, "replaced")
        self._root = root
        self._target = target
        self._overwrite = overwrite
        self._explicit_dirs = explicit_dirs
        self._undo: list[tuple] = []
        self._count = 0
        self._src_fd = self._dst_fd = self._trash_fd = -1  # set while run() works

    def run(self) -> list[str]:
        os.mkdir(self._replaced, 0o700)
        src_fd = os.open(self._root, _DIR_FLAGS)
        try:
            dst_fd = os.open(self._target, _DIR_FLAGS)
            try:
                trash_fd = os.open(self._replaced, _DIR_FLAGS)
                try:
                    self._src_fd, self._dst_fd, self._trash_fd = src_fd, dst_fd, trash_fd
                    names = sorted(os.listdir(src_fd))
                    self._walk(src_fd, dst_fd, [], apply=False)  # find conflicts first
                    try:
                        self._walk(src_fd, dst_fd, [], apply=True)
                    except BaseException:
                        self._rollback()
                        raise
                finally:
                    os.close(trash_fd)
            finally:
                os.close(dst_fd)
        finally:
            os.close(src_fd)
        return names

    def _show(self, parts: list[str]) -> str:
        return str(self._target.joinpath(*parts))

    def _walk(self, src_fd: int, dst_fd: int, parts: list[str], apply: bool) -> None:
        for name in sorted(os.listdir(src_fd)):
            rel = [*parts, name]
            if not parts and name == self._staging_name:
                raise _unsafe(name, "it has the name of this restore's staging directory")
            src_st = os.stat(name, dir_fd=src_fd, follow_symlinks=False)
            dst_st = _lstat(name, dst_fd)
            if dst_st is None:
                if apply:
                    self._undo.append(("new", parts, name))
                    os.rename(name, name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
                continue
            where = self._show(rel)
            if not self._overwrite:
                raise TargetExistsError(f"{where} already exists; restore with overwrite to replace it")
            src_kind, dst_kind = _kind_on_disk(src_st), _kind_on_disk(dst_st)
            if src_kind == _DIR and dst_kind == _SYMLINK:
                raise UnsafeArchiveError(
                    f"{where} is a symbolic link in the target and a directory in the archive; "
                    "refusing to restore through the link"
                )
            if (src_kind == _DIR) != (dst_kind == _DIR):
                raise TargetExistsError(
                    f"{where} is a {dst_kind} in the target but a {src_kind} in the archive; "
                    "it is not replaced, even with overwrite"
                )
            if src_kind != _DIR:
                if apply:
                    self._replace(src_fd, dst_fd, parts, name)
                continue
            child_src = os.open(name, _DIR_FLAGS | _NOFOLLOW, dir_fd=src_fd)
            try:
                child_dst = os.open(name, _DIR_FLAGS | _NOFOLLOW, dir_fd=dst_fd)
                try:
                    explicit = "/".join(rel) in self._explicit_dirs
                    if apply and explicit:
                        self._undo.append(("attrs", rel, dst_st))
                    self._walk(child_src, child_dst, rel, apply)
                    if apply and explicit:
                        os.chmod(child_dst, stat.S_IMODE(src_st.st_mode))
                        os.utime(child_dst, ns=(src_st.st_atime_ns, src_st.st_mtime_ns))
                finally:
                    os.close(child_dst)
            finally:
                os.close(child_src)
        if apply:
            os.fsync(dst_fd)

    def _replace(self, src_fd: int, dst_fd: int, parts: list[str], name: str) -> None:
        self._count += 1
        kept = str(self._count)
        self._undo.append(("replaced", parts, name, kept))
        try:
            os.link(name, kept, src_dir_fd=dst_fd, dst_dir_fd=self._trash_fd, follow_symlinks=False)
        except OSError:
            # No hard link possible here: move the old entry aside instead.
            os.rename(name, kept, src_dir_fd=dst_fd, dst_dir_fd=self._trash_fd)
        os.replace(name, name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)

    def _rollback(self) -> None:
        for entry in reversed(self._undo):
            try:
                self._undo_one(entry)
            except Exception:  # noqa: BLE001 - keep undoing the rest
                log.error("could not undo %r while rolling back a restore", entry, exc_info=True)

    def _undo_one(self, entry: tuple) -> None:
        action, parts = entry[0], entry[1]
        if action == "attrs":
            old = entry[2]
            fd = _open_dir(self._dst_fd, parts)
            try:
                os.chmod(fd, stat.S_IMODE(old.st_mode))
                os.utime(fd, ns=(old.st_atime_ns, old.st_mtime_ns))
            finally:
                os.close(fd)
            return
        dst_fd = _open_dir(self._dst_fd, parts)
        try:
            name = entry[2]
            if action == "new":
                src_fd = _open_dir(self._src_fd, parts)
                try:
                    if _lstat(name, src_fd) is None:  # it was moved: move it back
                        os.rename(name, name, src_dir_fd=dst_fd, dst_dir_fd=src_fd)
                finally:
                    os.close(src_fd)
            elif action == "replaced":
                if _lstat(entry[3], self._trash_fd) is not None:
                    os.replace(entry[3], name, src_dir_fd=self._trash_fd, dst_dir_fd=dst_fd)
            os.fsync(dst_fd)
        finally:
            os.close(dst_fd)


# ---------------------------------------------------------------------------------------
# Creating and removing directories


def _create_directory(path: pathlib.Path) -> list[pathlib.Path]:
    """Make sure ``path`` is a directory; return the directories created, deepest first.

    Raise TargetExistsError if ``path`` exists and is not a directory.
    """
    if os.path.lexists(path) and not os.path.isdir(path):
        raise TargetExistsError(f"restore target {str(path)!r} exists and is not a directory")
    missing = []
    probe = path
    while not os.path.lexists(probe) and probe.parent != probe:
        missing.append(probe)
        probe = probe.parent
    try:
        os.makedirs(path, exist_ok=True)
    except BaseException:
        _remove_created(missing)
        raise
    return missing


def _remove_created(created: list[pathlib.Path]) -> None:
    for directory in created:
        try:
            os.rmdir(directory)
        except OSError:
            return


def _remove_tree(path: str) -> None:
    """Remove a staging tree completely, even where the archive made it read-only,
    never following a symbolic link.  Failure is logged, not raised."""
    try:
        os.chmod(path, stat.S_IRWXU)
        for dirpath, dirnames, _ in os.walk(path):
            for name in dirnames:
                child = os.path.join(dirpath, name)
                st = os.lstat(child)
                if stat.S_ISDIR(st.st_mode):
                    os.chmod(child, stat.S_IMODE(st.st_mode) | stat.S_IRWXU)
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError:
        log.warning("could not remove the restore staging directory %s", path, exc_info=True)
