"""KeyValue: the developer guide's example as written, against a moto server; conflicts; restore."""

from __future__ import annotations

import gzip
import json
import threading
import urllib.request

import pytest

import bakthat
from bakthat.errors import IntegrityError, PasswordRequiredError, TargetExistsError, WrongPasswordError
from bakthat.keyvalue import KeyConflictError, restore_entry
from tests.backends.conftest import aws, moto_server, s3_client  # noqa: F401 - fixtures

GUIDE_CONF = {
    "access_key": "YOURACCESSKEY",
    "secret_key": "YOURSECRETKEY",
    "glacier_vault": "yourvault",
    "s3_bucket": "yours3bucket",
    "region_name": "es-east-1",
}


def test_the_developer_guide_keyvalue_example_runs_as_written(aws):
    # --- the guide, verbatim -------------------------------------------------------
    from bakthat.helper import KeyValue
    import json  # noqa: F401, I001 - as the guide has it

    bakthat_conf = {'access_key': 'YOURACCESSKEY',
                    'secret_key': 'YOURSECRETKEY',
                    'glacier_vault': 'yourvault',
                    's3_bucket': 'yours3bucket',
                    'region_name': 'es-east-1'}

    kv = KeyValue(conf=bakthat_conf)

    mydata = {"some": "data"}
    kv.set_key("mykey", mydata)

    mydata_restored = kv.get_key("mykey")

    data_url = kv.get_key_url("mykey", 60)  # url expires in 60 secondes

    kv.delete_key("mykey")

    kv.set_key("my_encrypted_key", "myvalue", password="mypassword")
    kv.get_key("my_encrypted_key", password="mypassword")

    # You can also disable gzip compression if you want:
    kv.set_key("my_non_compressed_key", {"my": "data"}, compress=False)
    # --- what it must have done ------------------------------------------------------
    assert mydata_restored == mydata
    assert "X-Amz-Expires=60" in data_url and "/yours3bucket/mykey" in data_url
    assert kv.get_key("mykey") is None and kv.get_key("mykey", default="gone") == "gone"
    assert kv.get_key("my_encrypted_key", password="mypassword") == "myvalue"
    assert kv.get_key("my_non_compressed_key") == {"my": "data"}
    stored = s3_client().get_object(Bucket="yours3bucket", Key="my_non_compressed_key")["Body"].read()
    assert json.loads(stored) == {"my": "data"}
    secret = s3_client().get_object(Bucket="yours3bucket", Key="my_encrypted_key")["Body"].read()
    assert secret.startswith(b"age-encryption.org/v1\n") and b"myvalue" not in secret
    # the entries show up in the catalog (bakthat show), deleted ones flagged
    rows = {row.stored_filename: row for row in bakthat.search(conf=bakthat_conf, include_deleted=True)}
    assert rows["my_encrypted_key"].metadata["KeyValue"] is True
    assert rows["my_encrypted_key"].metadata["is_enc"] is True and rows["my_encrypted_key"].metadata["is_gzipped"] is True
    assert rows["my_non_compressed_key"].metadata["is_gzipped"] is False
    assert rows["mykey"].is_deleted
    assert {row.stored_filename for row in bakthat.search(conf=bakthat_conf)} == {"my_encrypted_key", "my_non_compressed_key"}


def test_the_presigned_url_serves_the_stored_bytes(aws):
    from bakthat.helper import KeyValue

    kv = KeyValue(conf=GUIDE_CONF)
    kv.set_key("shared", [1, 2, 3])
    with urllib.request.urlopen(kv.get_key_url("shared", 60)) as response:
        assert json.loads(gzip.decompress(response.read())) == [1, 2, 3]
    with pytest.raises(bakthat.errors.NotFoundError):
        kv.get_key_url("never-set", 60)


def test_a_read_modify_write_race_is_a_conflict_not_a_lost_update(aws):
    from bakthat.helper import KeyValue

    first, second = KeyValue(conf=GUIDE_CONF), KeyValue(conf=GUIDE_CONF)
    first.set_key("counter", 1)
    assert first.get_key("counter") == 1 and second.get_key("counter") == 1
    first.set_key("counter", 2)
    with pytest.raises(KeyConflictError, match="changed or deleted by another writer"):
        second.set_key("counter", 2)
    assert first.get_key("counter") == 2
    assert second.get_key("counter") == 2
    second.set_key("counter", 3)
    with pytest.raises(KeyConflictError):
        first.delete_key("counter")
    assert second.get_key("counter") == 3


