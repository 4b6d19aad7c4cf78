"""bakthat.testing.recorder: every event with its session id, and nothing after it stops."""

from __future__ import annotations

import pytest

import bakthat
from bakthat import eventing
from bakthat.errors import NotFoundError
from bakthat.testing.recorder import EventRecorder


@pytest.fixture
def source(home, tmp_path):
    directory = tmp_path / "work" / "docs"
    directory.mkdir()
    (directory / "a.txt").write_text("a\n")
    return directory


def test_a_backup_is_recorded_as_one_session_with_its_row(source):
    with EventRecorder() as recorder:
        row = bakthat.backup(str(source), password="")
    assert recorder.names() == ["before_backup", "on_backup"]
    session = recorder.session("backup")
    assert session.names == ["before_backup", "on_backup"]
    assert {event.session_id for event in recorder.events} == {session.session_id}
    assert session.result.stored_filename == row.stored_filename
    assert session.result.session_id == session.session_id  # the row carries the same id
    assert not session.failed


def test_each_action_has_its_own_session_id(source):
    with EventRecorder() as recorder:
        bakthat.backup(str(source), password="")
        bakthat.delete("docs")
    backup, delete = recorder.sessions()
    assert (backup.action, delete.action) == ("backup", "delete")
    assert backup.session_id != delete.session_id
    assert delete.result.is_deleted


def test_a_failure_is_recorded_with_its_exception(home):
    with EventRecorder() as recorder, pytest.raises(NotFoundError):
        bakthat.restore("nothing-by-that-name", target="out")
    session = recorder.session("restore")
    assert session.names == ["before_restore", "on_failure"]
    assert isinstance(session.exception, NotFoundError)
    with pytest.raises(AssertionError, match="no on_ event"):
        session.result


def test_a_dry_run_is_recorded_with_its_plan(source):
    with EventRecorder() as recorder:
        bakthat.backup(str(source), password="", dry_run=True)
    assert recorder.session("backup").result.dry_run is True


def test_only_the_chosen_events_are_recorded(source):
    with EventRecorder(["on_backup"]) as recorder:
        bakthat.backup(str(source), password="")
    assert recorder.names() == ["on_backup"]
    with pytest.raises(ValueError, match="on_bakup"):
        EventRecorder(["on_bakup"])


def test_stopping_removes_only_the_recorder_and_keeps_what_it_recorded(source):
    def other(session_id):
        pass

    eventing.events.before_backup += other
    recorder = EventRecorder().start()
    with pytest.raises(RuntimeError, match="already recording"):
        recorder.start()
    bakthat.backup(str(source), password="")
    recorder.stop()
    assert not recorder.recording
    assert list(eventing.events.before_backup) == [other]
    for name in eventing.EVENT_NAMES:
        if name != "before_backup":
            assert list(getattr(eventing.events, name)) == []
    bakthat.backup(str(source), password="")
    assert recorder.names() == ["before_backup", "on_backup"]
    recorder.clear()
    assert recorder.events == []


def test_session_refuses_zero_or_several_sessions_of_an_action(source):
    with EventRecorder() as recorder:
        with pytest.raises(AssertionError, match="expected one backup session, recorded 0"):
            recorder.session("backup")
        bakthat.backup(str(source), password="")
        bakthat.backup(str(source), password="")
    with pytest.raises(AssertionError, match="recorded 2"):
        recorder.session("backup")
    assert [session.action for session in recorder.sessions()] == ["backup", "backup"]


def test_the_fixture_records_for_the_whole_test(bakthat_events, source):
    assert bakthat_events.recording
    bakthat.backup(str(source), password="")
    assert bakthat_events.session("backup").names == ["before_backup", "on_backup"]
