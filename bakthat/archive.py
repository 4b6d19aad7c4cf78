"""Tar and compression, streaming in one pass with bounded memory.

:func:`write_tar` walks a file or directory and writes a tar stream whose top-level
entry is the archive name (as bakthat 0.6).  :func:`compressor` and
:func:`decompressor` wrap a stream with zstd (multithreaded), gzip or nothing.  Nothing
here holds more than one buffer of data at a time.
"""

from __future__ import annotations

import gzip
import io
import itertools
import logging
import os
import tarfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bakthat.errors import BakthatError, ConfigError, IntegrityError

log = logging.getLogger("bakthat")

#: compression name -> stored-name extension (0.6 wrote ``.tgz``)
EXTENSIONS = {"zstd": "tar.zst", "gzip": "tgz", "none": "tar"}
DEFAULT_LEVELS = {"zstd": 3, "gzip": 6, "none": None}
BUFFER_SIZE = 1 << 20


class SourceError(BakthatError):
    """The source to back up is missing or cannot be read (exit code 2)."""

    exit_code = 2


@dataclass
class TarStats:
    """What :func:`write_tar` put in the archive."""

    files: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)


def _skip(stats: TarStats, path: str, why: str) -> None:
    log.warning("Skipping %s: %s", path, why)
    stats.skipped.append(path)


class _NonClosing:
    """Forward writes to a stream; ``close()`` flushes but leaves the stream open."""

    def __init__(self, sink: IO[bytes]):
        self._sink = sink

    def write(self, data: bytes) -> int:
        return self._sink.write(data)

    def flush(self) -> None:
        flush = getattr(self._sink, "flush", None)
        if flush:
            flush()

    def close(self) -> None:
        self.flush()


def compressor(sink: IO[bytes], compression: str, level: int | None = None, threads: int = -1) -> Any:
    """Given a writable sink and a compression name, return a writer that compresses into it.

    Closing the returned writer ends the compressed stream but leaves ``sink`` open.
    ``threads=-1`` lets zstd use every core.  Raise ConfigError for an unknown name.
    """
    if compression not in EXTENSIONS:
        raise ConfigError(f"unknown compression {compression!r}: choose zstd, gzip or none")
    level = DEFAULT_LEVELS[compression] if level is None else level
    if compression == "zstd":
        import zstandard

        params = zstandard.ZstdCompressor(level=level, threads=threads, write_checksum=True)
        return params.stream_writer(sink, closefd=False, write_size=BUFFER_SIZE)
    if compression == "gzip":
        return gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=level, mtime=0)
    return _NonClosing(sink)


class _TranslatingReader:
    """Read from a decompressor, turning codec errors into IntegrityError."""

    def __init__(self, reader: Any, errors: tuple[type[BaseException], ...], what: str):
        self._reader = reader
        self._errors = errors
        self._what = what

    def read(self, size: int = -1) -> bytes:
        try:
            return self._reader.read(size)
        except self._errors as exc:
            raise IntegrityError(f"damaged {self._what} data: {exc}") from exc

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._reader.close()


def decompressor(source: IO[bytes], compression: str) -> Any:
    """Given a readable stream and a compression name, return a reader of the plain bytes.

    Damaged or truncated compressed data raises IntegrityError on read.
    """
    if compression == "zstd":
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(
            source, read_size=BUFFER_SIZE, read_across_frames=True, closefd=False
        )
        return _TranslatingReader(reader, (zstandard.ZstdError,), "zstd")
    if compression == "gzip":
        return _TranslatingReader(
            gzip.GzipFile(fileobj=source, mode="rb"), (OSError, EOFError, zlib.error), "gzip"
        )
    if compression == "none":
        return source
    raise IntegrityError(f"unknown compression {compression!r} recorded for this archive")


def load_excludes(source: Path, exclude_file: str | os.PathLike[str] | None = None) -> Any:
    """Given a source directory and an optional exclude file, return a gitignore matcher.

    Patterns are read, in this order, from ``exclude_file`` (relative paths are taken from
    the current directory), ``<source>/.bakthatexclude`` and ``<source>/.gitignore``; they
    form one list with gitignore semantics, so a later ``!pattern`` re-includes.  Return
    None when there is no pattern.  Raise ConfigError if ``exclude_file`` is missing.
    """
    import pathspec

    from bakthat.conf import EXCLUDE_FILES

    lines: list[str] = []
    if exclude_file is not None:
        path = Path(os.path.expanduser(os.fspath(exclude_file)))
        try:
            lines += path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"exclude file {path}: {exc.strerror}") from None
    if source.is_dir():
        for name in EXCLUDE_FILES:
            candidate = source / name
            if candidate.is_file():
                lines += candidate.read_text(encoding="utf-8", errors="replace").splitlines()
    if not any(line.strip() and not line.startswith("#") for line in lines):
        return None
    return pathspec.GitIgnoreSpec.from_lines(lines)


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


