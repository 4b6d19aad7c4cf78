"""What every source kind shares (bakthat.sources.base): spec checks, database URLs, private
files, and the dump protocol (ProcessDump, FileDump, feed_program): a program's output is
read to its end and checked, and a failure is never a success."""

from __future__ import annotations

import io
import os
import shutil
import signal
import stat
import sys
import tempfile
import time
import uuid

import pytest

from bakthat.context import RunContext
from bakthat.errors import BakthatError, ConfigError, IntegrityError
from bakthat.sources.base import (
    DatabaseSource,
    DumpError,
    FileDump,
    ProcessDump,
    RestoreIntoError,
    Source,
    check_keys,
    check_name,
    environment,
    feed_program,
    parse_database_url,
    private_file,
    require_program,
    text_list,
)
from tests.conftest import process_running


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def dump_of(argv, **options) -> ProcessDump:
    return ProcessDump(argv, dict(os.environ), "the test dump", **options)


# -- the errors ------------------------------------------------------------------------------


def test_dump_errors_exit_1_and_carry_the_status_and_output():
    error = DumpError("it failed", 3, "disk on fire")
    assert isinstance(error, BakthatError) and error.exit_code == 1
    assert (str(error), error.status, error.output) == ("it failed", 3, "disk on fire")
    assert issubclass(RestoreIntoError, DumpError)


# -- spec checks ---------------------------------------------------------------------------


def test_an_unknown_key_is_named_with_the_near_spelling():
    with pytest.raises(ConfigError, match=r"^jobs\.a\.sources\[0\]: unknown key 'pasword' \(did you mean 'password'\?\)$"):
        check_keys({"url": "x", "pasword": "y"}, ("url", "password"), "jobs.a.sources[0]")


def test_an_unknown_key_far_from_every_known_one_lists_them_all():
    with pytest.raises(ConfigError, match=r"unknown key 'zzz' \(known keys: name, hooks, path\)$"):
        check_keys({"zzz": 1}, ("path",), "here")


def test_name_and_hooks_are_allowed_in_every_spec():
    check_keys({"name": "x", "hooks": {}, "path": "/"}, ("path",), "here")


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "nul\x00", None, 5])
def test_a_name_that_cannot_name_a_stored_file_is_refused_naming_the_key(name):
    with pytest.raises(ConfigError, match=r"^here\.name: .* cannot be a backup name"):
        check_name(name, "here")


def test_a_good_name_is_returned_as_it_is():
    assert check_name("db nightly.v2", "here") == "db nightly.v2"


def test_a_text_list_is_a_tuple_of_strings_or_an_error_naming_the_key():
    assert text_list(None, "x.options") == ()
    assert text_list(["--clean", "-v"], "x.options") == ("--clean", "-v")
    for bad in ("--clean", ["--clean", 3], {"a": 1}):
        with pytest.raises(ConfigError, match=r"^x\.options: must be a list of strings$"):
            text_list(bad, "x.options")


# -- database URLs ---------------------------------------------------------------------------


def test_a_database_url_gives_its_parts_and_a_display_without_the_password():
    fields, query = parse_database_url(
        {"url": "postgresql://app%40corp:p%2Fss@db.local:5433/my%20db?sslmode=require", "options": ["--clean"]},
        "src", "postgresql",
    )
    assert fields["display"] == "postgresql://app@corp@db.local:5433/my db"
    assert (fields["user"], fields["host"], fields["port"], fields["database"]) == ("app@corp", "db.local", 5433, "my db")
    assert fields["password"] == "p/ss" and fields["options"] == ("--clean",) and fields["restore_options"] == ()
    assert query == [("sslmode", "require")]


