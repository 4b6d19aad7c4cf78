"""bakthat.pipeline: what flows to or from a store is counted and hashed, unchanged."""

from __future__ import annotations

import hashlib
import io
import os

from bakthat.pipeline import HashingReader, HashingWriter

DATA = os.urandom(3 << 20) + b"tail"


def test_the_writer_passes_every_byte_on_and_records_size_and_sha256():
    sink = io.BytesIO()
    writer = HashingWriter(sink)
    for start in range(0, len(DATA), 100_000):
        assert writer.write(DATA[start : start + 100_000]) == len(DATA[start : start + 100_000])
    writer.flush()
    assert sink.getvalue() == DATA
    assert writer.size == len(DATA)
    assert writer.hexdigest() == hashlib.sha256(DATA).hexdigest()


def test_the_reader_returns_the_bytes_unchanged_and_reports_progress_in_bytes():
    seen = []
    reader = HashingReader(io.BytesIO(DATA), progress=seen.append)
    assert reader.readable()
    head = reader.read(1000)
    assert head == DATA[:1000] and reader.size == 1000
    reader.drain()  # the rest, so the hash covers the whole object
    assert reader.read(10) == b""
    assert reader.size == len(DATA) and sum(seen) == len(DATA) and 0 not in seen
    assert reader.hexdigest() == hashlib.sha256(DATA).hexdigest()


def test_closing_the_reader_closes_its_source():
    source = io.BytesIO(b"x")
    HashingReader(source).close()
    assert source.closed


class HashingSink(io.BytesIO):
    """A sink that hashes what it is given, as an S3 upload does."""

    def __init__(self):
        super().__init__()
        self.running_sha256 = hashlib.sha256()

    def write(self, data):
        self.running_sha256.update(data)
        return super().write(data)


def test_the_writer_shares_the_hash_of_a_sink_that_hashes_so_the_bytes_are_hashed_once():
    sink = HashingSink()
    writer = HashingWriter(sink)
    data = os.urandom(300_000)
    writer.write(data[:1000])
    writer.write(data[1000:])
    assert writer.hexdigest() == sink.running_sha256.hexdigest() == hashlib.sha256(data).hexdigest()
    assert writer.size == len(data) and sink.getvalue() == data
    sink.running_sha256.update(b"x")  # one object: the writer does not keep a second hash
    assert writer.hexdigest() == hashlib.sha256(data + b"x").hexdigest()
