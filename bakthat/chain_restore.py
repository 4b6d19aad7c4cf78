"""Restore a chain of archives (a full, then differentials and incrementals) into one tree.

This is the catalog-free core of ``restore`` for a chain, built only on
:func:`bakthat.extract.safe_extract`.  Given the chain's parts in order, each with its
plain tar stream and the paths its backup records as deleted:

1. a private work directory is made inside the target (``.bakthat-chain-XXXXXXXX``,
   mode 0700, so every rename stays on one filesystem);
2. for each part, its deletions are applied to the tree built so far (each path is
   looked up through directory descriptors that never follow a symbolic link, and must
   exist: a deletion of something the tree does not hold means the chain does not fit
   together), then its archive is extracted over the tree with ``safe_extract(...,
   overwrite=True, durable=False)`` (the tree is private: its directories are not
   fsynced one by one), with every safety check of a single restore; the part's
   ``verify`` runs once its stream has been read, before its members reach the tree
   (a restore from the store compares the archive's SHA-256 there: the chain's
   archives are not read before), and its ``on_error`` sees an error that stops it;
3. only when every part is in, the tree's top-level entries are renamed into the
   target, which must not hold them yet, and the target directory is fsynced (with
   ``overwrite``, the merge into the target fsyncs each directory it changes).

Any error leaves the target as it was (the work directory is removed, a target
directory this call created is removed).  Each stream is read exactly once, front to
back.

A part may extract only some of its members (``select``: a restore with
``--include``).  Without ``overwrite`` the tree's top-level entries are renamed into
the target, which must not hold them; with ``overwrite`` the tree is merged into the
target by :class:`bakthat.extract_commit.Commit` (directories merged, other entries
replaced atomically, everything put back if that fails).
"""

from __future__ import annotations

import errno
import logging
import os
import pathlib
import shutil
import stat
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from bakthat.atomic import fsync_directory
from bakthat.errors import IntegrityError, TargetExistsError, UnsafeArchiveError
from bakthat.extract import safe_extract

log = logging.getLogger("bakthat")

WORK_PREFIX = ".bakthat-chain-"
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)


@dataclass
class ChainPart:
    """One backup of a chain, as the restore reads it.

    ``backup`` names it in messages (its stored filename).  ``open`` returns its plain
    tar stream (decrypted and decompressed); it is called when the part's turn comes
    and the stream is closed after.  ``deletions`` are the archive paths (tar member
    names) its backup records as deleted, topmost first.  ``verify``, if given, is
    called once the stream has been read to its end and before the part's members
    reach the tree (raise IntegrityError there for a checksum mismatch).  ``on_error``,
    if given, is called with an error (an Exception) that stops the extraction of the
    part, while its stream is still open; it may raise another error in its place (the
    restore of a stored chain reads the rest of the archive to tell damage in the store
    from a hostile archive).
    """

    backup: str
    open: Callable[[], BinaryIO]
    deletions: Sequence[str] = ()
    verify: Callable[[], None] | None = None
    select: Callable[[str], bool] | None = None
    on_error: Callable[[Exception], None] | None = None


def restore_chain(
    parts: Sequence[ChainPart],
    target: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    finish: Callable[[str], None] | None = None,
) -> list[pathlib.Path]:
    """Given the parts of a chain, full first, restore the state at the last part into
    ``target`` (created if missing) and return the restored top-level paths, sorted.

    Raise ValueError if ``parts`` is empty or the full records deletions.  Raise
    IntegrityError naming the part if a deletion names a path the tree built so far
    does not hold, or goes through a symbolic link or a file, or if a part puts a
    directory where the tree has a file (or the reverse) without recording the
    deletion; TargetExistsError if ``target`` is not a directory or, without
    ``overwrite``, a top-level entry already exists in it (with ``overwrite``: if the
    target has a directory where the tree has a non-directory or the reverse);
    ``finish``, if given, is called with the tree's path once every part is in and
    before anything reaches the target; anything ``safe_extract``, ``open`` or ``verify``
    raises (UnsafeArchiveError, IntegrityError ...) unchanged, or what a part's
    ``on_error`` raises in its place.  Whatever is raised, the
    target is left as it was.
    """
    if not parts:
        raise ValueError("a chain has at least its full backup")
    if parts[0].deletions:
        raise ValueError(f"{parts[0].backup} starts the chain: it cannot record deletions")
    target_path = pathlib.Path(os.path.abspath(target))
    created = _create_directory(target_path)
    work = None
    try:
        work = tempfile.mkdtemp(prefix=WORK_PREFIX, dir=target_path)
        tree = os.path.join(work, "tree")
        os.mkdir(tree, 0o700)
        for part in parts:
            for path in part.deletions:
                _delete(tree, path, part.backup)
            stream = part.open()
            try:
                try:
                    # The tree is private until the final commit: the directories a
                    # part's merge changes are not fsynced one by one (the commit into
                    # the target is what is made durable).
                    safe_extract(
                        stream, tree, overwrite=True, before_commit=part.verify, select=part.select, durable=False
                    )
                except TargetExistsError as exc:
                    raise IntegrityError(
                        f"{part.backup} does not fit the tree of the backups before it ({exc}); "
                        "its index should have recorded the deletion; nothing was restored"
                    ) from exc
            except Exception as exc:
                if part.on_error is not None:
                    part.on_error(exc)
                raise
            finally:
                stream.close()
        if finish is not None:
            finish(tree)
        names = _merge(work, tree, target_path) if overwrite else _commit(tree, target_path)
    except BaseException:
        if work is not None:
            _remove_tree(work)
        _remove_created(created)
        raise
    _remove_tree(work)
    return [target_path / name for name in names]


