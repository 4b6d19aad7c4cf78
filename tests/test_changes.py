"""Tests for bakthat.changes: what a differential or incremental stores, and what it
records as deleted."""

from __future__ import annotations

import os
import shutil

import pytest

from bakthat.changes import ChangeSet
from bakthat.index import Index
from tests.chains import fake_stat, walk


def run(root, previous: Index | None, name: str, level: str = "incr", base: str | None = None):
    """Walk ``root`` through a ChangeSet; return (stored paths, tail, delta, state)."""
    if previous is not None:
        previous = previous.copy()
        base = base or previous.backup
    changes = ChangeSet(previous, backup=name, level=level, base=base, root=root.name)
    stored = [path for path, st, link in walk(root) if changes.see(path, st, link)]
    tail = changes.tail()
    delta, state = changes.finish()
    return stored, tail, delta, state


def deletions(delta: Index) -> list[str]:
    return [os.fsdecode(key) for key in delta.deletions]


@pytest.fixture
def www(tmp_path):
    root = tmp_path / "www"
    (root / "docs" / "deep").mkdir(parents=True)
    (root / "docs" / "a.txt").write_text("alpha")
    (root / "docs" / "deep" / "b.txt").write_text("beta")
    (root / "top.txt").write_text("top")
    os.symlink("top.txt", root / "link")
    return root


def test_a_full_backup_stores_every_entry_and_deletes_nothing(www):
    stored, tail, delta, state = run(www, None, "www.1", level="full")
    assert stored == ["www", "www/docs", "www/docs/a.txt", "www/docs/deep", "www/docs/deep/b.txt", "www/link",
                      "www/top.txt"]
    assert tail == [] and delta.deletions == []
    assert list(delta) == list(state) and state.holders == ["www.1"]
    assert {entry.holder for entry in state.entries()} == {"www.1"}


def test_an_unchanged_tree_stores_nothing_and_keeps_every_holder(www):
    *_, full_state = run(www, None, "www.1", level="full")
    stored, tail, delta, state = run(www, full_state, "www.2")
    assert (stored, tail, len(delta), delta.deletions) == ([], [], 0, [])
    assert state.holders == ["www.1", "www.2"]
    assert {entry.holder for entry in state.entries()} == {"www.1"}
    assert sorted(state) == sorted(full_state)


def test_a_file_rewritten_with_the_same_size_and_mtime_is_stored(www):
    *_, full_state = run(www, None, "www.1", level="full")
    path = www / "docs" / "a.txt"
    before = os.stat(path)
    path.write_text("ALPHA")  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # same mtime: only ctime tells
    assert os.stat(path).st_mtime_ns == before.st_mtime_ns and os.stat(path).st_size == before.st_size
    stored, tail, delta, _ = run(www, full_state, "www.2")
    assert stored == ["www/docs/a.txt"]
    assert tail == ["www/docs"]  # extracting into it changes its mtime: set it again
    assert sorted(delta) == [b"www/docs", b"www/docs/a.txt"]
    assert delta.deletions == []


def test_a_file_replaced_by_another_inode_with_the_same_size_and_mtime_is_stored(www):
    *_, full_state = run(www, None, "www.1", level="full")
    path = www / "top.txt"
    before = os.stat(path)
    (www / "new.tmp").write_text("TOP")
    os.utime(www / "new.tmp", ns=(before.st_atime_ns, before.st_mtime_ns))
    os.rename(www / "new.tmp", path)
    stored, _, delta, _ = run(www, full_state, "www.2")
    assert "www/top.txt" in stored and delta.deletions == []


def test_mode_owner_and_link_target_changes_are_stored(www):
    *_, full_state = run(www, None, "www.1", level="full")
    os.chmod(www / "docs" / "a.txt", 0o600)
    os.chown(www / "docs" / "deep" / "b.txt", 4242, 4343)
    os.unlink(www / "link")
    os.symlink("TOP.txt", www / "link")  # same length
    stored, *_ = run(www, full_state, "www.2")
    assert set(stored) >= {"www/docs/a.txt", "www/docs/deep/b.txt", "www/link"}


def test_a_deleted_subtree_is_recorded_once_at_its_top(www):
    *_, full_state = run(www, None, "www.1", level="full")
    shutil.rmtree(www / "docs")
    stored, tail, delta, state = run(www, full_state, "www.2")
    assert deletions(delta) == ["www/docs"]
    assert stored == ["www"]  # its mtime changed
    assert "www/docs/a.txt" not in state and "www/docs" not in state


