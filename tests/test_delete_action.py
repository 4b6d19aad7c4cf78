"""bakthat.delete_action: a backup deleted in the safe order (row marked, objects removed, row deleted)."""

from __future__ import annotations

import pytest

import bakthat
from bakthat import models
from bakthat.errors import NotFoundError, StorageError
from tests.test_core import store_dir, stored_files


def test_delete_marks_the_row_then_removes_archive_and_manifest(tree, home):
    row = bakthat.backup(str(tree), password="")
    deleted = bakthat.delete("mydir")
    assert deleted.id == row.id
    stored = models.Backups.get_by_id(row.id)
    assert stored.is_deleted and stored.state == "deleted"
    assert stored_files(home) == []
    assert bakthat.search() == []
    with pytest.raises(NotFoundError):
        bakthat.restore("mydir")


def test_deleting_a_backup_whose_archive_is_already_gone_succeeds_with_a_warning(tree, home, caplog):
    row = bakthat.backup(str(tree), password="")
    (store_dir(home) / row.stored_filename).unlink()
    deleted = bakthat.delete("mydir")
    assert models.Backups.get_by_id(deleted.id).state == "deleted"
    assert "already gone" in caplog.text


def test_a_failed_object_delete_leaves_the_row_unrestorable_and_marked_for_retry(tree, home, monkeypatch):
    from bakthat.backends import local

    row = bakthat.backup(str(tree), password="")

    def refuse(self, key):
        raise StorageError("disk on fire")

    monkeypatch.setattr(local.Backend, "delete", refuse)
    with pytest.raises(StorageError):
        bakthat.delete("mydir")
    stored = models.Backups.get_by_id(row.id)
    assert stored.is_deleted and stored.state == "deleting"
    assert (store_dir(home) / row.stored_filename).exists()
