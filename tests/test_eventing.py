"""Events: declared names, session ids, veto by before_, robust on_, failure event."""

from __future__ import annotations

import uuid

import pytest
from events import EventsException

import bakthat
from bakthat import models
from bakthat.errors import NotFoundError, VetoedError
from bakthat.eventing import EVENT_NAMES, events


def test_the_ten_events_of_the_developer_guide_check_and_on_failure_are_declared():
    expected = {
        f"{prefix}_{action}"
        for action in ("backup", "restore", "delete", "delete_older_than", "rotate_backups", "check")
        for prefix in ("before", "on")
    }
    assert set(EVENT_NAMES) == expected | {"on_failure"}


def test_an_undeclared_event_name_raises():
    with pytest.raises(EventsException, match="on_bakup"):
        events.on_bakup += lambda session_id, result: None


def test_a_handler_that_cannot_take_the_event_arguments_is_refused_at_registration():
    def no_arguments():
        pass

    with pytest.raises(TypeError, match=r"\(session_id, result\)"):
        events.on_backup += no_arguments
    with pytest.raises(TypeError, match=r"\(session_id\)"):
        events.before_backup += lambda session_id, extra: None
    assert len(events.on_backup) == 0


def test_before_and_on_share_one_uuid4_session_id_per_action(tree):
    seen = []
    events.before_backup += lambda session_id: seen.append(("before", session_id))
    events.on_backup += lambda session_id, row: seen.append(("on", session_id, row.stored_filename))
    row = bakthat.backup(str(tree), password="")
    bakthat.backup(str(tree), password="")
    assert seen[0][1] == seen[1][1] and seen[2][1] == seen[3][1]
    assert seen[0][1] != seen[2][1]
    assert uuid.UUID(seen[0][1]).version == 4
    assert seen[1][2] == row.stored_filename


def test_a_raising_before_backup_handler_vetoes_and_nothing_is_stored(tree, home):
    failures = []

    def refuse(session_id):
        raise RuntimeError("maintenance window")

    events.before_backup += refuse
    events.on_failure += lambda session_id, action, exc: failures.append((action, type(exc).__name__))
    with pytest.raises(VetoedError, match="maintenance window"):
        bakthat.backup(str(tree), password="")
    assert failures == [("backup", "VetoedError")]
    assert not (home / ".bakthat_store").exists() or not list((home / ".bakthat_store").iterdir())
    models.bind(str(home / ".bakthat.sqlite"))
    assert models.Backups.select().count() == 0


def test_a_raising_on_backup_handler_keeps_the_backup_and_the_other_handlers_run(tree, home, caplog):
    calls = []

    def broken(session_id, row):
        calls.append("broken")
        raise RuntimeError("plugin bug")

    events.on_backup += broken
    events.on_backup += lambda session_id, row: calls.append("second")
    row = bakthat.backup(str(tree), password="")
    assert calls == ["broken", "second"]
    assert "plugin bug" in caplog.text
    assert (home / ".bakthat_store" / row.stored_filename).exists()
    assert models.Backups.get_by_id(row.id).stored_filename == row.stored_filename


def test_a_failing_action_fires_on_failure_with_the_exception(home):
    received = []
    events.on_failure += lambda session_id, action, exc: received.append((session_id, action, exc))
    with pytest.raises(NotFoundError):
        bakthat.restore("absent")
    assert received[0][1] == "restore"
    assert isinstance(received[0][2], NotFoundError)
    assert uuid.UUID(received[0][0]).version == 4


def test_restore_and_delete_fire_their_events_with_the_row(tree, tmp_path):
    seen = []
    for action in ("restore", "delete"):
        getattr(events, f"before_{action}").__iadd__(lambda sid, action=action: seen.append(f"before_{action}"))
        getattr(events, f"on_{action}").__iadd__(lambda sid, row, action=action: seen.append(f"on_{action}:{row.filename}"))
    bakthat.backup(str(tree), password="")
    bakthat.restore("mydir", target=tmp_path / "out")
    bakthat.delete("mydir")
    assert seen == ["before_restore", "on_restore:mydir", "before_delete", "on_delete:mydir"]
