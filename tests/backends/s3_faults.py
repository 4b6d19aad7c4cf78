"""Fault injection for the S3 tests, at bakthat's own layer (moto neither verifies checksums
nor fails on demand): a client wrapper breaking chosen calls, and a body that breaks.

Shared by tests/backends/test_s3.py and test_s3_transfer.py.
"""

from __future__ import annotations

import io
import os
import threading

from bakthat import backends
from bakthat.backends import s3
from tests.backends.conftest import s3_client

BUCKET = "conformance-bucket"
MiB = 1 << 20


class ClientError(Exception):
    """Shaped like botocore's ClientError: a ``response`` with an error code and status."""

    def __init__(self, code: str, status: int):
        super().__init__(code)
        self.response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}


class FaultyClient:
    """Wrap a boto3 client; break chosen calls.  Records every upload_part's arguments."""

    def __init__(self, client, fail_part: int | None = None, fail_times: int = 10**6, error=None, corrupt_get: bool = False):
        self._client = client
        self.fail_part = fail_part
        self.fail_times = fail_times
        self.error = error or (lambda: ClientError("InternalError", 500))
        self.corrupt_get = corrupt_get
        self.parts: list[dict] = []
        self.failures = 0
        self.lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self._client, name)

    def upload_part(self, **kwargs):
        with self.lock:
            self.parts.append({k: v for k, v in kwargs.items() if k != "Body"})
            if kwargs["PartNumber"] == self.fail_part and self.failures < self.fail_times:
                self.failures += 1
                raise self.error()
        return self._client.upload_part(**kwargs)

    def get_object(self, **kwargs):
        response = self._client.get_object(**kwargs)
        if self.corrupt_get:
            data = bytearray(response["Body"].read())
            data[len(data) // 2] ^= 0xFF
            response["Body"] = io.BytesIO(bytes(data))
        return response


def install_faulty(monkeypatch, **options) -> list[FaultyClient]:
    """Make destination s3 build its clients wrapped in FaultyClient; return them as built."""
    made: list[FaultyClient] = []

    class Faulty(s3.Backend):
        def make_client(self, service):
            client = FaultyClient(super().make_client(service), **options)
            made.append(client)
            return client

    monkeypatch.setitem(backends.registry, "s3", Faulty)
    return made


class BreakingBody:
    """A response body that fails once, like a connection reset, after some bytes."""

    def __init__(self, body, fail_after: int):
        self.body = body
        self.left = fail_after

    def read(self, size=None):
        if self.left <= 0:
            raise ConnectionResetError("connection reset by peer")
        data = self.body.read(min(size or self.left, self.left))
        self.left -= len(data)
        return data

    def close(self):
        self.body.close()


def big_tree(root, size: int):
    root.mkdir(parents=True)
    (root / "random.bin").write_bytes(os.urandom(size))
    (root / "note.txt").write_text("hello\n")
    return root


def conf(**extra):
    return {"s3_bucket": BUCKET, "part_size": "5MiB", "concurrency": 2, "compression": "none", **extra}


def uploads_in_progress(bucket: str = BUCKET) -> list:
    return s3_client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])


def keys(bucket: str = BUCKET) -> list[str]:
    return [item["Key"] for item in s3_client().list_objects_v2(Bucket=bucket).get("Contents", [])]
