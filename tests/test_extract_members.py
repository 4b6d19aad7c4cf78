"""Tests for the limits of bakthat.extract_members: sparse maps (rule 8) and header
sizes (rule 9), on restore and on listing."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from bakthat.errors import UnsafeArchiveError
from bakthat.extract import list_members, safe_extract
from tests.test_extract import (  # noqa: F401 - target is a fixture
    MTIME,
    assert_refused_and_untouched,
    regular,
    snapshot,
    stream,
    target,
)
from tests.test_extract import assert_no_staging


# ---------------------------------------------------------------------------------------
# Rule 8: sparse maps


def sparse_member(name, realsize, segments, data, stored_extra=b""):
    """A GNU sparse 1.0 member: map then data, as GNU tar and bakthat write it."""
    table = f"{len(segments)}\n" + "".join(f"{offset}\n{length}\n" for offset, length in segments)
    table = table.encode() + bytes(-len(table) % 512)
    info = tarfile.TarInfo(f"GNUSparseFile.0/{name}")
    info.mtime, info.mode = MTIME, 0o644
    payload = table + data + stored_extra
    info.size = len(payload)
    info.pax_headers = {"path": info.name, "GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                        "GNU.sparse.name": name, "GNU.sparse.realsize": str(realsize)}
    return info, payload


def test_a_sparse_member_is_restored_with_its_holes(tmp_path):
    member = sparse_member("s", 1 << 30, [(0, 5), (1 << 29, 3), (1 << 30, 0)], b"helloabc")
    safe_extract(stream(member, regular("after", b"ok")), tmp_path)
    st = os.stat(tmp_path / "s")
    assert st.st_size == 1 << 30 and st.st_blocks * 512 <= 64 * 1024
    with open(tmp_path / "s", "rb") as handle:
        assert handle.read(6) == b"hello\0"
        handle.seek(1 << 29)
        assert handle.read(4) == b"abc\0"
    assert (tmp_path / "after").read_bytes() == b"ok"


@pytest.mark.parametrize(
    "realsize, segments, data, why",
    [
        (100, [(50, 5), (10, 5)], b"x" * 10, "overlapping or unordered"),
        (100, [(0, 10), (5, 5)], b"x" * 15, "overlapping or unordered"),
        (100, [(98, 5)], b"x" * 5, "past its size"),
        (1000, [(0, 600)], b"x" * 10, "more data than the member holds"),
    ],
)
def test_a_sparse_member_with_a_bad_map_is_refused(target, realsize, segments, data, why):
    assert_refused_and_untouched(target, [sparse_member("s", realsize, segments, data)], match=why)


def test_a_sparse_map_with_too_many_segments_is_refused_before_it_is_read(target):
    info, payload = sparse_member("s", 10, [(0, 1)], b"x")
    payload = b"99999999999\n" + payload[len(b"1\n"):]
    info.size = len(payload)
    assert_refused_and_untouched(target, [(info, payload)], match="segments")


def test_a_sparse_map_holding_something_else_than_numbers_is_refused(target):
    info, payload = sparse_member("s", 10, [(0, 1)], b"x")
    payload = b"1\n0\nrm -rf\n" + payload[len(b"1\n0\n1\n"):]
    assert_refused_and_untouched(target, [(info, payload)], match="holds b'rm -rf', not a number")


def test_a_sparse_map_line_longer_than_any_valid_map_is_refused_before_it_is_all_read(target):
    from bakthat.fsmeta import MAX_SPARSE_SEGMENTS

    info, _ = sparse_member("s", 10, [(0, 1)], b"x")
    payload = b"1" * (64 + 48 * MAX_SPARSE_SEGMENTS + 4096)  # no newline: one endless number
    info.size = len(payload)
    assert_refused_and_untouched(target, [(info, payload)], match="its sparse map is too long")


def test_a_stream_that_ends_inside_a_sparse_map_is_an_integrity_error(target):
    from bakthat.errors import IntegrityError
    from tests.test_extract import OneWayStream, tar_bytes, without_hanging

    data = tar_bytes(sparse_member("s", 10, [(0, 1)], b"x"))
    map_start = data.index(b"1\n0\n1\n")  # the map starts the member's data
    with pytest.raises(IntegrityError, match="ends inside a sparse map"):
        without_hanging(safe_extract, OneWayStream(data[: map_start + 4]), target)
    assert_no_staging(target)


# ---------------------------------------------------------------------------------------
# Rule 9: header sizes (a small compressed archive must not cost gigabytes of memory)


class HugeHeaderStream(io.RawIOBase):
    """A tar stream whose first header announces a huge extended header or long name,
    followed by endless filler, generated as it is read (never held in memory)."""

    def __init__(self, kind: bytes, size: int):
        info = tarfile.TarInfo("././@PaxHeader" if kind == tarfile.XHDTYPE else "././@LongLink")
        info.type, info.size = kind, size
        self._head = info.tobuf(tarfile.USTAR_FORMAT)
        self.bytes_read = 0

    def readable(self):
        return True

    def read(self, size=-1):
        size = 1 << 16 if size < 0 else size
        assert self.bytes_read < 16 << 20, "the restore reads the oversized header instead of refusing it"
        if self.bytes_read < len(self._head):
            chunk = self._head[self.bytes_read : self.bytes_read + size]
        else:
            chunk = b"9 a=bcde\n" * (size // 9 + 1)
            chunk = chunk[:size]
        self.bytes_read += len(chunk)
        return chunk


@pytest.mark.parametrize(
    "kind, why",
    [(tarfile.XHDTYPE, "PAX extended header"), (tarfile.XGLTYPE, "PAX extended header"), (tarfile.GNUTYPE_LONGNAME, "GNU long name"), (tarfile.GNUTYPE_LONGLINK, "GNU long name")],
)
def test_a_gigantic_header_is_refused_before_it_is_read_on_restore_and_on_listing(target, kind, why):
    before = snapshot(target)
    huge = HugeHeaderStream(kind, 1 << 30)
    with pytest.raises(UnsafeArchiveError, match=why):
        safe_extract(huge, target)
    assert huge.bytes_read < 1 << 20
    assert snapshot(target) == before
    assert_no_staging(target)
    huge = HugeHeaderStream(kind, 1 << 30)
    with pytest.raises(UnsafeArchiveError, match=why):
        list(list_members(huge))
    assert huge.bytes_read < 1 << 20


class EndlessOldSparseStream(HugeHeaderStream):
    """An old-style GNU sparse member whose header says "more sparse blocks follow",
    followed by endless such blocks."""

    def __init__(self):
        info = tarfile.TarInfo("sparse")
        info.type, info.size = tarfile.GNUTYPE_SPARSE, 0
        head = bytearray(info.tobuf(tarfile.GNU_FORMAT))
        head[482] = 1  # isextended
        head[148:156] = b"        "
        head[148:155] = b"%06o\0" % sum(head)
        self._head = bytes(head)
        self.bytes_read = 0
        self._filler = bytes(504) + b"\1" + bytes(7)

    def read(self, size=-1):
        if self.bytes_read >= len(self._head):
            assert self.bytes_read < 16 << 20, "the restore reads the sparse blocks instead of refusing them"
            self.bytes_read += size
            return (self._filler * (size // 512 + 1))[:size]
        return super().read(size)


def test_an_old_style_gnu_sparse_member_is_refused_before_its_blocks_are_read(target):
    before = snapshot(target)
    with pytest.raises(UnsafeArchiveError, match="old-style GNU sparse"):
        safe_extract(EndlessOldSparseStream(), target)
    assert snapshot(target) == before
    with pytest.raises(UnsafeArchiveError, match="old-style GNU sparse"):
        list(list_members(EndlessOldSparseStream()))


def test_large_but_sane_extended_headers_are_restored(tmp_path):
    info, data = regular("f", b"x")
    info.pax_headers = {"SCHILY.xattr.user.big": "v" * 3_000, "comment": "c" * 2_000_000}
    safe_extract(stream((info, data)), tmp_path)
    assert os.getxattr(tmp_path / "f", "user.big") == b"v" * 3_000
