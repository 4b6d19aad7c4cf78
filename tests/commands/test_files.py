"""``bakthat files``: the paths a backup holds, from its index, as ls -l lines or JSON."""

from __future__ import annotations

import json
import os
import shutil

import bakthat
from tests.commands.conftest import expect


def test_files_prints_one_ls_line_per_entry_of_the_newest_state(cli, chain, tree):
    lines = cli.ok("files", "mydir").stdout.splitlines()
    by_path = {line.split(" -> ")[0].rsplit(" ", 1)[-1]: line for line in lines}  # the path ends the line
    assert "mydir/sub/new.md" in by_path and "mydir/text.txt" not in by_path
    script = by_path["mydir/script.sh"].split()
    assert script[0] == "-rwxr-xr-x" and script[2] == str((tree / "script.sh").stat().st_size)
    assert by_path["mydir/sub"].startswith("d")
    assert by_path["mydir/link-to-text"].startswith("l") and by_path["mydir/link-to-text"].endswith(" -> text.txt")


def test_at_and_a_stored_filename_pick_an_older_state(cli, chain):
    older = json.loads(cli.ok("files", "mydir", "--at", str(chain[0].backup_date), "--json").stdout)
    assert "mydir/text.txt" in [entry["path"] for entry in older]
    by_stored = json.loads(cli.ok("files", chain[0].stored_filename, "--json").stdout)
    assert by_stored == older


def test_json_gives_each_entry_with_its_holder(cli, chain):
    entries = json.loads(cli.ok("files", "mydir", "--json").stdout)
    new = next(entry for entry in entries if entry["path"] == "mydir/sub/new.md")
    assert {"path", "type", "size", "mtime_ns", "mode", "link", "holder"} <= set(new)
    assert new["type"] == "f" and new["size"] == len("# new\n") and new["holder"] == chain[1].stored_filename
    kept = next(entry for entry in entries if entry["path"] == "mydir/random.bin")
    assert kept["holder"] == chain[0].stored_filename


def test_a_name_that_is_not_utf8_is_printed_with_escapes(cli, tree):
    (tree / os.fsdecode(b"caf\xe9.txt")).write_text("latin-1 name")
    bakthat.backup(str(tree), password="")
    assert "mydir/caf\\xe9.txt" in cli.ok("files", "mydir").stdout
    entries = json.loads(cli.ok("files", "mydir", "--json").stdout)
    assert os.fsencode(next(e["path"] for e in entries if e["path"].startswith("mydir/caf"))) == b"mydir/caf\xe9.txt"


def test_an_encrypted_index_with_prompt_no_and_no_password_exits_5(cli, tree, home):
    (home / ".bakthat.yml").write_text("default:\n  scrypt_work_factor: 10\n")
    bakthat.backup(str(tree), password="browse secret")
    shutil.rmtree(home / ".cache")  # this host's cache of its own last state needs no password
    result = cli("files", "mydir", "--prompt", "no")
    expect(result, 5)
    assert result.stdout == ""


def test_an_unknown_name_exits_4(cli):
    expect(cli("files", "nothing"), 4, "nothing")
