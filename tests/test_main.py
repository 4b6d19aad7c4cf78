"""``python -m bakthat`` (bakthat/__main__.py): the CLI runs, and its exit code is the process's."""

from __future__ import annotations

from tests.conftest import run_cli


def test_python_m_bakthat_runs_the_cli():
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: bakthat ")


def test_the_exit_code_of_an_error_passes_through():
    result = run_cli("restore", "no-backup-of-this-name")
    assert result.returncode == 4  # NotFoundError
    assert "no backup named 'no-backup-of-this-name'" in result.stderr


def test_a_usage_error_exits_2():
    result = run_cli("no-such-command")
    assert result.returncode == 2
    assert "no-such-command" in result.stderr
