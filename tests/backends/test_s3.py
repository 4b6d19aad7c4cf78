"""The S3 backend against a moto server: conformance, multipart, faults, credentials, logs.

Fault injection happens at our own layer (a client wrapper), because moto neither
verifies checksums nor fails on demand.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import subprocess
import sys
import threading
import time
import tracemalloc

import pytest

import bakthat
from bakthat import backends, models
from bakthat.backends import _s3_transfer, get_backend, s3
from bakthat.backends._config import parse_size
from bakthat.commands.cleanup_uploads import abort_stale_uploads
from bakthat.errors import ConfigError, IntegrityError, StorageError
from bakthat.testing.conformance import BackendConformance, InterruptingReader
from tests.backends.conftest import s3_client
from tests.conftest import ROOT

BUCKET = "conformance-bucket"
MiB = 1 << 20


@pytest.fixture
def backend(aws):
    return get_backend("s3", {"s3_bucket": BUCKET, "s3_prefix": "some/prefix"})


class TestS3Conformance(BackendConformance):
    pass


# --------------------------------------------------------------------------- helpers


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


# --------------------------------------------------------------------------- multipart


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
    for number in (0, 999, 1000, 5000, 9999):
        upload._part_number = number
        sizes.append(upload._current_part_size() // MiB)
    upload.abort()
    assert sizes == [16, 16, 32, 96, 160]
    total = sum(16 * MiB * (1 + n // _s3_transfer.PART_GROWTH_EVERY) for n in range(_s3_transfer.MAX_PARTS))
    assert total > 800 * 10**9


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


def test_memory_stays_bounded_by_concurrency_and_part_size(monkeypatch):
    sink = SlowSink()
    store = s3.Backend({"s3_bucket": "b", "part_size": "5MiB", "concurrency": 3})
    store.client = sink
    monkeypatch.setattr(store, "verify_committed", lambda key, size, digest, etag: s3.base.ObjectInfo(key, size))
    chunk = os.urandom(MiB)
    tracemalloc.start()
    try:
        upload = store.open_upload("huge")
        for _ in range(200):  # 200 MiB streamed
            upload.write(chunk)
        upload.commit()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sink.max_in_flight <= 3
    # (concurrency + 1) parts of 5 MiB: three in flight and one filling; plus the caller's chunk
    assert peak < (3 + 1) * 5 * MiB + 4 * MiB, f"peak {peak / MiB:.1f} MiB"  # measured: 20.1 MiB


# --------------------------------------------------------------------------- faults


def test_an_error_on_part_n_aborts_the_upload_and_leaves_no_row(aws, monkeypatch, tmp_path):
    install_faulty(monkeypatch, fail_part=2)
    source = big_tree(tmp_path / "src" / "data", 14 * MiB)
    with pytest.raises(StorageError, match="InternalError"):
        bakthat.backup(str(source), destination="s3", conf=conf(s3_max_attempts=2), prompt="no")
    assert uploads_in_progress() == []
    assert not [key for key in keys() if not key.endswith(".manifest.json")]
    assert keys() == []
    assert list(models.Backups.select()) == []


def test_a_transient_error_on_a_part_is_retried(aws, monkeypatch, tmp_path):
    made = install_faulty(monkeypatch, fail_part=2, fail_times=1)
    source = big_tree(tmp_path / "src" / "data", 12 * MiB)
    row = bakthat.backup(str(source), destination="s3", conf=conf(), prompt="no")
    assert made[0].failures == 1
    assert sum(1 for part in made[0].parts if part["PartNumber"] == 2) == 2
    assert row.size > 10 * MiB and uploads_in_progress() == []


def test_ctrl_c_during_an_upload_aborts_it(backend):
    with pytest.raises(KeyboardInterrupt):
        backend.put("interrupted", InterruptingReader(40 * MiB))
    assert uploads_in_progress() == []
    assert not backend.exists("interrupted")


def test_a_corrupted_download_is_an_integrity_error_and_nothing_is_written(aws, monkeypatch, tmp_path):
    source = big_tree(tmp_path / "src" / "data", 7 * MiB)
    bakthat.backup(str(source), destination="s3", conf=conf(), prompt="no")
    install_faulty(monkeypatch, corrupt_get=True)
    target = tmp_path / "restored"
    target.mkdir()
    with pytest.raises(IntegrityError):
        bakthat.restore("data", destination="s3", conf=conf(), target=str(target), prompt="no")
    assert list(target.iterdir()) == []


def test_a_corrupted_read_of_a_single_put_object_is_caught_by_the_reader(aws, monkeypatch):
    get_backend("s3", conf()).put("k", os.urandom(1000))
    install_faulty(monkeypatch, corrupt_get=True)
    with pytest.raises(IntegrityError), get_backend("s3", conf()).open_read("k") as stream:
        stream.read()


# --------------------------------------------------------------------------- stale uploads


def test_stale_multipart_uploads_are_listed_then_aborted(aws, capsys, cli_main):
    main = cli_main
    store = get_backend("s3", conf(s3_prefix="pre"))
    store.ensure_bucket()
    client = s3_client()
    client.create_multipart_upload(Bucket=BUCKET, Key="pre/killed.tar.zst")
    client.create_multipart_upload(Bucket=BUCKET, Key="elsewhere/not-ours")
    stale = abort_stale_uploads(store, older_than=3600, dry_run=True)
    assert [upload.key for upload in stale] == ["killed.tar.zst"]
    assert len(uploads_in_progress()) == 2
    (aws_home := os.path.expanduser("~")) and open(os.path.join(aws_home, ".bakthat.yml"), "w").write(
        f"default:\n  s3_bucket: {BUCKET}\n  s3_prefix: pre\n"
    )
    assert main(["cleanup_uploads", "-d", "s3", "--older-than", "1D", "--dry-run"]) == 0
    assert "would abort" in capsys.readouterr().out
    assert len(uploads_in_progress()) == 2
    assert main(["cleanup_uploads", "-d", "s3", "--older-than", "1D"]) == 0
    assert "aborted" in capsys.readouterr().out
    assert [upload["Key"] for upload in uploads_in_progress()] == ["elsewhere/not-ours"]


# --------------------------------------------------------------------------- profiles


def test_a_profile_with_endpoint_url_reaches_an_s3_compatible_store(aws, monkeypatch, tmp_path, tree):
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    settings = {
        "s3_bucket": "minio-like",
        "endpoint_url": aws,
        "access_key": "minio-access",
        "secret_key": "minio-secret",
        "region_name": "eu-central-1",
        "checksum_mode": "when_required",
        "s3_prefix": "host1/backups",
    }
    row = bakthat.backup(str(tree), destination="s3", conf=settings, prompt="no")
    assert f"host1/backups/{row.stored_filename}" in keys("minio-like")
    target = tmp_path / "out"
    bakthat.restore("mydir", destination="s3", conf=settings, target=str(target), prompt="no")
    assert (target / "mydir" / "text.txt").read_text() == (tree / "text.txt").read_text()
    assert get_backend("s3", settings).container.startswith(aws)


def test_without_keys_in_the_profile_the_aws_chain_is_used(aws, tree, tmp_path):
    row = bakthat.backup(str(tree), destination="s3", conf={"s3_bucket": "chain-bucket"}, prompt="no")
    assert row.stored_filename in keys("chain-bucket")


def test_without_any_credentials_the_error_says_how_to_give_them(aws, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    store = get_backend("s3", {"s3_bucket": "nobody"})
    with pytest.raises(ConfigError, match="credential chain"):
        store.put("x", b"x")


def test_reduced_redundancy_and_sse_reach_the_object(aws, tree):
    settings = {"s3_bucket": "rr-bucket", "sse": "AES256"}
    row = bakthat.backup(str(tree), destination="s3", conf=settings, prompt="no", s3_reduced_redundancy=True)
    head = s3_client().head_object(Bucket="rr-bucket", Key=row.stored_filename)
    assert head["StorageClass"] == "REDUCED_REDUNDANCY"
    assert head["ServerSideEncryption"] == "AES256"


def test_a_missing_bucket_is_created_in_the_profile_region(aws):
    store = get_backend("s3", {"s3_bucket": "new-in-ireland", "region_name": "eu-west-1"})
    store.put("k", b"v")
    client = s3_client("eu-west-1")
    assert client.get_bucket_location(Bucket="new-in-ireland")["LocationConstraint"] == "eu-west-1"
    rules = client.get_bucket_lifecycle_configuration(Bucket="new-in-ireland")["Rules"]
    assert rules[0]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 7


def test_a_store_without_conditional_writes_still_never_replaces(aws):
    store = get_backend("s3", {"s3_bucket": BUCKET, "s3_conditional_writes": False})
    store.put("once", b"a")
    with pytest.raises(bakthat.errors.AlreadyExistsError):
        store.put("once", b"b")


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError):
        s3.Backend({})
    with pytest.raises(ConfigError):
        s3.Backend({"s3_bucket": "b", "part_size": "1MiB"})
    with pytest.raises(ConfigError):
        s3.Backend({"s3_bucket": "b", "storage_class": "COLD"})
    assert parse_size("64MB", 0) == 64 * MiB and parse_size(5 * MiB, 0) == 5 * MiB


@pytest.mark.parametrize("key", ["concurrency", "s3_max_attempts", "retrieval_days"])
def test_a_zero_where_a_count_is_needed_names_the_key(key):
    with pytest.raises(ConfigError, match=key):
        s3.Backend({"s3_bucket": "b", key: 0})


def test_the_typed_config_takes_the_declared_defaults_and_shows_no_secret():
    store = s3.Backend({"s3_bucket": "b", "access_key": "AKIAEXAMPLE", "secret_key": "very-secret-key"})
    config = store.config
    assert config.part_size == parse_size(s3.SETTINGS["part_size"].default, 0) == 16 * MiB
    assert (config.concurrency, config.checksum_mode, config.abort_incomplete_days) == (
        s3.SETTINGS["concurrency"].default, s3.SETTINGS["checksum_mode"].default, s3.SETTINGS["s3_abort_incomplete_days"].default
    )
    assert config.retrieval.tier == "Standard" and config.aws.max_attempts == 5
    assert "very-secret-key" not in repr(config) and "AKIAEXAMPLE" not in repr(config)


# --------------------------------------------------------------------------- secrets and imports


def test_no_secret_reaches_any_log_record_at_debug(aws, tree, tmp_path, caplog):
    access, secret, password = "AKIAEXAMPLESECRETID", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "correct horse battery"
    settings = {"s3_bucket": "secret-bucket", "access_key": access, "secret_key": secret, "scrypt_work_factor": 10, "part_size": "5MiB"}
    (tree / "big.bin").write_bytes(os.urandom(6 * MiB))
    caplog.set_level(logging.DEBUG)
    logging.getLogger().setLevel(logging.DEBUG)
    for name in ("botocore", "urllib3", "s3transfer", "boto3"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        bakthat.backup(str(tree), destination="s3", conf=settings, password=password, prompt="no")
        bakthat.restore("mydir", destination="s3", conf=settings, password=password, target=str(tmp_path / "r"), prompt="no")
        from bakthat.helper import KeyValue

        kv = KeyValue(conf=settings)
        kv.set_key("k", {"v": 1}, password=password)
        kv.get_key("k", password=password)
    finally:
        for name in ("botocore", "urllib3", "s3transfer", "boto3"):
            logging.getLogger(name).setLevel(logging.NOTSET)
    messages = [record.getMessage() for record in caplog.records]
    assert any("botocore" in record.name for record in caplog.records)  # the logs were really on
    for message in messages:
        assert access not in message and secret not in message and password not in message


def test_importing_bakthat_imports_no_boto3():
    code = (
        "import sys; import bakthat, bakthat.backends.s3, bakthat.backends.glacier, bakthat.keyvalue, bakthat.helper;"
        "import bakthat.commands.cleanup_uploads, bakthat.commands.retrievals;"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'boto3 imported'"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_a_store_that_reports_another_size_fails_the_backup_removes_the_object_and_writes_no_row(aws, monkeypatch, tree):
    made = install_faulty(monkeypatch)
    original = FaultyClient.__getattr__

    def lying_head(self, name):
        attribute = original(self, name)
        if name != "head_object":
            return attribute

        def head_object(**kwargs):
            response = attribute(**kwargs)
            return {**response, "ContentLength": response["ContentLength"] + 1}

        return head_object

    monkeypatch.setattr(FaultyClient, "__getattr__", lying_head)
    with pytest.raises(IntegrityError, match="removed"):
        bakthat.backup(str(tree), destination="s3", conf=conf(), prompt="no")
    assert made and keys() == [] and uploads_in_progress() == []
    assert list(models.Backups.select()) == []


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
