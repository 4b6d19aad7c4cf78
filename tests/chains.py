"""Helpers for chain tests: the tree every chain test backs up and how it changes between
backups; walk it into a ChangeSet, and make each backup's archive with GNU tar from the
list of what the ChangeSet stores."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bakthat.changes import ChangeSet
from bakthat.index import Index
from tests.conftest import snapshot
from tests.services import require_binary

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


def same_size_same_mtime_rewrite(path: Path, text: str) -> None:
    before = os.stat(path)
    assert len(text.encode()) == before.st_size
    path.write_text(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def same_size_same_mtime_new_inode(path: Path, text: str) -> None:
    before = os.stat(path)
    fresh = path.with_name(path.name + ".tmp")
    fresh.write_text(text)
    os.utime(fresh, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.rename(fresh, path)


def make_source(root: Path, odd_names: bool = False) -> Path:
    """Create the tree every chain test backs up, with old times (so a restore that
    leaves the restore time on a directory is caught); return ``root``.  With
    ``odd_names``, it also holds a name with a newline and one with bytes that are not
    UTF-8 (both deleted by :func:`change_between_backups`)."""
    (root / "docs" / "deep").mkdir(parents=True)
    (root / "docs" / "a.txt").write_text("alpha")
    (root / "docs" / "deep" / "b.txt").write_text("beta")
    (root / "top.txt").write_text("top")
    (root / "will-be-dir").write_text("a file for now")
    (root / "old-name.txt").write_text("renamed later")
    (root / "linked").write_text("shared")
    os.link(root / "linked", root / "linked-too")
    os.symlink("top.txt", root / "link")
    (root / "empty").mkdir()
    if odd_names:
        (root / "line\nbreak.txt").write_text("deleted later")
        (root / os.fsdecode(b"caf\xe9 latin-1")).mkdir()
        (root / os.fsdecode(b"caf\xe9 latin-1") / "x").write_text("deleted later")
    for number, path in enumerate(sorted(root.rglob("*"), reverse=True)):
        os.utime(path, (1_600_000_000 + number, 1_600_000_000 + number), follow_symlinks=False)
    os.utime(root, (1_500_000_000, 1_500_000_000))
    return root


def change_between_backups(root: Path, take: Callable[[str], None], odd_names: bool = False) -> None:
    """Call ``take(level)`` for the chain full -> diff -> incr -> incr of the tree
    :func:`make_source` made at ``root``, changing the tree between the backups in
    every way a chain must follow."""
    take("full")
    # diff: added, changed with the same size and mtime (new ctime), deleted
    (root / "added.txt").write_text("new file")
    same_size_same_mtime_rewrite(root / "docs" / "a.txt", "ALPHA")
    (root / "docs" / "deep" / "b.txt").unlink()
    take("diff")
    # incr: replaced by a new inode with the same size and mtime, renamed, file -> dir, a mode change
    same_size_same_mtime_new_inode(root / "top.txt", "TOP")
    os.rename(root / "old-name.txt", root / "new-name.txt")
    (root / "will-be-dir").unlink()
    (root / "will-be-dir").mkdir()
    (root / "will-be-dir" / "inside.txt").write_text("inside")
    os.chmod(root / "docs", 0o700)
    take("incr")
    # incr: dir -> file again, a directory deleted whole, the hard-linked file rewritten, a link retargeted
    shutil.rmtree(root / "will-be-dir")
    (root / "will-be-dir").write_text("a file again")
    shutil.rmtree(root / "docs" / "deep")
    (root / "linked").write_text("shared, changed")
    os.unlink(root / "link")
    os.symlink("added.txt", root / "link")
    if odd_names:
        (root / "line\nbreak.txt").unlink()
        shutil.rmtree(root / os.fsdecode(b"caf\xe9 latin-1"))
    take("incr")


def evolve(tmp_path: Path, odd_names: bool = False) -> tuple[list[Backup], list[dict]]:
    """Make the chain full -> diff -> incr -> incr of a changing tree with GNU tar; return
    the backups and the snapshot of the tree at each one.  With ``odd_names``, names
    with a newline and with bytes that are not UTF-8 are deleted along the way."""
    require_binary("tar")
    root = make_source(tmp_path / "src" / "www", odd_names)
    archives = tmp_path / "store"
    archives.mkdir()
    backups: list[Backup] = []
    snapshots: list[dict] = []

    def take(level: str) -> None:
        time.sleep(0.01)
        base = None if level == "full" else backups[0] if level == "diff" else backups[-1]
        name = f"www.{len(backups) + 1}"
        backups.append(backup(root, base, name, level, archives / f"{name}.tar"))
        snapshots.append(snapshot(root))

    change_between_backups(root, take, odd_names)
    return backups, snapshots
