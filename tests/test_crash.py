"""Killed and interrupted processes: nothing claims success, nothing half-written stays."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bakthat import models
from tests.conftest import ROOT, run_cli


def big_source(tmp_path: Path, megabytes: int = 300) -> Path:
    source = tmp_path / "big"
    source.mkdir()
    block = os.urandom(1 << 20)
    with open(source / "blob.bin", "wb") as handle:
        for index in range(megabytes):
            handle.write(index.to_bytes(8, "big") + block[8:])
    return source


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bakthat", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def wait_for(predicate, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if process.poll() is not None:
            pytest.fail(f"process ended before the condition: {process.communicate()}")
        time.sleep(0.005)
    pytest.fail("condition never met")


def temp_files(store: Path) -> list[Path]:
    return [p for p in store.glob(".bakthat-tmp/*") if p.stat().st_size > (4 << 20)] if store.exists() else []


def catalog_rows(home: Path) -> int:
    models.bind(str(home / ".bakthat.sqlite"))
    try:
        return models.Backups.select().count()
    finally:
        models.unbind()


def test_a_backup_killed_mid_write_leaves_no_row_and_no_final_file_and_a_rerun_succeeds(tmp_path, home):
    source = big_source(tmp_path)
    store = home / ".bakthat_store"
    process = start("backup", str(source), "--prompt", "no", "--compression", "none")
    wait_for(lambda: temp_files(store), process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert [p.name for p in store.iterdir() if p.name != ".bakthat-tmp"] == []
    assert catalog_rows(home) == 0

    rerun = run_cli("backup", str(source), "--prompt", "no", "--compression", "none")
    assert rerun.returncode == 0, rerun.stderr
    assert catalog_rows(home) == 1
    assert not list(store.glob(".bakthat-tmp/*")), "the dead process's temp file is swept"


def test_ctrl_c_during_a_backup_exits_130_and_removes_the_temp_file(tmp_path, home):
    source = big_source(tmp_path)
    store = home / ".bakthat_store"
    process = start("backup", str(source), "--prompt", "no", "--compression", "none")
    wait_for(lambda: temp_files(store), process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert b"Traceback" not in stderr
    assert [p.name for p in store.iterdir()] == [".bakthat-tmp"]
    assert list((store / ".bakthat-tmp").iterdir()) == []
    assert catalog_rows(home) == 0


def test_a_restore_killed_mid_way_leaves_no_half_written_file_under_a_final_name(tmp_path, home):
    source = big_source(tmp_path)
    assert run_cli("backup", str(source), "--prompt", "no", "--compression", "none").returncode == 0
    target = tmp_path / "target"
    target.mkdir()

    def staging_has_data() -> bool:
        return any(p.stat().st_size > (4 << 20) for p in target.glob(".bakthat-restore-*/**/*") if p.is_file())

    process = start("restore", "big", "--target", str(target))
    wait_for(staging_has_data, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert [p.name for p in target.iterdir() if not p.name.startswith(".bakthat-restore-")] == []
