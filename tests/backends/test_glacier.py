"""Destination glacier: S3 archive storage classes, and the legacy vault API, against moto.

The vault backend's own tests are in test_vault.py, its streams' in test_vault_transfer.py,
the retrievals table and wait loop's in test_retrieval.py.
"""

from __future__ import annotations

import pytest

from bakthat.backends import get_backend
from bakthat.backends.vault import VaultBackend
from bakthat.testing.conformance import BackendConformance
from tests.backends.conftest import s3_client


class TestGlacierS3Conformance(BackendConformance):
    @pytest.fixture
    def backend(self, aws, catalog):
        return get_backend("glacier", {"s3_bucket": "archive-bucket", "retrieval_poll_interval": 0.05})


class TestGlacierVaultConformance(BackendConformance):
    @pytest.fixture
    def backend(self, aws, catalog):
        backend = get_backend(
            "glacier",
            {"glacier_vault": "legacy-vault", "retrieval_tier": "Expedited", "retrieval_wait": True, "retrieval_poll_interval": 0.2},
        )
        assert isinstance(backend, VaultBackend)
        return backend


# --------------------------------------------------------------------------- S3 archive classes

import os  # noqa: E402

import bakthat  # noqa: E402
from bakthat.backends import _vault_transfer, glacier, retrieval, vault  # noqa: E402
from bakthat.errors import RetrievalPendingError  # noqa: E402
from tests.conftest import snapshot  # noqa: E402

MiB = 1 << 20


def archive_conf(**extra):
    return {"s3_bucket": "cold-bucket", "retrieval_poll_interval": 0.01, **extra}


def test_a_backup_is_archived_and_its_manifest_stays_readable(aws, tree):
    row = bakthat.backup(str(tree), destination="glacier", conf=archive_conf(), prompt="no")
    client = s3_client()
    assert client.head_object(Bucket="cold-bucket", Key=row.stored_filename)["StorageClass"] == "GLACIER"
    manifest = client.head_object(Bucket="cold-bucket", Key=row.stored_filename + ".manifest.json")
    assert manifest.get("StorageClass", "STANDARD") == "STANDARD"


def test_restore_requests_a_retrieval_then_a_later_restore_downloads(aws, tree, tmp_path, cli_main):
    main = cli_main
    bakthat.backup(str(tree), destination="glacier", conf=archive_conf(retrieval_tier="Bulk"), prompt="no")
    target = tmp_path / "out"
    with pytest.raises(RetrievalPendingError, match="Bulk retrieval was requested") as caught:
        bakthat.restore("mydir", destination="glacier", conf=archive_conf(retrieval_tier="Bulk"), target=str(target), prompt="no")
    assert "--wait" in str(caught.value) and "bakthat retrievals" in str(caught.value)
    assert not target.exists() or list(target.iterdir()) == []
    pending = retrieval.retrievals(include_done=True)
    assert [(r.status, r.tier, r.kind) for r in pending] == [("pending", "Bulk", "s3-restore")]
    # moto finishes restores at once: the next restore downloads
    bakthat.restore("mydir", destination="glacier", conf=archive_conf(), target=str(target), prompt="no")
    assert snapshot(target / "mydir") == snapshot(tree)
    assert [r.status for r in retrieval.retrievals(include_done=True)] == ["ready"]
    home = os.path.expanduser("~")
    with open(os.path.join(home, ".bakthat.yml"), "w") as handle:
        handle.write("default:\n  s3_bucket: cold-bucket\n")
    assert main(["retrievals", "-d", "glacier", "--all"]) == 0


def test_wait_polls_until_the_retrieval_is_done(aws, tree, tmp_path, monkeypatch):
    bakthat.backup(str(tree), destination="glacier", conf=archive_conf(), prompt="no")
    real_head = glacier.Backend.head
    calls = {"n": 0}

    def slow_head(self, key):
        head = real_head(self, key)
        if head.get("Restore") and calls["n"] < 3:
            calls["n"] += 1
            head = {**head, "Restore": 'ongoing-request="true"'}
        return head

    monkeypatch.setattr(glacier.Backend, "head", slow_head)
    target = tmp_path / "out"
    bakthat.restore("mydir", destination="glacier", conf=archive_conf(), target=str(target), prompt="no", wait=True)
    assert calls["n"] == 3
    assert snapshot(target / "mydir") == snapshot(tree)


