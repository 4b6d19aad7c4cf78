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
