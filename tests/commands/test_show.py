"""``bakthat show``: the catalog's backups, as aligned columns or JSON rows, filtered."""

from __future__ import annotations

import json

import bakthat
from tests.commands.conftest import ROW_KEYS, expect


def test_show_json_is_a_list_of_rows_with_the_documented_keys(cli, backed_up):
    rows = json.loads(cli.ok("show", "--json").stdout)
    assert len(rows) == 1 and set(rows[0]) == ROW_KEYS
    assert rows[0]["filename"] == "mydir" and rows[0]["tags"] == "daily db" and rows[0]["backend"] == "local"
    assert rows[0]["stored_filename"] == backed_up.stored_filename


def test_show_prints_aligned_columns_with_zone_and_human_size(cli, backed_up, tree):
    bakthat.backup(str(tree), password="")
    lines = cli.ok("show").stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].index("mydir.") == lines[1].index("mydir.")
    assert all(f" {tree}" in line for line in lines)
    assert " KiB " in lines[0] and "local" in lines[0]
    assert sum("(daily db)" in line for line in lines) == 1
    assert all(line.endswith("  full  -") for line in lines)  # the level, and no check yet


def test_the_query_and_tags_filter_the_rows(cli, backed_up, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("x")
    bakthat.backup(str(other), password="", tags="weekly")
    names = lambda *args: [row["filename"] for row in json.loads(cli.ok("show", *args, "--json").stdout)]  # noqa: E731
    assert sorted(names()) == ["mydir", "other.txt"]
    assert names("other") == ["other.txt"]
    assert names(backed_up.stored_filename) == ["mydir"]  # a substring of the stored filename too
    assert names("-t", "daily") == ["mydir"] and names("-t", "weekly") == ["other.txt"]
    assert names("-t", "daily weekly") == []  # all the tags, not any
    assert names("-d", "s3") == []


def test_an_empty_catalog_prints_nothing_and_exits_0(cli):
    result = cli.ok("show")
    assert result.stdout == ""
    assert cli.ok("show", "--json").stdout == "[]\n"


def test_an_unknown_option_is_a_usage_error(cli):
    expect(cli("show", "--newest"), 2, "unrecognized arguments: --newest")