def test_a_rename_is_a_deletion_and_an_addition(www):
    *_, full_state = run(www, None, "www.1", level="full")
    os.rename(www / "docs" / "deep", www / "docs" / "shallow")
    stored, _, delta, _ = run(www, full_state, "www.2")
    assert deletions(delta) == ["www/docs/deep"]
    assert {"www/docs/shallow", "www/docs/shallow/b.txt"} <= set(stored)


def test_a_file_turned_into_a_directory_and_back_is_deleted_then_added(www):
    *_, full_state = run(www, None, "www.1", level="full")
    (www / "top.txt").unlink()
    (www / "top.txt").mkdir()
    (www / "top.txt" / "inside").write_text("in")
    shutil.rmtree(www / "docs")
    (www / "docs").write_text("now a file")
    stored, _, delta, state = run(www, full_state, "www.2")
    assert deletions(delta) == ["www/docs", "www/top.txt"]  # not docs/a.txt etc.: below a deleted path
    assert {"www/docs", "www/top.txt", "www/top.txt/inside"} <= set(stored)
    assert state.entry("www/top.txt").type == "d" and state.entry("www/docs").type == "f"
    (www / "top.txt" / "inside").unlink()
    (www / "top.txt").rmdir()
    (www / "top.txt").write_text("file again")
    stored, _, delta, _ = run(www, state, "www.3")
    assert deletions(delta) == ["www/top.txt"] and "www/top.txt" in stored


def test_a_stored_directory_needs_no_header_for_its_parent(www):
    *_, full_state = run(www, None, "www.1", level="full")
    deep = www / "docs" / "deep"
    before = os.stat(deep)
    (deep / "b.txt").unlink()
    os.utime(deep, ns=(before.st_atime_ns, before.st_mtime_ns))  # its mtime looks unchanged
    stored, tail, delta, state = run(www, full_state, "www.2")
    # the directory's ctime changed, so it is stored itself; nothing else needs a header
    assert stored == ["www/docs/deep"] and tail == []
    assert deletions(delta) == ["www/docs/deep/b.txt"]
    assert state.entry("www/docs/deep").holder == "www.2"


def test_tail_entries_count_as_stored_in_the_delta_and_the_state():
    previous = Index("state", backup="b.1", root="b", holders=["b.1"])
    for path, st in [("b", fake_stat("d", ino=1)), ("b/d", fake_stat("d", ino=2)), ("b/d/f", fake_stat(ino=3))]:
        previous.add(path, st)
    changes = ChangeSet(previous, backup="b.2", level="incr", base="b.1", root="b")
    assert not changes.see("b", fake_stat("d", ino=1))
    assert not changes.see("b/d", fake_stat("d", ino=2))
    assert changes.see("b/d/f", fake_stat(ino=3, size=99))
    assert changes.tail() == ["b/d"]
    delta, state = changes.finish()
    assert sorted(delta) == [b"b/d", b"b/d/f"]
    assert state.entry("b/d").holder == "b.2" and state.entry("b").holder == "b.1"


def test_a_hard_link_group_partly_stored_is_completed_in_the_tail():
    # A new name for an inode whose other name is unchanged (a rename that did not touch
    # the ctime): the unchanged name is appended so the archive links them again.
    previous = Index("state", backup="b.1", root="b", holders=["b.1"])
    previous.add("b", fake_stat("d", ino=1))
    previous.add("b/one", fake_stat(ino=9, nlink=2))
    previous.add("b/two", fake_stat(ino=9, nlink=2))
    changes = ChangeSet(previous, backup="b.2", level="incr", base="b.1", root="b")
    changes.see("b", fake_stat("d", ino=1))
    assert not changes.see("b/one", fake_stat(ino=9, nlink=2))
    assert changes.see("b/three", fake_stat(ino=9, nlink=2))
    assert changes.tail() == ["b", "b/one"]  # the parent of a new file, then the partner
    delta, _ = changes.finish()
    assert deletions(delta) == ["b/two"]
    assert sorted(delta) == [b"b", b"b/one", b"b/three"]


def test_a_hard_link_group_whose_content_changed_is_stored_whole(tmp_path):
    root = tmp_path / "h"
    root.mkdir()
    (root / "one").write_text("1")
    os.link(root / "one", root / "two")
    *_, full_state = run(root, None, "h.1", level="full")
    (root / "one").write_text("2")
    stored, tail, *_ = run(root, full_state, "h.2")
    assert {"h/one", "h/two"} <= set(stored)
    assert "h/one" not in tail and "h/two" not in tail


