"""Tests for bakthat.tarreader: restore's header parser reads every member as tarfile
reads it (all formats, long and non-UTF-8 names, links, devices, sparse files, global
headers), hands out exactly the member data, and turns damage into IntegrityError."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile

import pytest

from bakthat.errors import IntegrityError, UnsafeArchiveError
from bakthat.tarreader import TarReader

FIELDS = ("name", "type", "size", "mode", "uid", "gid", "uname", "gname", "linkname", "mtime", "offset",
          "offset_data", "pax_headers", "sparse")


class Trickle(io.RawIOBase):
    """A stream handing out at most ``step`` bytes per read."""

    def __init__(self, data: bytes, step: int):
        self._data, self._step, self._pos = data, step, 0

    def readable(self):
        return True

    def read(self, size=-1):
        size = self._step if size < 0 else min(size, self._step)
        chunk = self._data[self._pos : self._pos + size]
        self._pos += len(chunk)
        return chunk


def members_of(fmt, *extra_pax):
    """Members of every kind, with names and owners that need each header extension."""
    out = []

    def add(name, kind=tarfile.REGTYPE, data=b"", **fields):
        info = tarfile.TarInfo(name)
        info.type, info.size, info.mtime, info.mode = kind, len(data), 1_600_000_000, 0o640
        for key, value in fields.items():
            setattr(info, key, value)
        out.append((info, data))

    add("top", tarfile.DIRTYPE)
    add("top/plain.txt", data=b"hello\n", uname="alice", gname="staff", uid=1000, gid=1000)
    add("top/" + "l" * 130 + "/" + "n" * 90, data=bytes(range(256)) * 5)
    add("top/" + "d" * 120 + "/x", data=b"deep")
    add("top/empty")
    add("top/link", tarfile.SYMTYPE, linkname="../" + "t" * 150)
    add("top/hard", tarfile.LNKTYPE, linkname="top/plain.txt")
    add("top/fifo", tarfile.FIFOTYPE)
    add("top/dev", tarfile.CHRTYPE, devmajor=1, devminor=3)
    if fmt == tarfile.PAX_FORMAT:
        add("top/ünïcode-é.txt", data=b"u")
        add("top/raw-\udcff.txt", data=b"raw")
        add("top/big-ids", data=b"i", uid=3_000_000, gid=3_000_001, uname="u" * 40)
        add("top/ns", data=b"n", pax_headers={"mtime": "1600000000.123456789", "SCHILY.xattr.user.k": "v",
                                              **dict(extra_pax)})
    return out


def archive_of(members, fmt):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt, encoding="utf-8", errors="surrogateescape") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buffer.getvalue()


def tarfile_view(data: bytes):
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|", encoding="utf-8", errors="surrogateescape") as tar:
        return [(tuple(getattr(m, f) for f in FIELDS), tar.extractfile(m).read() if m.isreg() else None) for m in tar]


def reader_view(stream):
    reader = TarReader(stream)
    seen = []
    for member in reader:
        content = None
        if member.isreg() and member.sparse is None:
            reader.seek(member.offset_data)
            content = b""
            while piece := reader.read(7):
                content += bytes(piece)
        elif member.isreg():  # the stored segments, put back at their offsets
            reader.seek(member.offset_data)
            expanded = bytearray(member.size)
            for offset, length in member.sparse:
                piece = b""
                while len(piece) < length:
                    piece += bytes(reader.read(length - len(piece)))
                expanded[offset : offset + length] = piece
            content = bytes(expanded)
        seen.append((tuple(getattr(member, f) for f in FIELDS), content))
    return seen


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
@pytest.mark.parametrize("step", [1 << 20, 1, 511, 4096])
def test_every_member_reads_as_tarfile_reads_it(fmt, step):
    members = members_of(fmt)
    if fmt == tarfile.USTAR_FORMAT:  # ustar cannot hold the long link target
        members = [(i, d) for i, d in members if len(i.linkname) <= 100]
    data = archive_of(members, fmt)
    assert reader_view(Trickle(data, step)) == tarfile_view(data)


def test_global_headers_apply_to_every_later_member_and_extended_ones_override_them():
    members = members_of(tarfile.PAX_FORMAT)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT,
                      pax_headers={"comment": "everyone", "uname": "global-owner"}) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data else None)
    data = buffer.getvalue()
    seen = reader_view(io.BytesIO(data))
    assert seen == tarfile_view(data)
    assert all(fields[FIELDS.index("pax_headers")]["comment"] == "everyone" for fields, _ in seen)


@pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar is not installed")
@pytest.mark.parametrize("version", ["0.0", "0.1", "1.0"])
def test_gnu_tar_sparse_files_of_every_version_read_as_tarfile_reads_them(tmp_path, version):
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse", "wb") as handle:
        handle.write(b"start")
        handle.seek(3 << 20)
        handle.write(b"middle")
        handle.truncate(8 << 20)
    (src / "after").write_bytes(b"after the sparse file")
    archive = tmp_path / "a.tar"
    subprocess.run(["tar", "--format=posix", f"--sparse-version={version}", "-S", "-cf", str(archive), "-C",
                    str(tmp_path), "src"], check=True)
    data = archive.read_bytes()
    seen = reader_view(io.BytesIO(data))
    assert seen == tarfile_view(data)
    sparse = [fields for fields, _ in seen if fields[0] == "src/sparse"]
    assert sparse and sparse[0][FIELDS.index("size")] == 8 << 20


def test_reading_stops_at_the_end_of_the_members_data():
    members = [members_of(tarfile.PAX_FORMAT)[1], members_of(tarfile.PAX_FORMAT)[2]]
    reader = TarReader(io.BytesIO(archive_of(members, tarfile.PAX_FORMAT)))
    first = next(iter(reader))
    assert bytes(reader.read(1 << 20)) == b"hello\n"
    assert reader.read(1 << 20) == b""
    with pytest.raises(ValueError):
        reader.seek(first.offset_data)  # backwards


def good_archive():
    return archive_of(members_of(tarfile.PAX_FORMAT), tarfile.PAX_FORMAT)


def read_all(data):
    reader = TarReader(io.BytesIO(data))
    return [member.name for member in reader]


def test_a_bad_checksum_is_damage_naming_the_header_position():
    data = bytearray(good_archive())
    data[1536 + 10] ^= 0xFF  # the name field of the third member's extended header
    with pytest.raises(IntegrityError, match="unreadable member header at byte 1536"):
        read_all(bytes(data))


def test_members_whose_extended_headers_share_a_header_block_each_get_their_own_records():
    # Records of one length give byte-identical PAX header blocks (parsed once), never
    # the same records.
    members = []
    for i in range(5):
        info = tarfile.TarInfo(f"f{i}")
        info.size, info.pax_headers = 1, {"comment": f"value-{i}", "mtime": f"1600000000.{i:09d}"}
        members.append((info, bytes([i])))
    data = archive_of(members, tarfile.PAX_FORMAT)
    assert data[0:512] == data[2048:2560]  # the first two members' PAX header blocks
    seen = reader_view(io.BytesIO(data))
    assert seen == tarfile_view(data)
    assert [fields[FIELDS.index("pax_headers")]["comment"] for fields, _ in seen] == [f"value-{i}" for i in range(5)]
    damaged = bytearray(data)
    damaged[2048 + 10] ^= 0xFF  # the second member's copy of the block, after a good one
    with pytest.raises(IntegrityError, match="unreadable member header at byte 2048"):
        read_all(bytes(damaged))


def test_a_stream_ending_before_the_end_marker_is_damage():
    data = good_archive()
    end = data.rindex(b"raw") + 512  # inside the member data region after the last header
    with pytest.raises(IntegrityError, match="without an end-of-archive marker|ends at byte"):
        read_all(data[: end - (end % 512)])


def test_data_after_the_end_marker_is_damage():
    with pytest.raises(IntegrityError, match="data follows the end-of-archive marker"):
        read_all(good_archive() + b"\1")


def test_a_malformed_pax_record_is_damage():
    info = tarfile.TarInfo("f")
    data = bytearray(archive_of([(info, b"")], tarfile.PAX_FORMAT))
    pax = b"9 a=bcdef\n"  # a length that does not match the record
    header = tarfile.TarInfo("././@PaxHeader")
    header.type, header.size = tarfile.XHDTYPE, len(pax)
    block = header.tobuf(tarfile.USTAR_FORMAT)
    broken = block + pax + bytes(-len(pax) % 512) + bytes(data)
    with pytest.raises(IntegrityError, match="malformed PAX record"):
        read_all(broken)


def test_an_old_style_gnu_sparse_member_is_refused():
    info = tarfile.TarInfo("s")
    info.type = tarfile.GNUTYPE_SPARSE
    data = info.tobuf(tarfile.GNU_FORMAT) + bytes(1024)
    with pytest.raises(UnsafeArchiveError, match="old-style GNU sparse"):
        read_all(data)


def test_an_upstream_error_met_while_reading_the_rest_is_raised_instead_of_the_damage():
    class Failing(io.RawIOBase):
        def __init__(self):
            self._data = io.BytesIO(bytes(512) + b"\1" * 512)

        def readable(self):
            return True

        def read(self, size=-1):
            chunk = self._data.read(min(size, 512))
            if not chunk:
                raise IntegrityError("upstream checksum mismatch")
            return chunk

    broken = b"\1" * 512
    stream = Failing()
    stream._data = io.BytesIO(broken)
    with pytest.raises(IntegrityError, match="upstream checksum mismatch"):
        read_all_stream(stream)


def read_all_stream(stream):
    return [member.name for member in TarReader(stream)]