def test_the_password_key_beats_the_urls_password():
    fields, _ = parse_database_url({"url": "mysql://root:from-url@h/shop", "password": "from-key"}, "src", "mysql")
    assert fields["password"] == "from-key"
    fields, _ = parse_database_url({"url": "mysql://h/shop"}, "src", "mysql")
    assert fields["password"] is None and fields["display"] == "mysql://h/shop"


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"url": "postgresql://h:99999/app"}, r"^src\.url: Port out of range"),
        ({"url": "postgresql://h/"}, r"^src\.url: give one database \(postgresql://host/dbname\)$"),
        ({"url": "postgresql://h/a/b"}, r"^src\.url: give one database"),
        ({"url": "postgresql://h/app", "password": 1234}, r"^src\.password: must be a string$"),
        ({"url": "postgresql://h/app", "user": "x"}, r"^src: unknown key 'user'"),
        ({"url": "postgresql://h/app", "options": "--clean"}, r"^src\.options: must be a list of strings$"),
    ],
)
def test_a_bad_database_spec_is_a_config_error_naming_the_key(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_database_url(spec, "src", "postgresql")


def test_a_database_source_keeps_its_password_out_of_its_repr_and_lists_it_as_a_secret():
    source = DatabaseSource(kind="postgresql", name="app", display="postgresql://db/app", extension="pgdump",
                            database="app", password="hunter2-secret")
    assert "hunter2-secret" not in repr(source) and source.secrets() == ("hunter2-secret",)
    assert Source(kind="path", name="etc", display="/etc", extension="tar").secrets() == ()


# -- environment, private files, programs ------------------------------------------------------


def test_a_programs_environment_is_bakthats_plus_the_run_context(monkeypatch):
    monkeypatch.setenv("BAKTHAT_TEST_MARK", "kept")
    context = RunContext(str(uuid.uuid4()), "run", job="nightly", name="db")
    env = environment(context)
    assert env["BAKTHAT_TEST_MARK"] == "kept" and env["PATH"] == os.environ["PATH"]
    assert env["BAKTHAT_JOB"] == "nightly" and env["BAKTHAT_SESSION_ID"] == context.session_id
    assert "BAKTHAT_JOB" not in environment(None)


def test_a_private_file_is_0600_in_a_0700_directory_and_removed_by_its_cleanup(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    path, remove = private_file("password=secret", "pgpass")
    directory = os.path.dirname(path)
    assert os.path.dirname(directory) == str(tmp_path) and os.path.basename(path) == "pgpass"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert open(path).read() == "password=secret"
    remove()
    assert not os.path.exists(directory)


def test_a_private_file_goes_to_the_temp_directory_without_a_runtime_directory(monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    path, remove = private_file("x", "f")
    try:
        assert os.path.dirname(os.path.dirname(path)) == tempfile.gettempdir()
    finally:
        remove()


def test_require_program_returns_the_first_found_or_names_every_one():
    assert require_program("bakthat-no-such-program", "sh", "bash") == shutil.which("sh")
    with pytest.raises(DumpError, match=r"^pg_dumpx or pg_dumpy is not installed \(not found on PATH\)$"):
        require_program("pg_dumpx", "pg_dumpy")


# -- ProcessDump ----------------------------------------------------------------------------


def test_a_programs_stdout_is_read_to_its_end_and_its_success_checked():
    with dump_of(py("import sys; sys.stdout.buffer.write(b'x' * 3_000_000); print('done', file=sys.stderr)")) as dump:
        sink = io.BytesIO()
        assert dump.copy_to(sink) == 3_000_000
        result = dump.finish()
    assert sink.getvalue() == b"x" * 3_000_000
    assert (result.bytes, result.output) == (3_000_000, "done\n")


def test_a_failing_program_is_a_dump_error_with_its_status_and_stderr_even_after_full_output():
    with dump_of(py("import sys; print('all data'); print('disk on fire', file=sys.stderr); sys.exit(3)")) as dump:
        assert dump.read() == b"all data\n"
        with pytest.raises(DumpError, match=r"^the test dump: python[0-9.]* failed \(exit status 3\): disk on fire$") as caught:
            dump.finish()
    assert caught.value.status == 3


def test_a_program_killed_midway_is_a_dump_error_never_a_success():
    dump = dump_of(py("import sys\nwhile True:\n    sys.stdout.buffer.write(b'.' * 65536); sys.stdout.flush()"))
    assert dump.read(100_000)
    os.kill(dump.process.pid, signal.SIGKILL)
    while dump.read(1 << 20):
        pass
    with pytest.raises(DumpError, match="killed by SIGKILL"):
        dump.finish()


def test_a_missing_program_cannot_start_and_its_cleanup_still_runs():
    cleaned = []
    with pytest.raises(DumpError, match="^the test dump: cannot start bakthat-no-such-program: "):
        dump_of(["bakthat-no-such-program"], cleanup=lambda: cleaned.append(True))
    assert cleaned == [True]


def test_finish_before_the_end_aborts_the_dump_instead_of_dropping_data():
    dump = dump_of(py("import sys\nwhile True: sys.stdout.buffer.write(b'.' * 65536)"))
    with pytest.raises(RuntimeError, match="before the dump was read to its end"):
        dump.finish()
    assert dump.process.returncode is not None
    with pytest.raises(RuntimeError, match="already called"):
        dump.finish()


def test_abort_kills_the_whole_process_group_runs_the_cleanup_once_and_may_be_repeated(tmp_path):
    pidfile = tmp_path / "child.pid"
    cleaned = []
    dump = dump_of(["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"], cleanup=lambda: cleaned.append(True))
    while not pidfile.exists() or not pidfile.read_text().strip():
        time.sleep(0.01)
    child = int(pidfile.read_text())
    dump.abort()
    dump.abort()
    deadline = time.monotonic() + 5
    while process_running(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not process_running(child)
    assert cleaned == [True]


def test_a_program_flooding_stderr_does_not_deadlock_and_its_stderr_is_bounded_and_masked():
    code = ("import sys\nfor i in range(200):\n    sys.stderr.write('e' * 50000)\n    sys.stdout.write('o' * 50000)\n"
            "sys.stderr.write('the password is s3cr3t-pw'); sys.exit(2)")
    with dump_of(py(code), secrets=["s3cr3t-pw"]) as dump:
        assert dump.copy_to(io.BytesIO()) == 10_000_000
        with pytest.raises(DumpError) as caught:
            dump.finish()
    assert len(caught.value.output) < 70 * 1024
    assert "bytes dropped" in caught.value.output
    assert "s3cr3t-pw" not in caught.value.output and "s3cr3t-pw" not in str(caught.value)


def test_the_dump_stream_is_the_programs_pipe():
    with dump_of(["true"]) as dump:
        assert os.path.samestat(os.fstat(dump.fileno()), os.fstat(dump.process.stdout.fileno()))
        assert dump.readable() and dump.read() == b""
        dump.finish()


def test_copy_to_reports_progress_chunk_by_chunk():
    seen = []
    with dump_of(["head", "-c", "2500000", "/dev/zero"]) as dump:
        assert dump.copy_to(io.BytesIO(), seen.append) == 2_500_000
        dump.finish()
    assert sum(seen) == 2_500_000 and all(0 < size <= 1 << 20 for size in seen)


# -- FileDump ---------------------------------------------------------------------------------


def test_a_file_dump_read_to_its_end_finishes_and_closes_its_file():
    stream = io.BytesIO(b"sqlite bytes")
    dump = FileDump(stream, "app.db")
    assert dump.read() == b"sqlite bytes"
    result = dump.finish()
    assert result.bytes == 12 and stream.closed
    with pytest.raises(RuntimeError, match="already called"):
        dump.finish()


def test_a_file_dump_finished_early_is_an_error_and_is_closed_anyway():
    stream = io.BytesIO(b"sqlite bytes")
    dump = FileDump(stream, "app.db")
    dump.read(3)
    with pytest.raises(RuntimeError, match="^app.db: finish\\(\\) called before the dump was read to its end$"):
        dump.finish()
    assert stream.closed


def test_leaving_a_dump_unfinished_in_a_with_block_aborts_it():
    stream = io.BytesIO(b"data")
    with FileDump(stream, "app.db"):
        pass
    assert stream.closed


# -- feed_program -------------------------------------------------------------------------------


def test_feed_program_writes_the_whole_stream_and_returns_the_programs_output(tmp_path):
    target = tmp_path / "out"
    output = feed_program(["sh", "-c", f"cat > {target}; echo restored"], dict(os.environ), io.BytesIO(b"y" * 3_000_000), "db")
    assert output == "restored\n" and target.read_bytes() == b"y" * 3_000_000


def test_a_failing_restore_program_is_a_restore_into_error_with_its_masked_output():
    with pytest.raises(RestoreIntoError, match=r"^db: sh failed \(exit status 4\): bad \*+") as caught:
        feed_program(["sh", "-c", "cat > /dev/null; echo bad hunter2-pw; exit 4"], dict(os.environ), io.BytesIO(b"x"), "db",
                     secrets=["hunter2-pw"])
    assert caught.value.status == 4 and "hunter2-pw" not in caught.value.output


def test_a_program_that_stops_reading_is_a_failure_even_with_exit_status_0():
    with pytest.raises(RestoreIntoError, match=r"it stopped reading its input"):
        feed_program(["true"], dict(os.environ), io.BytesIO(b"z" * 8_000_000), "db")


class BreaksAfter:
    """A stream that raises (as a damaged archive does) after ``limit`` bytes."""

    def __init__(self, limit: int):
        self.limit, self.sent = limit, 0

    def read(self, size: int) -> bytes:
        if self.sent >= self.limit:
            raise IntegrityError("the archive is damaged")
        self.sent += size
        return b"d" * size


def test_a_stream_that_fails_midway_kills_the_program_before_its_input_ends(tmp_path):
    marker = tmp_path / "reached-end-of-input"
    with pytest.raises(IntegrityError, match="the archive is damaged"):
        feed_program(["sh", "-c", f"cat > /dev/null && touch {marker}"], dict(os.environ), BreaksAfter(3 << 20), "db")
    assert not marker.exists()


def test_a_restore_program_that_cannot_start_is_a_restore_into_error():
    with pytest.raises(RestoreIntoError, match="^db: cannot start bakthat-no-such-restorer: "):
        feed_program(["bakthat-no-such-restorer"], dict(os.environ), io.BytesIO(b""), "db")
