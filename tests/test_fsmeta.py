"""bakthat.fsmeta: owner names, nanosecond times, extended attributes, POSIX ACLs and
sparse maps, in the PAX forms GNU tar and star use."""

from __future__ import annotations

import os
import struct

import pytest

from bakthat import fsmeta


def test_owner_names_and_ids_round_trip_and_an_unknown_name_falls_back():
    assert fsmeta.user_name(0) == "root" and fsmeta.group_name(0) == "root"
    assert fsmeta.user_id("root", 4242) == 0 and fsmeta.group_id("root", 4242) == 0
    assert fsmeta.user_id("no-such-user-h11t", 4242) == 4242
    assert fsmeta.group_id("no-such-group-h11t", 4343) == 4343


@pytest.mark.parametrize(
    ("ns", "text"),
    [(0, "0"), (1_600_000_000_000_000_000, "1600000000"), (1_500_000_000, "1.5"),
     (1_600_000_000_123_456_789, "1600000000.123456789"), (-250_000_000, "-0.25"), (1, "0.000000001")],
)
def test_a_time_in_nanoseconds_is_written_as_the_shortest_pax_decimal_and_read_back(ns, text):
    assert fsmeta.format_ns(ns) == text
    assert fsmeta.parse_ns(text) == ns


def test_a_pax_time_with_more_than_nine_decimals_is_cut_and_a_non_number_refused():
    assert fsmeta.parse_ns("1.1234567899") == 1_123_456_789
    assert fsmeta.parse_ns(" +2 ") == 2_000_000_000
    for bad in ("", "abc", "1.2.3", "1e9", "0x10", "1.-5"):
        with pytest.raises(ValueError, match="not a time"):
            fsmeta.parse_ns(bad)


ACL_TEXT = "user::rw-,user:1000:r--,group::r--,group:0:r-x,mask::r-x,other::---"


def test_an_acl_round_trips_between_text_and_linux_s_binary_form():
    binary = fsmeta.acl_from_text(ACL_TEXT)
    assert struct.unpack_from("<I", binary)[0] == 2 and (len(binary) - 4) % 8 == 0
    assert fsmeta.acl_to_text(binary) == ACL_TEXT


def test_an_acl_in_the_forms_other_tools_write_is_read():
    short = fsmeta.acl_from_text("u::rw-\ng:root:r-x # comment\nm::r-x\no::r--")
    assert fsmeta.acl_to_text(short) == "user::rw-,group:0:r-x,mask::r-x,other::r--"
    star = fsmeta.acl_from_text("user::rw-,user:no-such-user-h11t:r--:4321,group::r--,mask::r--,other::r--")
    assert "user:4321:r--" in fsmeta.acl_to_text(star)  # an unknown name falls back to star's id


def test_a_malformed_acl_is_refused_and_unreadable_binary_gives_nothing():
    with pytest.raises(ValueError, match="not an ACL entry"):
        fsmeta.acl_from_text("bogus:x:rwx")
    with pytest.raises(ValueError, match="unknown on this system"):
        fsmeta.acl_from_text("user:no-such-user-h11t:r--")
    assert fsmeta.acl_to_text(b"") == ""
    assert fsmeta.acl_to_text(struct.pack("<I", 1) + bytes(8)) == ""  # version 1: not ours
    assert fsmeta.acl_to_text(struct.pack("<IHHI", 2, 0x40, 7, 0)) == ""  # unknown tag


def test_extended_attributes_are_read_and_written_back_where_the_file_system_takes_them(tmp_path):
    path = tmp_path / "f"
    path.write_text("x")
    try:
        os.setxattr(path, "user.h11t", b"value")
    except OSError:
        pytest.skip("this file system takes no user extended attributes")
    records = fsmeta.read_xattrs(str(path))
    assert records.get(fsmeta.XATTR_PREFIX + "user.h11t") is not None
    pairs = fsmeta.xattrs_from_records(records)
    assert ("user.h11t", b"value") in pairs
    other = tmp_path / "g"
    other.write_text("y")
    assert fsmeta.write_xattrs(str(other), pairs) == []
    assert os.getxattr(other, "user.h11t") == b"value"


def test_the_data_segments_of_a_sparse_file_and_none_for_a_dense_one(tmp_path):
    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as handle:
        handle.seek(1 << 20)
        handle.write(b"data")
        handle.truncate(4 << 20)
    with open(sparse, "rb") as handle:
        segments = fsmeta.data_segments(handle.fileno(), 4 << 20)
    if segments is None:
        pytest.skip("this file system does not report holes")
    assert segments[-1] == (4 << 20, 0)  # it ends in a hole
    assert all(offset <= 1 << 20 < offset + length for offset, length in segments[:-1] if length)
    assert sum(length for _, length in segments) < 1 << 20
    dense = tmp_path / "dense"
    dense.write_bytes(b"x" * 10_000)
    with open(dense, "rb") as handle:
        assert fsmeta.data_segments(handle.fileno(), 10_000) is None


def test_the_sparse_map_is_gnu_1_0_padded_to_whole_blocks():
    data = fsmeta.sparse_map([(0, 5), (1 << 29, 3), (1 << 30, 0)])
    assert data.startswith(b"3\n0\n5\n536870912\n3\n1073741824\n0\n")
    assert len(data) == 512 and data.rstrip(b"\0").endswith(b"\n")