def test_a_key_created_by_another_host_must_be_read_before_it_is_replaced(aws, tmp_path):
    from bakthat.helper import KeyValue

    host_a = KeyValue(conf={**GUIDE_CONF, "database": str(tmp_path / "a.sqlite")})
    host_b = KeyValue(conf={**GUIDE_CONF, "database": str(tmp_path / "b.sqlite")})
    host_a.set_key("config", {"v": 1})
    with pytest.raises(KeyConflictError, match="has not seen its current version"):
        host_b.set_key("config", {"v": 2})
    assert host_b.get_key("config") == {"v": 1}
    host_b.set_key("config", {"v": 2})
    assert host_a.get_key("config") == {"v": 2}


def test_concurrent_increments_lose_nothing(aws):
    from bakthat.helper import KeyValue

    KeyValue(conf=GUIDE_CONF).set_key("hits", 0)
    conflicts = []

    def worker():
        kv = KeyValue(conf=GUIDE_CONF)
        for _ in range(3):
            while True:
                value = kv.get_key("hits")
                try:
                    kv.set_key("hits", value + 1)
                    break
                except KeyConflictError:
                    conflicts.append(1)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert KeyValue(conf=GUIDE_CONF).get_key("hits") == 18


def test_a_value_deleted_elsewhere_can_be_set_again(aws):
    from bakthat.helper import KeyValue

    kv = KeyValue(conf=GUIDE_CONF)
    kv.set_key("k", 1)
    s3_client("es-east-1").delete_object(Bucket="yours3bucket", Key="k")
    kv.set_key("k", 2)
    assert kv.get_key("k") == 2


def test_passwords_and_damage_are_reported(aws):
    from bakthat.helper import KeyValue

    kv = KeyValue(conf={**GUIDE_CONF, "scrypt_work_factor": 10})
    kv.set_key("secret", {"a": 1}, password="right")
    with pytest.raises(PasswordRequiredError):
        kv.get_key("secret")
    with pytest.raises(WrongPasswordError):
        kv.get_key("secret", password="wrong")
    kv.set_key("plain", {"a": 1})
    client = s3_client("es-east-1")
    head = client.head_object(Bucket="yours3bucket", Key="plain")
    client.put_object(Bucket="yours3bucket", Key="plain", Body=gzip.compress(b'{"a": 2}'), Metadata=head["Metadata"])
    with pytest.raises(IntegrityError, match="SHA-256"):
        kv.get_key("plain")


def test_restore_entry_writes_the_decoded_value_atomically(aws, tmp_path):
    from bakthat import core
    from bakthat.helper import KeyValue

    kv = KeyValue(conf={**GUIDE_CONF, "scrypt_work_factor": 10})
    kv.set_key("reports/latest", {"ok": True})
    kv.set_key("locked", "s3cr3t", password="pw")
    ctx = core._context("s3", "default", None, {**GUIDE_CONF, "scrypt_work_factor": 10})
    rows = {row.stored_filename: row for row in bakthat.search(conf=GUIDE_CONF)}
    target = tmp_path / "out"
    path = restore_entry(ctx, rows["reports/latest"], target, None, overwrite=False)
    assert path == target / "reports" / "latest"
    assert json.loads(path.read_text()) == {"ok": True}
    with pytest.raises(TargetExistsError):
        restore_entry(ctx, rows["reports/latest"], target, None, overwrite=False)
    kv.set_key("reports/latest", {"ok": False})
    rows = {row.stored_filename: row for row in bakthat.search(conf=GUIDE_CONF)}
    restore_entry(ctx, rows["reports/latest"], target, None, overwrite=True)
    assert json.loads(path.read_text()) == {"ok": False}
    with pytest.raises(PasswordRequiredError):
        restore_entry(ctx, rows["locked"], target, None, overwrite=False)
    assert not (target / "locked").exists()
    assert json.loads(restore_entry(ctx, rows["locked"], target, "pw", overwrite=False).read_text()) == "s3cr3t"
    assert sorted(p.name for p in target.rglob("*")) == ["latest", "locked", "reports"]


def test_bakthat_restore_and_delete_handle_keyvalue_entries(aws, tmp_path):
    from bakthat.helper import KeyValue

    conf = {**GUIDE_CONF, "scrypt_work_factor": 10}
    kv = KeyValue(conf=conf)
    kv.set_key("settings", {"retries": 3})
    kv.set_key("vault", "s3cr3t", password="pw")
    assert {row.filename for row in bakthat.search(conf=conf)} >= {"settings", "vault"}
    bakthat.restore("settings", destination="s3", conf=conf, target=tmp_path / "out")
    assert json.loads((tmp_path / "out" / "settings").read_text()) == {"retries": 3}
    bakthat.restore("vault", destination="s3", conf=conf, password="pw", target=tmp_path / "out")
    assert json.loads((tmp_path / "out" / "vault").read_text()) == "s3cr3t"
    deleted = bakthat.delete("settings", destination="s3", conf=conf)
    assert deleted.is_deleted and deleted.state == "deleted"
    assert kv.get_key("settings") is None
