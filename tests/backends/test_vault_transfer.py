"""The Glacier vault backend's streams (bakthat/backends/_vault_transfer.py) against the moto
server, which tests/backends/moto_glacier.py extends with multipart uploads and ranged
job output checked as Glacier checks them: the tree hash, tree-hashed parts, ranged and
verified reads.
"""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from bakthat.backends import get_backend
from bakthat.backends._vault_transfer import description, leaf_hashes, tree_hash
from bakthat.errors import IntegrityError, StorageError
from bakthat.testing.conformance import InterruptingReader
from tests.backends import moto_glacier

MiB = 1 << 20


# --------------------------------------------------------------------------- tree hashes


@pytest.mark.parametrize("size", [0, 1, MiB - 1, MiB, MiB + 1, 3 * MiB, 5 * MiB + 7])
def test_the_tree_hash_matches_an_independent_one_at_every_leaf_count(size):
    data = os.urandom(size)
    assert tree_hash(leaf_hashes(data)).hex() == moto_glacier._tree_hash(data)


def test_leaves_are_the_sha256_of_each_mib_and_an_empty_archive_has_one():
    data = os.urandom(2 * MiB + 3)
    assert leaf_hashes(data) == [hashlib.sha256(data[i : i + MiB]).digest() for i in (0, MiB, 2 * MiB)]
    assert leaf_hashes(b"") == [hashlib.sha256(b"").digest()]
    assert tree_hash([]) == hashlib.sha256(b"").digest()


def test_a_tree_hash_of_parts_equals_the_tree_hash_of_the_whole():
    data = os.urandom(4 * MiB + 10)
    parts = [data[: 2 * MiB], data[2 * MiB :]]
    assert tree_hash(leaf_hashes(parts[0]) + leaf_hashes(parts[1])) == tree_hash(leaf_hashes(data))


def test_a_description_is_printable_ascii_that_decodes_to_the_key():
    import urllib.parse

    key = "héllo wörld/ñ\x7f.tar"
    encoded = description(key)
    assert encoded.isascii() and encoded.isprintable() and urllib.parse.unquote(encoded) == key
    assert description("mydir.20240604.tar.zst.age") == "mydir.20240604.tar.zst.age"


# --------------------------------------------------------------------------- uploads and reads


class Recording:
    """Wrap a boto3 Glacier client; record each call's name, arguments and response (all over HTTP)."""

    def __init__(self, client):
        self._client = client
        self.calls = []

    def __getattr__(self, name):
        method = getattr(self._client, name)

        def call(**kwargs):
            response = method(**kwargs)
            self.calls.append((name, {k: v for k, v in kwargs.items() if k != "body"}, response))
            return response

        return call

    def named(self, name):
        return [(arguments, response) for called, arguments, response in self.calls if called == name]


def small_parts_vault():
    return get_backend(
        "glacier",
        {"glacier_vault": "parts", "vault_part_size": "1MiB", "vault_chunk_size": "1MiB", "retrieval_tier": "Expedited",
         "retrieval_wait": True, "retrieval_poll_interval": 0.05},
    )


def test_a_vault_archive_goes_up_in_tree_hashed_parts_and_down_in_ranges_on_the_server(aws, catalog):
    store = small_parts_vault()
    store.client = recording = Recording(store.client)
    data = os.urandom(5 * MiB + 12345)  # six 1 MiB leaves: the tree hash has an odd level
    parts = 6
    store.put("big", io.BytesIO(data))
    ranges = [arguments["range"] for arguments, _ in recording.named("upload_multipart_part")]
    assert ranges == [f"bytes {n * MiB}-{min((n + 1) * MiB, len(data)) - 1}/*" for n in range(parts)]
    assert [arguments["partSize"] for arguments, _ in recording.named("initiate_multipart_upload")] == [str(MiB)]
    (completed, response), = recording.named("complete_multipart_upload")
    assert completed["archiveSize"] == str(len(data))
    assert response["checksum"] == completed["checksum"]  # the server's tree hash of what it received
    with store.open_read("big") as stream:
        assert hashlib.sha256(stream.read()).hexdigest() == hashlib.sha256(data).hexdigest()
    outputs = recording.named("get_job_output")
    assert [arguments["range"] for arguments, _ in outputs] == [
        f"bytes={n * MiB}-{min((n + 1) * MiB, len(data)) - 1}" for n in range(parts)
    ]
    assert all(response["contentRange"] and response["checksum"] for _, response in outputs)


