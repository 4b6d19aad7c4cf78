"""The storage interface (bakthat/backends/base.py): key checks, identity, the default
capabilities, put's size and SHA-256 checks, and the verified reader every remote store
reads through.

The layered methods run on the in-memory backend (bakthat.testing.memory, a real
backend). VerifiedReader is abstract: its tests give it a store made of bytes
(BytesStore below), the only way to break a stream at an exact byte; the real stores'
readers are tested against their servers in test_s3_transfer.py, test_swift_read.py
and test_vault_transfer.py.
"""

from __future__ import annotations

import hashlib
import io
import logging

import pytest

from bakthat.backends import base, get_backend
from bakthat.backends._progress import Progress
from bakthat.backends._retry import RetryPolicy
from bakthat.errors import AlreadyExistsError, ConfigError, IntegrityError, StorageError
from bakthat.testing import memory


@pytest.fixture
def store():
    memory.reset()
    yield get_backend("memory", {})
    memory.reset()


# --------------------------------------------------------------------------- keys and identity


@pytest.mark.parametrize("key", ["a", "dir/file.tar.zst.age", "x..y", ".hidden", "a/.b/c", "héllo wörld"])
def test_a_relative_key_without_dot_segments_is_accepted(key):
    assert base.Backend.check_key(key) == key


@pytest.mark.parametrize("key", ["", "/etc/passwd", "..", "../up", "a/../b", "a/./b", "a/.", "a//b", "a\\b", "nul\x00l"])
def test_an_empty_absolute_or_dotted_key_is_a_config_error_quoting_it(key):
    with pytest.raises(ConfigError) as caught:
        base.Backend.check_key(key)
    assert str(caught.value) == f"invalid storage key {key!r}"


def test_the_backend_hash_is_the_sha512_of_name_and_container(store):
    assert store.backend_hash == hashlib.sha512(f"memory:{store.container}".encode()).hexdigest()
    assert store.legacy_backend_hash is None


def test_the_base_declares_no_capability_and_its_defaults_do_nothing_or_refuse():
    capabilities = ("cheap_reads", "conditional_writes", "lists_stale_uploads", "archive_retrievals", "vault_inventory")
    assert [getattr(base.Backend, name) for name in capabilities] == [False] * 5
    plain = base.Backend({"any": "setting"})
    assert plain.conf == {"any": "setting"}
    row = object()
    assert plain.refresh(row) is row
    assert plain.prepare_read("key") is None
    with pytest.raises(ConfigError, match="destination base has no incomplete uploads"):
        plain.stale_uploads()
    with pytest.raises(ConfigError, match="no incomplete uploads"):
        plain.abort_upload(row)
    assert isinstance(base.Backend.from_settings({}), base.Backend)


# --------------------------------------------------------------------------- put and exists


def test_put_stores_bytes_or_a_stream_and_exists_sees_them(store):
    assert not store.exists("a")
    info = store.put("a", b"bytes")
    store.put("b", io.BytesIO(b"stream" * 300_000))
    assert info.size == 5 and store.exists("a") and store.exists("b")
    assert memory.objects() == {"a": b"bytes", "b": b"stream" * 300_000}


