"""The conformance suite every storage backend passes, for bakthat's backends and yours.

A backend's test module gives the suite a fresh, empty backend per test, in one of two
ways.  Three lines::

    from bakthat.testing.conformance import conformance_tests
    from mypackage import MyBackend

    TestMyBackend = conformance_tests(lambda tmp_path: MyBackend({"my_root": str(tmp_path)}))

or, when the backend needs other fixtures (a server), a subclass with a ``backend``
fixture::

    class TestMyBackend(BackendConformance):
        @pytest.fixture
        def backend(self, my_server):
            return MyBackend({"my_url": my_server})

The tests check the contract of :class:`bakthat.backends.base.Backend`: objects round
trip byte for byte; nothing is visible before ``commit``; an existing object is never
replaced; a failed, aborted or interrupted upload leaves nothing; a missing key is
NotFoundError everywhere; keys that could escape are refused; listings are sorted and
filtered; declared capabilities hold (``conditional_writes``: compare-and-swap writes
and deletes; ``lists_stale_uploads``: a listing of incomplete uploads).  A capability
a backend does not declare is skipped with a reason naming it.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bakthat.backends.base import Backend
from bakthat.errors import AlreadyExistsError, ConfigError, IntegrityError, NotFoundError

MiB = 1 << 20
CAPABILITIES = ("cheap_reads", "conditional_writes", "lists_stale_uploads", "archive_retrievals", "vault_inventory")


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
        self.sent += MiB
        return b"\x00" * MiB


def _read(backend: Backend, key: str) -> bytes:
    """Return an object's bytes, after :meth:`~Backend.prepare_read` (an object written
    with ``open_upload`` may sit in an archive class)."""
    backend.prepare_read(key, wait=True)
    with backend.open_read(key) as stream:
        return stream.read()


class BackendConformance:
    """The suite: subclass it and provide a ``backend`` fixture returning a fresh, empty backend."""

    def test_an_object_round_trips_byte_for_byte(self, backend: Backend) -> None:
        data = os.urandom(3 * MiB + 17)
        info = backend.put("a/b/object.bin", io.BytesIO(data))
        assert info.size == len(data)
        with backend.open_read("a/b/object.bin") as stream:
            assert stream.read() == data
        assert backend.stat("a/b/object.bin").size == len(data)
        assert backend.exists("a/b/object.bin")

    def test_an_empty_object_round_trips(self, backend: Backend) -> None:
        backend.put("empty", b"")
        with backend.open_read("empty") as stream:
            assert stream.read() == b""

    def test_listing_is_sorted_filtered_by_prefix_and_shows_committed_objects_only(self, backend: Backend) -> None:
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

    def test_a_missing_key_raises_not_found_everywhere(self, backend: Backend) -> None:
        for call in (backend.open_read, backend.stat, backend.delete):
            with pytest.raises(NotFoundError):
                call("missing/key")
        assert not backend.exists("missing/key")

    @pytest.mark.parametrize("key", ["with space.tar.zst", "ünïcödé/名前.age", "dots.in.name..x", "-dash", "a/b/c/d/e"])
    def test_odd_but_valid_key_names_work(self, backend: Backend, key: str) -> None:
        backend.put(key, b"payload")
        with backend.open_read(key) as stream:
            assert stream.read() == b"payload"
        assert key in [info.key for info in backend.list()]

    @pytest.mark.parametrize("key", ["foo/../../baz", "../escape", "/absolute", "", "a//b", "nul\x00byte"])
    def test_keys_that_could_escape_are_refused(self, backend: Backend, key: str) -> None:
        with pytest.raises(ConfigError):
            backend.put(key, b"x")

    def test_an_upload_whose_checksum_does_not_match_fails_and_stores_nothing(self, backend: Backend) -> None:
        data = b"some bytes to store"
        wrong = bytearray(hashlib.sha256(data).digest())
        wrong[0] ^= 0x01
        with pytest.raises(IntegrityError):
            backend.put("checked", io.BytesIO(data), sha256=bytes(wrong).hex())
        assert not backend.exists("checked")
        assert list(backend.list()) == []

    def test_a_matching_checksum_is_accepted(self, backend: Backend) -> None:
        data = b"some bytes to store"
        backend.put("checked", io.BytesIO(data), sha256=hashlib.sha256(data).hexdigest(), size=len(data))
        assert backend.exists("checked")

    def test_a_source_shorter_than_declared_fails_and_stores_nothing(self, backend: Backend) -> None:
        with pytest.raises(IntegrityError):
            backend.put("short", ShortReader(b"x" * 100), size=142)
        assert not backend.exists("short")
        assert list(backend.list()) == []

    def test_an_existing_object_is_never_replaced(self, backend: Backend) -> None:
        backend.put("once", b"original")
        with pytest.raises(AlreadyExistsError):
            backend.put("once", b"replacement")
        with backend.open_read("once") as stream:
            assert stream.read() == b"original"

    def test_an_aborted_upload_leaves_nothing(self, backend: Backend) -> None:
        upload = backend.open_upload("aborted")
        upload.write(b"partial data")
        upload.abort()
        upload.abort()
        assert not backend.exists("aborted")
        assert list(backend.list()) == []

    def test_an_upload_interrupted_by_ctrl_c_leaves_nothing(self, backend: Backend) -> None:
        with pytest.raises(KeyboardInterrupt):
            backend.put("interrupted", InterruptingReader(3 * MiB))
        assert not backend.exists("interrupted")
        assert list(backend.list()) == []

    def test_delete_removes_the_object(self, backend: Backend) -> None:
        backend.put("gone", b"x")
        backend.delete("gone")
        assert not backend.exists("gone")
        with pytest.raises(NotFoundError):
            backend.open_read("gone")

    def test_a_url_is_given_for_a_stored_object(self, backend: Backend) -> None:
        backend.put("shared", b"x")
        assert "shared" in backend.url("shared", 60)

    def test_the_backend_hash_identifies_the_store_without_secrets(self, backend: Backend) -> None:
        assert len(backend.backend_hash) == 128
        assert backend.backend_hash == type(backend)(backend.conf).backend_hash

    def test_capabilities_are_declared_as_booleans(self, backend: Backend) -> None:
        declared = {name: getattr(backend, name) for name in CAPABILITIES}
        assert all(isinstance(value, bool) for value in declared.values()), declared

    def test_a_conditional_write_replaces_only_the_version_it_names(self, backend: Backend) -> None:
        if not backend.conditional_writes:
            pytest.skip(f"{type(backend).__name__} does not declare conditional_writes")
        backend.put("cas", b"first")
        first = backend.stat("cas").metadata["etag"]
        upload = backend.open_upload("cas", None, if_match=first)  # type: ignore[call-arg]
        upload.write(b"second")
        upload.commit()
        assert _read(backend, "cas") == b"second"
        stale = backend.open_upload("cas", None, if_match=first)  # type: ignore[call-arg]
        stale.write(b"lost update")
        with pytest.raises(AlreadyExistsError):
            stale.commit()
        stale.abort()
        assert _read(backend, "cas") == b"second"

    def test_a_conditional_delete_refuses_a_changed_object(self, backend: Backend) -> None:
        if not backend.conditional_writes:
            pytest.skip(f"{type(backend).__name__} does not declare conditional_writes")
        backend.put("cas", b"first")
        current = backend.stat("cas").metadata["etag"]
        with pytest.raises(AlreadyExistsError):
            backend.delete("cas", if_match='"not-the-etag"')  # type: ignore[call-arg]
        assert backend.exists("cas")
        backend.delete("cas", if_match=current)  # type: ignore[call-arg]
        assert not backend.exists("cas")

    def test_stale_uploads_are_listed_where_declared(self, backend: Backend) -> None:
        if not backend.lists_stale_uploads:
            with pytest.raises(ConfigError):
                backend.stale_uploads(0)
            return
        backend.put("committed", b"x")
        stale = backend.stale_uploads(0)
        assert all(hasattr(upload, "key") and hasattr(upload, "initiated") for upload in stale)
        assert "committed" not in [upload.key for upload in stale]


def conformance_tests(make_backend: Callable[[Path], Backend], name: str = "TestConformance") -> type[Any]:
    """Given ``make_backend(tmp_path)`` returning a fresh, empty backend, return a test class
    running :class:`BackendConformance` against it (assign it to a ``Test...`` name)."""

    def backend(self: Any, tmp_path: Path) -> Backend:
        return make_backend(tmp_path)

    return type(name, (BackendConformance,), {"backend": pytest.fixture(backend)})
