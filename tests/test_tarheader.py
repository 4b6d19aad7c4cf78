"""Tests for bakthat.tarheader: headers read back through tarfile (and so through
restore) exactly as they were written, whatever does not fit the ustar fields."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from bakthat import tarheader

GIB = 1 << 30


class VirtualFile(io.RawIOBase):
    """A seekable file of ``size`` bytes made of real ``pieces`` ({offset: bytes}) and
    zeros everywhere else, so an archive holding gigabytes costs nothing to read."""

    def __init__(self, pieces: dict[int, bytes], size: int):
        self._pieces = sorted(pieces.items())
        self._size = size
        self._position = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = base + offset
        return self._position

    def tell(self):
        return self._position

    def readinto(self, buffer):
        wanted = min(len(buffer), max(0, self._size - self._position))
        chunk = bytearray(wanted)
        for start, data in self._pieces:
            low, high = max(start, self._position), min(start + len(data), self._position + wanted)
            if low < high:
                chunk[low - self._position : high - self._position] = data[low - start : high - start]
        buffer[:wanted] = chunk
        self._position += wanted
        return wanted


def read_back(header: bytes, data: bytes = b"") -> tarfile.TarInfo:
    archive = header + data + bytes(-len(data) % 512) + bytes(1024)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        [member] = tar.getmembers()
    return member


@pytest.mark.parametrize(
    "name",
    ["short.txt", "d/" * 60 + "long-name", "naïve café/日本語", os.fsdecode(b"caf\xe9/\xff\xfe"), "x" * 255],
    ids=["short", "long", "utf-8", "not-utf-8", "255"],
)
def test_any_name_reads_back_exactly(name):
    member = read_back(tarheader.encode(name, tarfile.REGTYPE, 0o644, 0, 0, 1_600_000_000 * 10**9, size=3), b"abc")
    assert member.name == name and member.size == 3 and member.isreg()


def test_numbers_and_names_that_do_not_fit_ustar_read_back_exactly():
    header = tarheader.encode(
        "f", tarfile.SYMTYPE, 0o4755, 3_000_000_000, 8**7, -1_500_000_000,
        linkname="/" + "t" * 300, uname="ünïcode", gname="g" * 40,
    )
    member = read_back(header)
    assert (member.uid, member.gid, member.linkname, member.uname, member.gname) == (
        3_000_000_000, 8**7, "/" + "t" * 300, "ünïcode", "g" * 40,
    )
    assert member.mode == 0o4755 and member.pax_headers["mtime"] == "-1.5"


def test_a_nanosecond_mtime_is_kept_as_a_pax_record_and_a_whole_one_costs_no_pax_header():
    member = read_back(tarheader.encode("f", tarfile.REGTYPE, 0o600, 0, 0, 1_600_000_000_000_000_001))
    assert member.pax_headers["mtime"] == "1600000000.000000001" and member.mtime == pytest.approx(1_600_000_000)
    assert len(tarheader.encode("f", tarfile.REGTYPE, 0o600, 0, 0, 1_600_000_000 * 10**9)) == 512


def test_devices_keep_their_numbers():
    member = read_back(tarheader.encode("null", tarfile.CHRTYPE, 0o666, 0, 0, 0, devmajor=1, devminor=3))
    assert member.ischr() and (member.devmajor, member.devminor) == (1, 3)


def test_a_member_over_8_gib_is_sized_by_a_pax_record_and_the_next_member_is_found():
    first = tarheader.encode("big", tarfile.REGTYPE, 0o644, 0, 0, 0, size=9 * GIB)
    second_at = len(first) + 9 * GIB
    second = tarheader.encode("after", tarfile.REGTYPE, 0o644, 0, 0, 0)
    with tarfile.open(fileobj=VirtualFile({0: first, second_at: second}, second_at + 512 + 1024), mode="r:") as tar:
        assert [(m.name, m.size) for m in tar] == [("big", 9 * GIB), ("after", 0)]


def test_a_sparse_member_holding_over_8_gib_of_data_keeps_the_next_member_findable():
    table = b"2\n0\n%d\n%d\n0\n" % (9 * GIB, 20 * GIB)
    table += bytes(-len(table) % 512)
    records = {"path": "GNUSparseFile.0/s", "GNU.sparse.major": "1", "GNU.sparse.minor": "0",
               "GNU.sparse.name": "s", "GNU.sparse.realsize": str(20 * GIB)}
    first = tarheader.encode("GNUSparseFile.0/s", tarfile.REGTYPE, 0o644, 0, 0, 0, size=len(table) + 9 * GIB, records=records)
    second_at = len(first) + len(table) + 9 * GIB
    second = tarheader.encode("after", tarfile.REGTYPE, 0o644, 0, 0, 0)
    pieces = {0: first + table, second_at: second}
    with tarfile.open(fileobj=VirtualFile(pieces, second_at + 512 + 1024), mode="r:") as tar:
        members = list(tar)
    assert [(m.name, m.size) for m in members] == [("s", 20 * GIB), ("after", 0)]
    assert members[0].sparse == [(0, 9 * GIB), (20 * GIB, 0)]


@pytest.mark.parametrize("block", [bytes(512), b"\xff" * 512, bytes(range(256)) * 2, b"\xff" * 8, b"", b"\x7f\x80" * 300],
                         ids=["zeros", "all-ff", "every-byte", "a-field", "empty", "not-a-block-multiple"])
def test_byte_sum_is_the_sum_of_the_bytes_even_where_adler32_would_wrap(block):
    from bakthat.tarheader import byte_sum

    assert byte_sum(block) == sum(block)
    assert byte_sum(memoryview(block)) == sum(block)


def test_byte_sum_agrees_with_sum_on_random_blocks():
    import random

    from bakthat.tarheader import byte_sum

    rng = random.Random(15)
    for _ in range(200):
        block = rng.randbytes(rng.choice([8, 255, 256, 257, 512, 1024]))
        assert byte_sum(block) == sum(block)
