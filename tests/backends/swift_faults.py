"""Fault injection for the Swift tests, at bakthat's own layer (a wrapper around
swiftclient's Connection): the real Swift neither fails nor corrupts on demand.

Shared by tests/backends/test_swift.py, test_swift_read.py and test_swift_upload.py.
"""

from __future__ import annotations

import io
import os
import threading

from bakthat import backends
from bakthat.backends import swift
from tests.services import swift_names

MiB = 1 << 20


class ClientException(Exception):
    """Shaped like swiftclient's: an ``http_status``."""

    def __init__(self, status: int):
        super().__init__(f"injected HTTP {status}")
        self.http_status = status


class Faults:
    """What to break, and what happened, shared by every connection a backend makes."""

    def __init__(self, fail_segment=None, fail_times=10**6, corrupt_get=False, break_get_at=None, lie_about_size=False):
        self.lie_about_size = lie_about_size
        self.fail_segment = fail_segment
        self.fail_times = fail_times
        self.corrupt_get = corrupt_get
        self.break_get_at = break_get_at
        self.segment_puts: list[str] = []
        self.ranges: list[str] = []
        self.failures = 0
        self.lock = threading.Lock()


class FaultyConnection:
    """Wrap a swiftclient Connection; break chosen segment PUTs, corrupt or break GETs."""

    def __init__(self, connection, faults: Faults):
        self._connection = connection
        self.faults = faults

    def __getattr__(self, name):
        return getattr(self._connection, name)

    def put_object(self, container, name, contents, **kwargs):
        faults = self.faults
        if container.endswith("_segments") and not kwargs.get("query_string"):
            with faults.lock:
                faults.segment_puts.append(name)
                if faults.fail_segment is not None and name.endswith(f"/{faults.fail_segment:08d}") and faults.failures < faults.fail_times:
                    faults.failures += 1
                    raise ClientException(503)
        return self._connection.put_object(container, name, contents, **kwargs)

    def head_object(self, container, name, **kwargs):
        headers = self._connection.head_object(container, name, **kwargs)
        if self.faults.lie_about_size:
            headers = {**headers, "content-length": str(int(headers["content-length"]) + 1)}
        return headers

    def get_object(self, container, name, **kwargs):
        faults = self.faults
        headers, body = self._connection.get_object(container, name, **kwargs)
        if (kwargs.get("headers") or {}).get("Range"):
            faults.ranges.append(kwargs["headers"]["Range"])
        if faults.corrupt_get:
            data = bytearray(body.read())
            data[len(data) // 2] ^= 0xFF
            return headers, Body(bytes(data))
        if faults.break_get_at is not None and not faults.ranges:
            return headers, Body(body.read(), break_at=faults.break_get_at)
        return headers, body


class Body:
    """A response body over bytes that may raise a connection error at some offset."""

    def __init__(self, data: bytes, break_at: int | None = None):
        self._data = io.BytesIO(data)
        self._break_at = break_at

    def read(self, size=-1):
        if self._break_at is not None and self._data.tell() >= self._break_at:
            raise ConnectionResetError("injected: connection reset by peer")
        if self._break_at is not None and size and size > 0:
            size = min(size, self._break_at - self._data.tell())
        return self._data.read(size)

    def close(self):
        pass


def install_faulty(monkeypatch, **options) -> Faults:
    """Make destination swift build its connections wrapped in FaultyConnection."""
    faults = Faults(**options)

    class Faulty(swift.Backend):
        def make_connection(self):
            return FaultyConnection(super().make_connection(), faults)

    monkeypatch.setitem(backends.registry, "swift", Faulty)
    return faults


def small_segments(conf, **extra):
    return {**conf, "swift_segment_size": "1MiB", "swift_concurrency": 2, "compression": "none", **extra}


def random_tree(root, size: int):
    root.mkdir(parents=True)
    (root / "random.bin").write_bytes(os.urandom(size))
    (root / "note.txt").write_text("hello\n")
    return root


def segments_of(conf) -> list[str]:
    return swift_names(conf["swift_container"] + "_segments")


def objects_of(conf) -> list[str]:
    return swift_names(conf["swift_container"])
