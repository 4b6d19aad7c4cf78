"""Swift's upload half (bakthat/backends/_swift_upload.py) against the real Swift: one PUT
below a segment, a Static Large Object of checked segments above (nested past the
manifest limit), bounded memory, aborting, refusing an existing object, and the
segment groups a killed upload leaves behind.  Segments are 1 MiB here, so a few MiB
exercise the segmenting.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import tracemalloc

import pytest

from bakthat.backends import get_backend
from bakthat.errors import AlreadyExistsError, StorageError
from bakthat.testing.conformance import InterruptingReader
from tests.backends.swift_faults import MiB, install_faulty, objects_of, segments_of, small_segments
from tests.services import swift_connection


@pytest.fixture
def backend(swift_conf):
    return get_backend("swift", swift_conf)


def test_a_large_stream_becomes_a_static_large_object_with_checked_segments(swift_conf, monkeypatch):
    faults = install_faulty(monkeypatch)
    store = get_backend("swift", small_segments(swift_conf))
    data = os.urandom(5 * MiB + 123)
    upload = store.open_upload("big.bin")
    for offset in range(0, len(data), 1 << 16):
        upload.write(data[offset : offset + (1 << 16)])
    info = upload.commit()
    assert info.size == len(data)
    assert len(set(faults.segment_puts)) == 6
    connection = swift_connection()
    head = connection.head_object(swift_conf["swift_container"], "big.bin")
    assert head["x-static-large-object"] == "True"
    assert head["x-object-meta-bakthat-sha256"] == hashlib.sha256(data).hexdigest()
    _, manifest = connection.get_object(swift_conf["swift_container"], "big.bin", query_string="multipart-manifest=get")
    entries = json.loads(manifest)
    for entry, offset in zip(entries, range(0, len(data), MiB)):
        assert entry["hash"] == hashlib.md5(data[offset : offset + MiB]).hexdigest()  # noqa: S324
    with store.open_read("big.bin") as stream:
        assert stream.read() == data


def test_a_small_object_is_one_put_with_its_sha256_and_no_segments(backend, swift_conf):
    backend.put("small", b"tiny")
    head = swift_connection().head_object(swift_conf["swift_container"], "small")
    assert head["x-object-meta-bakthat-sha256"] == hashlib.sha256(b"tiny").hexdigest()
    assert "x-static-large-object" not in head
    assert segments_of(swift_conf) == []


def test_more_segments_than_a_manifest_holds_are_nested_under_sub_manifests(swift_conf):
    store = get_backend("swift", small_segments(swift_conf))
    store.max_segments = 2  # the cluster says 1000; nesting works the same at any limit
    data = os.urandom(5 * MiB + 1)
    store.put("nested.bin", data)
    _, manifest = swift_connection().get_object(swift_conf["swift_container"], "nested.bin", query_string="multipart-manifest=get")
    assert len(json.loads(manifest)) == 2 and all(entry.get("sub_slo") for entry in json.loads(manifest))
    with store.open_read("nested.bin") as stream:
        assert stream.read() == data
    store.delete("nested.bin")
    assert objects_of(swift_conf) == [] and segments_of(swift_conf) == []


def test_memory_stays_bounded_by_concurrency_and_segment_size(swift_conf):
    store = get_backend("swift", small_segments(swift_conf, swift_segment_size="2MiB", swift_concurrency=2))
    chunk = os.urandom(MiB)
    tracemalloc.start()
    try:
        upload = store.open_upload("huge")
        for _ in range(64):  # 64 MiB streamed
            upload.write(chunk)
        upload.commit()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # (concurrency + 2) segments of 2 MiB: two in flight, the one filling and, for a moment,
    # its joined copy; plus the caller's chunk and what the HTTP stack holds
    assert peak < (2 + 2) * 2 * MiB + 2 * MiB, f"peak {peak / MiB:.1f} MiB"
    assert store.stat("huge").size == 64 * MiB


def test_ctrl_c_during_an_upload_aborts_it_and_removes_its_segments(swift_conf):
    store = get_backend("swift", small_segments(swift_conf))
    with pytest.raises(KeyboardInterrupt):
        store.put("interrupted", InterruptingReader(5 * MiB))
    assert not store.exists("interrupted")
    assert segments_of(swift_conf) == []


def test_an_existing_object_is_refused_even_when_it_appears_during_the_upload(backend):
    upload = backend.open_upload("raced")
    upload.write(b"mine")
    backend.put("raced", b"theirs")
    with pytest.raises(AlreadyExistsError):
        upload.commit()
    upload.abort()
    with backend.open_read("raced") as stream:
        assert stream.read() == b"theirs"


def test_an_object_of_exactly_one_segment_is_one_segment_and_its_manifest(swift_conf, monkeypatch):
    faults = install_faulty(monkeypatch)
    store = get_backend("swift", small_segments(swift_conf))
    data = os.urandom(MiB)
    store.put("exact", data)
    assert len(faults.segment_puts) == 1 and len(segments_of(swift_conf)) == 1
    with store.open_read("exact") as stream:
        assert stream.read() == data


def test_upload_progress_counts_every_byte(swift_conf):
    store = get_backend("swift", small_segments(swift_conf))
    counted = []
    upload = store.open_upload("counted", progress=counted.append)
    upload.write(os.urandom(2 * MiB + 10))
    upload.commit()
    assert sum(counted) == 2 * MiB + 10


def test_an_aborted_upload_takes_no_more_data_and_deletes_what_it_stored(swift_conf):
    store = get_backend("swift", small_segments(swift_conf))
    upload = store.open_upload("given-up")
    upload.write(os.urandom(2 * MiB + 1))
    upload.abort()
    upload.abort()  # idempotent
    with pytest.raises(StorageError, match="upload of given-up is aborted"):
        upload.write(b"more")
    assert objects_of(swift_conf) == [] and segments_of(swift_conf) == []


def test_segments_a_killed_upload_left_are_found_and_deleted(swift_conf, cli_main, capsys, tmp_path):
    store = get_backend("swift", small_segments(swift_conf))
    store.put("kept", os.urandom(2 * MiB))  # a complete large object: its segments stay
    killed = store.open_upload("killed.tar.zst")
    killed.write(os.urandom(3 * MiB))  # three segments sent, then the process "dies"
    for future in killed._futures:
        future.result()
    time.sleep(1.5)  # listings give seconds; the interval below must be over
    assert len(segments_of(swift_conf)) == 2 + 3
    stale = store.stale_uploads(older_than=0)
    assert [(upload.key, len(upload.segments)) for upload in stale] == [("killed.tar.zst", 3)]
    config = tmp_path / "bakthat.yml"
    config.write_text(json.dumps({"default": small_segments(swift_conf)}))
    assert cli_main(["cleanup_uploads", "-d", "swift", "-c", str(config), "--older-than", "1s"]) == 0, capsys.readouterr().err
    assert "killed.tar.zst" in capsys.readouterr().out
    assert len(segments_of(swift_conf)) == 2
    with store.open_read("kept") as stream:
        assert len(stream.read()) == 2 * MiB


def test_the_upload_s_sha256_is_the_one_the_pipeline_records_so_the_stream_is_hashed_once(swift_conf):
    from bakthat.pipeline import HashingWriter

    store = get_backend("swift", small_segments(swift_conf))
    data = os.urandom(2 * MiB + 7)
    upload = store.open_upload("hashed-once.bin")
    counted = HashingWriter(upload)
    for offset in range(0, len(data), 1 << 16):
        counted.write(data[offset : offset + (1 << 16)])
    upload.commit()
    assert counted._hash is upload.running_sha256, "one hash object for the pipeline and the upload"
    head = swift_connection().head_object(swift_conf["swift_container"], "hashed-once.bin")
    assert counted.hexdigest() == head["x-object-meta-bakthat-sha256"] == hashlib.sha256(data).hexdigest()
