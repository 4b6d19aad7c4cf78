"""Helpers for chain tests: walk a tree into a ChangeSet, and make each backup's archive
with GNU tar from the list of what the ChangeSet stores."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bakthat.changes import ChangeSet
from bakthat.index import Index


_MODES = {"f": stat.S_IFREG, "d": stat.S_IFDIR, "l": stat.S_IFLNK, "p": stat.S_IFIFO, "c": stat.S_IFCHR,
          "b": stat.S_IFBLK, "s": stat.S_IFSOCK}


def fake_stat(kind="f", *, size=10, mtime_ns=1_600_000_000_123_456_789, ctime_ns=1_600_000_001_000_000_000,
              ino=100, dev=7, nlink=1, mode=0o644, uid=1000, gid=1000, rdev=0) -> os.stat_result:
    """Return an os.stat_result with the given fields (the seconds fields derived)."""
    return os.stat_result((
        _MODES[kind] | mode, ino, dev, nlink, uid, gid, size, mtime_ns // 10**9, mtime_ns // 10**9,
        ctime_ns // 10**9, mtime_ns / 1e9, mtime_ns / 1e9, ctime_ns / 1e9, mtime_ns, mtime_ns, ctime_ns,
        4096, 8, rdev,
    ))


def walk(root: Path) -> Iterator[tuple[str, os.stat_result, str | None]]:
    """Yield ``(archive path, lstat, link target)`` for ``root`` and everything below
    it, each directory before its contents, names sorted (as bakthat's walker)."""
    parent = os.fspath(root.parent)
    stack = [root.name]
    while stack:
        relative = stack.pop()
        full = os.path.join(parent, relative)
        st = os.lstat(full)
        link = os.readlink(full) if stat.S_ISLNK(st.st_mode) else None
        yield relative, st, link
        if stat.S_ISDIR(st.st_mode):
            stack.extend(f"{relative}/{name}" for name in sorted(os.listdir(full), reverse=True))


@dataclass
class Backup:
    """One backup made by :func:`backup`: its stored name, level, indexes and archive."""

    name: str
    level: str
    base: str | None
    delta: Index
    state: Index
    archive: Path
    stored: list[str]


def backup(root: Path, base: Backup | None, name: str, level: str, archive: Path) -> Backup:
    """Back up ``root`` at ``level`` on top of ``base`` (None for a full): feed the walk
    to a ChangeSet and write what it stores, then its tail, with GNU tar."""
    changes = ChangeSet(
        None if base is None else base.state.copy(),
        backup=name,
        level=level,
        base=None if base is None else base.name,
        root=root.name,
    )
    stored = [path for path, st, link in walk(root) if changes.see(path, st, link)]
    stored += changes.tail()
    delta, state = changes.finish()
    listing = archive.with_suffix(".list")
    listing.write_bytes(b"".join(os.fsencode(path) + b"\0" for path in stored))
    subprocess.run(
        ["tar", "--format=posix", "-cf", str(archive), "-C", str(root.parent), "--no-recursion", "--null",
         "-T", str(listing)],
        check=True,
    )
    return Backup(name, level, None if base is None else base.name, delta, state, archive, stored)