class _FileReader:
    """Read exactly ``size`` bytes of a file for tarfile, reporting progress per chunk.

    A file that shrinks while it is read is padded with zeros up to the size its tar
    header already announced (``shrank`` is then set), so the archive stays well-formed.
    """

    def __init__(self, handle: IO[bytes], size: int, progress: Callable[[int], None] | None):
        self._handle = handle
        self._left = size
        self._progress = progress
        self.shrank = False

    def read(self, size: int = -1) -> bytes:
        wanted = self._left if size < 0 else min(size, self._left)
        data = b"" if self.shrank else self._handle.read(wanted)
        if len(data) < wanted:
            self.shrank = True
            data += bytes(wanted - len(data))
        self._left -= len(data)
        if self._progress is not None and data:
            self._progress(len(data))
        return data


def _walk(root: Path, excludes: Any, skip: set[str], stats: TarStats) -> Iterable[tuple[str, str]]:
    """Yield ``(full path, relative posix path)`` for every entry under root, sorted, pruned.

    An unreadable subdirectory is skipped with a warning and counted in ``stats``.
    """
    stack = [("", str(root))]
    while stack:
        relative_dir, full_dir = stack.pop()
        try:
            entries = sorted(os.scandir(full_dir), key=lambda entry: entry.name)
        except PermissionError:
            if full_dir == str(root):
                raise SourceError(f"cannot read directory {full_dir}: permission denied") from None
            _skip(stats, full_dir, "permission denied")
            continue
        except OSError as exc:
            raise SourceError(f"cannot read directory {full_dir}: {exc.strerror}") from None
        subdirs = []
        for entry in entries:
            relative = f"{relative_dir}{entry.name}"
            if entry.path in skip:
                log.info("Skipping %s (bakthat's own store or catalog)", entry.path)
                continue
            is_dir = entry.is_dir(follow_symlinks=False)
            if excludes is not None and excludes.match_file(relative + "/" if is_dir else relative):
                continue
            yield entry.path, relative
            if is_dir:
                subdirs.append((relative + "/", entry.path))
        stack.extend(reversed(subdirs))


def write_tar(
    source: str | os.PathLike[str],
    arcname: str,
    fileobj: Any,
    excludes: Any = None,
    skip: Iterable[str] = (),
    progress: Callable[[int], None] | None = None,
) -> TarStats:
    """Given a file or directory, write it as a PAX tar stream to ``fileobj``.

    The top-level member is ``arcname``; a directory's contents follow under it, minus
    what ``excludes`` (a pathspec) matches and the absolute paths in ``skip``.  Sockets,
    unreadable entries and entries that vanish mid-run are skipped with a warning and
    listed in the returned ``skipped`` (the backup is then partial, not failed); so is
    a file that shrinks while it is read.  ``progress`` is called with the byte count of
    each chunk of file data read.
    Return the counts.  Raise SourceError if the source is missing or unreadable.
    """
    root = Path(source)
    if not os.path.lexists(root):
        raise SourceError(f"nothing to back up: {root} does not exist")
    stats = TarStats()
    skip_set = {os.path.abspath(path) for path in skip}
    # A buffered, non-stream TarFile: tarfile's "w|" stream mode re-copies its whole
    # buffer on each small write (every 512-byte header), which halved throughput.
    sink = io.BufferedWriter(_CountingSink(fileobj), buffer_size=BUFFER_SIZE)
    with tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.copybufsize = BUFFER_SIZE
        members: Iterable[tuple[str, str]] = [(str(root), "")]
        if root.is_dir() and not root.is_symlink():
            members = itertools.chain(members, _walk(root, excludes, skip_set, stats))
        for full, relative in members:
            name = f"{arcname}/{relative}" if relative else arcname
            try:
                info = tar.gettarinfo(full, arcname=name)
            except FileNotFoundError:
                _skip(stats, full, "it disappeared during the backup")
                continue
            except OSError as exc:
                raise SourceError(f"cannot read {full}: {exc.strerror}") from None
            if info is None:
                _skip(stats, full, "sockets cannot be archived")
                continue
            # Whole seconds: a fractional mtime costs a PAX header per member, which
            # doubles header parsing on restore for trees of small files.
            info.mtime = int(info.mtime)
            if info.isreg():
                try:
                    handle = open(full, "rb")  # noqa: SIM115 - closed below
                except FileNotFoundError:
                    _skip(stats, full, "it disappeared during the backup")
                    continue
                except PermissionError:
                    if not relative:
                        raise SourceError(f"cannot read {full}: permission denied") from None
                    _skip(stats, full, "permission denied")
                    continue
                except OSError as exc:
                    raise SourceError(f"cannot read {full}: {exc.strerror}") from None
                with handle:
                    reader = _FileReader(handle, info.size, progress)
                    tar.addfile(info, reader)
                    opened = os.fstat(handle.fileno())
                if opened.st_nlink == 1:
                    tar.inodes.pop((opened.st_ino, opened.st_dev), None)
                if reader.shrank:
                    _skip(stats, full, "it shrank while being read (the rest is zero-filled in the archive)")
                stats.bytes += info.size
            else:
                tar.addfile(info)
            stats.files += 1
            # tarfile keeps every header written in ``tar.members`` and every file's
            # inode in ``tar.inodes``, which would make memory grow with the number of
            # files.  Nothing reads the headers back; an inode is needed again only
            # when the file has other hard links still to come.
            tar.members.clear()
    sink.flush()
    return stats

