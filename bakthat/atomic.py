"""Files that appear whole or not at all: the one home of atomic writes and directory fsync.

Every file bakthat writes in place of another (the config file, a restored KeyValue
entry, the catalog's copy before a schema upgrade, the index cache, a run's status file)
goes through :func:`replacing` or :func:`save_file`: the data is written to a temp
file in the target's directory, flushed to disk, moved over the target in one
``rename`` (or linked to it, when an existing file must not be replaced), and the
directory is flushed so the rename itself survives a crash.  On any error the temp file
is removed and the target is left as it was.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

__all__ = ["fsync_directory", "replacing", "save_file"]


def fsync_directory(path: str | os.PathLike[str]) -> None:
    """Flush a directory's entries (a file created, renamed or removed in it) to disk.

    Raise OSError if the directory cannot be opened or flushed.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def replacing(
    target: str | os.PathLike[str],
    *,
    prefix: str = ".tmp-",
    suffix: str = "",
    mode: int = 0o600,
    durable: bool = True,
    exclusive: bool = False,
) -> Iterator[Path]:
    """Yield the path of a new empty temp file beside ``target`` to fill; then put it in place.

    The temp file is created with ``mode`` in the target's directory.  When the block
    ends normally, the file is fsynced and renamed over ``target`` (with ``exclusive``:
    hard-linked to it instead, raising FileExistsError if ``target`` exists, so a file
    created meanwhile is never replaced), then the directory is fsynced.  ``durable=False``
    leaves out both fsyncs (a status file rewritten every second).  If the block or
    any step raises, the temp file is removed, ``target`` is as it was, and the error
    propagates.
    """
    final = Path(target)
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=final.parent)
    temp = Path(name)
    try:
        os.fchmod(fd, mode)
        os.close(fd)
        fd = -1
        yield temp
        if durable:
            with open(temp, "rb") as written:
                os.fsync(written.fileno())
        if exclusive:
            os.link(temp, final)
        else:
            os.replace(temp, final)
            temp = None  # type: ignore[assignment]
        if durable:
            fsync_directory(final.parent)
    finally:
        if fd >= 0:
            os.close(fd)
        if temp is not None:
            try:
                os.unlink(temp)
            except FileNotFoundError:
                pass


@contextmanager
def save_file(
    target: str | os.PathLike[str],
    *,
    prefix: str = ".tmp-",
    suffix: str = "",
    mode: int = 0o600,
    durable: bool = True,
    exclusive: bool = False,
) -> Iterator[IO[bytes]]:
    """Yield a binary file to write ``target``'s new content into; see :func:`replacing`.

    The content replaces ``target`` only if the block ends normally (as borg's
    ``SaveFile``); the arguments are :func:`replacing`'s.
    """
    with replacing(target, prefix=prefix, suffix=suffix, mode=mode, durable=durable, exclusive=exclusive) as temp:
        with open(temp, "wb") as handle:
            yield handle
