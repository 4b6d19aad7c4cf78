"""Swift's verified read (bakthat/backends/_swift_read.py) against the real Swift: the
SHA-256 bakthat recorded, the ETag's MD5 for an object another tool wrote (and none for
another tool's large object, whose ETag is not its content's MD5), resuming a broken
stream, and an object replaced meanwhile.  Corruption and breaks are injected at our
own layer (tests/backends/swift_faults.py).
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from bakthat.backends import get_backend
from bakthat.errors import IntegrityError
from tests.backends.swift_faults import Body, MiB, install_faulty, small_segments
from tests.services import swift_connection


def test_an_object_bakthat_did_not_write_is_checked_against_its_md5_etag(swift_conf, monkeypatch):
    store = get_backend("swift", swift_conf)
    store.ensure_containers()
    data = os.urandom(100_000)
    swift_connection().put_object(swift_conf["swift_container"], "from-0.6.tgz", data)
    with store.open_read("from-0.6.tgz") as stream:
        assert stream.read() == data
    install_faulty(monkeypatch, corrupt_get=True)
    with pytest.raises(IntegrityError, match="MD5"), get_backend("swift", swift_conf).open_read("from-0.6.tgz") as stream:
        stream.read()


def test_a_download_broken_midway_resumes_with_a_ranged_get(swift_conf, monkeypatch):
    data = os.urandom(3 * MiB)
    get_backend("swift", small_segments(swift_conf)).put("k", data)
    faults = install_faulty(monkeypatch, break_get_at=MiB + 5)
    with get_backend("swift", small_segments(swift_conf)).open_read("k") as stream:
        assert stream.read() == data
    assert faults.ranges == [f"bytes={MiB + 5}-"]


def test_a_damaged_read_of_an_object_bakthat_wrote_is_a_sha256_mismatch_naming_it(swift_conf, monkeypatch):
    get_backend("swift", swift_conf).put("mine", os.urandom(50_000))
    install_faulty(monkeypatch, corrupt_get=True)
    container = swift_conf["swift_container"]
    with pytest.raises(IntegrityError, match=f"^swift://{container}/mine: SHA-256 mismatch; the object is damaged"):
        with get_backend("swift", swift_conf).open_read("mine") as stream:
            stream.read()


def test_a_large_object_another_tool_wrote_is_read_without_an_md5_check(swift_conf):
    store = get_backend("swift", swift_conf)
    store.ensure_containers()
    connection = swift_connection()
    container = swift_conf["swift_container"]
    parts = [os.urandom(MiB), os.urandom(1000)]
    manifest = []
    for index, part in enumerate(parts):
        name = f"other-tool/{index}"
        connection.put_object(container + "_segments", name, part)
        manifest.append({"path": f"{container}_segments/{name}", "etag": hashlib.md5(part).hexdigest(), "size_bytes": len(part)})  # noqa: S324
    connection.put_object(container, "slo.bin", json.dumps(manifest), query_string="multipart-manifest=put")
    with store.open_read("slo.bin") as stream:
        assert stream.read() == b"".join(parts)
        assert stream.hexdigest() == hashlib.sha256(b"".join(parts)).hexdigest()


def test_a_resumed_read_of_an_object_replaced_meanwhile_is_an_integrity_error(swift_conf, monkeypatch):
    container = swift_conf["swift_container"]
    get_backend("swift", swift_conf).put("replaced", os.urandom(2 * MiB))
    faults = install_faulty(monkeypatch)
    store = get_backend("swift", swift_conf)
    connection = store.connection()
    real_get = connection._connection.get_object

    def get_object(container_name, name, **kwargs):
        headers, body = real_get(container_name, name, **kwargs)
        if not faults.ranges:
            faults.ranges.append("first")
            swift_connection().put_object(container, "replaced", b"another writer's version")
            return headers, Body(body.read(), break_at=MiB)
        return headers, body

    connection.get_object = get_object
    with pytest.raises(IntegrityError) as caught:
        with store.open_read("replaced") as stream:
            while stream.read(256 * 1024):
                pass
    assert str(caught.value) == f"swift://{container}/replaced changed while it was being read"


def test_a_stream_shorter_than_the_object_is_an_integrity_error_naming_both_lengths(swift_conf, monkeypatch):
    container = swift_conf["swift_container"]
    get_backend("swift", swift_conf).put("short", os.urandom(1000))
    install_faulty(monkeypatch)
    store = get_backend("swift", swift_conf)
    connection = store.connection()
    real_get = connection._connection.get_object

    def truncated(container_name, name, **kwargs):
        headers, body = real_get(container_name, name, **kwargs)
        return headers, Body(body.read()[:-10])

    connection.get_object = truncated
    with pytest.raises(IntegrityError, match=f"swift://{container}/short: read 990 bytes, the object has 1000"):
        with store.open_read("short") as stream:
            stream.read()