def test_glacier_ir_reads_directly(aws, tree, tmp_path):
    settings = archive_conf(glacier_storage_class="GLACIER_IR")
    row = bakthat.backup(str(tree), destination="glacier", conf=settings, prompt="no")
    assert s3_client().head_object(Bucket="cold-bucket", Key=row.stored_filename)["StorageClass"] == "GLACIER_IR"
    bakthat.restore("mydir", destination="glacier", conf=settings, target=str(tmp_path / "out"), prompt="no")
    assert snapshot(tmp_path / "out" / "mydir") == snapshot(tree)
    assert retrieval.retrievals(include_done=True) == []


def test_deep_archive_has_no_expedited_tier(aws, caplog):
    store = get_backend("glacier", archive_conf(glacier_storage_class="DEEP_ARCHIVE", retrieval_tier="Expedited"))
    store.put("x", b"data", metadata={"storage_class": "DEEP_ARCHIVE"})
    assert s3_client().head_object(Bucket="cold-bucket", Key="x")["StorageClass"] == "DEEP_ARCHIVE"
    with pytest.raises(RetrievalPendingError, match="Standard retrieval"):
        store.prepare_read("x")


# --------------------------------------------------------------------------- the legacy vault API


VAULT_CONF = {
    "access_key": "YOURACCESSKEY",
    "secret_key": "YOURSECRETKEY",
    "glacier_vault": "yourvault",
    "s3_bucket": "yours3bucket",
    "region_name": "eu-west-1",
    "retrieval_tier": "Expedited",
    "retrieval_poll_interval": 0.2,
}


def test_a_vault_backup_is_restored_in_two_steps(aws, tree, tmp_path):
    row = bakthat.backup(str(tree), destination="glacier", conf=VAULT_CONF, prompt="no")
    archive = vault.GlacierArchives.get(vault.GlacierArchives.key == row.stored_filename)
    assert archive.vault == "yourvault" and archive.archive_id and archive.sha256 == row.sha256
    target = tmp_path / "out"
    with pytest.raises(RetrievalPendingError, match="archived in vault"):
        bakthat.restore("mydir", destination="glacier", conf=VAULT_CONF, target=str(target), prompt="no")
    jobs = retrieval.retrievals(include_done=True)
    assert [(job.kind, job.status) for job in jobs] == [("vault-job", "pending")] and jobs[0].job_id
    bakthat.restore("mydir", destination="glacier", conf=VAULT_CONF, target=str(target), prompt="no", wait=True)
    assert snapshot(target / "mydir") == snapshot(tree)
    assert [job.status for job in retrieval.retrievals(include_done=True)] == ["ready"]
    bakthat.delete("mydir", destination="glacier", conf=VAULT_CONF)
    assert vault.GlacierArchives.select().count() == 0


def test_the_vault_mode_can_be_turned_off(aws):
    assert isinstance(get_backend("glacier", {**VAULT_CONF, "glacier_mode": "s3"}), glacier.Backend)
    assert isinstance(get_backend("glacier", VAULT_CONF), VaultBackend)


def test_the_server_refuses_parts_that_break_glacier_rules(aws):
    """The server the vault tests talk to checks part sizes and tree hashes, as Glacier does."""
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client("glacier", region_name="us-east-1", endpoint_url=aws)
    client.create_vault(vaultName="rules")
    with pytest.raises(ClientError, match="invalid part size"):
        client.initiate_multipart_upload(vaultName="rules", partSize=str(3 * MiB))
    upload = client.initiate_multipart_upload(vaultName="rules", partSize=str(MiB))["uploadId"]
    part = os.urandom(MiB)
    wrong = _vault_transfer.tree_hash(_vault_transfer.leaf_hashes(part[::-1])).hex()
    with pytest.raises(ClientError, match="tree hash"):
        client.upload_multipart_part(vaultName="rules", uploadId=upload, range=f"bytes 0-{MiB - 1}/*", checksum=wrong, body=part)
    with pytest.raises(ClientError, match="bad part range"):
        client.upload_multipart_part(vaultName="rules", uploadId=upload, range="bytes 5-10/*", checksum=wrong, body=part[:6])


def test_an_s3_object_in_an_archive_class_is_restored_the_same_way(aws, tree, tmp_path):
    settings = {"s3_bucket": "s3-cold", "storage_class": "DEEP_ARCHIVE"}
    bakthat.backup(str(tree), destination="s3", conf=settings, prompt="no")
    with pytest.raises(RetrievalPendingError, match="DEEP_ARCHIVE"):
        bakthat.restore("mydir", destination="s3", conf=settings, target=str(tmp_path / "out"), prompt="no")
    store = get_backend("s3", settings)
    assert [row.status for row in retrieval.retrievals(store, include_done=True)] == ["ready"]
    bakthat.restore("mydir", destination="s3", conf=settings, target=str(tmp_path / "out"), prompt="no")
    assert snapshot(tmp_path / "out" / "mydir") == snapshot(tree)
