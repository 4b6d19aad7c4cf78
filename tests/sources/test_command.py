"""bakthat.sources.command and the ProcessDump protocol: a program's stdout, checked to the end."""

from __future__ import annotations

import io
import os
import signal
import sys
import time
import uuid

import pytest

from bakthat import process, sources
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


def test_a_failing_command_is_a_dump_error_with_its_status_and_stderr_even_after_full_output():
    source = command(py("import sys; print('all data'); print('disk on fire', file=sys.stderr); sys.exit(3)"))
    with sources.open_dump(source, {}) as dump:
        assert dump.read() == b"all data\n"
        with pytest.raises(DumpError, match=r"python[0-9.]* failed \(exit status 3\): disk on fire$") as caught:
            dump.finish()
    assert caught.value.status == 3
    assert caught.value.exit_code == 1


def test_a_command_killed_midway_is_a_dump_error_never_a_success():
    source = command(py("import sys, time\nwhile True:\n    sys.stdout.buffer.write(b'.' * 65536); sys.stdout.flush()"))
    dump = sources.open_dump(source, {})
    assert dump.read(100_000)
    os.kill(dump.process.pid, signal.SIGKILL)
    while dump.read(1 << 20):
        pass
    with pytest.raises(DumpError, match="killed by SIGKILL"):
        dump.finish()


def test_a_missing_program_cannot_start():
    with pytest.raises(DumpError, match="cannot start bakthat-no-such-program"):
        sources.open_dump(command(["bakthat-no-such-program"]), {})


def test_finish_before_the_end_aborts_the_dump_instead_of_dropping_data():
    dump = sources.open_dump(command(py("import sys\nwhile True: sys.stdout.buffer.write(b'.' * 65536)")), {})
    with pytest.raises(RuntimeError, match="before the dump was read to its end"):
        dump.finish()
    assert dump.process.returncode is not None


def test_abort_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    dump = sources.open_dump(command(["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"]), {})
    while not pidfile.exists() or not pidfile.read_text().strip():
        time.sleep(0.01)
    child = int(pidfile.read_text())
    dump.abort()
    deadline = time.monotonic() + 5
    while (info := process.proc_stat(child)) is not None and info.state != "Z" and time.monotonic() < deadline:
        time.sleep(0.02)
    info = process.proc_stat(child)
    assert info is None or info.state == "Z"


def test_a_command_flooding_stderr_does_not_deadlock_and_its_stderr_is_bounded():
    code = ("import sys\nfor i in range(200):\n    sys.stderr.write('e' * 50000)\n    sys.stdout.write('o' * 50000)\n"
            "sys.exit(2)")
    with sources.open_dump(command(py(code)), {}) as dump:
        assert dump.copy_to(io.BytesIO()) == 10_000_000
        with pytest.raises(DumpError) as caught:
            dump.finish()
    assert len(caught.value.output) < 70 * 1024
    assert "bytes dropped" in caught.value.output


def test_the_dump_stream_is_the_programs_pipe():
    with sources.open_dump(command(["true"]), {}) as dump:
        assert os.path.samestat(os.fstat(dump.fileno()), os.fstat(dump.process.stdout.fileno()))
        assert dump.read() == b""
        dump.finish()
