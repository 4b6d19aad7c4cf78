"""Tests for bakthat.index: records, change detection and the Index container."""

from __future__ import annotations

import os
import stat

import pytest

from bakthat.index_records import (
    BadIndexError,
    Index,
    changed,
    pack,
    record_from_stat,
    record_holder,
    record_type,
    unpack,
    with_digest,
    with_flags,
    with_holder,
)

_MODES = {"f": stat.S_IFREG, "d": stat.S_IFDIR, "l": stat.S_IFLNK, "p": stat.S_IFIFO, "c": stat.S_IFCHR,
          "b": stat.S_IFBLK, "s": stat.S_IFSOCK}


def fake_stat(kind="f", *, size=10, mtime_ns=1_600_000_000_123_456_789, ctime_ns=1_600_000_001_000_000_000,
              ino=100, dev=7, nlink=1, mode=0o644, uid=1000, gid=1000, rdev=0):
    """Return an os.stat_result with the given fields (seconds fields derived)."""
    return os.stat_result((
        _MODES[kind] | mode, ino, dev, nlink, uid, gid, size, mtime_ns // 10**9, mtime_ns // 10**9,
        ctime_ns // 10**9, mtime_ns / 1e9, mtime_ns / 1e9, ctime_ns / 1e9, mtime_ns, mtime_ns, ctime_ns,
        4096, 8, rdev,
    ))


# -- records ------------------------------------------------------------------------------


def test_a_record_holds_every_field_of_the_stat_and_unpacks_to_them():
    st = fake_stat("l", size=5, ino=2**63 + 5, dev=2**40, nlink=3, mode=0o777, uid=2**32 - 2, gid=5)
    record = record_from_stat(st, "a.txt", digest=b"\x01" * 32, holder=9)
    assert unpack(record) == (
        "l", 5, st.st_mtime_ns, st.st_ctime_ns, 2**63 + 5, 2**40, 3, 0o777, 2**32 - 2, 5, 0,
        b"a.txt", b"\x01" * 32, 0, 9,
    )
    assert record_type(record) == "l"
    assert record_holder(record) == 9


def test_times_before_1970_and_after_2262_survive_at_nanosecond_precision():
    for mtime_ns in (-1, -(10**9) - 1, 0, 2**63 + 12345, 253402300799_999999999):
        record = pack(type="f", size=0, mtime_ns=mtime_ns, ctime_ns=mtime_ns, ino=1, dev=1, nlink=1, mode=0,
                      uid=0, gid=0)
        assert unpack(record)[2:4] == (mtime_ns, mtime_ns)


def test_a_device_number_is_recorded_only_for_devices():
    assert unpack(record_from_stat(fake_stat("c", rdev=0x0501)))[10] == 0x0501
    assert unpack(record_from_stat(fake_stat("f", rdev=0x0501)))[10] == 0


def test_out_of_range_fields_and_misplaced_link_targets_are_refused():
    with pytest.raises(ValueError, match="out of range"):
        pack(type="f", size=-1, mtime_ns=0, ctime_ns=0, ino=1, dev=1, nlink=1, mode=0, uid=0, gid=0)
    with pytest.raises(ValueError, match="only recorded for a symbolic link"):
        record_from_stat(fake_stat("f"), "target")
    with pytest.raises(ValueError, match="longer than"):
        record_from_stat(fake_stat("l"), "x" * 70_000)
    with pytest.raises(ValueError, match="digest"):
        record_from_stat(fake_stat("f"), digest=b"short")
    with pytest.raises(ValueError, match="unknown file type"):
        record_from_stat(os.stat_result((0o170000, 1, 1, 1, 0, 0, 0, 0, 0, 0)))


# -- change detection ------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("size", 11),
        ("mtime_ns", 1_600_000_000_123_456_790),  # one nanosecond
        ("ctime_ns", 1_600_000_001_000_000_001),  # same size and mtime, new ctime
        ("ino", 101),  # same size and mtime, replaced by another inode
        ("mode", 0o600),
        ("uid", 0),
        ("gid", 0),
    ],
)
def test_a_file_counts_as_changed_when_any_compared_field_differs(field, value):
    old = record_from_stat(fake_stat())
    assert changed(old, record_from_stat(fake_stat(**{field: value})))


def test_a_file_does_not_count_as_changed_when_only_device_link_count_or_holder_differ():
    old = record_from_stat(fake_stat(), holder=0)
    new = record_from_stat(fake_stat(dev=99, nlink=2), holder=5)
    assert not changed(old, new)


def test_a_type_change_link_retarget_and_device_number_change_count_as_changed():
    assert changed(record_from_stat(fake_stat("f")), record_from_stat(fake_stat("d")))
    assert changed(record_from_stat(fake_stat("l"), "a"), record_from_stat(fake_stat("l"), "b"))
    assert changed(record_from_stat(fake_stat("l"), "ab"), record_from_stat(fake_stat("l"), "abc"))
    assert changed(record_from_stat(fake_stat("b", rdev=1)), record_from_stat(fake_stat("b", rdev=2)))


def test_an_entry_marked_unstable_counts_as_changed_even_if_it_looks_the_same():
    old = record_from_stat(fake_stat(), unstable=True)
    assert changed(old, record_from_stat(fake_stat()))
    assert changed(with_flags(record_from_stat(fake_stat()), 1), record_from_stat(fake_stat()))


def test_digests_count_only_when_both_sides_have_one():
    plain = record_from_stat(fake_stat())
    first = with_digest(plain, b"\x01" * 32)
    second = with_digest(plain, b"\x02" * 32)
    assert changed(first, second)
    assert not changed(first, with_digest(plain, b"\x01" * 32))
    assert not changed(first, plain)
    assert not changed(plain, second)
    symlink = record_from_stat(fake_stat("l"), "target")
    assert unpack(with_digest(symlink, b"\x03" * 32))[11:13] == (b"target", b"\x03" * 32)


def test_changing_the_holder_keeps_everything_else():
    record = record_from_stat(fake_stat("l"), "t", digest=b"\x05" * 32, holder=1)
    moved = with_holder(record, 7)
    assert record_holder(moved) == 7
    assert unpack(moved)[:-1] == unpack(record)[:-1]


# -- the Index -----------------------------------------------------------------------------


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
