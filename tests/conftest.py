"""Shared fixtures: an isolated HOME and working directory, trees to back up, snapshots."""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from pathlib import Path

import pytest

pytest_plugins = ["tests.services"]


def pytest_configure(config):
    """Register the kit's pytest plugin when bakthat is not installed (a checkout run with
    PYTHONPATH=.); installed, it comes through the ``pytest11`` entry point."""
    if not config.pluginmanager.has_plugin("bakthat"):
        from bakthat.testing import pytest_plugin

        config.pluginmanager.register(pytest_plugin, "bakthat")


ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated(bakthat_catalog):
    """Run every test in the kit's temporary bakthat (bakthat.testing): its own HOME and
    cwd, no BAKTHAT_* variables, a clean catalog binding, no plugin or event handler left
    over.  Yield the temporary HOME."""
    yield bakthat_catalog.home


@pytest.fixture
def home(isolated):
    return isolated


def make_tree(root: Path) -> Path:
    """Create a directory with the kinds of entries a restore must reproduce exactly."""
    root.mkdir(parents=True)
    (root / "text.txt").write_text("compressible text\n" * 2000)
    (root / "random.bin").write_bytes(os.urandom(300_000))
    (root / "empty.txt").write_bytes(b"")
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "sub" / "deeper" / "note.md").write_text("# note\n")
    (root / "empty_dir").mkdir()
    (root / "héllo wörld ñ.txt").write_text("non-ascii name\n")
    (root / "script.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "script.sh", 0o755)
    (root / "secret.key").write_text("private\n")
    os.chmod(root / "secret.key", 0o600)
    os.symlink("text.txt", root / "link-to-text")
    os.symlink("sub/deeper", root / "link-to-dir")
    os.link(root / "text.txt", root / "hardlink.txt")
    for index, path in enumerate(sorted(root.rglob("*"))):
        if not path.is_symlink():
            os.utime(path, (1_600_000_000 + index, 1_600_000_000 + index))
    os.utime(root / "sub", (1_500_000_000, 1_500_000_000))
    os.utime(root, (1_400_000_000, 1_400_000_000))
    return root


def snapshot(root: Path) -> dict[str, tuple]:
    """Return {relative path: (kind, mode, mtime, content sha256 or link target)} for a tree."""
    result = {}
    paths = [root, *sorted(root.rglob("*"))]
    for path in paths:
        info = path.lstat()
        relative = path.relative_to(root).as_posix()
        if stat.S_ISLNK(info.st_mode):
            result[relative] = ("link", os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            result[relative] = ("dir", stat.S_IMODE(info.st_mode), int(info.st_mtime))
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            result[relative] = ("file", stat.S_IMODE(info.st_mode), int(info.st_mtime), digest)
    return result


@pytest.fixture
def tree(tmp_path) -> Path:
    return make_tree(tmp_path / "data" / "mydir")


def run_cli(*args: str, env: dict | None = None, input: str | None = None, cwd=None, timeout: int = 120):
    """Run ``python -m bakthat ARGS`` in a subprocess with this test's environment."""
    import subprocess

    environment = dict(os.environ)
    environment["PYTHONPATH"] = str(ROOT) + os.pathsep + environment.get("PYTHONPATH", "")
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bakthat", *args],
        capture_output=True,
        text=True,
        env=environment,
        input=input,
        cwd=cwd,
        timeout=timeout,
    )


def cli_ok(*args: str, env: dict | None = None, input: str | None = None, cwd=None, timeout: int = 120):
    """Run ``python -m bakthat ARGS`` like :func:`run_cli` and assert it exited 0 (its stderr
    in the failure message), so a test reading the output reads a command that worked."""
    result = run_cli(*args, env=env, input=input, cwd=cwd, timeout=timeout)
    assert result.returncode == 0, f"bakthat {' '.join(args)} exited {result.returncode}: {result.stderr}"
    return result


@pytest.fixture
def chain(tree):
    """A full backup of the test tree, then an incremental after ``text.txt`` was removed and
    ``sub/new.md`` added (unencrypted); return both rows, oldest first."""
    import bakthat

    rows = [bakthat.backup(str(tree), password="", level="full")]
    (tree / "text.txt").unlink()
    (tree / "sub" / "new.md").write_text("# new\n")
    rows.append(bakthat.backup(str(tree), password="", level="incr"))
    return rows


@pytest.fixture
def chain3(tree):
    """A full backup of the test tree and two incrementals on it (``added.txt`` added, then
    ``text.txt`` changed), unencrypted; return the three rows, oldest first."""
    import bakthat

    rows = [bakthat.backup(str(tree), password="", level="full")]
    (tree / "added.txt").write_text("added")
    rows.append(bakthat.backup(str(tree), password="", level="incr"))
    (tree / "text.txt").write_text("changed")
    rows.append(bakthat.backup(str(tree), password="", level="incr"))
    return rows


def lose_catalog(home: Path) -> None:
    """Unbind and delete the catalog of ``home`` (with its WAL files), as a lost disk would."""
    from bakthat import models

    models.unbind()
    for suffix in ("", "-wal", "-shm"):
        path = home / f".bakthat.sqlite{suffix}"
        if path.exists():
            os.remove(path)


def process_running(pid: int) -> bool:
    """Return True if process ``pid`` exists and is not a zombie (it may still run code)."""
    from bakthat import process

    info = process.proc_stat(pid)
    return info is not None and info.state not in ("Z", "X")