def _parts(path: str, backup: str) -> list[str]:
    """Return the components of a recorded deletion; refuse anything but a plain
    relative path."""
    parts = path.split("/")
    if not path or "\0" in path or path.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise UnsafeArchiveError(f"{backup} records the deletion of {path!r}, which is not a plain relative path")
    return parts


def _delete(tree: str, path: str, backup: str) -> None:
    """Delete ``path`` (a file, link or whole directory) below ``tree`` without ever
    following a symbolic link.  Raise IntegrityError if it is not there."""
    parts = _parts(path, backup)

    def inconsistent(why: str) -> IntegrityError:
        return IntegrityError(
            f"{backup} records the deletion of {path!r}, but {why} in the tree restored so far: the chain "
            "does not fit together; nothing was restored"
        )

    fd = os.open(tree, _DIR_FLAGS)
    try:
        for depth, part in enumerate(parts[:-1]):
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    raise inconsistent(f"{'/'.join(parts[:depth + 1])!r} is not a directory") from None
                raise
            os.close(fd)
            fd = child
        name = parts[-1]
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            raise inconsistent("it does not exist") from None
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=fd)
        else:
            os.unlink(name, dir_fd=fd)
    finally:
        os.close(fd)


def _commit(tree: str, target: pathlib.Path) -> list[str]:
    """Rename the tree's top-level entries into ``target``; undo on failure."""
    names = sorted(os.listdir(tree))
    for name in names:
        if os.path.lexists(target / name):
            raise TargetExistsError(f"{target / name} already exists; nothing was restored")
    moved: list[str] = []
    try:
        for name in names:
            os.rename(os.path.join(tree, name), target / name)
            moved.append(name)
        fsync_directory(target)  # (the target may be a link to the directory: followed)
    except BaseException:
        for name in reversed(moved):
            try:
                os.rename(target / name, os.path.join(tree, name))
            except OSError:
                log.error("could not move %s back while undoing a restore", target / name, exc_info=True)
        raise
    return names


def _merge(work: str, tree: str, target: pathlib.Path) -> list[str]:
    """Merge the tree into ``target`` as ``safe_extract(overwrite=True)`` does."""
    from bakthat.extract_commit import Commit
    from bakthat.extract_disk import privileged

    directories = set()
    for dirpath, dirnames, _ in os.walk(tree):
        for name in dirnames:
            directories.add(os.path.relpath(os.path.join(dirpath, name), tree).replace(os.sep, "/"))
    return Commit(work, tree, target, True, directories, [], privileged()).run()


def _create_directory(path: pathlib.Path) -> list[pathlib.Path]:
    """Make sure ``path`` is a directory; return the directories created, deepest first."""
    if os.path.lexists(path) and not os.path.isdir(path):
        raise TargetExistsError(f"restore target {str(path)!r} exists and is not a directory")
    missing = []
    probe = path
    while not os.path.lexists(probe) and probe.parent != probe:
        missing.append(probe)
        probe = probe.parent
    os.makedirs(path, exist_ok=True)
    return missing


def _remove_created(created: list[pathlib.Path]) -> None:
    for directory in created:
        try:
            os.rmdir(directory)
        except OSError:
            return


def _remove_tree(path: str) -> None:
    """Remove the work directory, even where a restored directory is read-only."""
    try:
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
        log.warning("could not remove the restore work directory %s", path, exc_info=True)
