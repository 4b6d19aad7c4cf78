"""Tests for bakthat.index_file: the index file round-trips, stock tools read it, and a
hostile or damaged one is refused naming the object and the line."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess

import pytest
import zstandard

from bakthat.errors import IntegrityError
from bakthat.index import Index
from bakthat.index_file import FIELDS, MAX_LINE, index_bytes, index_from_bytes, read_index, write_index
from bakthat.index_records import BadIndexError, changed, record_from_stat
from tests.chains import fake_stat, walk
from tests.services import require_binary

NAME = "www.20261122160502.tar.zst.age.index"


def sample_delta() -> Index:
    delta = Index("delta", backup="www.2", level="incr", base="www.1", root="www")
    delta.deletions = [b"www/gone", b"www/old \xff dir"]
    delta.add("www", fake_stat("d", ino=1), user="alice", group="staff")
    delta.add(b"www/caf\xc3\xa9 \xff.txt", fake_stat(ino=2, size=2**40), sha256=b"\xab" * 32)
    delta.add("www/link", fake_stat("l", ino=3), b"target \xfe")
    delta.add("www/dev", fake_stat("b", ino=4, rdev=0x0801, uid=0, gid=6), user="root", group="disk")
    delta.add("www/line\nbreak", fake_stat(ino=5, mtime_ns=-5), unstable=True)
    return delta


def assert_same(read: Index, written: Index) -> None:
    assert dict(read.items()) == dict(written.items())
    assert list(read) == list(written)
    for name in ("kind", "backup", "level", "base", "root", "holders", "deletions", "users", "groups"):
        assert getattr(read, name) == getattr(written, name), name


def test_a_delta_with_odd_names_devices_digests_and_deletions_round_trips_exactly():
    delta = sample_delta()
    data = index_bytes(delta)
    assert_same(index_from_bytes(data, NAME, expect_backup="www.2", expect_root="www"), delta)


def test_a_state_round_trips_with_the_holder_of_each_entry():
    full = Index("delta", backup="www.1", root="www")
    full.add("www", fake_stat("d", ino=1))
    full.add("www/a", fake_stat(ino=2))
    state = Index.state_of_full(full)
    incr = Index("delta", backup="www.2", level="incr", base="www.1", root="www")
    incr.add("www/b", fake_stat(ino=3))
    state.apply(incr)
    read = index_from_bytes(index_bytes(state), NAME)
    assert_same(read, state)
    assert read.entry("www/a").holder == "www.1" and read.entry("www/b").holder == "www.2"


def test_an_index_of_a_real_tree_round_trips(tree):
    index = Index("delta", backup="mydir.1", root="mydir")
    for path, st, link in walk(tree):
        index.add(path, st, link)
    assert_same(index_from_bytes(index_bytes(index), NAME), index)


def test_every_line_is_exactly_what_json_dumps_writes_for_its_value():
    lines = zstandard.ZstdDecompressor().decompressobj().decompress(index_bytes(sample_delta())).decode()
    for line in lines.splitlines():
        assert json.dumps(json.loads(line), ensure_ascii=False, separators=(",", ":")) == line


def test_the_writer_leaves_its_sink_open_and_writes_one_checksummed_zstd_frame():
    sink = io.BytesIO()
    write_index(sample_delta(), sink)
    assert not sink.closed
    frame = zstandard.get_frame_parameters(sink.getvalue())
    assert frame.has_checksum
    lines = zstandard.ZstdDecompressor().decompressobj().decompress(sink.getvalue()).decode().splitlines()
    header = json.loads(lines[0])
    assert header["format"] == "bakthat-index" and header["format_version"] == 1
    assert header["fields"] == list(FIELDS)
    assert json.loads(lines[-1]) == {"end": {"entries": 5, "deletions": 2, "names": 4}}


def test_stock_zstd_and_jq_read_the_index_and_list_deletions_separated_by_nul(tmp_path):
    require_binary("zstd", "jq")
    path = tmp_path / "x.index.jsonl.zst"
    path.write_bytes(index_bytes(sample_delta()))
    plain = subprocess.run(["zstd", "-dcq", str(path)], capture_output=True, check=True).stdout
    deleted = subprocess.run(
        ["jq", "-j", 'objects | select(has("deleted")) | .deleted | strings | . + "\\u0000"'],
        input=plain, capture_output=True, check=True,
    ).stdout
    assert deleted == b"www/gone\0"  # the non-UTF-8 one is {"base64": ...}: see docs/format.md
    encoded = subprocess.run(
        ["jq", "-r", 'objects | select(has("deleted")) | .deleted | objects | .base64'],
        input=plain, capture_output=True, check=True,
    ).stdout.split()
    assert [base64.b64decode(item) for item in encoded] == [b"www/old \xff dir"]
    paths = subprocess.run(
        ["jq", "-r", "arrays | .[0] | strings"], input=plain, capture_output=True, check=True
    ).stdout.decode().splitlines()
    assert paths[:2] == ["www", "www/link"]


# -- hostile and damaged files ------------------------------------------------------------------


def compose(*lines: object, header: dict | None = None) -> bytes:
    head = {
        "format": "bakthat-index", "format_version": 1, "kind": "delta", "backup": "www.2", "level": "incr",
        "base": "www.1", "root": "www", "holders": ["www.2"], "fields": list(FIELDS),
    }
    head.update(header or {})
    text = "".join(json.dumps(line) + "\n" for line in [head, *lines])
    return zstandard.ZstdCompressor(write_checksum=True).compress(text.encode())


def entry(path="www/a", kind="f", **changes):
    values = dict(zip(FIELDS, [path, kind, 1, 2, 3, 4, 5, 1, 0o644, 0, 0, 0, None, None, None, 0]))
    values.update(changes)
    return [values[name] for name in FIELDS]


def end(entries=1, deletions=0, names=0):
    return {"end": {"entries": entries, "deletions": deletions, "names": names}}


def refused(data: bytes, match: str, **expect) -> BadIndexError:
    with pytest.raises(BadIndexError, match=match) as caught:
        index_from_bytes(data, NAME, **expect)
    assert str(caught.value).startswith(f"index {NAME}: ")
    assert isinstance(caught.value, IntegrityError) and caught.value.exit_code == 6
    return caught.value


def test_a_well_formed_hand_written_index_is_accepted():
    index = index_from_bytes(compose({"deleted": "www/x"}, entry(), end(1, 1)), NAME)
    assert index.deletions == [b"www/x"] and list(index) == [b"www/a"]


@pytest.mark.parametrize(
    "path, why",
    [
        ("/etc/passwd", "is absolute"),
        ("www/../etc", "'..' component"),
        ("www/./a", "'.' or '..' component"),
        ("www//a", "empty"),
        ("www/a/", "empty"),
        ("www/a\u0000b", "NUL byte"),
        ("other/a", "not under the root 'www'"),
        ("wwwx/a", "not under the root"),
        ("", "is empty"),
        ("www/" + "x" * 20000, "longer than"),
        (7, "must be a string"),
        ({"base64": "!!"}, "bad base64"),
        ({"base64": "L2V0Yy9wYXNzd2Q="}, "is absolute"),  # /etc/passwd
        ("www/\ud800", "not valid text"),
    ],
)
def test_a_hostile_entry_path_is_refused_naming_the_object_and_line(path, why):
    error = refused(compose(entry(path), end()), why)
    assert "line 2" in str(error)


@pytest.mark.parametrize(
    "path, why",
    [("/www/x", "is absolute"), ("www/../../etc", "'..' component"), ("www/\u0000", "NUL byte"), ("x", "not under")],
)
def test_a_hostile_deleted_path_is_refused(path, why):
    refused(compose({"deleted": path}, end(0, 1)), f"deleted path .*{why}")


@pytest.mark.parametrize(
    "changes, why",
    [
        ({"kind": "x"}, "type must be one of"),
        ({"size": -1}, "size must be an integer"),
        ({"size": True}, "size must be an integer"),
        ({"size": 1.5}, "size must be an integer"),
        ({"size": "1"}, "size must be an integer"),
        ({"mode": 0o10000}, "mode must be an integer"),
        ({"uid": 2**32}, "uid must be"),
        ({"ino": 2**64}, "ino must be"),
        ({"flags": 2}, "flags must be"),
        ({"link": "t"}, "only a symbolic link has a link target"),
        ({"kind": "l"}, "link target must be a string"),
        ({"kind": "l", "link": ""}, "link target is empty"),
        ({"sha256": "AB" * 32}, "sha256 must be 64 lowercase hex"),
        ({"sha256": "ab"}, "sha256 must be"),
        ({"holder": 0}, "a delta's entries have no holder"),
    ],
)
def test_an_entry_with_a_bad_value_is_refused_naming_the_path(changes, why):
    kind = changes.pop("kind", "f")
    error = refused(compose(entry(kind=kind, **changes), end()), why)
    assert "'www/a'" in str(error)


def test_a_state_entry_must_point_to_one_of_its_holders():
    header = {"kind": "state", "holders": ["www.1", "www.2"]}
    assert index_from_bytes(compose(entry(holder=1), end(), header=header), NAME).entry("www/a").holder == "www.2"
    refused(compose(entry(holder=2), end(), header=header), "holder must be an integer from 0 to 1")
    refused(compose(entry(holder=None), end(), header=header), "holder must be")


def test_an_entry_with_the_wrong_number_of_fields_is_refused():
    refused(compose(entry()[:-1], end()), "an entry has 16 fields, not 15")


@pytest.mark.parametrize(
    "lines, why",
    [
        ((entry(), entry(), end(2)), "'www/a' appears twice"),
        (({"deleted": "www/x"}, {"deleted": "www/x"}, end(0, 2)), "appears twice"),
        ((entry(), {"deleted": "www/x"}, end(1, 1)), "deleted paths come before the entries"),
        ((entry(),), "ends without its trailer"),
        ((entry(), end(2)), "the trailer says"),
        ((entry(), end(), entry("www/b")), "data after the trailer"),
        ((entry(), {"surprise": 1}, end()), "unknown line"),
        ((entry(), "text", end()), "must be an object or an array"),
        (({"uid": 1, "user": "a"}, {"uid": 1, "user": "b"}, end(0, 0, 2)), "uid 1 is named twice"),
        (({"uid": 1, "user": ""}, end(0, 0, 1)), "user name must be a short string"),
        (({"gid": -1, "group": "g"}, end(0, 0, 1)), "gid must be"),
    ],
)
def test_an_inconsistent_sequence_of_lines_is_refused(lines, why):
    refused(compose(*lines), why)


@pytest.mark.parametrize(
    "header, why",
    [
        ({"format": "tar"}, "not a bakthat index"),
        ({"format_version": 2}, "format_version 2 is not supported"),
        ({"kind": "other"}, "kind must be"),
        ({"level": "weekly"}, "level must be"),
        ({"backup": ""}, "backup must be"),
        ({"level": "full"}, "a full backup has no base"),
        ({"base": None}, "needs the stored filename of its base"),
        ({"root": "a/b"}, "root must be one path component"),
        ({"root": ".."}, "root must be one path component"),
        ({"holders": ["www.1"]}, "holders must list"),
        ({"holders": ["www.1", "www.2"]}, "holders must list"),
        ({"fields": ["path"]}, "fields must be"),
    ],
)
def test_a_bad_header_is_refused(header, why):
    refused(compose(end(0), header=header), why)


def test_a_full_backup_records_no_deletions():
    refused(compose({"deleted": "www/x"}, end(0, 1), header={"level": "full", "base": None}),
            "only the index of a differential or incremental records deleted paths")


def test_an_index_beside_the_wrong_backup_or_root_is_refused():
    data = compose(end(0))
    refused(data, "it is the index of 'www.2', not of 'www.3'", expect_backup="www.3")
    refused(data, "its root is 'www', not 'web'", expect_root="web")


def test_the_number_of_entries_is_capped():
    data = compose(entry("www/a"), entry("www/b"), entry("www/c"), end(3))
    assert len(index_from_bytes(data, NAME, max_entries=3)) == 3
    refused(data, "more than 2 entries", max_entries=2)


def test_an_overlong_line_is_refused_without_reading_it_whole():
    refused(compose({"deleted": "www/" + "x" * MAX_LINE}, end(0, 1)), f"longer than {MAX_LINE} bytes")
    text = b'{"format": "bakthat-index"' + b" " * (3 * MAX_LINE)
    refused(zstandard.ZstdCompressor().compress(text), "longer than")


def test_a_line_that_is_not_json_is_refused_with_its_number():
    data = zstandard.ZstdCompressor().compress(compose_text() + b"{not json\n")
    refused(data, "line 2: not JSON")


def compose_text() -> bytes:
    return zstandard.ZstdDecompressor().decompressobj().decompress(compose(end(0)))[: -len(json.dumps(end(0))) - 1]


def test_damaged_truncated_extended_or_empty_compressed_data_is_refused():
    data = index_bytes(sample_delta())
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    refused(bytes(flipped), "damaged compressed data|not JSON|trailer")
    for cut in (len(data) - 1, len(data) - 4, len(data) // 2, 5):
        refused(data[:cut], "truncated")
    refused(data + data, "data follows the end of the compressed index")
    refused(data + b"x", "data follows the end")
    refused(b"", "truncated|empty")
    refused(zstandard.ZstdCompressor().compress(b""), "it is empty")
    refused(b"not zstd at all", "damaged compressed data")


def test_an_unterminated_last_line_is_refused():
    text = compose_text() + json.dumps(end(0)).encode()
    refused(zstandard.ZstdCompressor().compress(text), "the last line is not terminated")


def test_read_index_reads_from_a_stream_to_its_end(tmp_path):
    path = tmp_path / "index"
    path.write_bytes(index_bytes(sample_delta()))
    with open(path, "rb") as handle:
        assert len(read_index(handle, NAME)) == 5
        assert handle.read() == b""


def test_records_written_from_a_stat_and_read_back_compare_unchanged(tmp_path):
    (tmp_path / "www").mkdir()
    st = os.lstat(tmp_path / "www")
    index = Index("delta", backup="b", root="www")
    index.add("www", st)
    read = index_from_bytes(index_bytes(index), NAME)
    assert not changed(read.record("www"), record_from_stat(st))
