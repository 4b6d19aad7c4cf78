"""files and find: what backups hold, from their indexes, without reading an archive."""

from __future__ import annotations

import os

import pytest

import bakthat
from bakthat.errors import NotFoundError
from tests.backends.conftest import aws, moto_server, s3_client  # noqa: F401


def paths(entries):
    return [entry.path for entry in entries]


def test_files_lists_the_state_at_each_backup_with_the_holder_of_each_entry(chain, home):
    first, second = (bakthat.files(row.stored_filename) for row in chain)
    assert "mydir/text.txt" in paths(first) and "mydir/sub/new.md" not in paths(first)
    assert "mydir/text.txt" not in paths(second) and "mydir/sub/new.md" in paths(second)
    holders = {entry.path: entry.holder for entry in second}
    assert holders["mydir/sub/new.md"] == chain[1].stored_filename
    assert holders["mydir/random.bin"] == chain[0].stored_filename
    assert paths(bakthat.files("mydir", at=chain[0].backup_date)) == paths(first)


def test_files_reads_no_archive(chain, home):
    for row in chain:
        (home / ".bakthat_store" / row.stored_filename).unlink()
    import shutil

    shutil.rmtree(home / ".cache")  # not even the local cache: the index objects suffice
    assert "mydir/sub/new.md" in paths(bakthat.files("mydir"))


def test_files_of_a_backup_without_an_index_is_not_found(chain, home):
    (home / ".bakthat_store" / (chain[0].stored_filename + ".index.jsonl.zst")).unlink()
    import shutil

    shutil.rmtree(home / ".cache")  # the cached state at chain[1] would need no index at all
    from bakthat.levels import BrokenChainError

    with pytest.raises(BrokenChainError, match=chain[0].stored_filename):
        bakthat.files(chain[1].stored_filename)
    row = chain[0]
    row.metadata = {key: value for key, value in row.metadata.items() if key != "index"}
    row.save()
    with pytest.raises(NotFoundError, match="no file index"):
        bakthat.files(row.stored_filename)


def test_find_lists_the_backups_holding_matches_newest_first(chain):
    found = bakthat.find("*.md")
    assert [item.stored_filename for item in found] == [chain[1].stored_filename, chain[0].stored_filename]
    assert found[0].paths == ["mydir/sub/deeper/note.md", "mydir/sub/new.md"]
    assert found[1].paths == ["mydir/sub/deeper/note.md"]
    assert [item.stored_filename for item in bakthat.find("text.txt", name="mydir")] == [chain[0].stored_filename]
    assert bakthat.find("nothing-*") == []


def test_an_encrypted_index_needs_the_password(tree, home):
    bakthat.backup(str(tree), password="browse secret")
    import shutil

    shutil.rmtree(home / ".cache")  # this host's cache of its own last state needs none
    from bakthat.errors import PasswordRequiredError, WrongPasswordError

    with pytest.raises(PasswordRequiredError):
        bakthat.files("mydir", prompt="no")
    with pytest.raises(WrongPasswordError):
        bakthat.files("mydir", prompt="no", password="wrong")
    assert "mydir/text.txt" in paths(bakthat.files("mydir", prompt="no", password="browse secret"))


def test_files_works_for_a_glacier_class_backup_without_a_restore_request(aws, tree):  # noqa: F811
    from bakthat.backends import retrieval

    conf = {"s3_bucket": "cold-bucket", "retrieval_poll_interval": 0.01}
    row = bakthat.backup(str(tree), destination="glacier", conf=conf, prompt="no")
    client = s3_client()
    assert client.head_object(Bucket="cold-bucket", Key=row.stored_filename)["StorageClass"] == "GLACIER"
    index = client.head_object(Bucket="cold-bucket", Key=row.stored_filename + ".index.jsonl.zst")
    assert index.get("StorageClass", "STANDARD") == "STANDARD"
    import shutil

    shutil.rmtree(os.path.expanduser("~/.cache"))
    entries = bakthat.files("mydir", destination="glacier", conf=conf)
    assert "mydir/sub/deeper/note.md" in paths(entries)
    assert retrieval.retrievals(include_done=True) == []
    # check lists the archive as skipped, and requests nothing
    result = bakthat.check(destination="glacier", conf=conf, read_data=True)
    assert [backup.status for backup in result.backups] == ["skipped"]
    assert "cold storage" in result.backups[0].problems[0]
    assert retrieval.retrievals(include_done=True) == []
    assert client.head_object(Bucket="cold-bucket", Key=row.stored_filename).get("Restore") is None
    # with wait, check requests the retrieval, waits for it and reads the archive
    waited = bakthat.check(destination="glacier", conf=conf, read_data=True, wait=True)
    assert [(backup.status, backup.data_read) for backup in waited.backups] == [("ok", True)]
