"""Restore a tar stream into a directory exactly as it was backed up, and never write
outside it.

The rule: **a member is data, never an instruction to write elsewhere.**  Every kind of
entry bakthat's backup stores is recreated faithfully (symbolic links verbatim, whatever
they point to; hard links; FIFOs; devices as root; sparse files; nanosecond mtimes;
extended attributes and ACLs; owners and exact modes as root), and safety comes from
never *following* a link while extracting, not from refusing links.

A restore has three steps, and the target is touched only by the last one:

1. **Stage.**  The archive is streamed into a fresh, private staging directory
   (``<target>/.bakthat-restore-XXXXXXXX``, mode 0700, on the same filesystem as the
   target).  Two layers guard every member, both bakthat's own (no dependency on the
   running Python's tarfile filters): the member check
   (:mod:`bakthat.extract_members`: names, kinds, parents, links, sizes) before
   anything of a member is written, then the creation itself
   (:mod:`bakthat.extract_disk`), relative to directory descriptors opened without
   following links.  The first bad member stops the restore.  Headers are parsed by
   :mod:`bakthat.tarreader` and checked in the calling thread while the members
   before them are created by a few writer threads
   (:mod:`bakthat.extract_writers`), in archive order for each path; an error is
   the earliest failing member's, as with one writer.
2. **Verify.**  After the last member the end-of-archive marker must be present, the
   rest of the stream is read to its end (so that a checksum or authentication wrapper
   upstream sees every byte and can raise), and then the caller's ``before_commit`` hook
   runs.
3. **Commit.**  The staged entries are renamed into the target (atomic per entry), or
   merged into existing directories when ``overwrite`` is true
   (:mod:`bakthat.extract_commit`).  Conflicts are looked for before anything is moved,
   and a failure half-way through puts back what was already moved.

Any exception in steps 1-3, ``KeyboardInterrupt`` included, removes the staging
directory and leaves the target as it was.  An archive member for the archive root
itself (``./``) is skipped: the target directory's own mode and times are left alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from typing import BinaryIO

from bakthat.errors import BakthatError, IntegrityError, TargetExistsError, UnsafeArchiveError
from bakthat.extract_commit import Commit
from bakthat.extract_disk import StagingTree, privileged
from bakthat.extract_writers import BackgroundStaging
from bakthat.extract_members import MemberChecker
from bakthat.tarreader import TarReader

__all__ = ["list_members", "safe_extract", "safe_write_file"]

log = logging.getLogger(__name__)

STAGING_PREFIX = ".bakthat-restore-"
_PIECE = 1 << 20  # bytes of member data handed over (or copied) at a time
_DIR_FLAGS = os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_DIRECTORY", 0)


def safe_extract(
    stream: BinaryIO,
    target: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    before_commit: Callable[[], None] | None = None,
    select: Callable[[str], bool] | None = None,
    durable: bool = True,
) -> list[pathlib.Path]:
    """Given a readable binary stream holding an uncompressed tar archive, restore its
    members under ``target`` (created if missing) and return the restored top-level
    paths (``target / name``, sorted).

    The stream is read once, front to back, and always to its end (it need not seek).
    Leading ``/`` are stripped from member names (``/etc/x`` lands at
    ``<target>/etc/x``).  Symbolic links are restored with their exact target.  Device
    members are recreated when running as root and otherwise skipped with a warning
    naming each.  ``before_commit``, if given, is called once the whole stream has been
    read and before anything reaches ``target``; if it raises, nothing is restored and
    its exception propagates (use it to raise IntegrityError when a checksum computed
    over the stream does not match).  ``select``, if given, is called with each
    member's normalised path (``www/sub/a.txt``) and only the members it returns True
    for are restored (every member is still checked and read).  ``durable=False`` skips
    the fsync of each directory a merge changes: for a ``target`` that is a private
    staging tree of the caller's (a chain's work tree), made durable by its own commit.

    Without ``overwrite``, each top-level entry is renamed into ``target`` in one
    atomic step.  With ``overwrite``, existing directories are merged recursively (the
    archive's mode, mtime and, as root, owner are applied to a merged directory the
    archive names), and a file, symbolic link or other non-directory in the archive
    atomically replaces the non-directory in the target; a symbolic link in the
    target is replaced itself, never written through.

    Raise UnsafeArchiveError if a member breaks a rule of the member check
    (:mod:`bakthat.extract_members`: a bad name, an unknown kind, a path through a
    symbolic link or a file, a hard link not to an earlier regular file, a path that
    changes kind, a bad sparse map, an oversized header), or if, with ``overwrite``,
    the archive has a directory where the target has a symbolic link (restoring would
    write through the link, so nothing is done).  Raise IntegrityError if the archive
    is truncated or damaged: a read error inside the archive, no end-of-archive marker,
    or non-zero data after it.  Raise TargetExistsError if ``target`` exists and is not
    a directory; if, without ``overwrite``, a top-level entry already exists in
    ``target``; or if, even with ``overwrite``, the target has a directory where the
    archive has a non-directory or the other way round (bakthat does not delete a
    directory tree or put one in place of a file).  Any other error (``OSError`` such
    as a full disk, or what the stream or ``before_commit`` raises) propagates
    unchanged.  Whatever is raised, the staging directory is removed and ``target`` is
    left as it was (a target directory created by this call is removed again).
    """
    target_path = pathlib.Path(os.path.abspath(target))
    created = _create_directory(target_path)
    staging = None
    try:
        staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=target_path)
        root = os.path.join(staging, "root")
        os.mkdir(root, 0o700)
        checker = MemberChecker()
        tree = _extract_to_staging(stream, root, checker, select)
        if before_commit is not None:
            before_commit()
        commit = Commit(
            staging, root, target_path, overwrite, checker.explicit_dirs, tree.deferred, privileged(), durable
        )
        names = commit.run()
    except BaseException:
        if staging is not None:
            _remove_tree(staging)
        _remove_created(created)
        raise
    _remove_tree(staging)
    log.debug("restored %d top-level entries into %s", len(names), target_path)
    return [target_path / name for name in names]


def safe_write_file(
    stream: BinaryIO,
    target: str | os.PathLike[str],
    name: str,
    *,
    overwrite: bool = False,
    before_commit: Callable[[], None] | None = None,
) -> pathlib.Path:
    """Given a readable binary stream and a file name, restore the stream's bytes as the
    regular file ``target / name`` (``target`` created if missing); return its path.

    The single-file counterpart of :func:`safe_extract`, with the same three steps and
    the same rules: the bytes are streamed into a file of a fresh staging directory
    (created with mode 0666 less the umask, as a plain copy would be), the stream is
    read to its end, ``before_commit`` runs, and only then is the file renamed into
    ``target`` (replacing a non-directory there only with ``overwrite``).

    Raise UnsafeArchiveError if ``name`` is not one path component (empty, ``.``,
    ``..``, or holding ``/`` or NUL).  Raise TargetExistsError as :func:`safe_extract`
    does (``target`` not a directory; ``name`` existing without ``overwrite``; a
    directory at ``name`` even with it).  What the stream or ``before_commit`` raises
    propagates unchanged.  Whatever is raised, the staging directory is removed and
    ``target`` is left as it was.
    """
    if not name or "/" in name or "\x00" in name or name in {".", ".."}:
        raise UnsafeArchiveError(f"refusing to restore a file named {name!r}: not a single file name")
    target_path = pathlib.Path(os.path.abspath(target))
    created = _create_directory(target_path)
    staging = None
    try:
        staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=target_path)
        root = os.path.join(staging, "root")
        os.mkdir(root, 0o700)
        root_fd = os.open(root, _DIR_FLAGS)
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
            fd = os.open(name, flags, 0o666, dir_fd=root_fd)
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(_PIECE):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        finally:
            os.close(root_fd)
        if before_commit is not None:
            before_commit()
        Commit(staging, root, target_path, overwrite, set(), [], False).run()
    except BaseException:
        if staging is not None:
            _remove_tree(staging)
        _remove_created(created)
        raise
    _remove_tree(staging)
    return target_path / name


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
    reader = TarReader(stream)
    checker = MemberChecker()
    with _tar_errors(reader, "read"):
        for member, _ in checker.members(reader):
            yield member


def _extract_to_staging(
    stream: BinaryIO, root: str, checker: MemberChecker, select: Callable[[str], bool] | None = None
) -> StagingTree:
    """Parse and check members in this thread; create them (those ``select`` keeps, when
    given) in others (see :class:`BackgroundStaging`), so parsing, disk writes and
    whatever produces ``stream`` overlap.  Return the finished tree."""
    reader = TarReader(stream)
    root_fd = os.open(root, _DIR_FLAGS)
    try:
        staging = BackgroundStaging(root_fd)
        try:
            with _tar_errors(reader, "restore"):
                try:
                    for member, parts in checker.members(reader):
                        if select is None or select("/".join(parts)):
                            staging.add(member, parts)
                            _hand_over_data(reader, member, staging)
                except BaseException as exc:
                    staging.stop(exc)
                    raise
            staging.finish()
        finally:
            staging.close()
    finally:
        os.close(root_fd)
    return staging.tree


def _hand_over_data(reader: TarReader, member: tarfile.TarInfo, staging: BackgroundStaging) -> None:
    left = StagingTree.data_length(member)
    if not left:
        return
    reader.seek(member.offset_data)
    while left:
        piece = reader.read(min(left, _PIECE))
        if not piece:
            raise tarfile.ReadError(f"unexpected end of data in {member.name!r}")
        staging.data(piece)
        left -= len(piece)


@contextlib.contextmanager
def _tar_errors(reader: TarReader, verb: str) -> Iterator[None]:
    """Turn the errors of reading member data into bakthat's: a member whose data ends
    early is an IntegrityError (raised after reading the rest of the stream, so an
    upstream checksum can speak first)."""
    try:
        yield
    except (tarfile.ReadError, EOFError) as exc:
        raise reader.damaged(str(exc)) from exc
    except tarfile.TarError as exc:
        raise BakthatError(f"could not {verb} the archive: {exc}") from exc


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
    """Remove a staging tree completely, never following a symbolic link (shutil's
    descriptor-based removal, so depth and path length do not matter; the staging tree
    is always owner-writable).  Failure is logged, not raised."""
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError:
        log.warning("could not remove the restore staging directory %s", path, exc_info=True)