def test_a_forgotten_entry_is_absent_from_the_state_and_deleted_only_if_the_base_had_it(www):
    *_, full_state = run(www, None, "www.1", level="full")
    (www / "new.txt").write_text("new")
    (www / "top.txt").write_text("changed")
    changes = ChangeSet(full_state.copy(), backup="www.2", level="incr", base="www.1", root="www")
    for path, st, link in walk(www):
        changes.see(path, st, link)
    changes.forget("www/new.txt")  # vanished before it was read: never in the base
    changes.forget("www/top.txt")  # could not be read: the base had it
    changes.forget("www/docs")  # a directory: everything below it goes too
    with pytest.raises(KeyError):
        changes.forget("www/never-seen")
    changes.tail()
    delta, state = changes.finish()
    assert deletions(delta) == ["www/docs", "www/top.txt"]
    assert not any(key.startswith(b"www/docs") for key in state)
    assert "www/new.txt" not in state and "www/new.txt" not in delta


def test_an_entry_marked_unstable_is_stored_again_by_the_next_backup(www):
    changes = ChangeSet(None, backup="www.1", level="full", base=None, root="www")
    for path, st, link in walk(www):
        changes.see(path, st, link)
    changes.mark_unstable("www/top.txt")
    _, full_state = changes.finish()
    assert full_state.entry("www/top.txt").unstable
    stored, *_ = run(www, full_state, "www.2")
    assert stored == ["www/top.txt"]


def test_with_content_hashing_a_different_digest_is_a_change_and_a_missing_one_is_not():
    previous = Index("state", backup="b.1", root="b", holders=["b.1"])
    previous.add("b", fake_stat("d", ino=1))
    previous.add("b/f", fake_stat(ino=2), sha256=b"\x01" * 32)
    previous.add("b/g", fake_stat(ino=3), sha256=b"\x01" * 32)
    previous.add("b/h", fake_stat(ino=4))
    changes = ChangeSet(previous, backup="b.2", level="incr", base="b.1", root="b")
    changes.see("b", fake_stat("d", ino=1))
    assert changes.see("b/f", fake_stat(ino=2), sha256=b"\x02" * 32)
    assert not changes.see("b/g", fake_stat(ino=3))
    assert not changes.see("b/h", fake_stat(ino=4), sha256=b"\x03" * 32)
    changes.set_digest("b/f", b"\x04" * 32)
    changes.tail()
    delta, state = changes.finish()
    assert state.entry("b/g").sha256 == "01" * 32  # kept from the base
    assert state.entry("b/h").sha256 == "03" * 32  # learned now
    assert delta.entry("b/f").sha256 == state.entry("b/f").sha256 == "04" * 32


def test_a_differential_is_relative_to_the_full_not_to_the_last_incremental(www):
    *_, full_state = run(www, None, "www.1", level="full")
    (www / "top.txt").write_text("first change")
    _, _, _, incr_state = run(www, full_state, "www.2")
    (www / "docs" / "a.txt").write_text("second change")
    stored, _, delta, state = run(www, full_state, "www.3", level="diff", base="www.1")
    assert {"www/top.txt", "www/docs/a.txt"} <= set(stored)
    assert delta.base == "www.1" and state.holders == ["www.1", "www.3"]
    stored, *_ = run(www, incr_state, "www.4")
    assert "www/top.txt" not in stored and "www/docs/a.txt" in stored


def test_misuse_is_refused():
    state = Index("state", backup="b.1", root="b", holders=["b.1"])
    with pytest.raises(ValueError, match="no previous state"):
        ChangeSet(state, backup="b.2", level="full", base=None, root="b")
    with pytest.raises(ValueError, match="needs one"):
        ChangeSet(None, backup="b.2", level="incr", base="b.1", root="b")
    with pytest.raises(ValueError, match="not at the base"):
        ChangeSet(state, backup="b.2", level="incr", base="b.0", root="b")
    with pytest.raises(ValueError, match="root"):
        ChangeSet(state, backup="b.2", level="incr", base="b.1", root="c")
    with pytest.raises(ValueError, match="must be a state"):
        ChangeSet(Index("delta", backup="b.1", root="b"), backup="b.2", level="incr", base="b.1", root="b")
    changes = ChangeSet(None, backup="b.1", level="full", base=None, root="b")
    changes.see("b", fake_stat("d"))
    with pytest.raises(ValueError, match="already in the index"):
        changes.see("b", fake_stat("d"))
    changes.tail()
    with pytest.raises(RuntimeError):
        changes.see("b/x", fake_stat())
    changes.finish()
    with pytest.raises(RuntimeError):
        changes.finish()
