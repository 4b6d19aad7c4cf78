"""Tar and compression, streaming in one pass with bounded memory.

:func:`write_tar` (from :mod:`bakthat.tarwriter`) walks a file or directory and writes a
tar stream whose top-level entry is the archive name (as bakthat 0.6);
:func:`load_excludes` builds what it leaves out.  :func:`compressor` and
:func:`decompressor` wrap a stream with zstd (multithreaded), gzip or nothing.  Nothing
here holds more than one buffer of data at a time.
"""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from bakthat.errors import ConfigError, IntegrityError
from bakthat.tarwriter import SourceError, TarStats, write_tar

__all__ = ["EXTENSIONS", "SourceError", "TarStats", "compressor", "decompressor", "load_excludes", "write_tar"]

log = logging.getLogger("bakthat")

#: compression name -> stored-name extension (0.6 wrote ``.tgz``)
EXTENSIONS = {"zstd": "tar.zst", "gzip": "tgz", "none": "tar"}
DEFAULT_LEVELS = {"zstd": 3, "gzip": 6, "none": None}
BUFFER_SIZE = 1 << 20
ZSTD_JOB_SIZE = 2 << 20  # 2 MiB
#: Each job reloads window >> (9 - ZSTD_OVERLAP_LOG) bytes of the one before (32 KiB at level 3).
ZSTD_OVERLAP_LOG = 3


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

        # 2 MiB jobs, each reloading 32 KiB of the one before (zstd's defaults at level 3:
        # 8 MiB jobs reloading 256 KiB): ~20 MiB of worker buffers instead of ~65 MiB, an
        # archive 0.6 % larger, less CPU spent on overlaps (docs/benchmarks.md, "zstd job
        # size").
        params = zstandard.ZstdCompressionParameters.from_level(
            level, threads=threads, job_size=ZSTD_JOB_SIZE if threads else 0,
            overlap_log=ZSTD_OVERLAP_LOG if threads else 0, write_checksum=True,
        )
        return zstandard.ZstdCompressor(compression_params=params).stream_writer(sink, closefd=False, write_size=BUFFER_SIZE)
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


def load_excludes(
    source: Path,
    exclude_file: str | os.PathLike[str] | None = None,
    patterns: Iterable[str | list[str] | None] = (),
    gitignore: bool = False,
) -> Any:
    """Given a source directory and what the user asked to leave out, return a gitignore
    matcher (paths relative to the source), or None when there is no pattern.

    Patterns are read, in this order, from ``exclude_file`` (relative paths are taken
    from the current directory), ``<source>/.bakthatexclude``, ``<source>/.gitignore``
    (only with ``gitignore``: a .gitignore lists what git leaves out, which is often
    exactly what has no other copy), then ``patterns``: each a list of patterns or a
    string of one pattern per line (the profile's ``exclude``, ``--exclude``).  They form one list with gitignore semantics, so a later
    ``!pattern`` re-includes.  Raise ConfigError if ``exclude_file`` is missing.
    """
    from bakthat.conf import EXCLUDE_FILES, GITIGNORE

    lines: list[str] = []
    if exclude_file is not None:
        path = Path(os.path.expanduser(os.fspath(exclude_file)))
        try:
            lines += path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"exclude file {path}: {exc.strerror}") from None
    if source.is_dir():
        for name in [*EXCLUDE_FILES, *([GITIGNORE] if gitignore else [])]:
            candidate = source / name
            if candidate.is_file():
                lines += candidate.read_text(encoding="utf-8", errors="replace").splitlines()
    for group in patterns:
        lines += group.splitlines() if isinstance(group, str) else [str(pattern) for pattern in group or ()]
    if not any(line.strip() and not line.startswith("#") for line in lines):
        return None
    import pathspec  # only with patterns: about 15 ms of import

    return pathspec.GitIgnoreSpec.from_lines(lines)
