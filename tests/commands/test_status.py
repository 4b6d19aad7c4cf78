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
