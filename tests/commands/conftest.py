"""Fixtures of the command tests: the ``bakthat`` command run in-process, a backed-up tree."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest

#: The keys of a catalog row in --json output (show, backup, restore, delete, info).
ROW_KEYS = {
    "backend", "backend_hash", "backup_date", "filename", "is_deleted", "last_updated", "metadata", "size",
    "stored_filename", "tags", "state", "session_id", "sha256", "compression", "encryption", "host", "profile",
    "source_path", "source_size", "file_count", "format_version", "level", "base", "checked_at", "check_result",
}


@dataclass
class Ran:
    """What a command run left: its exit code and what it printed (as subprocess.run gives)."""

    returncode: int
    stdout: str
    stderr: str


class InProcess:
    """``bakthat ARGS`` through :func:`bakthat.cli.main` in this process, output captured.

    Usage errors (argparse's SystemExit, ``--help``) give their exit code like the real
    command; :meth:`ok` also asserts the command exited 0.
    """

    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def __call__(self, *args: str, input: str | None = None) -> Ran:
        from bakthat.cli import main

        self.capsys.readouterr()  # what came before is not this command's output
        if input is not None:
            self.monkeypatch.setattr("sys.stdin", io.StringIO(input))
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
        out, err = self.capsys.readouterr()
        return Ran(code, out, err)

    def ok(self, *args: str, input: str | None = None) -> Ran:
        result = self(*args, input=input)
        assert result.returncode == 0, f"bakthat {' '.join(args)} exited {result.returncode}: {result.stderr}"
        return result


@pytest.fixture
def cli(capsys, monkeypatch) -> InProcess:
    """Run ``bakthat`` in-process: ``cli("show", "--json")`` returns a :class:`Ran`."""
    return InProcess(capsys, monkeypatch)


@pytest.fixture
def backed_up(tree):
    """The test tree ``mydir`` backed up once (unencrypted, tags ``daily db``, key
    ``nightly``) through the library; return its catalog row."""
    import bakthat

    return bakthat.backup(str(tree), password="", tags="daily db", key="nightly")


def expect(result: Ran, code: int, text: str = "") -> None:
    """Assert a command exited ``code`` with ``text`` in its stderr and no traceback."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert text in result.stderr
    assert "Traceback" not in result.stderr
