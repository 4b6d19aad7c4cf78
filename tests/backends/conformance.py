"""The conformance suite every storage backend passes.

A backend's test module subclasses :class:`BackendConformance` and provides a
``backend`` fixture returning a fresh, empty backend instance.
"""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from bakthat.errors import AlreadyExistsError, ConfigError, IntegrityError, NotFoundError


class ShortReader(io.RawIOBase):
    """A stream that ends earlier than the size its caller declares."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._data.read(size)


class InterruptingReader(io.RawIOBase):
    """A stream of zeros that raises KeyboardInterrupt (as Ctrl-C does) after ``limit`` bytes."""

    def __init__(self, limit: int):
        self.limit = limit
        self.sent = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.sent >= self.limit:
            raise KeyboardInterrupt
        self.sent += 1 << 20
        return b"\x00" * (1 << 20)


class BackendConformance:
    def test_an_object_round_trips_byte_for_byte(self, backend):
        data = os.urandom(3 * (1 << 20) + 17)
        info = backend.put("a/b/object.bin", io.BytesIO(data))
        assert info.size == len(data)
        with backend.open_read("a/b/object.bin") as stream:
            assert stream.read() == data
        assert backend.stat("a/b/object.bin").size == len(data)
        assert backend.exists("a/b/object.bin")

    def test_an_empty_object_round_trips(self, backend):
        backend.put("empty", b"")
        with backend.open_read("empty") as stream:
            assert stream.read() == b""

    def test_listing_is_sorted_filtered_by_prefix_and_shows_committed_objects_only(self, backend):
        for key in ("x/2", "x/1", "y/1", "x10"):
            backend.put(key, key.encode())
        pending = backend.open_upload("x/pending")
        pending.write(b"not yet")
        try:
            assert [info.key for info in backend.list()] == ["x/1", "x/2", "x10", "y/1"]
            assert [info.key for info in backend.list("x/")] == ["x/1", "x/2"]
            assert [info.size for info in backend.list("y/")] == [3]
        finally:
            pending.abort()
        assert not backend.exists("x/pending")

    def test_a_missing_key_raises_not_found_everywhere(self, backend):
        for call in (backend.open_read, backend.stat, backend.delete):
            with pytest.raises(NotFoundError):
                call("missing/key")
        assert not backend.exists("missing/key")

    @pytest.mark.parametrize("key", ["with space.tar.zst", "ünïcödé/名前.age", "dots.in.name..x", "-dash", "a/b/c/d/e"])
    def test_odd_but_valid_key_names_work(self, backend, key):
        backend.put(key, b"payload")
        with backend.open_read(key) as stream:
            assert stream.read() == b"payload"
        assert key in [info.key for info in backend.list()]

    @pytest.mark.parametrize("key", ["foo/../../baz", "../escape", "/absolute", "", "a//b", "nul\x00byte"])
    def test_keys_that_could_escape_are_refused(self, backend, key):
        with pytest.raises(ConfigError):
            backend.put(key, b"x")

    def test_an_upload_whose_checksum_does_not_match_fails_and_stores_nothing(self, backend):
        data = b"some bytes to store"
        wrong = bytearray(hashlib.sha256(data).digest())
        wrong[0] ^= 0x01
        with pytest.raises(IntegrityError):
            backend.put("checked", io.BytesIO(data), sha256=bytes(wrong).hex())
        assert not backend.exists("checked")
        assert list(backend.list()) == []

    def test_a_matching_checksum_is_accepted(self, backend):
        data = b"some bytes to store"
        backend.put("checked", io.BytesIO(data), sha256=hashlib.sha256(data).hexdigest(), size=len(data))
        assert backend.exists("checked")

    def test_a_source_shorter_than_declared_fails_and_stores_nothing(self, backend):
        with pytest.raises(IntegrityError):
            backend.put("short", ShortReader(b"x" * 100), size=142)
        assert not backend.exists("short")
        assert list(backend.list()) == []

    def test_an_existing_object_is_never_replaced(self, backend):
        backend.put("once", b"original")
        with pytest.raises(AlreadyExistsError):
            backend.put("once", b"replacement")
        with backend.open_read("once") as stream:
            assert stream.read() == b"original"

    def test_an_aborted_upload_leaves_nothing(self, backend):
        upload = backend.open_upload("aborted")
        upload.write(b"partial data")
        upload.abort()
        upload.abort()
        assert not backend.exists("aborted")
        assert list(backend.list()) == []

    def test_an_upload_interrupted_by_ctrl_c_leaves_nothing(self, backend):
        with pytest.raises(KeyboardInterrupt):
            backend.put("interrupted", InterruptingReader(3 << 20))
        assert not backend.exists("interrupted")
        assert list(backend.list()) == []

    def test_delete_removes_the_object(self, backend):
        backend.put("gone", b"x")
        backend.delete("gone")
        assert not backend.exists("gone")
        with pytest.raises(NotFoundError):
            backend.open_read("gone")

    def test_a_url_is_given_for_a_stored_object(self, backend):
        backend.put("shared", b"x")
        assert "shared" in backend.url("shared", 60)

    def test_the_backend_hash_identifies_the_store_without_secrets(self, backend):
        assert len(backend.backend_hash) == 128
        assert backend.backend_hash == type(backend)(backend.conf).backend_hash
