"""The S3 backend's streams (bakthat/backends/_s3_transfer.py) against a moto server: the
per-part checksums, the single PUT and the parallel multipart upload, aborting, and the
verified, resumable read.

Faults are injected at our own layer (tests/backends/s3_faults.py): moto neither
verifies checksums nor fails on demand.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
import tracemalloc
import zlib
from typing import Any

import pytest

from bakthat.backends import _s3_transfer, get_backend, s3
from bakthat.errors import IntegrityError, StorageError
from bakthat.testing.conformance import InterruptingReader
from tests.backends.conftest import s3_client
from tests.backends.s3_faults import BUCKET, MiB, BreakingBody, ClientError, conf, install_faulty, uploads_in_progress


@pytest.fixture
def backend(aws):
    return get_backend("s3", {"s3_bucket": BUCKET, "s3_prefix": "some/prefix"})


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        # published digests of b"123456789" (CRC32 check value) and b"abc" (FIPS 180 / RFC 1321)
        ("CRC32", {"ChecksumCRC32": "y/Q5Jg=="}),
        ("SHA256", {"ChecksumSHA256": "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="}),
        ("SHA1", {"ChecksumSHA1": "qZk+NkcGgWq6PiVxeFDCbJzQ2J0="}),
        ("MD5", {"ContentMD5": "kAFQmDzST7DWlj99KOF/cg=="}),
        ("none", {}),
    ],
)
def test_a_part_checksum_is_the_base64_digest_s3_expects(algorithm, expected):
    data = b"123456789" if algorithm == "CRC32" else b"abc"
    assert _s3_transfer.part_checksum(algorithm, data) == expected
    assert _s3_transfer.part_checksum(algorithm, memoryview(data)) == expected


def test_a_part_crc32_is_zlib_ngs_and_equals_the_standard_librarys():
    from zlib_ng import zlib_ng

    assert _s3_transfer.crc32 is zlib_ng.crc32  # the installed requirement, not the slow fallback
    for size in (0, 1, 5 * 1024 + 1, MiB + 7):  # the large ones run with the GIL released
        data = bytearray(os.urandom(size))
        expected = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
        assert _s3_transfer.part_checksum("CRC32", data) == {"ChecksumCRC32": expected}


# --------------------------------------------------------------------------- uploads


def test_a_large_stream_goes_up_in_parts_with_checksums_and_its_sha256_tagged(aws, monkeypatch):
    made = install_faulty(monkeypatch)
    store = get_backend("s3", conf())
    data = os.urandom(12 * MiB + 123)
    upload = store.open_upload("big.bin")
    for offset in range(0, len(data), 1 << 16):
        upload.write(data[offset : offset + (1 << 16)])
    info = upload.commit()
    assert info.size == len(data)
    assert [part["PartNumber"] for part in sorted(made[0].parts, key=lambda p: p["PartNumber"])] == [1, 2, 3]
    assert all("ChecksumCRC32" in part for part in made[0].parts)
    head = s3_client().head_object(Bucket=BUCKET, Key="big.bin")
    assert head["ETag"].endswith('-3"')
    tags = s3_client().get_object_tagging(Bucket=BUCKET, Key="big.bin")["TagSet"]
    assert {"Key": "bakthat-sha256", "Value": hashlib.sha256(data).hexdigest()} in tags
    with store.open_read("big.bin") as stream:
        assert stream.read() == data
    assert uploads_in_progress() == []


def test_a_small_object_is_one_put_with_its_sha256_in_the_metadata(backend):
    backend.put("small", b"tiny")
    head = s3_client().head_object(Bucket=BUCKET, Key="some/prefix/small")
    assert head["Metadata"]["bakthat-sha256"] == hashlib.sha256(b"tiny").hexdigest()


@pytest.mark.parametrize(
    ("settings", "field"),
    [({"checksum_algorithm": "SHA256"}, "ChecksumSHA256"), ({"checksum_mode": "when_required"}, "ContentMD5")],
)
def test_the_per_part_checksum_follows_the_profile(aws, monkeypatch, settings, field):
    made = install_faulty(monkeypatch)
    store = get_backend("s3", conf(**settings))
    data = os.urandom(6 * MiB)
    store.put("x.bin", data)
    assert made[0].parts and all(field in part for part in made[0].parts)
    with store.open_read("x.bin") as stream:
        assert stream.read() == data


def test_part_sizes_grow_so_a_stream_of_unknown_length_fits_in_10000_parts(backend):
    upload = backend.open_upload("never-written")
    sizes = []
    for number in (0, 299, 300, 600, 9999):
        upload._part_number = number
        sizes.append(upload._current_part_size() // MiB)
    part_size = upload.part_size
    upload.abort()
    assert part_size == 5 * MiB  # the default
    assert sizes == [5, 5, 10, 15, 170]
    total = sum(part_size * (1 + n // _s3_transfer.PART_GROWTH_EVERY) for n in range(_s3_transfer.MAX_PARTS))
    assert total > 880 * 10**9  # what the 8 MiB parts of bakthat <= 2026-12-01 reached


class SlowSink:
    """A fake S3 client that keeps nothing, takes its time, and counts parts in flight."""

    def __init__(self):
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()

    def create_multipart_upload(self, **kwargs):
        return {"UploadId": "fake"}

    def upload_part(self, **kwargs):
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        time.sleep(0.02)
        with self.lock:
            self.in_flight -= 1
        return {"ETag": f'"{kwargs["PartNumber"]}"'}

    def complete_multipart_upload(self, **kwargs):
        return {"ETag": '"done-1"'}

    def put_object_tagging(self, **kwargs):
        return {}

    def head_object(self, **kwargs):
        raise ClientError("404", 404)

    def head_bucket(self, **kwargs):
        return {}


def stream_mebibytes(monkeypatch, name: str, mebibytes: int) -> tuple[SlowSink, Any, int]:
    """Stream ``mebibytes`` MiB through an upload to a slow fake S3 (5 MiB parts, 3 threads);
    return the sink, the committed upload and the peak of traced memory."""
    sink = SlowSink()
    store = s3.Backend({"s3_bucket": "b", "part_size": "5MiB", "concurrency": 3})
    store.client = sink
    monkeypatch.setattr(store, "verify_committed", lambda key, size, digest, etag: s3.base.ObjectInfo(key, size))
    chunk = os.urandom(MiB)
    tracemalloc.start()
    try:
        upload = store.open_upload(name)
        for _ in range(mebibytes):
            upload.write(chunk)
        upload.commit()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return sink, upload, peak


def test_memory_stays_bounded_by_concurrency_and_part_size(monkeypatch):
    sink, _, peak = stream_mebibytes(monkeypatch, "huge", 200)
    assert sink.max_in_flight <= 3
    # (concurrency + 1) parts of 5 MiB: three in flight and one filling; plus the caller's chunk
    assert peak < (3 + 1) * 5 * MiB + 4 * MiB, f"peak {peak / MiB:.1f} MiB"  # measured: 20.1 MiB


def test_memory_stays_bounded_when_parts_grow(monkeypatch):
    """A buffer replaced by a larger one when parts grow is freed (nothing keeps it)."""
    monkeypatch.setattr(_s3_transfer, "PART_GROWTH_EVERY", 4)
    # 4 parts of 5 MiB, 4 of 10 MiB, 4 of 15 MiB
    _, upload, peak = stream_mebibytes(monkeypatch, "growing", 4 * 5 + 4 * 10 + 4 * 15)
    assert upload._part_number == 12
    # at most (concurrency + 1) buffers alive, the largest 15 MiB (the old code kept the replaced
    # buffers referenced by finished futures: 96 MiB measured)
    assert peak < (3 + 1) * 15 * MiB + 4 * MiB, f"peak {peak / MiB:.1f} MiB"


class KeepingSink(SlowSink):
    """A fake S3 client that keeps every part's body object and the CRC-32 it had when sent."""

    def __init__(self):
        super().__init__()
        self.bodies: list = []
        self.sent: dict[int, int] = {}

    def upload_part(self, **kwargs):
        self.sent[kwargs["PartNumber"]] = zlib.crc32(kwargs["Body"])
        self.bodies.append(kwargs["Body"])  # held: a buffer allocated per part could not be freed nor reused
        return super().upload_part(**kwargs)


