"""``bakthat rotate_backups``: the profile's rotation policy applied to a name; the plan as text or
JSON, --dry-run with --now, --force, --lock-timeout.  In-process, but for two rotations at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from bakthat import models
from bakthat.errors import EXIT_CODES
from tests.conftest import ROOT
from tests.test_rotation import DAY, NOW, hold_lock, make_history, state, write_config


def live(name="web"):
    return len(models.Backups.search(name=name))


def recent(count):
    now = int(time.time())
    return [now - k * DAY for k in range(count)]


def expect(result, code, text=""):
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert text in result.stderr
    assert "Traceback" not in result.stderr
    assert code in EXIT_CODES


@pytest.mark.parametrize("command", ["rotate_backups", "rotate-backups"])
def test_rotate_backups_under_both_names(cli, home, command):
    write_config(home, "default:\n  rotation: {keep_last: 2}\n")
    rows = make_history("web", recent(5))
    result = cli(command, "web")
    expect(result, 0)
    assert f"rotate_backups web (destination local, profile default)" in result.stdout
    assert "kept as #1 of the last 2 (keep_last); kept as newest" in result.stdout
    assert result.stdout.count("  delete  ") == 3
    assert "2 kept, 3 to delete; deleted 3" in result.stdout
    assert live() == 2
    assert not (home / ".bakthat_store" / rows[-1].stored_filename).exists()


def test_a_dry_run_prints_the_plan_with_reasons_and_changes_nothing(cli, home):
    write_config(home, "default:\n  rotation: {days: 3, weeks: 2, first_week_day: 5}\n")
    make_history("web", [NOW - k * DAY for k in range(10)], tags=["", "", "", "", "keep", "", "", "", "", ""])
    before = state(home)
    result = cli("rotate-backups", "web", "--dry-run", "--now", "2026-11-22T12:00:00Z", "--json")
    expect(result, 0)
    assert state(home) == before
    plan = json.loads(result.stdout)
    assert plan["dry_run"] is True and "deleted" not in plan and plan["now"] == NOW
    decisions = {b["backup_date_utc"][:10]: (b["decision"], b["reasons"]) for b in plan["backups"]}
    assert decisions["2026-11-22"] == ("keep", ["kept by weeks bucket 2026-11-21", "kept by days bucket 2026-11-22", "kept as newest"])
    assert decisions["2026-11-20"] == ("keep", ["kept by weeks bucket 2026-11-14", "kept by days bucket 2026-11-20"])
    assert decisions["2026-11-18"] == ("keep", ["pinned (tag 'keep')"])
    assert decisions["2026-11-19"] == ("delete", ["deleted: not the newest of week bucket 2026-11-14"])
    assert decisions["2026-11-13"] == ("delete", ["deleted: outside every window"])
    assert plan["summary"] == {"keep": 4, "delete": 6, "retry": 0}
    text = cli("rotate_backups", "web", "--dry-run", "--now", str(NOW))
    expect(text, 0)
    assert "kept by days bucket 2026-11-21" in text.stdout
    assert "4 kept, 6 to delete (dry run: nothing was deleted)" in text.stdout
    assert state(home) == before


def test_no_rotation_policy_exits_2_and_says_what_to_add(cli, home):
    make_history("web", recent(3))
    expect(cli("rotate_backups", "web"), 2, "no rotation policy in profile 'default'")
    assert live() == 3


def test_now_is_refused_outside_a_dry_run(cli, home):
    write_config(home, "default:\n  rotation: {keep_last: 1}\n")
    make_history("web", recent(3))
    expect(cli("rotate_backups", "web", "--now", "2030-01-01"), 2, "--now is only allowed with --dry-run")
    expect(cli("rotate_backups", "web", "--dry-run", "--now", "soon"), 2, "--now 'soon'")
    assert live() == 3


def test_a_policy_that_keeps_nothing_exits_2_unless_forced(cli, home):
    write_config(home, "default:\n  rotation: {days: 7}\n")
    make_history("web", [int(time.time()) - k * DAY for k in (100, 90, 80)])
    before = state(home)
    refused = cli("rotate_backups", "web")
    expect(refused, 2, "would delete all 3 backups but the newest")
    assert "REFUSED" in refused.stdout and "nothing was deleted" in refused.stderr
    assert state(home) == before
    expect(cli("rotate_backups", "web", "--force"), 0)
    assert live() == 1


def test_an_undeletable_archive_exits_3_after_deleting_the_others(cli, home):
    write_config(home, "default:\n  rotation: {keep_last: 1}\n")
    rows = make_history("web", recent(4))
    stuck = home / ".bakthat_store" / rows[2].stored_filename
    stuck.unlink()
    stuck.mkdir()
    (stuck / "in-the-way").write_text("x")
    result = cli("rotate_backups", "web", "--json")
    expect(result, 3, rows[2].stored_filename)
    plan = json.loads(result.stdout)
    assert sorted(plan["deleted"]) == sorted([rows[1].stored_filename, rows[3].stored_filename])
    assert [item["stored_filename"] for item in plan["failed"]] == [rows[2].stored_filename]
    row = models.Backups.get_by_id(rows[2].id)
    assert row.is_deleted and row.state == "deleting"


def test_two_rotations_at_once_never_delete_more_than_the_policy_allows(home):
    write_config(home, "default:\n  rotation: {keep_last: 5}\n")
    rows = make_history("web", recent(30))
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "bakthat", "rotate_backups", "web", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    deleted = [json.loads(stdout)["deleted"] for stdout, _ in outputs]
    assert not set(deleted[0]) & set(deleted[1])
    assert sorted(deleted[0] + deleted[1]) == sorted(r.stored_filename for r in rows[5:])
    assert live() == 5


def test_a_held_lock_exits_12(cli, home):
    write_config(home, "default:\n  rotation: {keep_last: 1}\n")
    make_history("web", recent(3))
    holder = hold_lock("web", 120)  # held until terminated: a slow machine must not outlast it
    try:
        expect(cli("rotate_backups", "web", "--lock-timeout", "0.3"), 12, "another bakthat process is deleting backups of 'web'")
    finally:
        holder.terminate()
        holder.wait(timeout=30)
    assert live() == 3


def test_the_json_plan_is_one_document_on_one_line(cli, home):
    write_config(home, "default:\n  rotation: {keep_last: 2}\n")
    make_history("web", recent(4))
    for extra in ((), ("--dry-run",)):
        result = cli("rotate_backups", "web", *extra, "--json")
        expect(result, 0)
        assert len(result.stdout.splitlines()) == 1
        assert json.loads(result.stdout)["name"] == "web"


def test_a_name_with_no_backups_exits_4_like_the_other_commands(cli, home):
    write_config(home, "default:\n  rotation: {keep_last: 2}\n")
    make_history("web", recent(3))
    result = cli("rotate_backups", "nothing")
    expect(result, 4, "no backup named 'nothing' in destination local")
    assert "nothing to do" in result.stdout
    assert live() == 3