def test_a_vault_archive_damaged_at_rest_is_an_integrity_error(aws, catalog):
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.glacier.models import glacier_backends

    store = small_parts_vault()
    store.put("big", io.BytesIO(os.urandom(2 * MiB + 1)))
    archive_id = store.stat("big").metadata["archive_id"]
    archives = glacier_backends[DEFAULT_ACCOUNT_ID][store.region].vaults["parts"].archives
    body = bytearray(archives[archive_id]["body"])
    body[MiB + 7] ^= 0xFF  # in the second 1 MiB range: its tree hash, made by the server, matches
    archives[archive_id]["body"] = bytes(body)
    with pytest.raises(IntegrityError, match="SHA-256 mismatch"), store.open_read("big") as stream:
        stream.read()


def test_an_archive_below_the_part_size_is_one_request(aws, catalog):
    store = small_parts_vault()
    store.client = recording = Recording(store.client)
    data = os.urandom(MiB - 1)
    info = store.put("small", io.BytesIO(data))
    (arguments, response), = recording.named("upload_archive")
    assert arguments["checksum"] == moto_glacier._tree_hash(data)
    assert recording.named("initiate_multipart_upload") == [] and info.size == len(data)


def test_an_interrupted_multipart_upload_is_aborted_and_nothing_is_recorded(aws, catalog):
    store = small_parts_vault()
    store.client = recording = Recording(store.client)
    with pytest.raises(KeyboardInterrupt):
        store.put("interrupted", InterruptingReader(3 * MiB))
    (initiated,) = recording.named("initiate_multipart_upload")
    (aborted, _), = recording.named("abort_multipart_upload")
    assert aborted["uploadId"] == initiated[1]["uploadId"]
    assert not store.exists("interrupted")
    upload = store.open_upload("after")
    upload.abort()
    with pytest.raises(StorageError, match="upload of after is aborted"):
        upload.write(b"x")


class Corrupting(Recording):
    """Flip a byte of the second range of job output; the server's tree hash stays the true one."""

    def __getattr__(self, name):
        method = super().__getattr__(name)
        if name != "get_job_output":
            return method

        def get_job_output(**kwargs):
            response = method(**kwargs)
            if kwargs["range"].startswith(f"bytes={MiB}-"):
                data = bytearray(response["body"].read())
                data[7] ^= 0xFF
                response["body"] = io.BytesIO(bytes(data))
            return response

        return get_job_output


def test_a_range_damaged_in_transit_is_caught_by_its_tree_hash_naming_the_key(aws, catalog):
    store = small_parts_vault()
    store.put("big", io.BytesIO(os.urandom(2 * MiB + 1)))
    store.client = Corrupting(store.client)
    with pytest.raises(IntegrityError, match="^big: a downloaded range does not match its tree hash$"):
        with store.open_read("big") as stream:
            stream.read()


def test_a_short_range_is_an_integrity_error_naming_both_lengths(aws, catalog):
    store = small_parts_vault()
    store.put("big", io.BytesIO(os.urandom(2 * MiB + 1)))

    class Short(Recording):
        def __getattr__(self, name):
            method = super().__getattr__(name)
            if name != "get_job_output":
                return method

            def get_job_output(**kwargs):
                response = method(**kwargs)
                response["body"] = io.BytesIO(response["body"].read()[:-1])
                return response

            return get_job_output

    store.client = Short(store.client)
    with pytest.raises(IntegrityError, match=f"big: the vault returned {MiB - 1} bytes for a {MiB}-byte range"):
        with store.open_read("big") as stream:
            stream.read()