def test_a_long_upload_reuses_at_most_concurrency_plus_one_part_buffers_and_sends_each_part_intact(monkeypatch):
    sink = KeepingSink()
    store = s3.Backend({"s3_bucket": "b", "part_size": "5MiB", "concurrency": 3})
    store.client = sink
    monkeypatch.setattr(store, "verify_committed", lambda key, size, digest, etag: s3.base.ObjectInfo(key, size))
    upload = store.open_upload("long")
    base = os.urandom(MiB)
    expected: list[int] = []
    crc = 0
    for number in range(24 * 5 + 3):  # 24 whole parts of 5 MiB and a last one of 3 MiB
        chunk = number.to_bytes(8, "big") + base[8:]  # every part's bytes differ
        crc = zlib.crc32(chunk, crc)
        if number % 5 == 4:
            expected.append(crc)
            crc = 0
        upload.write(chunk)
    expected.append(crc)
    upload.commit()
    assert [sink.sent[number] for number in sorted(sink.sent)] == expected  # 25 parts, none overwritten in flight
    distinct = {id(body) for body in sink.bodies}
    assert len(sink.bodies) == 25
    assert len(distinct) <= 3 + 1
    assert upload.part_buffers <= 3 + 1


def test_ctrl_c_during_an_upload_aborts_it(backend):
    with pytest.raises(KeyboardInterrupt):
        backend.put("interrupted", InterruptingReader(40 * MiB))
    assert uploads_in_progress() == []
    assert not backend.exists("interrupted")


