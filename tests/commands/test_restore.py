"""``bakthat restore``: its options, its output (text, --json, --progress) and its dry run."""

from __future__ import annotations

import json
import os
import re
import time

import pytest

import bakthat
from tests.commands.conftest import ROW_KEYS, expect
from tests.conftest import snapshot


def test_json_prints_the_restored_row_and_the_tree_comes_back(cli, backed_up, tree, tmp_path):
    result = cli.ok("restore", "mydir", "--target", str(tmp_path / "out"), "--json")
    row = json.loads(result.stdout)
    assert set(row) == ROW_KEYS and row["stored_filename"] == backed_up.stored_filename
    assert snapshot(tmp_path / "out" / "mydir") == snapshot(tree)
    text = cli.ok("restore", "mydir", "--target", str(tmp_path / "again"))
    assert text.stdout == "" and f"Restored {backed_up.stored_filename}" in text.stderr


def test_the_target_defaults_to_the_current_directory(cli, backed_up, tmp_path, monkeypatch):
    work = tmp_path / "restore-here"
    work.mkdir()
    monkeypatch.chdir(work)
    cli.ok("restore", "mydir")
    assert (work / "mydir" / "text.txt").exists()


def test_a_stored_filename_names_one_backup(cli, backed_up, tree, tmp_path):
    (tree / "text.txt").write_text("second version\n")
    bakthat.backup(str(tree), password="")
    cli.ok("restore", backed_up.stored_filename, "--target", str(tmp_path / "out"))
    assert (tmp_path / "out" / "mydir" / "text.txt").read_text() == "compressible text\n" * 2000


def test_at_restores_the_newest_backup_at_or_before_a_date(cli, backed_up, tree, tmp_path):
    time.sleep(1.1)  # backup dates are in seconds
    (tree / "text.txt").write_text("second version\n")
    bakthat.backup(str(tree), password="")
    cli.ok("restore", "mydir", "--at", str(backed_up.backup_date), "--target", str(tmp_path / "old"))
    assert (tmp_path / "old" / "mydir" / "text.txt").read_text() == "compressible text\n" * 2000
    cli.ok("restore", "mydir", "--target", str(tmp_path / "new"))
    assert (tmp_path / "new" / "mydir" / "text.txt").read_text() == "second version\n"


def test_include_restores_only_the_matching_paths(cli, backed_up, tmp_path):
    cli.ok("restore", "mydir", "--include", "sub/", "--include", "*.sh", "--target", str(tmp_path / "out"))
    restored = sorted(path.relative_to(tmp_path / "out").as_posix() for path in (tmp_path / "out").rglob("*"))
    assert "mydir/sub/deeper/note.md" in restored and "mydir/script.sh" in restored
    assert "mydir/text.txt" not in restored and "mydir/random.bin" not in restored


def test_existing_files_are_kept_unless_overwrite(cli, backed_up, tmp_path):
    (tmp_path / "out" / "mydir").mkdir(parents=True)
    (tmp_path / "out" / "mydir" / "text.txt").write_text("mine")
    expect(cli("restore", "mydir", "--target", str(tmp_path / "out")), 8, "mydir")
    assert (tmp_path / "out" / "mydir" / "text.txt").read_text() == "mine"
    cli.ok("restore", "mydir", "--target", str(tmp_path / "out"), "--overwrite")
    assert (tmp_path / "out" / "mydir" / "text.txt").read_text() == "compressible text\n" * 2000


def test_an_encrypted_backup_without_a_password_and_prompt_no_exits_5(cli, tree, home, tmp_path):
    (home / ".bakthat.yml").write_text("default:\n  scrypt_work_factor: 10\n")
    bakthat.backup(str(tree), password="pw")
    expect(cli("restore", "mydir", "--prompt", "no", "--target", str(tmp_path / "out")), 5, "is encrypted")
    assert not (tmp_path / "out").exists()


def test_an_unknown_name_exits_4(cli):
    expect(cli("restore", "nothing"), 4, "no backup named 'nothing'")


def test_a_dry_run_verifies_lists_and_writes_nothing(cli, backed_up, tmp_path):
    target = tmp_path / "target"
    plan = json.loads(cli.ok("restore", "mydir", "--target", str(target), "--dry-run", "--json").stdout)
    assert plan["verified"] and plan["conflicts"] == [] and "mydir/text.txt" in plan["would_write"]
    assert not target.exists()
    text = cli.ok("restore", "mydir", "--target", str(target), "--dry-run").stdout
    assert f"{backed_up.stored_filename} verified" in text and "dry run: nothing was written" in text
    (target / "mydir").mkdir(parents=True)
    conflicting = cli("restore", "mydir", "--target", str(target), "--dry-run")
    assert conflicting.returncode == 8 and re.search(r"refused +mydir \(directory in the target\)", conflicting.stdout)
    assert os.listdir(target / "mydir") == []


def test_progress_can_be_forced_with_a_percentage(cli, backed_up, tmp_path):
    forced = cli.ok("restore", "mydir", "--target", str(tmp_path / "out"), "--progress")
    assert "B/s" in forced.stderr
    assert "100%" in forced.stderr  # the total (the stored size) is known: a percentage and an ETA
    default = cli.ok("restore", "mydir", "--target", str(tmp_path / "again"))
    assert "B/s" not in default.stderr and "\r" not in default.stderr


@pytest.mark.parametrize(("option", "value"), [("--prompt", "maybe")])
def test_a_value_outside_the_choices_is_a_usage_error(cli, option, value):
    expect(cli("restore", "mydir", option, value), 2, f"argument {option}: invalid choice: '{value}'")
