"""bakthat.atomic: a file appears whole or not at all, and an old one stays until then."""

from __future__ import annotations

import os
import stat

import pytest

from bakthat.atomic import fsync_directory, replacing, save_file


def leftovers(directory):
    return sorted(name for name in os.listdir(directory) if name.startswith(".tmp-"))


def test_a_saved_file_replaces_the_old_one_with_the_mode_asked(tmp_path):
    target = tmp_path / "config.yml"
    target.write_text("old\n")
    with save_file(target, mode=0o640) as handle:
        handle.write(b"new\n")
        assert target.read_text() == "old\n"  # nothing changes before the block ends
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert leftovers(tmp_path) == []


def test_an_error_in_the_block_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "config.yml"
    target.write_text("old\n")
    with pytest.raises(RuntimeError, match="half-written"):
        with save_file(target) as handle:
            handle.write(b"partial")
            raise RuntimeError("half-written")
    assert target.read_text() == "old\n"
    assert leftovers(tmp_path) == []


def test_exclusive_never_replaces_a_file_that_appeared_meanwhile(tmp_path):
    target = tmp_path / "entry"
    with pytest.raises(FileExistsError):
        with replacing(target, exclusive=True) as temp:
            temp.write_bytes(b"mine")
            target.write_bytes(b"someone else's")
    assert target.read_bytes() == b"someone else's"
    assert leftovers(tmp_path) == []
    other = tmp_path / "fresh"
    with replacing(other, exclusive=True) as temp:
        temp.write_bytes(b"mine")
    assert other.read_bytes() == b"mine" and leftovers(tmp_path) == []


def test_the_temp_file_is_beside_the_target_and_not_durable_writes_the_same(tmp_path):
    target = tmp_path / "status.json"
    with replacing(target, durable=False, suffix=".json") as temp:
        assert temp.parent == tmp_path and temp.name.startswith(".tmp-") and temp.name.endswith(".json")
        temp.write_text("{}")
    assert target.read_text() == "{}"


def test_fsyncing_a_missing_directory_is_an_os_error(tmp_path):
    fsync_directory(tmp_path)
    with pytest.raises(FileNotFoundError):
        fsync_directory(tmp_path / "missing")
