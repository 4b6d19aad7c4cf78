"""``bakthat find``: the backups holding paths that match a pattern, newest first, from the indexes."""

from __future__ import annotations

import json
import shutil

import bakthat
from tests.commands.conftest import expect


def test_find_prints_each_backup_then_its_matching_paths(cli, chain):
    lines = cli.ok("find", "*.md").stdout.splitlines()
    assert lines[0].endswith(f"  {chain[1].stored_filename} (incr): 2 path(s)")
    assert lines[1:3] == ["    mydir/sub/deeper/note.md", "    mydir/sub/new.md"]
    assert lines[3].endswith(f"  {chain[0].stored_filename} (full): 1 path(s)")
    assert lines[4:] == ["    mydir/sub/deeper/note.md"]


def test_json_gives_one_object_per_backup(cli, chain):
    found = json.loads(cli.ok("find", "new.md", "--json").stdout)
    assert [item["stored_filename"] for item in found] == [chain[1].stored_filename]
    assert {"name", "stored_filename", "backup_date", "level", "paths"} <= set(found[0])
    assert found[0]["paths"] == ["mydir/sub/new.md"] and found[0]["level"] == "incr"


def test_name_keeps_only_the_backups_of_that_name(cli, chain, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "readme.md").write_text("x")
    bakthat.backup(str(other), password="")
    everywhere = json.loads(cli.ok("find", "*.md", "--json").stdout)
    assert {item["name"] for item in everywhere} == {"mydir", "other"}
    only = json.loads(cli.ok("find", "*.md", "--name", "other", "--json").stdout)
    assert [item["paths"] for item in only] == [["other/readme.md"]]


def test_no_match_says_so_and_exits_0(cli, chain):
    assert cli.ok("find", "nothing-*").stdout == "no backup holds a path matching 'nothing-*'\n"
    assert cli.ok("find", "nothing-*", "--json").stdout == "[]\n"


def test_an_encrypted_index_with_prompt_no_and_no_password_exits_5(cli, tree, home):
    (home / ".bakthat.yml").write_text("default:\n  scrypt_work_factor: 10\n")
    bakthat.backup(str(tree), password="browse secret")
    shutil.rmtree(home / ".cache")  # this host's cache of its own last state needs no password
    expect(cli("find", "*.md", "--prompt", "no"), 5)
