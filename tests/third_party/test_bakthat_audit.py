"""The audit plugin, tested the way its author would: with bakthat's kit only.

The fixtures ``bakthat_catalog`` (a temporary HOME, config, catalog and store) and
``bakthat_events`` (an event recorder) come from bakthat's pytest plugin, registered
through the ``pytest11`` entry point; nothing here imports bakthat's own test helpers.
tests/testing/test_pytest_plugin.py runs this file in a pytest of its own, without
bakthat's conftest, to prove it.
"""

from __future__ import annotations

import json

import pytest

import bakthat
from bakthat.errors import VetoedError


@pytest.fixture
def audited(bakthat_catalog):
    """A profile enabling the audit plugin, and a directory to back up."""
    log = bakthat_catalog.home / "audit.jsonl"
    bakthat_catalog.configure(
        plugins=["tests.third_party.bakthat_audit.Audit"],
        extra={"audit_log": str(log), "audit_freeze": str(bakthat_catalog.home / "freeze")},
        scrypt_work_factor=10,
    )
    source = bakthat_catalog.work / "photos"
    source.mkdir()
    (source / "cat.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return log, source


def audit_lines(log):
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_a_backup_is_audited_with_its_session_id(audited, bakthat_catalog, bakthat_events):
    log, source = audited
    row = bakthat.backup(str(source), password="pw")
    session = bakthat_events.session("backup")
    assert session.names == ["before_backup", "on_backup"]
    assert audit_lines(log) == [{"session_id": session.session_id, "stored_filename": row.stored_filename, "deleted": False}]
    assert [backup.stored_filename for backup in bakthat_catalog.backups()] == [row.stored_filename]


def test_a_restore_and_a_delete_are_audited_too(audited, bakthat_catalog, bakthat_events):
    log, source = audited
    row = bakthat.backup(str(source), password="pw")
    bakthat.restore("photos", password="pw", target=bakthat_catalog.work / "back")
    assert (bakthat_catalog.work / "back" / "photos" / "cat.jpg").read_bytes() == b"\xff\xd8 not really a jpeg"
    bakthat.delete("photos")
    sessions = {recorded.action: recorded.session_id for recorded in bakthat_events.sessions()}
    assert [line["session_id"] for line in audit_lines(log)] == [sessions["backup"], sessions["restore"], sessions["delete"]]
    assert audit_lines(log)[-1] == {"session_id": sessions["delete"], "stored_filename": row.stored_filename, "deleted": True}
    assert bakthat_catalog.backups() == []


def test_a_freeze_vetoes_the_backup_and_nothing_is_stored(audited, bakthat_catalog, bakthat_events):
    log, source = audited
    (bakthat_catalog.home / "freeze").touch()
    with pytest.raises(VetoedError, match="backups are frozen"):
        bakthat.backup(str(source), password="pw")
    session = bakthat_events.session("backup")
    assert session.names == ["before_backup", "on_failure"]
    assert isinstance(session.exception, VetoedError)
    assert bakthat_catalog.backups() == []
    assert bakthat_catalog.stored() == []
    assert not log.exists()
