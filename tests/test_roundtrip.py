"""Real round trips: whatever ``backup`` stores, ``restore`` restores, exactly.

A copy of this machine's /etc, a copy of part of a Python installation's library
directory, and a crafted tree holding every kind of entry and attribute (see
tests/trees.py) are backed up and restored through the public API, plain and
encrypted, and compared on type, mode, mtime (ns), owner, size, content, link target,
device numbers, extended attributes and ACLs, hard-link grouping and the allocation of
sparse files.  These tests run as root (owners, devices); the behaviour without root is
tested by a restore in a child process that drops to ``nobody``.
"""

from __future__ import annotations

import os
import pickle
import shutil
import stat
import subprocess
import sysconfig
import tarfile
import tempfile
from pathlib import Path

import pytest

import bakthat
from bakthat.crypto import MIN_WORK_FACTOR
from bakthat.extract import safe_extract
from tests.conftest import run_cli
from tests.trees import GIB, MIB, build_crafted_tree, differences, tree_state

FAST = {"scrypt_work_factor": MIN_WORK_FACTOR}
PASSWORDS = pytest.mark.parametrize("password", ["", "correct horse"], ids=["plain", "encrypted"])

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="round trips of owners and devices need root")


@pytest.fixture
def short_base():
    """A directory with a short absolute path, so a 4,000-byte path fits below it."""
    path = Path(tempfile.mkdtemp(prefix="b9-", dir="/tmp"))
    yield path
    shutil.rmtree(path)


def round_trip(source: Path, target: Path, password: str, **options) -> tuple:
    """Back up ``source``, restore it into ``target``; return (row, restored path)."""
    row = bakthat.backup(str(source), password=password, conf=FAST, **options)
    bakthat.restore(row.stored_filename, password=password or None, target=target, conf=FAST)
    return row, target / row.filename


def assert_same(source: Path, restored: Path) -> None:
    found = differences(tree_state(source), tree_state(restored))
    assert not found, f"{len(found)} differences:\n" + "\n".join(found[:20])


@PASSWORDS
def test_a_crafted_tree_with_every_kind_of_entry_round_trips_exactly(short_base, password):
    source = short_base / "s" / "crafted"
    source.parent.mkdir()
    build_crafted_tree(source)
    read = []
    row, restored = round_trip(source, short_base / "r", password, progress=read.append)
    assert_same(source, restored)
    assert row.metadata.get("partial") is None and row.metadata["entries"] == {"excluded": 0, "skipped": 0, "changed": 0}
    # holes are neither read nor stored nor written: 10 GiB + 1 GiB of holes cost nothing
    assert row.source_size > 11 * GIB
    assert sum(read) < 6 * MIB and row.size < 8 * MIB
    assert os.stat(restored / "sparse-10g").st_blocks * 512 <= 2 * MIB + 64 * 1024
    # the 4,000-byte path is restored although staging it needed a longer path
    assert len(os.fsencode(restored)) + 4000 < os.pathconf("/", "PC_PATH_MAX")


@PASSWORDS
def test_a_copy_of_this_machines_etc_round_trips_exactly(tmp_path, password):
    copy = tmp_path / "copy"
    copy.mkdir()
    subprocess.run(["cp", "-a", "/etc", str(copy)], check=True)
    _, restored = round_trip(copy / "etc", tmp_path / "restored", password)
    assert_same(copy / "etc", restored)
    assert os.readlink(restored / "localtime") == os.readlink(copy / "etc" / "localtime")


@PASSWORDS
def test_a_copy_of_a_python_library_directory_round_trips_exactly(tmp_path, password):
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    lib = tmp_path / "copy" / "lib"
    lib.mkdir(parents=True)
    parts = [path for path in ("json", "email", "encodings", "importlib", "lib-dynload", "os.py", "tarfile.py") if (stdlib / path).exists()]
    subprocess.run(["cp", "-a", *[str(stdlib / part) for part in parts], str(lib)], check=True)
    _, restored = round_trip(lib, tmp_path / "restored", password)
    assert_same(lib, restored)


