"""The developer guide's low-level API example, with its S3/Glacier conf, against a moto server.

The guide's paths (``/dir/i/wanto/bak``) are made under a temporary directory; the
calls and the conf dict are as written.  Its conf names a ``glacier_vault``, so
``destination="glacier"`` uses the vault API (moto's Glacier); the other calls use the
default destination (the local store).  Then the same archive goes to S3 and to the
S3 archive classes, and each comes back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bakthat.errors import RetrievalPendingError
from tests.backends.conftest import aws, moto_server, s3_client  # noqa: F401 - fixtures
from tests.conftest import make_tree, snapshot


@pytest.fixture
def guide_dir(tmp_path):
    return make_tree(tmp_path / "dir" / "i" / "wanto" / "bak")


def test_the_low_level_api_example_runs_as_written(aws, guide_dir, home):
    bak = str(guide_dir)
    # --- the guide, with its path made real ----------------------------------------------
    import bakthat

    # roration is optional
    bakthat_conf = {'access_key': 'YOURACCESSKEY',
                    'secret_key': 'YOURSECRETKEY',
                    'glacier_vault': 'yourvault',
                    's3_bucket': 'yours3bucket',
                    'region_name': 'eu-west-1',
                    'rotation': {'days': 7,
                                'first_week_day': 5,
                                'months': 6,
                                'weeks': 6}}

    bakthat.backup(bak, conf=bakthat_conf)

    bakthat.backup(bak, conf=bakthat_conf, destination="glacier")

    # or if you want to have generated the configuration file with "bakthat configure" or created ~/.bakthat.yml
    bakthat.backup(bak)

    bakthat.ls()

    # restore in the current working directory
    bakthat.restore("bak", conf=bakthat_conf)
    # --- what it must have done ------------------------------------------------------------
    assert snapshot(Path.cwd() / "bak") == snapshot(guide_dir)
    rows = bakthat.search("bak", conf=bakthat_conf)
    assert sorted(row.backend for row in rows) == ["glacier", "local", "local"]
    glacier_row = next(row for row in rows if row.backend == "glacier")
    from bakthat.backends.vault import GlacierArchives

    assert GlacierArchives.get(GlacierArchives.key == glacier_row.stored_filename).vault == "yourvault"
    # the vault archive comes back in two steps (moto finishes Expedited jobs in ~2 s)
    quick = {**bakthat_conf, "retrieval_tier": "Expedited", "retrieval_poll_interval": 0.5}
    with pytest.raises(RetrievalPendingError):
        bakthat.restore("bak", conf=quick, destination="glacier", target="from-vault")
    bakthat.restore("bak", conf=quick, destination="glacier", target="from-vault", wait=True)
    assert snapshot(Path("from-vault", "bak").absolute()) == snapshot(guide_dir)


def test_the_example_with_destination_s3_and_the_glacier_storage_class(aws, guide_dir, home):
    import bakthat

    bakthat_conf = {'access_key': 'YOURACCESSKEY',
                    'secret_key': 'YOURSECRETKEY',
                    's3_bucket': 'yours3bucket',
                    'region_name': 'eu-west-1'}

    bakthat.backup(str(guide_dir), conf=bakthat_conf, destination="s3")
    bakthat.backup(str(guide_dir), conf=bakthat_conf, destination="glacier")
    bakthat.restore("bak", conf=bakthat_conf, destination="s3", target="from-s3")
    assert snapshot(Path("from-s3", "bak").absolute()) == snapshot(guide_dir)
    with pytest.raises(RetrievalPendingError, match="requested"):
        bakthat.restore("bak", conf=bakthat_conf, destination="glacier", target="from-glacier")
    bakthat.restore("bak", conf=bakthat_conf, destination="glacier", target="from-glacier")
    assert snapshot(Path("from-glacier", "bak").absolute()) == snapshot(guide_dir)
    classes = {
        item["Key"]: item.get("StorageClass")
        for item in s3_client("eu-west-1").list_objects_v2(Bucket="yours3bucket")["Contents"]
    }
    # The archives: one per destination's class; their manifests and indexes stay readable (STANDARD).
    archives = {key: kind for key, kind in classes.items() if not key.endswith((".manifest.json", ".index.jsonl.zst"))}
    assert sorted(archives.values()) == ["GLACIER", "STANDARD"]
    assert len(classes) > len(archives) and {classes[key] for key in classes.keys() - archives.keys()} == {"STANDARD"}
