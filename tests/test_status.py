"""bakthat.status: a run's progress, published to a file another process can poll."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import uuid

import pytest

from bakthat import status
from bakthat.estimates import FILE_COST, Estimate
from bakthat.errors import ConfigError

PUBLISHER = r"""
import sys, time
from bakthat.status import StatusPublisher
publisher = StatusPublisher(sys.argv[1], "run", job="nightly", source="postgresql://db/app", name="app",
                            directory=sys.argv[2]).start()
publisher.update(phase="dump", bytes_total=10_000_000, force=True)
publisher.advance(4_000_000, files=1)
publisher.update(force=True)
print("published", flush=True)
if sys.stdin.readline().strip() == "finish":
    publisher.finish("partial", "1 of 5 sources failed")
    print("finished", flush=True)
    sys.stdin.readline()
else:
    time.sleep(300)
"""


def spawn(directory, session_id):
    child = subprocess.Popen([sys.executable, "-c", PUBLISHER, session_id, str(directory)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "published"
    return child


def test_another_process_sees_a_running_run_and_then_its_end(tmp_path):
    session_id = str(uuid.uuid4())
    child = spawn(tmp_path, session_id)
    try:
        [run] = status.list_runs(tmp_path)
        assert (run.session_id, run.state, run.pid) == (session_id, "running", child.pid)
        assert (run.job, run.name, run.phase) == ("nightly", "app", "dump")
        assert run.bytes_done == 4_000_000 and run.files_done == 1 and run.bytes_total == 10_000_000
        assert run.process_start == status.process.proc_stat(child.pid).start_ticks
        child.stdin.write("finish\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "finished"
        [run] = status.list_runs(tmp_path)
        assert run.state == "partial" and run.error == "1 of 5 sources failed" and run.finished
    finally:
        child.kill()
        child.wait()
    [run] = status.list_runs(tmp_path)
    assert run.state == "partial"  # a finished run stays finished after its process is gone


def test_a_run_killed_mid_way_is_shown_as_crashed_not_running(tmp_path):
    child = spawn(tmp_path, str(uuid.uuid4()))
    child.send_signal(signal.SIGKILL)
    child.wait()
    [run] = status.list_runs(tmp_path)
    assert run.state == "crashed"
    assert "crashed" in status.format_runs([run])


def test_a_reused_pid_is_not_mistaken_for_the_run(tmp_path):
    publisher = status.StatusPublisher(str(uuid.uuid4()), "backup", directory=tmp_path).start()
    assert status.list_runs(tmp_path)[0].state == "running"
    document = json.loads(publisher.path.read_text())
    document["process_start"] -= 1  # same pid, another process start time: the pid was reused
    publisher.path.write_text(json.dumps(document))
    assert status.list_runs(tmp_path)[0].state == "crashed"
    document["process_start"] += 1
    document["boot_id"] = "another-boot"
    publisher.path.write_text(json.dumps(document))
    assert status.list_runs(tmp_path)[0].state == "crashed"


class Clock:
    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self):
        return self.now


def test_updates_are_throttled_but_phase_changes_and_the_end_always_written(tmp_path):
    clock = Clock()
    publisher = status.StatusPublisher(str(uuid.uuid4()), "backup", directory=tmp_path, clock=clock).start()
    for _ in range(1000):
        publisher.advance(1000)
        clock.now += 0.001  # 1000 updates in one second
    assert publisher.writes <= 1 + 4 + 1
    written = json.loads(publisher.path.read_text())["bytes_done"]
    assert written < 1_000_000
    publisher.update(phase="upload")
    assert json.loads(publisher.path.read_text())["phase"] == "upload"
    publisher.finish("ok")
    assert json.loads(publisher.path.read_text())["bytes_done"] == 1_000_000


def test_rate_and_eta_follow_progress(tmp_path):
    clock = Clock()
    publisher = status.StatusPublisher(str(uuid.uuid4()), "backup", directory=tmp_path, clock=clock).start()
    publisher.update(bytes_total=100_000_000, force=True)
    for _ in range(10):
        clock.now += 1
        publisher.advance(5_000_000)
    run = status.list_runs(tmp_path)[0]
    assert run.rate == pytest.approx(5_000_000)
    assert run.eta_seconds == pytest.approx(10.0) and run.eta_basis == "the stored size"


class Walk:
    """What a walk fills while it runs (the files count of a TarStats)."""

    files = 0


def test_files_done_follows_a_walk_while_it_runs_without_a_call_per_file(tmp_path):
    clock = Clock()
    publisher = status.StatusPublisher(str(uuid.uuid4()), "backup", directory=tmp_path, clock=clock).start()
    walk = Walk()
    publisher.begin("photos", counts=walk)
    walk.files = 40
    clock.now += 1
    publisher.update(force=True)
    assert status.list_runs(tmp_path)[0].files_done == 40
    walk.files = 41
    publisher.end(files=42)  # the final count replaces the last one read
    publisher.begin("music", counts=Walk())
    publisher.finish("ok")
    assert status.list_runs(tmp_path)[0].files_done == 42


def test_a_backup_s_eta_extrapolates_the_share_of_the_previous_backup_done(tmp_path):
    clock = Clock()
    publisher = status.StatusPublisher(str(uuid.uuid4()), "backup", directory=tmp_path, clock=clock).start()
    walk = Walk()
    publisher.begin("photos", Estimate(100, 100 * FILE_COST, "the last full backup of photos"), walk)
    clock.now += 30
    walk.files = 25
    publisher.advance(25 * FILE_COST)  # a quarter of the files and of the bytes in 30 s
    publisher.update(force=True)
    run = status.list_runs(tmp_path)[0]
    assert run.eta_seconds == pytest.approx(90.0)
    assert (run.files_expected, run.bytes_expected) == (100, 100 * FILE_COST)
    assert run.eta_basis == "the last full backup of photos" and run.eta_note is None
    assert "1:30" in status.format_runs([run], now=clock.now) and "from the last full backup" in status.format_runs([run])


def test_past_its_estimate_a_backup_says_so_instead_of_a_negative_eta(tmp_path):
    clock = Clock()
    publisher = status.StatusPublisher(str(uuid.uuid4()), "backup", directory=tmp_path, clock=clock).start()
    walk = Walk()
    publisher.begin("photos", Estimate(10, 0, "the last full backup of photos"), walk)
    clock.now += 30
    walk.files = 11
    publisher.update(force=True)
    run = status.list_runs(tmp_path)[0]
    assert run.eta_seconds is None and run.eta_note.startswith("past the estimate for photos: 11 files")
    assert " exceeded " in status.format_runs([run])


def test_a_first_backup_has_no_eta_and_says_why(tmp_path):
    clock = Clock()
    publisher = status.StatusPublisher(str(uuid.uuid4()), "backup", directory=tmp_path, clock=clock).start()
    publisher.begin("photos", "no earlier full backup of photos", Walk())
    clock.now += 30
    publisher.advance(1000)
    publisher.update(force=True)
    run = status.list_runs(tmp_path)[0]
    assert run.eta_seconds is None and run.eta_note == "no estimate for photos: no earlier full backup of photos"
    assert run.files_expected is None and " unknown " in status.format_runs([run])
    publisher.finish("ok")
    assert status.list_runs(tmp_path)[0].files_expected is None


def test_a_job_s_eta_sums_its_sources_and_leaves_out_those_that_never_began(tmp_path):
    clock = Clock()
    publisher = status.StatusPublisher(str(uuid.uuid4()), "run", job="nightly", directory=tmp_path, clock=clock).start()
    cost = FILE_COST
    publisher.expect([("etc", Estimate(10, 0, "etc's")), ("app", Estimate(1, 19 * cost, "app's")),
                      ("www", Estimate(10, 0, "www's"))])
    publisher.begin("etc", counts=Walk())
    run = status.list_runs(tmp_path)[0]
    assert (run.files_expected, run.bytes_expected) == (21, 19 * cost)
    assert run.eta_basis == "the sum of 3 parts' last backups"
    clock.now += 10
    publisher.end(files=10)  # 10 of 40 units of work in 10 s: 30 s to go
    publisher.update(force=True)
    assert status.list_runs(tmp_path)[0].eta_seconds == pytest.approx(30.0)
    publisher.begin("www", counts=Walk())  # app's hook failed: it never began, its work is not ahead
    publisher.update(force=True)
    assert status.list_runs(tmp_path)[0].eta_seconds == pytest.approx(10.0)


def test_files_are_private_and_replaced_atomically(tmp_path):
    publisher = status.StatusPublisher(str(uuid.uuid4()), "backup", directory=tmp_path / "status").start()
    assert stat.S_IMODE(publisher.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(publisher.directory.stat().st_mode) == 0o700
    publisher.update(phase="walk")
    assert [path.name for path in publisher.directory.iterdir()] == [publisher.path.name]


def test_finished_runs_are_kept_up_to_a_bound(tmp_path):
    for index in range(8):
        with status.StatusPublisher(str(uuid.uuid4()), "backup", name=f"n{index}", directory=tmp_path, keep=5):
            pass
    runs = status.list_runs(tmp_path)
    assert [run.name for run in runs] == ["n7", "n6", "n5", "n4", "n3"]
    assert all(run.state == "ok" for run in runs)


def test_a_failing_block_is_published_as_failed_and_an_interrupt_as_interrupted(tmp_path):
    with pytest.raises(RuntimeError), status.StatusPublisher(str(uuid.uuid4()), "backup", directory=tmp_path):
        raise RuntimeError("disk full")
    with pytest.raises(KeyboardInterrupt), status.StatusPublisher(str(uuid.uuid4()), "restore", directory=tmp_path):
        raise KeyboardInterrupt
    states = sorted((run.action, run.state, run.error) for run in status.list_runs(tmp_path))
    assert states == [("backup", "failed", "disk full"), ("restore", "interrupted", "KeyboardInterrupt")]


def test_a_status_directory_others_could_tamper_with_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(ConfigError, match="is not a private directory"):
        status.status_directory(shared)
    link = tmp_path / "link"
    os.symlink(tmp_path, link)
    with pytest.raises(ConfigError, match="is not a private directory"):
        status.status_directory(link)


def test_the_default_directory_is_per_user_and_overridable(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert status.status_directory() == tmp_path / "bakthat"
    monkeypatch.setenv("BAKTHAT_STATUS_DIR", str(tmp_path / "mine"))
    assert status.status_directory() == tmp_path / "mine"


def test_garbage_in_the_directory_is_skipped(tmp_path):
    (tmp_path / "junk.json").write_text("{not json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something-else"}))
    status.StatusPublisher(str(uuid.uuid4()), "backup", directory=tmp_path).start()
    assert len(status.list_runs(tmp_path)) == 1


def test_an_eta_is_republished_while_nothing_moves(tmp_path):
    publisher = status.StatusPublisher(str(uuid.uuid4()), "backup", directory=tmp_path, min_interval=0.01,
                                       refresh=0.02).start()
    try:
        publisher.begin("photos", Estimate(100, 0, "the last full backup of photos"), Walk())
        writes = publisher.writes
        deadline = time.monotonic() + 30
        while publisher.writes < writes + 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert publisher.writes >= writes + 3  # a stalled walk's ETA still grows with time
    finally:
        publisher.finish("ok")
