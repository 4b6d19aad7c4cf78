"""`bakthat status`: runs of other processes, running, finished and crashed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest


@pytest.fixture(autouse=True)
def status_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("BAKTHAT_STATUS_DIR", str(tmp_path / "status"))
    return tmp_path / "status"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bakthat", *args], capture_output=True, text=True, timeout=300)


def runs() -> list[dict]:
    result = cli("status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_plain_backup_and_restore_publish_their_run(home, tmp_path):
    tree = tmp_path / "photos"
    tree.mkdir()
    (tree / "a.jpg").write_bytes(os.urandom(200_000))
    assert cli("backup", str(tree), "--prompt", "no").returncode == 0
    assert cli("restore", "photos", "--target", str(tmp_path / "out"), "--prompt", "no").returncode == 0
    restore, backup = runs()
    assert (backup["action"], backup["state"], backup["name"], backup["phase"]) == ("backup", "ok", "photos", "archive")
    assert backup["bytes_done"] >= 200_000 and backup["source"] == str(tree)
    assert backup["files_done"] == 2  # photos/ and a.jpg
    assert (restore["action"], restore["state"], restore["name"], restore["phase"]) == (
        "restore", "ok", "photos", "restore")
    assert restore["bytes_done"] == restore["bytes_total"] > 0


def test_a_run_killed_midway_is_shown_as_crashed_not_running(home, tmp_path):
    (home / ".bakthat.yml").write_text(
        "default:\n  jobs:\n    slow:\n      sources:\n"
        "        - {name: stream, command: [sh, -c, 'head -c 100000 /dev/zero; sleep 300']}\n")
    running = subprocess.Popen([sys.executable, "-m", "bakthat", "run", "--prompt", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(run["phase"] == "dump" for run in runs()):
            time.sleep(0.2)
        (current,) = runs()
        assert current["state"] == "running" and current["pid"] == running.pid
    finally:
        os.killpg(running.pid, signal.SIGKILL)
        running.wait()
    (crashed,) = runs()
    assert crashed["state"] == "crashed" and crashed["job"] == "slow"
    text = cli("status").stdout
    assert text.splitlines()[1].startswith("crashed") and "slow" in text
    assert cli("status", "--running", "--json").stdout.strip() == "[]"


def test_no_runs_says_so(home):
    result = cli("status")
    assert (result.returncode, result.stdout.strip()) == (0, "no runs")


def test_watch_redraws_until_interrupted(home, tmp_path):
    screen = tmp_path / "screen.txt"
    with open(screen, "w") as out:
        watching = subprocess.Popen([sys.executable, "-m", "bakthat", "status", "--watch", "0.2"],
                                    stdout=out, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while screen.read_text().count("STATE") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        watching.send_signal(signal.SIGINT)
        _, err = watching.communicate(timeout=30)
    assert watching.returncode == 130, err
    assert screen.read_text().count("STATE") >= 2  # redrawn


GATE_PLUGIN = '''
import os

from bakthat.plugin import Plugin


class Gate(Plugin):
    """Holds the walk at any entry named m_gate while the FIFO $GATE exists."""

    def activate(self):
        self.register_file_filter(self.decide)

    def decide(self, path, st):
        gate = os.environ.get("GATE")
        if path.endswith("/m_gate") and gate and os.path.exists(gate):
            with open(gate, "rb") as fifo:  # blocks until the test opens the FIFO to write
                fifo.read()
        return None
'''


@pytest.fixture
def gate(home, tmp_path, monkeypatch):
    """A plugin that holds a backup's walk half-way until the test releases it."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "gate.py").write_text(GATE_PLUGIN)
    (home / ".bakthat.yml").write_text(
        f"default:\n  plugins: [gate.Gate]\n  plugins_dir: {plugins}\n"
        "  jobs:\n    nightly:\n      sources: [" + str(tmp_path / "etc") + ", " + str(tmp_path / "www") + "]\n")
    monkeypatch.setenv("GATE", str(tmp_path / "gate"))
    for name in ("etc", "www"):  # 50 files, the gate, 50 files
        tree = tmp_path / name
        tree.mkdir()
        for index in range(50):
            (tree / f"a{index:03}").write_bytes(b"a" * 1000)
            (tree / f"z{index:03}").write_bytes(b"z" * 1000)
        (tree / "m_gate").write_bytes(b"")
    return tmp_path / "gate"


def held(gate, *argv: str) -> tuple[subprocess.Popen, dict]:
    """Start ``bakthat ARGV`` with the gate closed; return it and its status (as
    `bakthat status --json` prints it) once its walk is held at the gate."""
    from bakthat.status import list_runs

    os.mkfifo(gate)
    child = subprocess.Popen([sys.executable, "-m", "bakthat", *argv, "--prompt", "no"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        mine = [run for run in list_runs() if run.pid == child.pid and run.state == "running"]
        if mine and mine[0].files_done >= 51 and mine[0].eta_note != "estimating":
            break
        time.sleep(0.05)
    [current] = [run for run in runs() if run["pid"] == child.pid]
    return child, current


def release(gate, child) -> None:
    with open(gate, "wb"):
        pass
    os.unlink(gate)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 0, err


def test_files_done_grows_while_a_backup_walks_and_its_second_run_has_an_eta(gate, tmp_path):
    child, first = held(gate, "backup", str(tmp_path / "etc"))
    try:
        assert first["state"] == "running" and first["phase"] == "archive"
        assert first["files_done"] == 51  # etc/ and the 50 files before the gate, published mid-walk
        assert first["eta_seconds"] is None and first["files_expected"] is None
        assert first["eta_note"] == "no estimate for etc: no earlier full backup of etc"
    finally:
        release(gate, child)
    [done] = runs()
    assert (done["state"], done["files_done"]) == ("ok", 102)
    child, second = held(gate, "backup", str(tmp_path / "etc"))
    try:
        assert second["files_done"] == 51 and second["files_expected"] == 102
        assert second["eta_seconds"] > 0 and second["eta_basis"].startswith("the last full backup of etc (etc.")
        assert "unknown" not in cli("status", "--running").stdout
    finally:
        release(gate, child)


def test_a_job_s_eta_sums_the_last_backups_of_its_sources(gate, tmp_path):
    result = cli("run", "--prompt", "no")  # no gate: a first run, to have an estimate
    assert result.returncode == 0, result.stderr
    child, job = held(gate, "run", "nightly")
    try:
        assert (job["job"], job["name"], job["files_done"]) == ("nightly", "etc", 51)
        assert job["files_expected"] == 204 and job["bytes_expected"] == 200_000
        assert job["eta_basis"] == "the sum of 2 parts' last backups" and job["eta_seconds"] > 0
    finally:
        release(gate, child)
