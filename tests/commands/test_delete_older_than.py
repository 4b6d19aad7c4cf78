"""``bakthat delete_older_than``: the backups of a name older than an interval go, the newest stays."""

from __future__ import annotations

import json

import pytest

from tests.commands.test_rotate_backups import expect, live, recent
from tests.test_rotation import DAY, hold_lock, make_history, state, write_config


@pytest.mark.parametrize("command", ["delete_older_than", "delete-older-than"])
def test_delete_older_than_under_both_names(cli, home, command):
    rows = make_history("web", recent(6))
    make_history("webapp", recent(6)[3:])
    result = cli(command, "web", "2D12h", "--json")
    expect(result, 0)
    plan = json.loads(result.stdout)
    assert plan["action"] == "delete_older_than" and plan["dry_run"] is False
    assert plan["policy"]["seconds"] == 2 * DAY + 12 * 3600
    assert sorted(plan["deleted"]) == sorted(r.stored_filename for r in rows[3:])
    assert [b["decision"] for b in plan["backups"]] == ["keep"] * 3 + ["delete"] * 3
    assert live() == 3 and live("webapp") == 3


def test_delete_older_than_dry_run_changes_nothing(cli, home):
    make_history("web", recent(6))
    before = state(home)
    result = cli("delete_older_than", "web", "12h", "--dry-run")
    expect(result, 0)
    assert "1 kept, 5 to delete (dry run: nothing was deleted)" in result.stdout
    assert state(home) == before


def test_a_malformed_interval_exits_2_naming_it(cli, home):
    make_history("web", recent(3))
    expect(cli("delete_older_than", "web", "1z"), 2, "bad interval '1z'")
    assert live() == 3


def test_pinned_backups_need_force(cli, home):
    make_history("web", recent(4), tags=["", "keep", "keep", ""])
    expect(cli("delete_older_than", "web", "12h"), 0)
    assert live() == 3
    expect(cli("delete_older_than", "web", "12h", "--force"), 0)
    assert live() == 1


def test_a_held_lock_exits_12(cli, home):
    write_config(home, "default:\n  rotation: {keep_last: 1}\n")
    make_history("web", recent(3))
    holder = hold_lock("web", 120)  # held until terminated: a slow machine must not outlast it
    try:
        expect(cli("delete_older_than", "web", "1h", "--lock-timeout", "0"), 12, "another bakthat process is deleting backups of 'web'")
    finally:
        holder.terminate()
        holder.wait(timeout=30)
    assert live() == 3


def test_the_json_plan_is_one_document_on_one_line(cli, home):
    make_history("web", recent(4))
    for extra in ((), ("--dry-run",)):
        result = cli("delete_older_than", "web", "1D", *extra, "--json")
        expect(result, 0)
        assert len(result.stdout.splitlines()) == 1
        assert json.loads(result.stdout)["name"] == "web"


def test_a_name_with_no_backups_exits_4_like_the_other_commands(cli, home):
    make_history("web", recent(3))
    result = cli("delete_older_than", "nothing", "1D")
    expect(result, 4, "no backup named 'nothing' in destination local")
    assert "nothing to do" in result.stdout
    assert live() == 3

