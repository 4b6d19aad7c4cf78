"""Tests for bakthat.index: the Index container, delta and state indexes."""

from __future__ import annotations

import os

import pytest

from bakthat.index import Index
from bakthat.index_records import BadIndexError
from tests.chains import fake_stat


def tree_index(kind="delta", backup="www.1", level="full", base=None):
    index = Index(kind, backup=backup, level=level, base=base, root="www", holders=[backup])
    index.add("www", fake_stat("d", ino=1), user="alice", group="staff")
    index.add("www/a.txt", fake_stat(ino=2))
    index.add("www/sub", fake_stat("d", ino=3))
    index.add("www/sub/b.txt", fake_stat(ino=4))
    index.add("www/link", fake_stat("l", ino=5), "a.txt")
    return index


def test_an_index_gives_back_readable_entries_with_owner_names():
    index = tree_index()
    entry = index.entry("www")
    assert (entry.type, entry.user, entry.group, entry.link) == ("d", "alice", "staff", None)
    assert index.entry("www/link").link == "a.txt"
    assert [entry.path for entry in index.entries()] == ["www", "www/a.txt", "www/link", "www/sub", "www/sub/b.txt"]
    assert index.entry("www/missing") is None
    assert "www/sub" in index and b"www/sub" in index and 3 not in index


def test_names_that_are_not_utf8_round_trip_as_surrogateescape_text():
    index = Index(backup="b", root="www")
    index.add(b"www/\xff\xfe", fake_stat())
    [entry] = index.entries()
    assert entry.path == "www/\udcff\udcfe"
    assert os.fsencode(entry.path) == b"www/\xff\xfe"
    assert index.entry(entry.path) == entry


def test_adding_a_path_twice_is_refused():
    index = tree_index()
    with pytest.raises(ValueError, match="already in the index"):
        index.add("www/a.txt", fake_stat())


def test_check_tree_names_an_entry_whose_parent_is_missing_or_not_a_directory():
    index = tree_index()
    index.check_tree()
    index.add("www/a.txt/inner", fake_stat())
    with pytest.raises(BadIndexError, match="parent of 'www/a.txt/inner' is a regular file"):
        index.check_tree()
    orphan = tree_index()
    orphan.add("www/nowhere/x", fake_stat())
    with pytest.raises(BadIndexError, match="parent of 'www/nowhere/x' is missing"):
        orphan.check_tree()
    stray = tree_index()
    stray.add("other", fake_stat())
    with pytest.raises(BadIndexError, match="'other' is not under 'www'"):
        stray.check_tree()


def test_remove_tree_removes_a_directory_and_everything_below_it_but_not_its_namesakes():
    index = tree_index()
    index.add("www/sub2", fake_stat())
    assert index.remove_tree(b"www/sub") == 2
    assert sorted(index) == [b"www", b"www/a.txt", b"www/link", b"www/sub2"]
    assert index.remove_tree(b"www/missing") == 0


def test_applying_a_delta_deletes_its_paths_first_then_sets_its_entries_with_it_as_holder():
    state = Index.state_of_full(tree_index())
    delta = Index("delta", backup="www.2", level="incr", base="www.1", root="www")
    delta.deletions = [b"www/sub"]
    delta.add("www/sub", fake_stat(ino=30))  # a directory replaced by a file: delete, then add
    delta.add("www/new", fake_stat(ino=31), user="bob")
    state.apply(delta)
    assert state.holders == ["www.1", "www.2"]
    assert state.backup == "www.2" and state.level == "incr"
    assert sorted(index_path for index_path in state) == [b"www", b"www/a.txt", b"www/link", b"www/new", b"www/sub"]
    assert state.entry("www/sub").type == "f"
    assert state.entry("www/sub").holder == "www.2"
    assert state.entry("www/a.txt").holder == "www.1"
    assert state.entry("www/new").user == "bob"
    state.check_tree()


def test_applying_a_delta_that_does_not_fit_the_state_is_refused_naming_it():
    state = Index.state_of_full(tree_index())
    wrong_base = Index("delta", backup="www.3", level="incr", base="www.2", root="www")
    with pytest.raises(BadIndexError, match="index of www.3: its base is www.2, not www.1"):
        state.apply(wrong_base)
    deletes_nothing = Index("delta", backup="www.2", level="incr", base="www.1", root="www")
    deletes_nothing.deletions = [b"www/ghost"]
    with pytest.raises(BadIndexError, match="deletes 'www/ghost', which the state at www.1 does not hold"):
        state.apply(deletes_nothing)
    other_root = Index("delta", backup="www.2", level="incr", base="www.1", root="web")
    with pytest.raises(BadIndexError, match="root is 'web'"):
        state.apply(other_root)
    with pytest.raises(BadIndexError, match="does not apply on top"):
        state.apply(tree_index(backup="www.9"))


def test_a_state_starts_only_from_a_full_backup():
    with pytest.raises(BadIndexError, match="starts with a full backup, and this one is incremental"):
        Index.state_of_full(Index("delta", backup="x", level="incr", base="y", root="www"))


def test_a_copy_is_independent_of_the_original():
    index = tree_index()
    copy = index.copy()
    copy.pop(b"www/a.txt")
    copy.users[5] = "eve"
    assert "www/a.txt" in index and 5 not in index.users


def test_unknown_kinds_and_levels_are_refused():
    with pytest.raises(ValueError):
        Index("other")
    with pytest.raises(ValueError):
        Index(level="weekly")
