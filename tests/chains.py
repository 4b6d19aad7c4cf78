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
