"""``bakthat info``: one backup's full record (by name or stored filename), or a summary per name."""

from __future__ import annotations

import json

import bakthat
from tests.commands.conftest import expect


def test_info_gives_the_full_record_of_a_name_or_a_stored_filename(cli, backed_up):
    rows = json.loads(cli.ok("show", "--json").stdout)
    by_name = json.loads(cli.ok("info", "mydir", "--json").stdout)
    assert set(by_name) == {"backup", "versions"}
    assert by_name["versions"] == 1
    assert by_name["backup"] == rows[0]
    by_stored = json.loads(cli.ok("info", rows[0]["stored_filename"], "--json").stdout)
    assert by_stored["backup"]["stored_filename"] == rows[0]["stored_filename"]
    human = cli.ok("info", "mydir").stdout
    assert "stored filename" in human and rows[0]["sha256"] in human and "metadata.key" in human
    assert "1 live backup(s) of mydir" in human and "last check" in human


def test_info_without_a_name_summarises_each_name(cli, backed_up, tree, tmp_path):
    bakthat.backup(str(tree), password="")
    other = tmp_path / "other.txt"
    other.write_text("x")
    bakthat.backup(str(other), password="")
    summary = json.loads(cli.ok("info", "--json").stdout)
    assert [(e["name"], e["count"]) for e in summary] == [("mydir", 2), ("other.txt", 1)]
    rows = json.loads(cli.ok("show", "--json").stdout)
    assert summary[0]["total_size"] == sum(r["size"] for r in rows if r["filename"] == "mydir")
    assert summary[0]["newest"] == max(r["backup_date"] for r in rows if r["filename"] == "mydir")
    assert set(summary[0]) == {"name", "destination", "count", "newest", "oldest", "total_size", "sources"}
    assert summary[0]["sources"] == [str(tree)] and summary[1]["sources"] == [str(other)]
    human = cli.ok("info").stdout.splitlines()
    assert human[0].split() == ["NAME", "DESTINATION", "BACKUPS", "NEWEST", "TOTAL", "SIZE", "SOURCE"]
    assert human[1].endswith(str(tree)) and human[2].endswith(str(other))


def test_the_summary_keeps_only_the_backups_with_every_tag_given(cli, backed_up, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("x")
    bakthat.backup(str(other), password="", tags="weekly")
    assert [e["name"] for e in json.loads(cli.ok("info", "-t", "daily", "--json").stdout)] == ["mydir"]
    assert json.loads(cli.ok("info", "-t", "daily weekly", "--json").stdout) == []


def test_info_prints_nested_metadata_as_words_not_python_reprs(cli, backed_up):
    result = cli.ok("info", "mydir")
    line = next(line for line in result.stdout.splitlines() if line.startswith("metadata.entries"))
    assert line.split(None, 1)[1] == "changed 0, excluded 0, skipped 0"
    assert "{" not in result.stdout and "'" not in result.stdout


def test_an_unknown_name_exits_4_naming_it(cli, backed_up):
    expect(cli("info", "nothing-like-it"), 4, "nothing-like-it")


def test_no_backups_gives_an_empty_summary(cli):
    assert cli.ok("info").stdout == ""
    assert json.loads(cli.ok("info", "--json").stdout) == []
