"""bakthat.process: bounded output, secrets out of what is shown, killing a process group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from bakthat import process
from tests.conftest import process_running


def test_bounded_output_keeps_everything_below_its_limits():
    output = process.BoundedOutput(head=10, tail=10)
    output.feed(b"hello ")
    output.feed(b"world")
    assert output.text() == "hello world"
    assert output.dropped == 0


def test_bounded_output_keeps_the_head_and_tail_and_says_how_much_it_dropped():
    output = process.BoundedOutput(head=4, tail=6)
    for chunk in (b"HEAD", b"-middle-" * 1000, b"TAIL!!"):
        output.feed(chunk)
    text = output.text()
    assert text.startswith("HEAD\n")
    assert text.endswith("\nTAIL!!")
    assert "[... 8000 bytes dropped ...]" in text
    assert output.total == 8010
    assert output.dropped == 8000


def test_bounded_output_memory_stays_bounded_whatever_is_fed():
    output = process.BoundedOutput(head=1000, tail=1000)
    for _ in range(10_000):
        output.feed(os.urandom(997))
    assert len(output._head) + len(output._tail) <= 1000 + 2 * 1000


def test_bounded_output_masks_secrets_in_its_text():
    output = process.BoundedOutput()
    output.feed(b"connecting with hunter2-secret to postgresql://app:pw1234@db/app\n")
    text = output.text(["hunter2-secret"])
    assert "hunter2-secret" not in text and "pw1234" not in text
    assert "postgresql://app:***@db/app" in text


def test_display_argv_masks_password_options_url_passwords_and_known_secrets():
    shown = process.display_argv(
        ["tool", "--password=abcd1234", "--api-token", "tok-9876", "mysql://u:zzzz9999@h/db", "-x", "known-secret"],
        ["known-secret"],
    )
    for secret in ("abcd1234", "tok-9876", "zzzz9999", "known-secret"):
        assert secret not in shown
    assert shown == "tool '--password=***' --api-token '***' 'mysql://u:***@h/db' -x '***'"


def test_terminate_group_kills_children_that_ignore_sigterm(tmp_path):
    pidfile = tmp_path / "pid"
    script = f"trap '' TERM; sleep 300 & echo $! > {pidfile}; wait"
    child = process.start(["/bin/sh", "-c", script], os.environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not pidfile.exists() or not pidfile.read_text().strip():
        time.sleep(0.01)
    grandchild = int(pidfile.read_text())
    assert process.proc_stat(grandchild).pgrp == child.pid
    process.terminate_group(child, grace=0.3)
    assert child.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 5
    while process_running(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not process_running(grandchild)


def test_a_child_runs_in_its_own_process_group():
    child = process.start([sys.executable, "-c", "import time; time.sleep(30)"], os.environ)
    try:
        assert os.getpgid(child.pid) == child.pid != os.getpgid(0)
    finally:
        process.terminate_group(child, grace=1)


def test_describe_exit_names_the_status_or_the_signal():
    assert process.describe_exit(3) == "exit status 3"
    assert process.describe_exit(-9) == "killed by SIGKILL"
