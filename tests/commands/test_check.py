"""``bakthat check`` (alias ``verify``): its report (text, --json), exit 6 naming the damage, its options."""

from __future__ import annotations

import json
import os
import time

from tests.commands.conftest import expect


def flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))


def test_a_sound_store_prints_one_line_per_backup_and_a_summary(cli, chain3):
    lines = cli.ok("check").stdout.splitlines()
    assert sorted(lines[:-1]) == sorted(f"ok         {row.stored_filename}" for row in chain3)
    assert lines[-1] == "3 backup(s) checked (objects): 0 damaged, 0 skipped, 0 orphan(s)"
    read = cli.ok("verify", "--read-data").stdout.splitlines()[-1]
    assert read == "3 backup(s) checked (objects and data): 0 damaged, 0 skipped, 0 orphan(s)"
    subset = json.loads(cli.ok("check", "--read-data-subset", "34%", "--json").stdout)
    assert subset["ok"] and sum(backup["data_read"] for backup in subset["backups"]) == 1


def test_damage_exits_6_naming_every_damaged_backup_and_is_recorded(cli, chain3, home):
    store = home / ".bakthat_store"
    flip_byte(store / chain3[2].stored_filename)
    (store / (chain3[0].stored_filename + ".manifest.json")).write_text("{")
    result = cli("verify", "--read-data")
    assert result.returncode == 6, result.stderr
    named = result.stderr.splitlines()[-1]
    assert named.startswith("bakthat: error: damaged: ")
    assert all(row.stored_filename in named for row in chain3)  # the middle one through its chain
    assert "3 damaged" in result.stdout.splitlines()[-1]
    as_json = cli("check", "--json", chain3[1].stored_filename)
    assert as_json.returncode == 6
    data = json.loads(as_json.stdout)
    assert data["damaged"] == [chain3[1].stored_filename] and data["ok"] is False
    assert "its chain is broken" in data["backups"][0]["problems"][0]
    info = cli.ok("info", chain3[1].filename)
    assert "last check" in info.stdout and "damaged" in info.stdout


def test_an_orphan_is_listed_and_fails_the_check(cli, chain3, home):
    orphan = home / ".bakthat_store" / "lost.20200101000000.tar.zst"
    orphan.write_bytes(b"left by a killed backup")
    os.utime(orphan, (time.time() - 7200, time.time() - 7200))
    result = cli("check")
    assert result.returncode == 6 and orphan.name in result.stderr.splitlines()[-1]
    assert any(line.startswith("orphan ") and line.endswith(orphan.name) for line in result.stdout.splitlines())
    assert json.loads(cli("check", "--json").stdout)["orphans"][0]["key"] == orphan.name


def test_read_data_and_a_subset_exclude_each_other(cli):
    expect(cli("check", "--read-data", "--read-data-subset", "10%"), 2, "not allowed with argument")


def test_a_bad_subset_exits_2_naming_the_value(cli, chain3):
    expect(cli("check", "--read-data-subset", "lots"), 2, "percentage")
    expect(cli("check", "--read-data-subset", "0%"), 2, "more than 0%")


def test_a_name_that_matches_nothing_exits_4(cli, chain3):
    expect(cli("check", "nothing"), 4, "nothing")
