"""Tests for bakthat.streams: the read-ahead and write-behind threads pass every byte
through in order, raise the wrapped stream's error where it happened, and stop."""

from __future__ import annotations

import io
import os
import threading

import pytest

from bakthat.errors import IntegrityError, StorageError
from bakthat.streams import ReadAhead, WriteBehind


class Source(io.RawIOBase):
    """``data`` in pieces, then ``error`` (if any) instead of the end."""

    def __init__(self, data: bytes, error: BaseException | None = None):
        self._data = io.BytesIO(data)
        self._error = error
        self.threads: set[str] = set()

    def readable(self):
        return True

    def read(self, size=-1):
        self.threads.add(threading.current_thread().name)
        chunk = self._data.read(size)
        if not chunk and self._error is not None:
            raise self._error
        return chunk


def test_read_ahead_hands_out_every_byte_in_order_from_another_thread():
    data = os.urandom(3 * 1024 * 1024 + 123)
    source = Source(data)
    ahead = ReadAhead(source, chunk=64 * 1024, depth=3)
    got = bytearray()
    while piece := ahead.read(10_000):
        assert len(piece) <= 10_000
        got += piece
    assert bytes(got) == data
    assert ahead.read(10) == b""
    assert source.threads == {"bakthat-read-ahead"}


def test_read_ahead_raises_the_sources_error_after_the_data_before_it_and_again_later():
    ahead = ReadAhead(Source(b"abc" * 1000, IntegrityError("damaged")), chunk=1000)
    got = bytearray()
    with pytest.raises(IntegrityError, match="damaged"):
        while True:
            got += ahead.read(700)
    assert bytes(got) == b"abc" * 1000
    with pytest.raises(IntegrityError, match="damaged"):
        ahead.read(1)


def test_read_ahead_read_all_returns_the_rest():
    ahead = ReadAhead(Source(b"x" * 5000), chunk=1024)
    assert ahead.read(10) == b"x" * 10
    assert ahead.read() == b"x" * 4990


def test_closing_a_read_ahead_stops_its_thread_before_the_end():
    endless = Source(b"")
    endless.read = lambda size=-1: b"y" * size  # type: ignore[method-assign]
    ahead = ReadAhead(endless, chunk=1024, depth=2)
    assert ahead.read(5) == b"yyyyy"
    ahead.close()
    assert not ahead._thread.is_alive()


class Sink:
    def __init__(self, fail_after: int | None = None):
        self.data = bytearray()
        self.fail_after = fail_after
        self.threads: set[str] = set()

    def write(self, data):
        self.threads.add(threading.current_thread().name)
        if self.fail_after is not None and len(self.data) >= self.fail_after:
            raise StorageError("store full")
        self.data += data
        return len(data)


def test_write_behind_writes_everything_in_order_from_another_thread_and_copies_reused_buffers():
    sink = Sink()
    behind = WriteBehind(sink, depth=2)
    buffer = bytearray(b"a" * 100)
    behind.write(buffer)
    buffer[:] = b"b" * 100  # the caller reuses its buffer at once
    behind.write(memoryview(buffer))
    behind.write(b"tail")
    behind.close()
    assert bytes(sink.data) == b"a" * 100 + b"b" * 100 + b"tail"
    assert sink.threads == {"bakthat-write-behind"}


def test_write_behind_raises_the_sinks_error_on_a_later_write_or_on_close():
    behind = WriteBehind(Sink(fail_after=10), depth=2)
    with pytest.raises(StorageError, match="store full"):
        for _ in range(1000):
            behind.write(b"x" * 10)
        behind.close()
    with pytest.raises(StorageError, match="store full"):
        behind.close()


def test_abandoning_a_write_behind_stops_its_thread():
    started = threading.Event()
    release = threading.Event()

    class Slow(Sink):
        def write(self, data):
            started.set()
            release.wait(5)
            return super().write(data)

    sink = Slow()
    behind = WriteBehind(sink, depth=1)
    behind.write(b"1")
    started.wait(5)
    behind.write(b"2")
    release.set()
    behind.abandon()
    assert not behind._thread.is_alive()
    assert bytes(sink.data) in (b"1", b"12")
