"""The legacy Glacier vault backend (bakthat/backends/vault.py) against the moto server: its
typed config, archive ids kept in the catalog, 0.6's inventory rows, deletes, and the
archive-retrieval jobs recorded in ``retrievals``.

Its streams are tested in test_vault_transfer.py; a complete read (which waits for a
job) runs in the conformance suite of test_glacier.py.
"""

from __future__ import annotations

import hashlib

import pytest

from bakthat import models
from bakthat.backends import vault
from bakthat.backends.retrieval import Retrievals
from bakthat.backends.vault import GlacierArchives, VaultBackend, VaultConfig
from bakthat.errors import AlreadyExistsError, ConfigError, NotFoundError, RetrievalPendingError

MiB = 1 << 20


@pytest.fixture
def store(aws, catalog):
    return VaultBackend({"glacier_vault": "vault-tests", "retrieval_tier": "Bulk"})


# --------------------------------------------------------------------------- config


def test_the_config_takes_the_declared_defaults():
    config = VaultConfig.from_settings({"glacier_vault": "v"})
    assert (config.part_size, config.chunk_size, config.region, config.endpoint_url) == (16 * MiB, 4 * MiB, "us-east-1", None)
    assert str(vault.SETTINGS["vault_part_size"].default) == "16MiB" and str(vault.SETTINGS["vault_chunk_size"].default) == "4MiB"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"glacier_vault": ""}, "the vault API needs glacier_vault"),
        ({"vault_part_size": "3MiB"}, "vault_part_size must be a power of two from 1 MiB to 4 GiB"),
        ({"vault_part_size": "8GiB"}, "vault_part_size must be a power of two"),
        ({"vault_part_size": 1000}, "vault_part_size must be a power of two"),
        ({"vault_chunk_size": "1500K"}, "vault_chunk_size must be a multiple of 1 MiB"),
        ({"vault_chunk_size": 0}, "vault_chunk_size must be a multiple of 1 MiB"),
        ({"s3_max_attempts": 0}, "s3_max_attempts must be at least 1"),
    ],
)
def test_each_value_glacier_refuses_is_a_config_error_naming_its_key(settings, message):
    with pytest.raises(ConfigError, match=message):
        VaultBackend({"glacier_vault": "v", **settings})


def test_the_vault_api_always_has_a_region_even_the_default_one():
    assert VaultConfig.from_settings({"glacier_vault": "v", "region_name": "eu-west-1"}).aws.region == "eu-west-1"
    resolved = {"glacier_vault": "v", "region_name": "us-east-1", "_raw": {}}  # the core default, not the user's
    assert VaultConfig.from_settings(resolved).aws.region == "us-east-1"


def test_the_vault_is_named_by_region_and_name_and_keeps_06s_hash():
    store = VaultBackend({"glacier_vault": "v", "region_name": "eu-west-1", "access_key": "AKIA06", "secret_key": "s"})
    assert store.container == "glacier://eu-west-1/v" and store.describe("k") == "glacier://eu-west-1/v/k"
    assert store.legacy_backend_hash == hashlib.sha512(b"AKIA06v").hexdigest()
    assert VaultBackend({"glacier_vault": "v"}).legacy_backend_hash is None


# --------------------------------------------------------------------------- the catalog


def test_without_a_catalog_an_upload_is_refused_saying_to_bind_one(aws):
    store = VaultBackend({"glacier_vault": "v"})
    with pytest.raises(ConfigError, match="keeps archive ids in the catalog: bind it first"):
        store.open_upload("k")
    assert list(store.list()) == []


def test_an_archive_id_is_recorded_with_size_and_sha256_and_listed(store):
    info = store.put("dir/a.tar", b"archive bytes")
    row = GlacierArchives.get(GlacierArchives.key == "dir/a.tar")
    assert (row.vault, row.size, row.sha256, row.archive_id) == (
        "vault-tests", 13, hashlib.sha256(b"archive bytes").hexdigest(), info.metadata["archive_id"]
    )
    store.put("dir/b.tar", b"b")
    store.put("other", b"o")
    assert [item.key for item in store.list("dir/")] == ["dir/a.tar", "dir/b.tar"]
    assert store.stat("dir/a.tar").metadata["archive_id"] == row.archive_id
    assert store.url("dir/a.tar") == f"glacier://us-east-1/vault-tests/dir/a.tar?archive_id={row.archive_id}"


def test_a_key_already_recorded_is_refused_and_nothing_is_uploaded(store):
    store.put("once", b"first")
    with pytest.raises(AlreadyExistsError, match="glacier://us-east-1/vault-tests/once already exists"):
        store.put("once", b"second")
    assert GlacierArchives.select().count() == 1


def test_a_key_taken_at_commit_deletes_the_new_archive(store):
    upload = store.open_upload("raced")
    upload.write(b"mine")
    store.put("raced", b"theirs")
    with pytest.raises(AlreadyExistsError):
        upload.commit()
    (row,) = GlacierArchives.select()
    assert row.sha256 == hashlib.sha256(b"theirs").hexdigest()


def test_a_missing_key_is_not_found_naming_the_vault(store):
    with pytest.raises(NotFoundError, match="glacier://us-east-1/vault-tests/nothing: no such archive in the catalog"):
        store.stat("nothing")


def test_deleting_removes_the_archive_row_and_its_retrieval_jobs(store):
    store.put("k", b"data")
    with pytest.raises(RetrievalPendingError):
        store.prepare_read("k")
    store.delete("k")
    assert GlacierArchives.select().count() == 0 and Retrievals.select().count() == 0
    with pytest.raises(NotFoundError):
        store.delete("k")


def test_a_06_inventory_row_is_adopted_when_the_key_is_first_used(store):
    store.ensure_vault()
    archive_id = store.client.upload_archive(vaultName="vault-tests", body=b"from 0.6")["archiveId"]
    models.database.execute_sql("CREATE TABLE inventory (filename TEXT, archive_id TEXT)")
    models.database.execute_sql("INSERT INTO inventory VALUES (?, ?)", ("old.tgz", archive_id))
    info = store.stat("old.tgz")
    assert info.metadata["archive_id"] == archive_id and info.size == 0  # the size comes with the job
    assert GlacierArchives.get(GlacierArchives.key == "old.tgz").archive_id == archive_id


# --------------------------------------------------------------------------- retrieval jobs


def test_a_read_starts_one_archive_retrieval_job_and_finds_it_again(store):
    store.put("cold", b"data")
    with pytest.raises(RetrievalPendingError) as first:
        store.prepare_read("cold")
    assert "cold is archived in vault: a Bulk retrieval was requested now" in str(first.value)
    with pytest.raises(RetrievalPendingError) as second:
        store.prepare_read("cold")
    assert "a Bulk retrieval is in progress" in str(second.value)
    (job,) = Retrievals.select()
    assert (job.kind, job.status, job.tier, job.key) == ("vault-job", "pending", "Bulk", "cold") and job.job_id
    assert store.client.describe_job(vaultName="vault-tests", jobId=job.job_id)["Action"] == "ArchiveRetrieval"
