"""Output for people and scripts: --version, -v/-q, progress bars, JSON shapes, logging."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest

from tests.conftest import ROOT, cli_ok, make_tree, run_cli

#: The keys of a catalog row in --json output (show, backup, restore, delete, info).
ROW_KEYS = {
    "backend", "backend_hash", "backup_date", "filename", "is_deleted", "last_updated", "metadata", "size",
    "stored_filename", "tags", "state", "session_id", "sha256", "compression", "encryption", "host", "profile",
    "source_path", "source_size", "file_count", "format_version", "level", "base", "checked_at", "check_result",
}


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


def test_json_rows_have_the_documented_keys(data, tmp_path):
    backup = json.loads(cli_ok("backup", str(data), "--prompt", "no", "--json").stdout)
    assert set(backup) == ROW_KEYS
    assert set(json.loads(cli_ok("show", "--json").stdout)[0]) == ROW_KEYS
    restored = json.loads(cli_ok("restore", "mydir", "--target", str(tmp_path / "out"), "--json").stdout)
    assert set(restored) == ROW_KEYS
    assert set(json.loads(cli_ok("info", "mydir", "--json").stdout)) == {"backup", "versions"}
    entries = json.loads(cli_ok("ls", "--json").stdout)
    assert set(entries[0]) == {"key", "size", "modified", "in_store", "in_catalog", "state", "name", "manifest"}
    assert set(json.loads(cli_ok("periodic_backups", "--json").stdout)) == {"heartbeat_url", "last_ping", "keys"}
    deleted = json.loads(cli_ok("delete", "mydir", "--json").stdout)
    assert set(deleted) == ROW_KEYS and deleted["is_deleted"] is True


def test_no_progress_bar_when_stderr_is_not_a_terminal(data, tmp_path):
    backup = cli_ok("backup", str(data), "--prompt", "no")
    restore = cli_ok("restore", "mydir", "--target", str(tmp_path / "out"))
    assert "B/s" not in backup.stderr + restore.stderr and "\r" not in backup.stderr + restore.stderr


def test_progress_can_be_forced(data, tmp_path):
    backup = run_cli("backup", str(data), "--prompt", "no", "--progress")
    assert backup.returncode == 0 and "B/s" in backup.stderr and "mydir" in backup.stderr
    restore = run_cli("restore", "mydir", "--target", str(tmp_path / "out"), "--progress")
    assert restore.returncode == 0 and "B/s" in restore.stderr
    assert "100%" in restore.stderr  # the total (the stored size) is known: a percentage and an ETA


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


def test_s3_reduced_redundancy_takes_effect(home, data, request):
    pytest.importorskip("bakthat.backends.s3", reason="the s3 backend is not available")
    pytest.importorskip("moto", reason="moto is not installed")
    request.getfixturevalue("aws")
    from tests.backends.conftest import s3_client

    (home / ".bakthat.yml").write_text("default:\n  s3_bucket: rrs-bucket\n")
    result = run_cli("backup", str(data), "-d", "s3", "--prompt", "no", "--s3-reduced-redundancy", "--json")
    assert result.returncode == 0, result.stderr
    stored = json.loads(result.stdout)["stored_filename"]
    head = s3_client().head_object(Bucket="rrs-bucket", Key=stored)
    assert head.get("StorageClass") == "REDUCED_REDUNDANCY"
    listed = json.loads(cli_ok("ls", "-d", "s3", "--json").stdout)
    assert [(e["key"], e["state"]) for e in listed] == [(stored, "catalog")]


from tests.backends.conftest import aws, moto_server  # noqa: E402, F401 - fixtures for the S3 test


def test_info_prints_nested_metadata_as_words_not_python_reprs(data):
    assert run_cli("backup", str(data), "--prompt", "no").returncode == 0
    result = run_cli("info", "mydir")
    assert result.returncode == 0
    line = next(line for line in result.stdout.splitlines() if line.startswith("metadata.entries"))
    assert line.split(None, 1)[1] == "changed 0, excluded 0, skipped 0"
    assert "{" not in result.stdout and "'" not in result.stdout


def test_delete_dry_run_says_once_what_it_would_delete(data):
    assert run_cli("backup", str(data), "--prompt", "no").returncode == 0
    result = run_cli("delete", "mydir", "--dry-run")
    assert result.returncode == 0
    said = (result.stdout + result.stderr).lower()
    assert said.count("would delete mydir.") == 1 and "nothing was deleted" in said
    assert run_cli("info", "mydir").returncode == 0  # still there
