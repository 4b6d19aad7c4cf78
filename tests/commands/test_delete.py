"""``bakthat delete``: the newest backup of a name (or one stored filename), --json, --dry-run."""

from __future__ import annotations

import json

import bakthat
from tests.commands.conftest import ROW_KEYS, expect


def live() -> list[str]:
    return [row.stored_filename for row in bakthat.search()]


def test_delete_removes_the_newest_backup_and_prints_its_row_as_json(cli, backed_up, tree, home):
    newer = bakthat.backup(str(tree), password="")
    deleted = json.loads(cli.ok("delete", "mydir", "--json").stdout)
    assert set(deleted) == ROW_KEYS and deleted["is_deleted"] is True
    assert deleted["stored_filename"] == newer.stored_filename
    assert live() == [backed_up.stored_filename]
    assert not (home / ".bakthat_store" / newer.stored_filename).exists()
    assert cli.ok("delete", backed_up.stored_filename).stdout == ""
    assert live() == []
    assert json.loads(cli.ok("ls", "--json").stdout) == []


def test_a_dry_run_says_once_what_it_would_delete_and_keeps_it(cli, backed_up, home):
    result = cli.ok("delete", "mydir", "--dry-run")
    said = (result.stdout + result.stderr).lower()
    assert said.count(f"would delete {backed_up.stored_filename}") == 1 and "nothing was deleted" in said
    plan = json.loads(cli.ok("delete", "mydir", "--dry-run", "--json").stdout)
    assert plan["dry_run"] is True and plan["stored_filename"] == backed_up.stored_filename
    assert live() == [backed_up.stored_filename]
    assert (home / ".bakthat_store" / backed_up.stored_filename).exists()


def test_an_unknown_name_exits_4(cli, backed_up):
    expect(cli("delete", "nothing"), 4, "no backup named 'nothing'")
    assert live() == [backed_up.stored_filename]


def test_a_lock_timeout_that_is_not_a_number_is_a_usage_error(cli, backed_up):
    expect(cli("delete", "mydir", "--lock-timeout", "soon"), 2, "argument --lock-timeout: invalid float value")
    assert live() == [backed_up.stored_filename]
