"""Move a staged restore into its target, and put everything back if that fails.

The staged tree (see :mod:`bakthat.extract`) is complete and checked when this runs.
Without overwrite, each top-level entry is renamed into the target in one atomic step;
with overwrite, directories are merged recursively and every other entry atomically
replaces the non-directory in the target.  All work goes through directory file
descriptors opened without following symbolic links, so a link already in the target
is replaced itself, never written through.
"""

from __future__ import annotations

import logging
import os
import pathlib
import stat
from bakthat.errors import TargetExistsError, UnsafeArchiveError
from bakthat.extract_disk import open_path
from bakthat.extract_members import DIR, FILE, SYMLINK, unsafe

log = logging.getLogger(__name__)

_DIR_FLAGS = os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_DIRECTORY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _open_dir(base_fd: int, parts: list[str]) -> int:
    """Open the directory ``parts`` below ``base_fd`` without following symbolic links."""
    return open_path(base_fd, parts, "/".join(parts))


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _kind_on_disk(st: os.stat_result) -> str:
    if stat.S_ISDIR(st.st_mode):
        return DIR
    if stat.S_ISLNK(st.st_mode):
        return SYMLINK
    if stat.S_ISREG(st.st_mode):
        return FILE
    return "special file"


class Commit:
    """Move the staged tree into the target, and put things back if that fails.

    All work goes through directory file descriptors opened without following symbolic
    links, so a link in the target is never walked through.  Each change is written to
    an undo log *before* it is made; undoing an entry whose change never happened is
    harmless.  Files the merge replaces are kept (hard-linked, or moved) in
    ``<staging>/replaced`` until the commit succeeds.  ``deferred`` directory modes
    (path components, mode), which would have kept entries from being moved out of
    them, are applied once everything is in place.  Each target directory the merge
    changed is fsynced, unless ``durable`` is false (a target that is itself a private
    staging tree, made durable or discarded by its own commit).
    """

    def __init__(
        self,
        staging: str,
        root: str,
        target: pathlib.Path,
        overwrite: bool,
        explicit_dirs: set[str],
        deferred: list[tuple[list[str], int]] = (),  # type: ignore[assignment]
        owners: bool = False,
        durable: bool = True,
    ) -> None:
        self._staging_name = os.path.basename(staging)
        self._replaced = os.path.join(staging, "replaced")
        self._root = root
        self._target = target
        self._overwrite = overwrite
        self._explicit_dirs = explicit_dirs
        self._deferred = list(deferred)
        self._owners = owners
        self._durable = durable
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
                    self._apply_deferred()
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
                raise unsafe(name, "it has the name of this restore's staging directory")
            src_st = os.stat(name, dir_fd=src_fd, follow_symlinks=False)
            dst_st = _lstat(name, dst_fd)
            if dst_st is None:
                if apply:
                    self._undo.append(("new", parts, name))
                    os.rename(name, name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
                continue
            if not self._overwrite:
                raise TargetExistsError(f"{self._show(rel)} already exists; restore with overwrite to replace it")
            src_kind, dst_kind = _kind_on_disk(src_st), _kind_on_disk(dst_st)
            if src_kind == DIR and dst_kind == SYMLINK:
                raise UnsafeArchiveError(
                    f"{self._show(rel)} is a symbolic link in the target and a directory in the archive; "
                    "refusing to restore through the link"
                )
            if (src_kind == DIR) != (dst_kind == DIR):
                raise TargetExistsError(
                    f"{self._show(rel)} is a {dst_kind} in the target but a {src_kind} in the archive; "
                    "it is not replaced, even with overwrite"
                )
            if src_kind != DIR:
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
                        self._set_attributes(child_dst, src_st)
                finally:
                    os.close(child_dst)
            finally:
                os.close(child_src)
        if apply and self._durable:
            os.fsync(dst_fd)

    def _set_attributes(self, fd: int, st: os.stat_result) -> None:
        """Give the directory open as ``fd`` the owner (as root), mode and times of ``st``."""
        if self._owners:
            os.chown(fd, st.st_uid, st.st_gid)
        os.chmod(fd, stat.S_IMODE(st.st_mode))
        os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))

    def _apply_deferred(self) -> None:
        for parts, mode in self._deferred:
            try:
                fd = _open_dir(self._dst_fd, parts)
                try:
                    os.chmod(fd, mode)
                finally:
                    os.close(fd)
            except OSError as exc:
                log.warning("could not give %s its mode %04o: %s", self._show(parts), mode, exc.strerror)

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
                self._set_attributes(fd, old)
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