def test_an_aborted_upload_takes_no_more_data_and_stores_nothing(backend):
    upload = backend.open_upload("given-up")
    upload.write(b"some bytes")
    upload.abort()
    upload.abort()  # idempotent
    with pytest.raises(StorageError, match="upload of given-up is aborted"):
        upload.write(b"more")
    assert not backend.exists("given-up")


def test_upload_progress_counts_every_byte_sent(aws):
    store = get_backend("s3", conf())
    counted = []
    upload = store.open_upload("counted", progress=counted.append)
    upload.write(os.urandom(11 * MiB))
    upload.commit()
    assert sum(counted) == 11 * MiB and len(counted) == 3  # two 5 MiB parts and the last 1 MiB


# --------------------------------------------------------------------------- reads


def test_a_corrupted_read_of_a_single_put_object_is_caught_by_the_reader(aws, monkeypatch):
    get_backend("s3", conf()).put("k", os.urandom(1000))
    install_faulty(monkeypatch, corrupt_get=True)
    with pytest.raises(IntegrityError), get_backend("s3", conf()).open_read("k") as stream:
        stream.read()


def test_a_download_broken_midway_resumes_with_a_ranged_get(aws, monkeypatch):
    data = os.urandom(3 * MiB)
    get_backend("s3", conf()).put("resumable", data)
    made = install_faulty(monkeypatch)
    store = get_backend("s3", conf())
    calls = []
    client = store.client
    real_get = client._client.get_object

    def get_object(**kwargs):
        calls.append(kwargs.get("Range"))
        response = real_get(**kwargs)
        if len(calls) == 1:
            response["Body"] = BreakingBody(response["Body"], MiB + 5)
        return response

    client.get_object = get_object
    with store.open_read("resumable") as stream:
        received = b"".join(iter(lambda: stream.read(256 * 1024), b""))
    assert received == data
    assert calls == [None, f"bytes={MiB + 5}-"]
    assert made


def test_a_resumed_read_of_an_object_replaced_meanwhile_is_an_integrity_error(aws, monkeypatch):
    get_backend("s3", conf()).put("replaced", os.urandom(2 * MiB))
    install_faulty(monkeypatch)
    store = get_backend("s3", conf())
    real_get = store.client._client.get_object
    first = []

    def get_object(**kwargs):
        response = real_get(**kwargs)
        if not first:
            first.append(kwargs)
            response["Body"] = BreakingBody(response["Body"], MiB)
            s3_client().put_object(Bucket=BUCKET, Key="replaced", Body=b"another writer's version")
        return response

    store.client.get_object = get_object
    with pytest.raises(IntegrityError, match=f"s3://{BUCKET}/replaced changed while it was being read"):
        with store.open_read("replaced") as stream:
            while stream.read(256 * 1024):
                pass


def test_a_stream_shorter_than_the_object_is_an_integrity_error_naming_it(aws, monkeypatch):
    get_backend("s3", conf()).put("short", os.urandom(1000))
    install_faulty(monkeypatch)
    store = get_backend("s3", conf())
    real_get = store.client._client.get_object

    def truncated(**kwargs):
        response = real_get(**kwargs)
        response["Body"] = BreakingBody(response["Body"], 10**9)
        response["Body"].body.read(10)  # ten bytes lost, and no error: the length check must see it
        return response

    store.client.get_object = truncated
    with pytest.raises(IntegrityError, match=f"s3://{BUCKET}/short: read 990 bytes, the object has 1000"):
        with store.open_read("short") as stream:
            stream.read()


def test_a_read_reports_its_bytes_and_its_sha256(aws):
    data = os.urandom(300_000)
    store = get_backend("s3", conf())
    store.put("counted", data)
    counted = []
    store.progress = counted.append
    with store.open_read("counted") as stream:
        buffer = bytearray(100_000)
        received = b""
        while n := stream.readinto(buffer):
            received += bytes(buffer[:n])
        assert stream.hexdigest() == hashlib.sha256(data).hexdigest()
    assert received == data and sum(counted) == len(data)
