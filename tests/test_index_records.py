"""Tests for bakthat.index_records: the record layout and change detection."""

from __future__ import annotations

import os

import pytest

from bakthat.index_records import (
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
from tests.chains import fake_stat


def test_a_record_holds_every_field_of_the_stat_and_unpacks_to_them():
    st = fake_stat("l", size=5, ino=2**63 + 5, dev=2**40, nlink=3, mode=0o777, uid=2**32 - 2, gid=5)
    record = record_from_stat(st, "a.txt", digest=b"\x01" * 32, holder=9)
    assert unpack(record) == (
        "l", 5, st.st_mtime_ns, st.st_ctime_ns, 2**63 + 5, 2**40, 3, 0o777, 2**32 - 2, 5, 0,
        b"a.txt", b"\x01" * 32, 0, 9,
    )
    assert record_type(record) == "l"
    assert record_holder(record) == 9


def test_a_plain_entry_packs_as_pack_does_with_every_field_and_flag():
    for kind in "fdcpb":
        st = fake_stat(kind, size=7, ino=2**63 + 1, dev=2**40, nlink=2, mode=0o4755, uid=2**32 - 1, gid=3, rdev=0x0802)
        expected = pack(
            type=kind, size=7, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns, ino=2**63 + 1, dev=2**40, nlink=2,
            mode=0o4755, uid=2**32 - 1, gid=3, rdev=0x0802 if kind in "cb" else 0, flags=1, holder=4,
        )
        assert record_from_stat(st, unstable=True, holder=4) == expected
    with pytest.raises(ValueError, match="out of range"):
        record_from_stat(fake_stat("f", uid=2**32))


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


