"""bakthat.extract_commit: the staged tree moves into the target all or nothing.

A failure half-way through the commit (a full disk, an I/O error) puts back what was
already moved or replaced, so the target is exactly as it was before the restore.
"""

from __future__ import annotations

import errno
import os

import pytest

from bakthat import extract_commit
from bakthat.extract import safe_extract
from tests.test_extract import assert_no_staging, directory, regular, snapshot, stream


@pytest.fixture
def target(tmp_path):
    root = tmp_path / "target"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "kept.txt").write_bytes(b"mine\n")
    (root / "b.txt").write_bytes(b"old b\n")
    return root


def failing_on(monkeypatch, name: str):
    """Make the commit's move of ``name`` into the target fail like a full disk."""
    real_replace, real_rename = os.replace, os.rename

    def check(source, destination, **kwargs):
        if destination == name and "src_dir_fd" in kwargs:
            raise OSError(errno.ENOSPC, "No space left on device")

    def replace(source, destination, **kwargs):
        check(source, destination, **kwargs)
        return real_replace(source, destination, **kwargs)

    def rename(source, destination, **kwargs):
        check(source, destination, **kwargs)
        return real_rename(source, destination, **kwargs)

    monkeypatch.setattr(extract_commit.os, "replace", replace)
    monkeypatch.setattr(extract_commit.os, "rename", rename)


def test_a_failure_half_way_puts_back_what_was_moved_in_and_what_was_replaced(target, monkeypatch):
    before = snapshot(target)
    members = [
        regular("a.txt", b"new a\n"),            # new: moved in first
        regular("b.txt", b"new b\n"),            # replaces the old b.txt
        directory("docs"),
        regular("docs/added.txt", b"added\n"),   # new inside a merged directory
        regular("z.txt", b"new z\n"),            # its move fails: everything goes back
    ]
    failing_on(monkeypatch, "z.txt")
    with pytest.raises(OSError, match="No space left"):
        safe_extract(stream(*members), target, overwrite=True)
    assert snapshot(target) == before
    assert (target / "b.txt").read_bytes() == b"old b\n"
    assert_no_staging(target)


def test_without_a_failure_the_same_restore_commits_everything(target):
    members = [regular("a.txt", b"new a\n"), regular("b.txt", b"new b\n"), directory("docs"),
               regular("docs/added.txt", b"added\n"), regular("z.txt", b"new z\n")]
    safe_extract(stream(*members), target, overwrite=True)
    assert (target / "a.txt").read_bytes() == b"new a\n" and (target / "b.txt").read_bytes() == b"new b\n"
    assert sorted(os.listdir(target / "docs")) == ["added.txt", "kept.txt"]
    assert (target / "z.txt").read_bytes() == b"new z\n"
    assert_no_staging(target)


@pytest.mark.parametrize("durable", [True, False])
def test_a_merge_fsyncs_the_directories_it_changes_unless_not_durable(target, monkeypatch, durable):
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    monkeypatch.setattr(extract_commit.os, "fsync", fsync)
    members = [regular("b.txt", b"new b\n"), directory("docs"), regular("docs/added.txt", b"added\n")]
    safe_extract(stream(*members), target, overwrite=True, durable=durable)
    assert (target / "docs" / "added.txt").read_bytes() == b"added\n"
    assert sorted(synced) == ([str(target), str(target / "docs")] if durable else [])
