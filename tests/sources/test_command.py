"""bakthat.sources.command: any program's stdout as a source, with the run context in its
environment.  The dump protocol it uses (ProcessDump) is tested in tests/sources/test_base.py."""

from __future__ import annotations

import io
import sys
import uuid

import pytest

from bakthat import sources
from bakthat.errors import ConfigError
from bakthat.context import RunContext
from bakthat.sources.base import DumpError


def command(argv, **extra):
    return sources.parse({"command": argv, "name": "custom", **extra})


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_command_stdout_is_streamed_and_its_success_checked():
    source = command(py("import sys; sys.stdout.buffer.write(b'x' * 3_000_000); print('done', file=sys.stderr)"))
    with sources.open_dump(source, {}) as dump:
        sink = io.BytesIO()
        assert dump.copy_to(sink) == 3_000_000
        result = dump.finish()
    assert sink.getvalue() == b"x" * 3_000_000
    assert result.bytes == 3_000_000
    assert result.output == "done\n"


def test_the_run_context_reaches_the_command():
    context = RunContext(str(uuid.uuid4()), "run", job="nightly", name="custom")
    source = command("sh -c 'printf %s/%s $BAKTHAT_JOB $BAKTHAT_SESSION_ID'")
    with sources.open_dump(source, {}, context) as dump:
        data = dump.read()
        dump.finish()
    assert data == f"nightly/{context.session_id}".encode()


def test_a_failing_command_is_a_dump_error_whatever_it_printed():
    source = command(py("import sys; print('all data'); sys.exit(3)"))
    with sources.open_dump(source, {}) as dump:
        assert dump.read() == b"all data\n"
        with pytest.raises(DumpError, match=r"failed \(exit status 3\)"):
            dump.finish()


def test_a_command_string_is_split_as_a_shell_would_but_never_run_by_one():
    source = command("pg_dump --file='my file' db", extension="sql")
    assert source.argv == ("pg_dump", "--file=my file", "db") and source.extension == "sql"
    assert command(["zfs", "send"]).extension == "bin"
    with pytest.raises(ConfigError, match=r"^x\.command: cannot split"):
        sources.parse({"command": "echo 'unclosed", "name": "custom"}, "x")
    with pytest.raises(ConfigError, match=r"^x\.command: must be an argv list or a command string$"):
        sources.parse({"command": ["ok", 3], "name": "custom"}, "x")
