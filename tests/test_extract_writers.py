"""Tests for bakthat.extract_writers through safe_extract: members created by several
writer threads end up exactly as a single writer creates them, and an error is the one
of the earliest failing member."""

from __future__ import annotations

import errno
import os
import stat
import threading

import pytest

from bakthat import extract_writers
from bakthat.extract import safe_extract
from tests.test_extract import MTIME, directory, hardlink, regular, snapshot, stream, symlink


@pytest.fixture
def writers(monkeypatch):
    """Three writer threads, whatever the number of cores."""
    monkeypatch.setattr(extract_writers, "writer_count", lambda: 3)
    return 3


def writer_of(path: str, count: int = 3) -> int:
    return hash(path) % count


def busy_archive():
    """Files in many directories whose own members come after their contents, hard
    links, a file and a symlink listed twice, large and empty files."""
    members = []
    for d in range(12):
        for f in range(30):
            members.append(regular(f"top/d{d}/sub/f{f}.txt", f"{d}-{f}\n".encode() * (f + 1), mode=0o640 + f % 8))
        members.append(directory(f"top/d{d}/sub", mode=0o750))
        members.append(directory(f"top/d{d}", mode=0o711))
    members.append(regular("top/big.bin", os.urandom(3_000_000)))
    members.append(regular("top/empty", b""))
    members += [hardlink(f"top/link{i}", f"top/d{i}/sub/f{i}.txt") for i in range(10)]
    members += [regular("top/twice", b"first"), symlink("top/sym", "one"), regular("top/twice", b"second"),
                symlink("top/sym", "two")]
    members.append(directory("top", mode=0o755))
    return members


def test_several_writers_restore_the_same_tree_as_one_writer(tmp_path, monkeypatch):
    members = busy_archive()
    monkeypatch.setattr(extract_writers, "writer_count", lambda: 1)
    safe_extract(stream(*members), tmp_path / "one")
    monkeypatch.setattr(extract_writers, "writer_count", lambda: 3)
    safe_extract(stream(*members), tmp_path / "three")
    assert snapshot(tmp_path / "three") == snapshot(tmp_path / "one")
    three = tmp_path / "three" / "top"
    assert (three / "twice").read_bytes() == b"second" and os.readlink(three / "sym") == "two"
    assert all(os.stat(three / f"link{i}").st_ino == os.stat(three / f"d{i}/sub/f{i}.txt").st_ino for i in range(10))
    assert stat.S_IMODE(os.stat(three / "d3").st_mode) == 0o711 and os.stat(three / "d3").st_mtime == MTIME
    assert stat.S_IMODE(os.stat(three / "d3/sub/f5.txt").st_mode) == 0o645


def test_the_earliest_failing_member_is_reported_whatever_writer_fails_first(tmp_path, writers, monkeypatch):
    from bakthat.extract_disk import StagingTree

    # "slow" fails late in time but early in the archive; "fast" fails at once, on another writer.
    slow = "a-slow"
    fast = next(f"z-fast{i}" for i in range(100) if writer_of(f"z-fast{i}") != writer_of(slow))
    release = threading.Event()
    original = StagingTree.add

    def failing_add(self, member, parts):
        if member.name == slow:
            release.wait(5)
            raise OSError(errno.EIO, "disk failed on the earlier member")
        if member.name == fast:
            release.set()
            raise OSError(errno.ENOSPC, "disk full on the later member")
        return original(self, member, parts)

    monkeypatch.setattr(StagingTree, "add", failing_add)
    members = [regular(slow, b"1"), *(regular(f"m{i}", b"2") for i in range(20)), regular(fast, b"3"),
               *(regular(f"n{i}", b"4") for i in range(400))]
    with pytest.raises(OSError, match="earlier member"):
        safe_extract(stream(*members), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [t for t in threading.enumerate() if t.name == "bakthat-restore-writer"]


def test_a_refused_member_after_a_disk_error_on_another_writer_reports_the_disk_error(tmp_path, writers, monkeypatch):
    from bakthat.extract_disk import StagingTree

    original = StagingTree.add

    def failing_add(self, member, parts):
        if member.name == "b":
            raise OSError(errno.EIO, "disk failed on b")
        return original(self, member, parts)

    monkeypatch.setattr(StagingTree, "add", failing_add)
    members = [regular("b", b"2"), *(regular(f"c{i}", b"3" * 5000) for i in range(30)), regular("../escape", b"x")]
    with pytest.raises(OSError, match="disk failed on b"):
        safe_extract(stream(*members), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_writers_creating_the_same_directories_at_once_all_succeed(tmp_path, monkeypatch):
    """No directory members: every writer creates the directories on its files' paths,
    often the same one at the same moment."""
    monkeypatch.setattr(extract_writers, "writer_count", lambda: 4)
    monkeypatch.setattr(extract_writers.BackgroundStaging, "BATCH_ITEMS", 1)  # hand over at once
    members = [regular(f"d{d}/e/f{f}", b"x") for d in range(300) for f in range(4)]
    safe_extract(stream(*members), tmp_path / "out")
    assert sum(len(files) for _, _, files in os.walk(tmp_path / "out")) == 1200