def test_the_cli_restores_a_backup_of_etc_with_its_absolute_links(tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    subprocess.run(["cp", "-a", "/etc", str(copy)], check=True)
    backed = run_cli("backup", str(copy / "etc"), "--prompt", "no")
    assert backed.returncode == 0, backed.stderr
    restored = run_cli("restore", "etc", "--target", str(tmp_path / "out"), "--prompt", "no")
    assert restored.returncode == 0, restored.stderr
    assert_same(copy / "etc", tmp_path / "out" / "etc")


def test_gnu_tar_restores_the_same_tree_from_a_bakthat_archive(short_base, home):
    source = short_base / "s" / "crafted"
    source.parent.mkdir()
    build_crafted_tree(source)
    row = bakthat.backup(str(source), password="", compression="none")
    archive = home / ".bakthat_store" / row.stored_filename
    out = short_base / "g"
    out.mkdir()
    result = subprocess.run(
        ["tar", "--xattrs", "--xattrs-include=*", "--acls", "-xpf", str(archive), "-C", str(out)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert_same(source, out / "crafted")


def test_a_backup_holds_hard_links_once_and_gnu_tar_lists_every_entry(short_base, home):
    source = short_base / "s" / "crafted"
    source.parent.mkdir()
    build_crafted_tree(source, devices=False)
    row = bakthat.backup(str(source), password="", compression="none")
    with tarfile.open(home / ".bakthat_store" / row.stored_filename) as tar:
        members = {member.name: member for member in tar}
    assert members["crafted/links/second"].islnk() or members["crafted/links/first"].islnk()
    assert members["crafted/absolute"].linkname == "/etc/passwd"
    assert members["crafted/sparse-10g"].sparse == [(0, MIB), (5 * GIB, MIB), (10 * GIB, 0)]
    listing = subprocess.run(["tar", "-tf", str(home / ".bakthat_store" / row.stored_filename)], capture_output=True)
    assert listing.returncode == 0
    assert len(listing.stdout.splitlines()) == len(members)


# ---------------------------------------------------------------------------------------
# Without root (catalogue A7): a restore in a child process running as nobody


def restore_as_nobody(archive: bytes, target: Path) -> tuple[list[str], str]:
    """Restore ``archive`` into ``target`` in a child process running as nobody; return
    the restored names and the warnings logged (or raise what the child raised)."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop root, restore, report, never return
        import io
        import logging

        os.close(reader)
        code = 0
        try:
            log = io.StringIO()
            logging.getLogger("bakthat").addHandler(logging.StreamHandler(log))
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            names = safe_extract(io.BytesIO(archive), target)
            result = ([path.name for path in names], log.getvalue())
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            result, code = exc, 1
        with os.fdopen(writer, "wb") as pipe:
            pickle.dump(result, pipe)
        os._exit(code)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        result = pickle.load(pipe)
    os.waitpid(pid, 0)
    if isinstance(result, BaseException):
        raise result
    return result


def test_without_root_devices_are_skipped_by_name_setuid_is_dropped_and_the_rest_is_exact(short_base):
    source = short_base / "crafted"
    build_crafted_tree(source)
    data = tarfile_of(source)
    short_base.chmod(0o755)
    target = short_base / "nobody"
    target.mkdir()
    os.chown(target, 65534, 65534)
    names, warnings = restore_as_nobody(data, target)
    assert names == ["crafted"]
    restored = target / "crafted"
    assert "crafted/null-device" in warnings and "crafted/block-device" in warnings
    assert not os.path.lexists(restored / "null-device") and not os.path.lexists(restored / "block-device")
    assert stat.S_IMODE(os.stat(restored / "setuid").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(restored / "setgid").st_mode) == 0o750
    assert stat.S_IMODE(os.stat(restored / "locked").st_mode) == 0o555  # applied after the commit
    assert stat.S_IMODE(os.stat(restored / "sticky").st_mode) == 0o1777
    assert os.stat(restored / "plain.txt").st_uid == 65534 and os.stat(restored / "random.bin").st_uid == 65534
    expected, actual = tree_state(source), tree_state(restored)
    for path in ("fifo", "absolute", "outward", "dangling", "sparse-10g", "links/second", os.fsdecode(b"caf\xe9")):
        assert expected[path][1:3] == actual[path][1:3]  # mode and mtime (ns)
        assert expected[path][6:] == actual[path][6:]  # size, content, allocation, links


def tarfile_of(source: Path) -> bytes:
    """The uncompressed archive bakthat writes for ``source``."""
    import io

    from bakthat.archive import write_tar

    buffer = io.BytesIO()
    write_tar(source, source.name, buffer)
    return buffer.getvalue()
