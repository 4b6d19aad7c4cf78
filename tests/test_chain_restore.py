"""Tests for bakthat.chain_restore: a chain made by GNU tar from what ChangeSet stores
restores exactly to each point, and a chain that does not fit is refused with the
target left as it was."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from bakthat.chain_restore import WORK_PREFIX, ChainPart, restore_chain
from bakthat.errors import IntegrityError, TargetExistsError, UnsafeArchiveError
from tests.chains import Backup, evolve
from tests.conftest import snapshot


def parts_of(backups: list[Backup]) -> list[ChainPart]:
    return [
        ChainPart(
            made.name, lambda path=made.archive: open(path, "rb"), [os.fsdecode(key) for key in made.delta.deletions]
        )
        for made in backups
    ]


@pytest.mark.parametrize("odd_names", [False, True])
def test_a_chain_full_diff_incr_incr_restores_exactly_to_each_point(tmp_path, odd_names):
    backups, snapshots = evolve(tmp_path, odd_names)
    assert [os.fsdecode(key) for key in backups[1].delta.deletions] == ["www/docs/deep/b.txt"]
    assert [os.fsdecode(key) for key in backups[2].delta.deletions] == ["www/old-name.txt", "www/will-be-dir"]
    odd = [os.fsdecode(b"www/caf\xe9 latin-1"), "www/line\nbreak.txt"] if odd_names else []
    assert [os.fsdecode(key) for key in backups[3].delta.deletions] == sorted(
        [*odd, "www/docs/deep", "www/will-be-dir"], key=os.fsencode
    )
    chains = {0: [0], 1: [0, 1], 2: [0, 1, 2], 3: [0, 1, 2, 3]}
    for point, members in chains.items():
        target = tmp_path / f"restored-{point}"
        restored = restore_chain(parts_of([backups[i] for i in members]), target)
        assert restored == [target / "www"]
        assert snapshot(target / "www") == snapshots[point], f"state at {backups[point].name}"
        linked = os.stat(target / "www" / "linked")
        assert linked.st_ino == os.stat(target / "www" / "linked-too").st_ino and linked.st_nlink == 2
        assert os.listdir(target) == ["www"]


def test_the_unchanged_parts_of_a_diff_are_not_in_its_archive(tmp_path):
    backups, _ = evolve(tmp_path)
    with tarfile.open(backups[1].archive) as archive:
        names = sorted(archive.getnames())
    # what changed since the full, then the tail: the header of www/docs, whose file changed
    assert names == ["www", "www/added.txt", "www/docs", "www/docs/a.txt", "www/docs/deep"]
    assert backups[1].stored[-1] == "www/docs"


def test_a_damaged_middle_link_leaves_the_target_untouched(tmp_path):
    backups, _ = evolve(tmp_path)
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    data = backups[1].archive.read_bytes()
    parts = parts_of(backups)
    parts[1].open = lambda: io.BytesIO(data[: len(data) // 2])
    with pytest.raises(IntegrityError, match="truncated"):
        restore_chain(parts, target)
    assert sorted(os.listdir(target)) == ["keep.txt"]

    parts = parts_of(backups)

    def mismatch():
        raise IntegrityError("www.3: SHA-256 mismatch; nothing was restored")

    parts[2].verify = mismatch
    with pytest.raises(IntegrityError, match="SHA-256 mismatch"):
        restore_chain(parts, target)
    assert sorted(os.listdir(target)) == ["keep.txt"]


def test_on_error_sees_the_error_of_its_part_with_the_stream_open_and_may_replace_it(tmp_path):
    backups, _ = evolve(tmp_path)
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    data = backups[2].archive.read_bytes()
    stream = io.BytesIO(data[: len(data) // 2])
    seen = []

    class Damaged(IntegrityError):
        pass

    def on_error(exc):
        seen.append((exc, stream.closed))
        raise Damaged("www.3 is damaged in the store") from exc

    parts = parts_of(backups)
    parts[0].on_error = parts[1].on_error = lambda exc: seen.append(("wrong part", exc))
    parts[2].open = lambda: stream
    parts[2].on_error = on_error
    with pytest.raises(Damaged):
        restore_chain(parts, target)
    assert len(seen) == 1 and isinstance(seen[0][0], IntegrityError) and seen[0][1] is False
    assert stream.closed
    assert sorted(os.listdir(target)) == ["keep.txt"]

    # an on_error that returns leaves the error as it was
    parts[2].open = lambda: io.BytesIO(data[: len(data) // 2])
    parts[2].on_error = lambda exc: None
    with pytest.raises(IntegrityError, match="truncated"):
        restore_chain(parts, target)
    assert sorted(os.listdir(target)) == ["keep.txt"]


def test_a_missing_target_is_created_and_removed_again_on_failure(tmp_path):
    backups, _ = evolve(tmp_path)
    parts = parts_of(backups)
    parts[3].open = lambda: io.BytesIO(b"\0" * 100)
    with pytest.raises(IntegrityError):
        restore_chain(parts, tmp_path / "new" / "deeper")
    assert not (tmp_path / "new").exists()


def test_a_deletion_the_tree_does_not_hold_is_refused_naming_the_part(tmp_path):
    backups, _ = evolve(tmp_path)
    parts = parts_of(backups[:2])
    parts[1].deletions = ["www/never-there"]
    with pytest.raises(IntegrityError, match="www.2 records the deletion of 'www/never-there', but it does not exist"):
        restore_chain(parts, tmp_path / "target")
    assert not (tmp_path / "target").exists()


def test_a_deletion_never_goes_through_a_symbolic_link(tmp_path):
    backups, _ = evolve(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("do not delete")
    parts = parts_of(backups[:2])
    parts[1].deletions = ["www/link/precious"]  # www/link is a symbolic link in the tree
    with pytest.raises(IntegrityError, match="'www/link' is not a directory"):
        restore_chain(parts, tmp_path / "target")
    assert (outside / "precious").read_text() == "do not delete"


@pytest.mark.parametrize("path", ["../escape", "/etc/passwd", "www/../..", "www//x", "www/./x", "", "www/\0"])
def test_a_deletion_that_is_not_a_plain_relative_path_is_refused(tmp_path, path):
    backups, _ = evolve(tmp_path)
    parts = parts_of(backups[:2])
    parts[1].deletions = [path]
    with pytest.raises(UnsafeArchiveError, match="not a plain relative path"):
        restore_chain(parts, tmp_path / "target")


def test_a_part_that_puts_a_file_over_a_directory_without_a_deletion_is_refused(tmp_path):
    backups, _ = evolve(tmp_path)
    parts = parts_of(backups[:3])
    parts[2].deletions = ["www/old-name.txt"]  # "www/will-be-dir" forgotten
    with pytest.raises(IntegrityError, match="www.3 does not fit the tree of the backups before it"):
        restore_chain(parts, tmp_path / "target")


def test_a_hostile_member_in_a_later_part_is_refused_and_nothing_is_written(tmp_path):
    backups, _ = evolve(tmp_path)
    hostile = io.BytesIO()
    with tarfile.open(fileobj=hostile, mode="w") as archive:
        member = tarfile.TarInfo("www/../../escape")
        archive.addfile(member, io.BytesIO())
    parts = parts_of(backups[:2])
    parts[1].open = lambda: io.BytesIO(hostile.getvalue())
    target = tmp_path / "target"
    with pytest.raises(UnsafeArchiveError):
        restore_chain(parts, target)
    assert not target.exists() and not (tmp_path / "escape").exists()


def test_an_existing_top_level_entry_is_not_overwritten(tmp_path):
    backups, _ = evolve(tmp_path)
    target = tmp_path / "target"
    (target / "www").mkdir(parents=True)
    with pytest.raises(TargetExistsError, match="already exists"):
        restore_chain(parts_of(backups), target)
    assert os.listdir(target) == ["www"] and os.listdir(target / "www") == []


def test_each_stream_is_opened_once_and_closed(tmp_path):
    backups, _ = evolve(tmp_path)
    opened = []

    class Tracked(io.BytesIO):
        def close(self):
            opened[-1][1] = True
            super().close()

    def opener(path):
        def open_it():
            opened.append([path, False])
            return Tracked(Path(path).read_bytes())
        return open_it

    parts = [ChainPart(made.name, opener(made.archive), [os.fsdecode(k) for k in made.delta.deletions])
             for made in backups]
    restore_chain(parts, tmp_path / "target")
    assert [path for path, _ in opened] == [made.archive for made in backups]
    assert all(closed for _, closed in opened)
    assert not any(name.startswith(WORK_PREFIX) for name in os.listdir(tmp_path / "target"))


def test_only_the_target_is_fsynced_not_the_private_tree(tmp_path, monkeypatch):
    from bakthat import extract_commit

    backups, snapshots = evolve(tmp_path)
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    assert extract_commit.os.fsync is fsync
    target = tmp_path / "target"
    restore_chain(parts_of(backups), target)
    assert snapshot(target / "www") == snapshots[3]
    assert synced == [str(target)], "the work tree is discarded or committed: its merges are not fsynced"


def test_a_chain_needs_its_full_first():
    with pytest.raises(ValueError):
        restore_chain([], "/nonexistent")
    with pytest.raises(ValueError, match="cannot record deletions"):
        restore_chain([ChainPart("www.1", lambda: io.BytesIO(), ["www/x"])], "/nonexistent")
