"""bakthat.restore_action: which backup a restore picks, its password, and a target left as it was.

Damaged archives (flipped bytes, truncation, extension, a wrong password), on the local
store and on S3: tests/test_restore_integrity.py; chains, --include and --at:
tests/test_chain_read.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import bakthat
from bakthat.errors import NotFoundError, PasswordRequiredError, TargetExistsError, WrongPasswordError
from tests.conftest import snapshot

FAST = {"scrypt_work_factor": 10}


def test_restore_picks_the_newest_backup_of_the_name(tree, tmp_path):
    first = bakthat.backup(str(tree), password="")
    (tree / "text.txt").write_text("changed\n")
    second = bakthat.backup(str(tree), password="")
    assert second.backup_date > first.backup_date
    restored = bakthat.restore("mydir", target=tmp_path / "out")
    assert restored.id == second.id
    assert (tmp_path / "out" / "mydir" / "text.txt").read_text() == "changed\n"


def test_restore_by_exact_stored_filename_gets_that_version(tree, tmp_path):
    first = bakthat.backup(str(tree), password="")
    (tree / "text.txt").write_text("changed\n")
    bakthat.backup(str(tree), password="")
    bakthat.restore(first.stored_filename, target=tmp_path / "out")
    assert (tmp_path / "out" / "mydir" / "text.txt").read_text().startswith("compressible text")


def test_restore_matches_names_exactly_not_by_substring(tree, tmp_path):
    bakthat.backup(str(tree), password="", custom_filename="webapp")
    with pytest.raises(NotFoundError, match="no backup named 'web'.*webapp"):
        bakthat.restore("web", target=tmp_path / "out")


def test_restore_of_an_unknown_name_raises_not_found(home):
    with pytest.raises(NotFoundError):
        bakthat.restore("nothing-here")


def test_restore_with_a_wrong_password_writes_nothing(tree, tmp_path):
    bakthat.backup(str(tree), password="right", conf=FAST)
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(WrongPasswordError) as caught:
        bakthat.restore("mydir", password="wrong", target=target, conf=FAST)
    assert "wrong" not in str(caught.value).replace("wrong password", "")
    assert list(target.iterdir()) == []


def test_restore_of_an_encrypted_backup_without_a_password_asks_for_one(tree, tmp_path):
    bakthat.backup(str(tree), password="right", conf=FAST)
    with pytest.raises(PasswordRequiredError):
        bakthat.restore("mydir", target=tmp_path / "out", conf=FAST)


def test_bakthat_password_variable_serves_backup_and_restore(tree, tmp_path, monkeypatch):
    monkeypatch.setenv("BAKTHAT_PASSWORD", "from-env")
    row = bakthat.backup(str(tree), conf=FAST)
    assert row.encryption == "age-scrypt"
    bakthat.restore("mydir", target=tmp_path / "out", conf=FAST)
    assert snapshot(tmp_path / "out" / "mydir") == snapshot(tree)


def test_restore_into_the_current_directory_by_default(tree, tmp_path):
    bakthat.backup(str(tree), password="")
    bakthat.restore("mydir")
    assert snapshot(Path.cwd() / "mydir") == snapshot(tree)


def test_restore_never_overwrites_existing_files_unless_asked(tree, tmp_path):
    bakthat.backup(str(tree), password="")
    target = tmp_path / "out"
    (target / "mydir").mkdir(parents=True)
    (target / "mydir" / "text.txt").write_text("keep me\n")
    with pytest.raises(TargetExistsError):
        bakthat.restore("mydir", target=target)
    assert (target / "mydir" / "text.txt").read_text() == "keep me\n"
    assert [p.name for p in target.iterdir()] == ["mydir"]
    bakthat.restore("mydir", target=target, overwrite=True)
    assert (target / "mydir" / "text.txt").read_text().startswith("compressible text")
