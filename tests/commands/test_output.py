"""Output for people and scripts, common to every command: --version, -v/-q, progress bars
on a terminal, logging, a closed pipe.  Each command's own output is tested in its module."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest

from tests.conftest import ROOT, cli_ok, make_tree, run_cli


@pytest.fixture
def data(tmp_path):
    return make_tree(tmp_path / "data" / "mydir")


def test_version():
    from bakthat import __version__

    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout == f"bakthat {__version__}\n"


def test_info_messages_go_to_stderr_and_quiet_hides_them(data):
    loud = cli_ok("backup", str(data), "--prompt", "no")
    assert loud.stdout == "" and "Backing up" in loud.stderr and "Stored mydir." in loud.stderr
    quiet = run_cli("-q", "backup", str(data), "--prompt", "no")
    assert quiet.returncode == 0 and quiet.stderr == ""
    also_quiet = run_cli("backup", str(data), "--prompt", "no", "-q")
    assert also_quiet.returncode == 0 and also_quiet.stderr == ""


def test_verbose_shows_debug_messages():
    from bakthat import __version__

    verbose = run_cli("show", "-v")
    assert verbose.returncode == 0 and f"bakthat {__version__} on Python" in verbose.stderr
    assert cli_ok("-v", "show").stderr == verbose.stderr
    assert cli_ok("show").stderr == ""


def test_verbose_and_quiet_exclude_each_other():
    result = run_cli("-v", "-q", "show")
    assert result.returncode == 2 and "not allowed with" in result.stderr


def read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_terminal_gets_a_bar_unless_quiet(data):
    def run_on_a_tty(*args):
        leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
        environment = {**os.environ, "PYTHONPATH": str(ROOT)}
        process = subprocess.Popen([sys.executable, "-m", "bakthat", *args], stdout=subprocess.PIPE,
                                   stderr=follower, stdin=subprocess.DEVNULL, env=environment)
        os.close(follower)
        output = read_all(leader).decode(errors="replace")
        process.wait(timeout=120)
        os.close(leader)
        return process.returncode, output

    code, output = run_on_a_tty("backup", str(data), "--prompt", "no")
    assert code == 0 and "B/s" in output
    code, output = run_on_a_tty("backup", str(data), "--prompt", "no", "-q")
    assert code == 0 and "B/s" not in output
    code, output = run_on_a_tty("backup", str(data), "--prompt", "no", "--no-progress")
    assert code == 0 and "B/s" not in output


def test_a_terminal_without_a_size_still_gets_a_bar(data):
    leader, follower = pty.openpty()
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "bakthat", "backup", str(data), "--prompt", "no"],
                               stdout=subprocess.PIPE, stderr=follower, stdin=subprocess.DEVNULL, env=environment)
    os.close(follower)
    output = read_all(leader).decode(errors="replace")
    process.wait(timeout=120)
    os.close(leader)
    assert process.returncode == 0 and "B/s" in output


def test_library_loggers_stay_at_warning(data):
    code = (
        "import logging, sys; from bakthat import cli;"
        "cli._configure_logging(True, False);"
        "assert all(logging.getLogger(n).level == logging.WARNING for n in cli.QUIET_LOGGERS);"
        "assert logging.getLogger('bakthat').level == logging.DEBUG"
    )
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_closed_stdout_pipe_is_not_a_traceback(data, tmp_path):
    for index in range(3):
        (tmp_path / f"f{index}").write_text("x")
        run_cli("backup", str(tmp_path / f"f{index}"), "--prompt", "no")
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "bakthat", "show"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment)
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.wait(timeout=60)
    assert "Traceback" not in stderr