def test_put_with_the_declared_size_and_sha256_stores_the_object(store):
    data = b"declared"
    store.put("ok", data, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    assert memory.objects()["ok"] == data


def test_a_source_shorter_than_declared_is_refused_and_nothing_is_stored(store):
    with pytest.raises(IntegrityError, match="short: source gave 3 bytes, 4 were declared"):
        store.put("short", b"abc", size=4)
    assert not store.exists("short")


def test_a_source_with_another_sha256_is_refused_and_nothing_is_stored(store):
    with pytest.raises(IntegrityError, match="changed: SHA-256 of the data does not match"):
        store.put("changed", b"abc", sha256=hashlib.sha256(b"abd").hexdigest())
    assert not store.exists("changed")


def test_put_checks_the_key_before_storing(store):
    with pytest.raises(ConfigError, match="invalid storage key"):
        store.put("../escape", b"x")
    assert memory.objects() == {}


def test_put_never_replaces_an_existing_object(store):
    store.put("once", b"first")
    with pytest.raises(AlreadyExistsError):
        store.put("once", b"second")
    assert memory.objects()["once"] == b"first"


# --------------------------------------------------------------------------- the verified reader


class Breaking(io.BytesIO):
    """A response body that raises ``error`` once its position reaches ``at``."""

    def __init__(self, data: bytes, at: int | None = None, error: BaseException | None = None):
        super().__init__(data)
        self.at = at
        self.error = error or ConnectionResetError("connection reset by peer")

    def read(self, size=-1):
        if self.at is not None and self.tell() >= self.at:
            raise self.error
        if self.at is not None and size and size > 0:
            size = min(size, self.at - self.tell())
        return super().read(size)


class BytesStore(base.VerifiedReader):
    """A VerifiedReader over bytes; ``current`` is what a resumed request would find."""

    def __init__(self, data: bytes, *, size=None, sha256=None, body=None, progress=None, attempts=3):
        super().__init__("store://bucket/key", len(data) if size is None else size, progress)
        self.current = data
        self._body = body if body is not None else io.BytesIO(data)
        self._sha = sha256
        self.policy = RetryPolicy(attempts=attempts, base_delay=0.0, max_delay=0.0)
        self.resumed_at: list[int] = []

    def expected_sha256(self):
        return self._sha

    def resume(self):
        self.resumed_at.append(self.position)
        if self.current is None:
            raise AlreadyExistsError("reading store://bucket/key: the object changed meanwhile (412)")
        self._body = io.BytesIO(self.current[self.position :])

    def read_raw(self, size):
        return self.read_resuming(
            size,
            self.policy,
            lambda exc: isinstance(exc, ConnectionError),
            lambda exc: StorageError(f"reading {self.described} failed ({type(exc).__name__})"),
            lambda exc: False,
        )


DATA = bytes(range(256)) * 4096  # 1 MiB


def test_a_complete_read_with_the_right_sha256_returns_every_byte():
    reader = BytesStore(DATA, sha256=hashlib.sha256(DATA).hexdigest())
    assert reader.read() == DATA
    assert reader.hexdigest() == hashlib.sha256(DATA).hexdigest() and reader.position == len(DATA)
    assert reader.read(10) == b""  # verified: the stream is over


def test_readinto_and_small_reads_see_the_same_bytes():
    reader = BytesStore(DATA, sha256=hashlib.sha256(DATA).hexdigest())
    buffer = bytearray(70_000)
    received = bytearray()
    while n := reader.readinto(buffer):
        received += buffer[:n]
    assert bytes(received) == DATA


def test_a_sha256_mismatch_names_the_object():
    reader = BytesStore(DATA, sha256=hashlib.sha256(b"other").hexdigest())
    with pytest.raises(IntegrityError) as caught:
        reader.read()
    assert str(caught.value) == "store://bucket/key: SHA-256 mismatch; the object is damaged (in transit or at rest)"


def test_without_a_recorded_sha256_only_the_length_is_checked():
    assert BytesStore(DATA, sha256=None).read() == DATA


def test_a_stream_shorter_than_the_object_names_both_lengths():
    reader = BytesStore(DATA[:-10], size=len(DATA))
    with pytest.raises(IntegrityError, match=f"store://bucket/key: read {len(DATA) - 10} bytes, the object has {len(DATA)}"):
        reader.read()


def test_bytes_past_the_objects_size_are_refused_at_once():
    reader = BytesStore(DATA, size=1000)
    with pytest.raises(IntegrityError, match="store://bucket/key: more bytes than the object's 1000"):
        reader.read(4096)


def test_a_store_adds_its_own_check_at_the_end_and_its_own_noun():
    class Archive(BytesStore):
        noun = "archive"
        damaged = "the downloaded archive is damaged"
        checked = 0

        def check_more(self):
            type(self).checked += 1
            raise IntegrityError("extra check failed")

    with pytest.raises(IntegrityError, match="extra check failed"):
        Archive(DATA).read()
    with pytest.raises(IntegrityError, match="SHA-256 mismatch; the downloaded archive is damaged"):
        Archive(DATA, sha256="0" * 64).read()
    with pytest.raises(IntegrityError, match="the archive has 5"):
        Archive(b"abc", size=5).read()
    assert Archive.checked == 1  # only after the length and the SHA-256 passed


def test_progress_counts_the_bytes_and_logs_100_percent_once_verified(caplog):
    caplog.set_level(logging.INFO, logger="bakthat.backends")
    counted = []
    reader = BytesStore(DATA, progress=Progress("Download", len(DATA), counted.append))
    reader.read()
    assert sum(counted) == len(DATA)
    assert [r.getMessage() for r in caplog.records][-1] == "Download completion: 100%"


def test_a_stream_broken_by_a_transient_error_resumes_where_it_broke():
    reader = BytesStore(DATA, sha256=hashlib.sha256(DATA).hexdigest(), body=Breaking(DATA, at=300_001))
    assert reader.read() == DATA
    assert reader.resumed_at == [300_001]


def test_a_resume_that_finds_the_object_changed_is_an_integrity_error():
    reader = BytesStore(DATA, body=Breaking(DATA, at=5000))
    reader.current = None  # the resumed request's If-Match fails
    with pytest.raises(IntegrityError) as caught:
        reader.read()
    assert str(caught.value) == "store://bucket/key changed while it was being read"


def test_a_resume_that_finds_another_version_fails_the_sha256():
    reader = BytesStore(DATA, sha256=hashlib.sha256(DATA).hexdigest(), body=Breaking(DATA, at=5000))
    reader.current = DATA[:5000] + b"\x00" * (len(DATA) - 5000)
    with pytest.raises(IntegrityError, match="SHA-256 mismatch"):
        reader.read()


def test_a_stream_that_keeps_breaking_gives_up_after_the_policys_attempts():
    class Endless(BytesStore):
        def resume(self):
            super().resume()
            self._body = Breaking(self.current[self.position :], at=0)

    reader = Endless(DATA, body=Breaking(DATA, at=10), attempts=3)
    with pytest.raises(StorageError, match="reading store://bucket/key failed \\(ConnectionResetError\\)"):
        reader.read()
    assert reader.resumed_at == [10, 10]


def test_a_permanent_error_is_translated_without_a_retry():
    reader = BytesStore(DATA, body=Breaking(DATA, at=10, error=PermissionError("denied")))
    with pytest.raises(StorageError, match="PermissionError"):
        reader.read()
    assert reader.resumed_at == []


def test_close_closes_the_body_once():
    body = io.BytesIO(DATA)
    reader = BytesStore(DATA, body=body)
    reader.close()
    reader.close()
    assert body.closed and reader.closed
