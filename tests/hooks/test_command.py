"""bakthat.hooks.command: parsing a hook, and running one as a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import tracemalloc
import uuid

import pytest

from bakthat.context import RunContext
from bakthat.errors import ConfigError
from bakthat.hooks.command import CommandHook, parse_hook, run_hook
from tests.conftest import process_running


def context(**changes) -> RunContext:
    return RunContext(**{"session_id": str(uuid.uuid4()), "action": "run", "job": "nightly",
                         "source": "/srv/www", "name": "www", "destination": "local", **changes})


# -- parsing ------------------------------------------------------------------------------


def test_a_run_string_is_split_like_a_shell_would_but_kept_as_argv():
    hook = parse_hook({"run": "touch '/srv/www/.snap file'"}, "hooks.before[0]")
    assert hook.argv() == ["touch", "/srv/www/.snap file"]
    assert hook.timeout == 300 and not hook.err_is_fatal and not hook.dry_run


def test_the_forms_users_write_are_accepted():
    assert parse_hook("systemctl stop app", "h").argv() == ["systemctl", "stop", "app"]
    assert parse_hook(["zfs", "snapshot", "tank@x"], "h").argv() == ["zfs", "snapshot", "tank@x"]
    hook = parse_hook({"run": "systemctl stop app", "timeout": 60, "err_is_fatal": True}, "h")
    assert hook.timeout == 60.0 and hook.err_is_fatal
    assert parse_hook({"run": "echo $HOME | wc", "shell": True}, "h").argv() == ["/bin/sh", "-c", "echo $HOME | wc"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"run": "x", "timout": 5}, r"jobs\.a\.hooks\.before\[0\]: unknown key 'timout' \(did you mean 'timeout'\?\)"),
        ({"timeout": 5}, r"jobs\.a\.hooks\.before\[0\]: missing key 'run'"),
        ({"run": "x", "timeout": 0}, r"jobs\.a\.hooks\.before\[0\]\.timeout: must be a positive number"),
        ({"run": "x", "timeout": "60"}, r"\.timeout: must be a positive number of seconds, not '60'"),
        ({"run": "x", "err_is_fatal": "yes"}, r"\.err_is_fatal: must be true or false, not 'yes'"),
        ({"run": ["a", 1]}, r"\.run: must be a command string or a list of strings"),
        ({"run": ["a", "b"], "shell": True}, r"\.run: with shell: true, run must be a non-empty command string"),
        ({"run": "echo 'unbalanced"}, r"\.run: cannot split"),
        ({"run": "   "}, r"\.run: the command is empty"),
        (42, r"jobs\.a\.hooks\.before\[0\]: a hook must be a mapping"),
    ],
)
def test_a_bad_hook_is_a_config_error_naming_its_place_and_key(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_hook(spec, "jobs.a.hooks.before[0]")


# -- running ------------------------------------------------------------------------------


def test_a_hook_runs_without_a_shell_unless_asked(tmp_path):
    plain = run_hook(parse_hook("echo $HOME '*'", "h"), context(), "before")
    assert plain.ok and plain.output == "$HOME *\n"
    shelled = run_hook(parse_hook({"run": "echo $BAKTHAT_JOB | tr a-z A-Z", "shell": True}, "h"), context(), "before")
    assert shelled.ok and shelled.output == "NIGHTLY\n"


def test_the_context_reaches_the_shell_as_variables_and_as_a_private_json_file(tmp_path):
    report = tmp_path / "seen.json"
    script = (
        "import json, os, stat, sys\n"
        "path = os.environ['BAKTHAT_CONTEXT']\n"
        "json.dump({'env': {k: v for k, v in os.environ.items() if k.startswith('BAKTHAT_')},\n"
        "           'file': json.load(open(path)), 'mode': stat.S_IMODE(os.stat(path).st_mode)},\n"
        "          open(sys.argv[1], 'w'))\n"
    )
    done = context(dry_run=True).finished("ok", "www.20261201.tar.zst", 42)
    result = run_hook(CommandHook(run=("python3", "-c", script, str(report))), done, "after")
    assert result.ok, result.output
    seen = json.loads(report.read_text())
    assert seen["env"]["BAKTHAT_SESSION_ID"] == done.session_id
    assert seen["env"]["BAKTHAT_SOURCE"] == "/srv/www"
    assert seen["env"]["BAKTHAT_DRY_RUN"] == "true"
    assert seen["env"]["BAKTHAT_STATUS"] == "ok"
    assert seen["env"]["BAKTHAT_STORED_FILENAME"] == "www.20261201.tar.zst"
    assert seen["env"]["BAKTHAT_SIZE"] == "42"
    assert seen["env"]["BAKTHAT_HOOK"] == "after"
    assert seen["file"] == done.as_dict()
    assert seen["mode"] == 0o600
    assert not os.path.exists(seen["env"]["BAKTHAT_CONTEXT"])


def test_a_failing_hook_reports_its_exit_status_and_output():
    result = run_hook(parse_hook({"run": "echo broken >&2; exit 3", "shell": True}, "h"), context(), "before")
    assert not result.ok
    assert result.exit_status == 3
    assert result.output == "broken\n"
    assert "exit status 3" in result.summary()


def test_a_missing_program_is_a_failed_result_not_an_exception():
    result = run_hook(parse_hook("/nonexistent/bakthat-hook --now", "h"), context(), "before")
    assert not result.ok and result.exit_status is None
    assert result.error == "command not found: /nonexistent/bakthat-hook"


@pytest.mark.parametrize("ignores_term", [False, True])
def test_a_hook_past_its_timeout_is_killed_with_its_whole_process_group(tmp_path, ignores_term):
    pidfile = tmp_path / "child.pid"
    trap = "trap '' TERM; " if ignores_term else ""
    hook = parse_hook({"run": f"{trap}sleep 300 & echo $! > {pidfile}; echo started; wait", "shell": True,
                       "timeout": 1}, "h")
    started = time.monotonic()
    result = run_hook(hook, context(), "before", kill_grace=0.5)
    assert result.timed_out and not result.ok
    assert result.output == "started\n"
    assert time.monotonic() - started < 30
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while process_running(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not process_running(child), "the hook's background child survived the timeout"


def test_a_hook_printing_50_mb_is_captured_bounded_without_deadlock():
    script = "import sys\nw = sys.stdout.buffer\nw.write(b'FIRST'); [w.write(b'.' * 1000000) for _ in range(50)]; w.write(b'LAST')"
    tracemalloc.start()
    try:
        result = run_hook(CommandHook(run=("python3", "-c", script), timeout=120), context(), "before", output_kib=8)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.ok
    assert result.output_bytes == 50_000_009
    assert result.output.startswith("FIRST....")
    assert result.output.endswith("....LAST")
    assert f"[... {50_000_009 - 8192} bytes dropped ...]" in result.output
    assert len(result.output) < 8192 + 100
    assert peak < 4 * 1024 * 1024


def test_secrets_are_masked_in_the_command_shown_and_in_the_output():
    hook = parse_hook("echo token=sekrit-value", "h")
    result = run_hook(hook, context(), "before", secrets=["sekrit-value"])
    assert "sekrit-value" not in result.command and "sekrit-value" not in result.output
    assert result.output == "token=***\n"


def test_a_hook_leaving_a_background_child_returns_once_it_exits(tmp_path):
    pidfile = tmp_path / "bg.pid"
    hook = parse_hook({"run": f"sleep 60 & echo $! > {pidfile}", "shell": True}, "h")
    started = time.monotonic()
    result = run_hook(hook, context(), "before")
    try:
        assert result.ok
        assert time.monotonic() - started < 20  # not the background child's 60 s
    finally:
        os.kill(int(pidfile.read_text()), signal.SIGKILL)


def test_an_interrupt_while_a_hook_runs_kills_its_group_and_propagates(tmp_path):
    pidfile = tmp_path / "child.pid"
    hook = parse_hook({"run": f"sleep 300 & echo $! > {pidfile}; wait", "shell": True}, "h")
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        run_hook(hook, context(), "before", kill_grace=0.5)
    timer.join()
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while process_running(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not process_running(child)
