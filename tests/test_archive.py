"""bakthat.archive: compression in and out of a stream, and what a backup leaves out."""

from __future__ import annotations

import gzip
import io
import os
import subprocess

import pytest
import zstandard

from bakthat.archive import EXTENSIONS, compressor, decompressor, load_excludes
from bakthat.errors import ConfigError, IntegrityError

DATA = b"".join(b"line %d of a compressible text\n" % n for n in range(50_000)) + os.urandom(100_000)


class Sink(io.BytesIO):
    """A BytesIO that remembers whether someone closed it."""

    def close(self):
        self.closed_by_someone = True


def compress(data: bytes, compression: str, level=None) -> bytes:
    sink = Sink()
    writer = compressor(sink, compression, level=level)
    for start in range(0, len(data), 65536):
        writer.write(data[start : start + 65536])
    writer.close()
    assert not getattr(sink, "closed_by_someone", False)  # closing the writer leaves the sink open
    return sink.getvalue()


def read_all(reader) -> bytes:
    chunks = []
    while chunk := reader.read(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
def test_what_is_compressed_decompresses_to_the_same_bytes(compression):
    stored = compress(DATA, compression)
    assert read_all(decompressor(io.BytesIO(stored), compression)) == DATA
    if compression == "none":
        assert stored == DATA
    else:
        assert len(stored) < len(DATA)


def test_the_streams_are_the_standard_formats_the_stock_tools_read(tmp_path):
    zst = tmp_path / "a.zst"
    zst.write_bytes(compress(DATA, "zstd"))
    assert zstandard.ZstdDecompressor().decompressobj().decompress(zst.read_bytes()) == DATA
    assert gzip.decompress(compress(DATA, "gzip")) == DATA
    if os.path.exists("/usr/bin/zstd"):
        assert subprocess.run(["zstd", "-t", "-q", str(zst)]).returncode == 0


def test_a_zstd_stream_carries_a_checksum_and_a_gzip_stream_no_timestamp():
    frame = compress(b"x" * 1000, "zstd")
    assert zstandard.get_frame_parameters(frame).has_checksum
    assert compress(b"same", "gzip") == compress(b"same", "gzip")  # mtime=0: same input, same bytes


def test_the_level_is_used():
    text = b"".join(b"%d,%d,%d\n" % (n, n * n % 9973, n % 17) for n in range(100_000))
    assert len(compress(text, "zstd", level=19)) < len(compress(text, "zstd", level=1))
    assert len(compress(text, "gzip", level=9)) < len(compress(text, "gzip", level=1))


def test_an_unknown_compression_is_a_config_error_when_writing_and_an_integrity_error_when_reading():
    with pytest.raises(ConfigError, match="unknown compression 'lz4'"):
        compressor(io.BytesIO(), "lz4")
    with pytest.raises(IntegrityError, match="unknown compression 'lz4' recorded for this archive"):
        decompressor(io.BytesIO(b""), "lz4")
    assert set(EXTENSIONS) == {"zstd", "gzip", "none"}


# A truncated zstd stream is not among these: python-zstandard's stream reader ends it
# quietly; restore refuses such an archive through the tar end-of-archive check and the
# SHA-256 (tests/test_restore_integrity.py).
@pytest.mark.parametrize(("compression", "damage"), [("zstd", "flip"), ("gzip", "flip"), ("gzip", "truncate")])
def test_damaged_compressed_data_is_an_integrity_error_on_read(compression, damage):
    stored = bytearray(compress(DATA, compression))
    if damage == "flip":
        stored[len(stored) // 2] ^= 0xFF
    else:
        del stored[-20:]
    with pytest.raises(IntegrityError, match=f"damaged {compression} data"):
        read_all(decompressor(io.BytesIO(bytes(stored)), compression))


def test_a_zstd_stream_of_several_frames_is_read_across_them():
    two = compress(b"first\n", "zstd") + compress(b"second\n", "zstd")
    assert read_all(decompressor(io.BytesIO(two), "zstd")) == b"first\nsecond\n"


# -- what a backup leaves out ---------------------------------------------------------------


def test_no_pattern_anywhere_means_nothing_is_left_out(tmp_path):
    (tmp_path / ".bakthatexclude").write_text("# only a comment\n\n")
    assert load_excludes(tmp_path) is None


def test_patterns_come_from_the_exclude_file_the_source_and_the_arguments_in_order(tmp_path, monkeypatch):
    source = tmp_path / "src"
    source.mkdir()
    (source / ".bakthatexclude").write_text("*.log\n")
    (tmp_path / "extra-excludes").write_text("cache/\n")
    monkeypatch.chdir(tmp_path)
    spec = load_excludes(source, "extra-excludes", [["*.tmp"], "build/\n!keep.log"])
    assert spec.match_file("app.log") and spec.match_file("cache/x") and spec.match_file("a.tmp")
    assert spec.match_file("build/out")
    assert not spec.match_file("keep.log")  # a later !pattern re-includes
    assert not spec.match_file("notes.txt")


def test_the_gitignore_is_read_only_when_asked(tmp_path):
    (tmp_path / ".gitignore").write_text("secrets/\n")
    assert load_excludes(tmp_path) is None
    assert load_excludes(tmp_path, gitignore=True).match_file("secrets/key")


def test_a_missing_exclude_file_is_a_config_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match="exclude file .*nowhere.txt: No such file"):
        load_excludes(tmp_path, tmp_path / "nowhere.txt")


def test_a_single_file_source_reads_no_exclude_file_beside_it(tmp_path):
    (tmp_path / ".bakthatexclude").write_text("*\n")
    (tmp_path / "one.txt").write_text("x")
    assert load_excludes(tmp_path / "one.txt") is None
