"""Destination memory (bakthat.testing.memory): the conformance suite, in-process state, uploads,
conditional writes, KeyValue."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

import bakthat
from bakthat.backends import get_backend
from bakthat.errors import AlreadyExistsError, NotFoundError, StorageError
from bakthat.testing import memory
from bakthat.testing.memory import MemoryBackend
from bakthat.testing.conformance import conformance_tests
from tests.conftest import snapshot


@pytest.fixture(autouse=True)
def empty_store():
    memory.reset()
    yield
    memory.reset()


TestMemoryConformance = conformance_tests(lambda tmp_path: get_backend("memory", {}))


def test_a_backup_to_memory_restores_exactly_in_the_same_process(tree, tmp_path):
    row = bakthat.backup(str(tree), destination="memory", prompt="no")
    assert row.stored_filename in memory.objects()
    bakthat.restore("mydir", destination="memory", target=str(tmp_path / "out"), prompt="no")
    assert snapshot(tmp_path / "out" / "mydir") == snapshot(tree)


def test_every_instance_of_a_process_shares_one_store_and_reset_empties_it():
    get_backend("memory", {}).put("shared", b"x")
    assert get_backend("memory", {}).exists("shared")
    memory.reset()
    assert not get_backend("memory", {}).exists("shared")


def test_another_process_sees_an_empty_store():
    get_backend("memory", {}).put("only-here", b"x")
    code = "from bakthat.backends import get_backend; print(sorted(i.key for i in get_backend('memory', {}).list()))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_keyvalue_works_on_memory_because_it_declares_conditional_writes():
    from bakthat.helper import KeyValue

    first, second = KeyValue(destination="memory"), KeyValue(destination="memory")
    first.set_key("counter", {"n": 1})
    assert second.get_key("counter") == {"n": 1}
    second.set_key("counter", {"n": 2})
    assert first.get_key("counter") == {"n": 2}


def test_objects_is_a_copy_of_what_the_store_holds():
    MemoryBackend().put("a", b"1")
    snapshot_of_store = memory.objects()
    snapshot_of_store["b"] = b"2"
    assert memory.objects() == {"a": b"1"}


def test_nothing_is_visible_before_commit_and_a_committed_upload_is_closed():
    upload = MemoryBackend().open_upload("k", {"owner": 7})
    upload.write(b"ab")
    upload.write(b"cd")
    assert memory.objects() == {}
    info = upload.commit()
    assert (info.key, info.size) == ("k", 4) and memory.objects() == {"k": b"abcd"}
    assert info.metadata == {"owner": "7", "etag": hashlib.sha256(b"abcd").hexdigest()}
    for late in (lambda: upload.write(b"x"), upload.commit):
        with pytest.raises(StorageError, match="^memory store: the upload of k is committed$"):
            late()


def test_an_aborted_upload_cannot_be_written_or_committed():
    upload = MemoryBackend().open_upload("k")
    upload.abort()
    with pytest.raises(StorageError, match="the upload of k is aborted"):
        upload.commit()
    assert memory.objects() == {}


def test_an_existing_key_is_refused_when_the_upload_opens_and_again_at_commit():
    backend = MemoryBackend()
    racing = backend.open_upload("k")
    backend.put("k", b"first")
    with pytest.raises(AlreadyExistsError, match="^memory store: k already exists; nothing was replaced$"):
        backend.open_upload("k")
    racing.write(b"second")
    with pytest.raises(AlreadyExistsError):
        racing.commit()
    assert memory.objects() == {"k": b"first"}


def test_a_conditional_commit_of_a_deleted_object_is_refused():
    backend = MemoryBackend()
    backend.put("k", b"v1")
    upload = backend.open_upload("k", if_match=backend.stat("k").metadata["etag"])
    backend.delete("k")
    upload.write(b"v2")
    with pytest.raises(AlreadyExistsError, match="changed or deleted meanwhile"):
        upload.commit()
    assert memory.objects() == {}


def test_a_reader_carries_the_etag_of_the_version_it_reads():
    backend = MemoryBackend()
    backend.put("k", b"v1")
    with backend.open_read("k") as reader:
        assert reader.etag == hashlib.sha256(b"v1").hexdigest() and reader.read() == b"v1"


def test_a_missing_key_is_not_found_naming_it_and_a_url_names_a_stored_key():
    backend = MemoryBackend()
    with pytest.raises(NotFoundError, match="^memory store: no object gone/key$"):
        backend.url("gone/key")
    backend.put("here", b"x")
    assert backend.url("here") == "memory:///here" and backend.container == "memory://"
    assert backend.cheap_reads and backend.conditional_writes and not backend.lists_stale_uploads
