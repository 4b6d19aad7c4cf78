"""The exit-code table, case by case, each from a real ``bakthat`` process.

Codes that need a condition bakthat's own stores cannot produce on demand (a veto, a
cold-storage retrieval, a generic BakthatError) run the real command line,
``bakthat.cli.main``, in a subprocess whose script first registers a handler or a test
backend: the code path from the exception to the exit code is the real one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import textwrap
import time

import pytest

from bakthat.errors import EXIT_CODES
from tests.conftest import ROOT, cli_ok, make_tree, run_cli


@pytest.fixture
def data(tmp_path):
    return make_tree(tmp_path / "data" / "mydir")


def expect(result, code: int, text: str = "") -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert text in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert code in EXIT_CODES


HARNESS = """\
import sys, time
from pathlib import Path
from bakthat import backends, errors
from bakthat.backends.local import Backend as Local
from bakthat.eventing import events

{setup}

sys.exit(__import__("bakthat.cli").cli.main(sys.argv[1:]))
"""


def run_harness(tmp_path, setup: str, *args: str, wait: bool = True, **kwargs):
    """Run ``bakthat ARGS`` through bakthat.cli.main after ``setup`` (Python) has run."""
    script = tmp_path / "harness.py"
    script.write_text(HARNESS.format(setup=textwrap.dedent(setup)))
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(script), *args]
    if not wait:
        return subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120, **kwargs)


def test_the_table_is_the_documented_one():
    assert sorted(EXIT_CODES) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 130]
    with open(ROOT / "docs" / "cli.md", encoding="utf-8") as handle:
        docs = handle.read()
    for code in EXIT_CODES:
        assert f"\n| {code} |" in docs, f"exit code {code} is not in docs/cli.md"


def test_0_success(data):
    expect(run_cli("backup", str(data), "--prompt", "no"), 0)
    expect(run_cli("show"), 0)


UNEXPECTED = """
class Buggy(Local):
    def open_upload(self, key, metadata=None):
        raise RuntimeError("a bug in a third-party backend")
