"""The S3 backend against a moto server: conformance, faults through backup and restore,
stale uploads, profiles, credentials, logs, the restore header.

Its streams are tested in test_s3_transfer.py, its typed config in test_s3_config.py.
Fault injection happens at our own layer (tests/backends/s3_faults.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys

import pytest

import bakthat
from bakthat import models
from bakthat.backends import get_backend, s3
from bakthat.commands.cleanup_uploads import abort_stale_uploads
from bakthat.errors import ConfigError, IntegrityError, StorageError
from bakthat.testing.conformance import BackendConformance
from tests.backends.conftest import s3_client
from tests.backends.s3_faults import BUCKET, MiB, FaultyClient, big_tree, conf, install_faulty, keys, uploads_in_progress
from tests.conftest import ROOT


@pytest.fixture
def backend(aws):
    return get_backend("s3", {"s3_bucket": BUCKET, "s3_prefix": "some/prefix"})


class TestS3Conformance(BackendConformance):
    pass


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


def test_a_multipart_backup_records_one_sha256_equal_to_that_of_the_stored_object(aws, monkeypatch, tmp_path):
    source = big_tree(tmp_path / "src" / "data", 12 * MiB)
    row = bakthat.backup(str(source), destination="s3", conf=conf(), prompt="no")
    stored = s3_client().get_object(Bucket=BUCKET, Key=row.stored_filename)
    assert stored["ETag"].endswith('-3"')  # three parts of 5 MiB
    digest = hashlib.sha256(stored["Body"].read()).hexdigest()
    tags = s3_client().get_object_tagging(Bucket=BUCKET, Key=row.stored_filename)["TagSet"]
    assert row.sha256 == digest
    assert {"Key": "bakthat-sha256", "Value": digest} in tags
    manifest = json.loads(s3_client().get_object(Bucket=BUCKET, Key=row.stored_filename + ".manifest.json")["Body"].read())
    assert manifest["sha256"] == digest


def test_a_corrupted_download_is_an_integrity_error_and_nothing_is_written(aws, monkeypatch, tmp_path):
    source = big_tree(tmp_path / "src" / "data", 7 * MiB)
    bakthat.backup(str(source), destination="s3", conf=conf(), prompt="no")
    install_faulty(monkeypatch, corrupt_get=True)
    target = tmp_path / "restored"
    target.mkdir()
    with pytest.raises(IntegrityError):
        bakthat.restore("data", destination="s3", conf=conf(), target=str(target), prompt="no")
    assert list(target.iterdir()) == []


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


def test_the_restore_header_is_parsed():
    assert s3.restore_state(None) == (None, None)
    assert s3.restore_state('ongoing-request="true"') == ("ongoing", None)
    state, expiry = s3.restore_state('ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"')
    assert state == "ready" and expiry == 1356048000