backends.registry["buggy"] = Buggy
"""


def test_1_an_unexpected_error_is_one_line_without_traceback(tmp_path, data):
    result = run_harness(tmp_path, UNEXPECTED, "backup", str(data), "-d", "buggy", "--prompt", "no")
    expect(result, 1, "bakthat: unexpected error: RuntimeError: a bug in a third-party backend")
    assert "run with --debug for details" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 2  # "Backing up ..." and the error


def test_1_a_generic_bakthat_error(tmp_path, data):
    setup = """
    class Broken(Local):
        def open_upload(self, key, metadata=None):
            raise errors.BakthatError("the store said no")
    backends.registry["broken"] = Broken
    """
    expect(run_harness(tmp_path, setup, "backup", str(data), "-d", "broken", "--prompt", "no"), 1, "bakthat: error: the store said no")


def test_1_with_debug_shows_the_traceback(tmp_path, data):
    result = run_harness(tmp_path, UNEXPECTED, "--debug", "backup", str(data), "-d", "buggy", "--prompt", "no")
    assert result.returncode == 1 and "Traceback" in result.stderr


def test_2_usage_error():
    result = run_cli("backup", "--no-such-flag")
    assert result.returncode == 2 and "usage:" in result.stderr


def test_2_no_command():
    result = run_cli()
    assert result.returncode == 2 and "usage:" in result.stderr


def test_2_config_error(home):
    (home / ".bakthat.yml").write_text("default:\n  compresion: gzip\n")
    expect(run_cli("show"), 2, "bakthat: error: ~/.bakthat.yml: profile 'default': unknown key 'compresion' (did you mean 'compression'?)")


def test_3_partial_failure(data):
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(data / "daemon.sock"))
    try:
        expect(run_cli("backup", str(data), "--prompt", "no"), 3, "1 entries could not be read")
    finally:
        sock.close()


def test_4_not_found():
    expect(run_cli("restore", "nothing"), 4, "no backup named 'nothing'")
    expect(run_cli("info", "nothing"), 4, "no backup named 'nothing'")
    expect(run_cli("delete", "nothing"), 4, "no backup named 'nothing'")


def test_5_wrong_password(data, tmp_path):
    run_cli("backup", str(data), env={"BAKTHAT_PASSWORD": "right-one", "BAKTHAT_SCRYPT_WORK_FACTOR": "10"})
    result = run_cli("restore", "mydir", "--target", str(tmp_path / "out"), env={"BAKTHAT_PASSWORD": "wrong-one"})
    expect(result, 5, "wrong password")
    assert "wrong-one" not in result.stderr + result.stdout


def test_5_missing_password(data, tmp_path):
    run_cli("backup", str(data), env={"BAKTHAT_PASSWORD": "pw", "BAKTHAT_SCRYPT_WORK_FACTOR": "10"})
    expect(run_cli("restore", "mydir", "--prompt", "no", "--target", str(tmp_path)), 5, "is encrypted")


def test_6_integrity(data, home, tmp_path):
    run_cli("backup", str(data), "--prompt", "no")
    archive = next((home / ".bakthat_store").glob("mydir.*.tar.zst"))
    raw = bytearray(archive.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    archive.write_bytes(bytes(raw))
    expect(run_cli("restore", "mydir", "--target", str(tmp_path / "out")), 6, "SHA-256")


def test_7_unsafe_archive(home, tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    (good / "f").write_text("x")
    expect(run_cli("backup", str(good), "--prompt", "no", "--compression", "none"), 0)
    row = json.loads(cli_ok("show", "--json").stdout)[0]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("../evil")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"pwned"))
    hostile = buffer.getvalue()
    (home / ".bakthat_store" / row["stored_filename"]).write_bytes(hostile)
    import sqlite3

    with sqlite3.connect(home / ".bakthat.sqlite") as db:
        db.execute("UPDATE backups SET sha256 = ?, size = ?", (hashlib.sha256(hostile).hexdigest(), len(hostile)))
    target = tmp_path / "target"
    target.mkdir()
    expect(run_cli("restore", "good", "--target", str(target)), 7, "../evil")
    assert list(target.iterdir()) == []


def test_8_target_exists(data, tmp_path):
    run_cli("backup", str(data), "--prompt", "no")
    (tmp_path / "out" / "mydir").mkdir(parents=True)
    (tmp_path / "out" / "mydir" / "text.txt").write_text("mine")
    expect(run_cli("restore", "mydir", "--target", str(tmp_path / "out")), 8, "mydir")
    assert (tmp_path / "out" / "mydir" / "text.txt").read_text() == "mine"


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc, where nobody can create a directory")
def test_9_storage_error(data):
    result = run_cli("backup", str(data), "--prompt", "no", env={"BAKTHAT_LOCAL_PATH": "/proc/bakthat-store"})
    expect(result, 9, "local store")
    assert json.loads(cli_ok("show", "--json").stdout) == []


def test_10_vetoed(tmp_path, data):
    setup = """
    def refuse(session_id):
        raise RuntimeError("not during business hours")
    events.before_backup += refuse
    """
    result = run_harness(tmp_path, setup, "backup", str(data), "--prompt", "no")
    expect(result, 10, "refused by before_backup handler")
    assert "not during business hours" in result.stderr
    assert json.loads(cli_ok("show", "--json").stdout) == []


def test_11_retrieval_pending(tmp_path, data):
    setup = """
    class Cold(Local):
        name = "cold"
        def prepare_read(self, key, wait=False):
            raise errors.RetrievalPendingError(f"{key} is being retrieved from cold storage; run the restore again later")
    backends.registry["cold"] = Cold
    """
    expect(run_harness(tmp_path, setup, "backup", str(data), "-d", "cold", "--prompt", "no"), 0)
    result = run_harness(tmp_path, setup, "restore", "mydir", "-d", "cold", "--target", str(tmp_path / "out"))
    expect(result, 11, "is being retrieved from cold storage")
    assert not (tmp_path / "out").exists()


def test_12_locked(home):
    from tests.test_rotation import hold_lock, make_history

    (home / ".bakthat.yml").write_text("default:\n  rotation: {keep_last: 1}\n")
    make_history("web", [int(time.time()) - k * 86400 for k in range(3)])
    holder = hold_lock("web", 120)  # held until terminated: a slow machine must not outlast it
    try:
        expect(run_cli("rotate_backups", "web", "--lock-timeout", "0"), 12, "another bakthat process")
    finally:
        holder.terminate()
        holder.wait(timeout=30)


SLOW_UPLOAD = """
MARKER = Path(sys.argv.pop())
class Slow(Local):
    def open_upload(self, key, metadata=None):
        upload = super().open_upload(key, metadata)
        write = upload.write
        def slow_write(data):
            if not MARKER.exists():
                MARKER.write_text("uploading")
                time.sleep(60)
            return write(data)
        upload.write = slow_write
        return upload
backends.registry["slow"] = Slow
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_130_interrupted_keeps_nothing(tmp_path, data, home, signum):
    marker = tmp_path / "marker"
    process = run_harness(tmp_path, SLOW_UPLOAD, "backup", str(data), "-d", "slow", "--prompt", "no", str(marker), wait=False)
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), process.communicate()
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "bakthat: interrupted" in stderr and "Traceback" not in stderr
    assert [p.name for p in (home / ".bakthat_store").iterdir() if p.name != ".bakthat-tmp"] == []
    assert json.loads(cli_ok("show", "--json").stdout) == []
