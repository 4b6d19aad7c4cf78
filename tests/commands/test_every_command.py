"""Every command, under its 0.6 name and its hyphenated alias, from a real subprocess."""

from __future__ import annotations

import json

import pytest

from bakthat.cli import build_parser
from tests.conftest import cli_ok, make_tree, run_cli

COMMANDS = [
    "backup", "restore", "show", "delete", "delete_older_than", "rotate_backups", "configure",
    "configure_backups_rotation", "info", "ls", "periodic_backups",
]


def names_and_aliases():
    for command in COMMANDS:
        yield command
        if "_" in command:
            yield command.replace("_", "-")


def test_the_parser_has_every_06_command_and_alias():
    parser = build_parser()
    choices = next(action for action in parser._actions if action.dest == "command").choices
    assert set(names_and_aliases()) <= set(choices)
    for name in choices:
        if "-" in name:
            assert name.replace("-", "_") in choices, f"alias {name} without its underscore name"


def test_every_command_module_is_named_after_its_command():
    # bakthat.plugin reads the built-in command names from these module names.
    from bakthat.commands import command_modules
    from bakthat.plugin import _builtin_command_names

    modules = command_modules()
    assert modules and all(module.__name__ == f"bakthat.commands.{module.NAME}" for module in modules)
    assert {module.NAME for module in modules} <= _builtin_command_names()


@pytest.mark.parametrize("name", list(names_and_aliases()))
def test_help_of_every_command_and_alias(name):
    result = run_cli(name, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: bakthat ")


@pytest.fixture
def populated(tmp_path):
    data = make_tree(tmp_path / "data" / "mydir")
    result = run_cli("backup", str(data), "--prompt", "no", "-t", "daily db", "-k", "nightly")
    assert result.returncode == 0, result.stderr
    return data


@pytest.mark.parametrize("name", ["show", "info", "ls", "periodic_backups", "periodic-backups"])
def test_listing_commands_run_in_both_forms(populated, name):
    human = run_cli(name)
    assert human.returncode == 0, human.stderr
    assert human.stdout.strip()
    machine = run_cli(name, "--json")
    assert machine.returncode == 0, machine.stderr
    json.loads(machine.stdout)


def test_show_prints_aligned_columns_with_zone_and_human_size(populated, tmp_path):
    run_cli("backup", str(populated), "--prompt", "no")
    lines = cli_ok("show").stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].index("mydir.") == lines[1].index("mydir.")
    assert all(f" {populated}" in line for line in lines)
    assert " KiB " in lines[0] and "local" in lines[0]
    assert "(daily db)" in lines[1] or "(daily db)" in lines[0]
    assert all(line.endswith("  full  -") for line in lines)  # the level, and no check yet


def test_info_gives_the_full_record_of_a_name_or_a_stored_filename(populated):
    rows = json.loads(cli_ok("show", "--json").stdout)
    by_name = json.loads(cli_ok("info", "mydir", "--json").stdout)
    assert by_name["versions"] == 1
    assert by_name["backup"] == rows[0]
    by_stored = json.loads(cli_ok("info", rows[0]["stored_filename"], "--json").stdout)
    assert by_stored["backup"]["stored_filename"] == rows[0]["stored_filename"]
    human = cli_ok("info", "mydir").stdout
    assert "stored filename" in human and rows[0]["sha256"] in human and "metadata.key" in human


def test_info_without_a_name_summarises_each_name(populated, tmp_path):
    run_cli("backup", str(populated), "--prompt", "no")
    other = tmp_path / "other.txt"
    other.write_text("x")
    run_cli("backup", str(other), "--prompt", "no")
    summary = json.loads(cli_ok("info", "--json").stdout)
    assert [(e["name"], e["count"]) for e in summary] == [("mydir", 2), ("other.txt", 1)]
    rows = json.loads(cli_ok("show", "--json").stdout)
    assert summary[0]["total_size"] == sum(r["size"] for r in rows if r["filename"] == "mydir")
    assert summary[0]["newest"] == max(r["backup_date"] for r in rows if r["filename"] == "mydir")
    assert set(summary[0]) == {"name", "destination", "count", "newest", "oldest", "total_size", "sources"}
    assert summary[0]["sources"] == [str(populated)] and summary[1]["sources"] == [str(other)]
    human = cli_ok("info").stdout.splitlines()
    assert human[0].split() == ["NAME", "DESTINATION", "BACKUPS", "NEWEST", "TOTAL", "SIZE", "SOURCE"]
    assert human[1].endswith(str(populated)) and human[2].endswith(str(other))


def test_ls_lists_the_store_and_marks_the_catalog(populated, home):
    (home / ".bakthat_store" / "stranger.bin").write_bytes(b"?")
    rows = json.loads(cli_ok("show", "--json").stdout)
    archive = rows[0]["stored_filename"]
    listed = json.loads(cli_ok("ls", "--json").stdout)
    assert [(e["key"], e["state"], e["in_catalog"]) for e in listed] == [
        (archive, "catalog", True),
        ("stranger.bin", None, False),
    ]
    assert listed[0]["size"] == rows[0]["size"]
    with_manifests = json.loads(cli_ok("ls", "--all", "--json").stdout)
    assert [e["key"] for e in with_manifests] == [
        archive, archive + ".index.jsonl.zst", archive + ".manifest.json", "stranger.bin"
    ]
    human = cli_ok("ls").stdout
    assert "unknown  stranger.bin" in human and f"catalog  {archive}" in human
    assert [e["key"] for e in json.loads(cli_ok("ls", "stran", "--json").stdout)] == ["stranger.bin"]


def test_ls_reports_a_catalogued_archive_whose_object_is_gone(populated, home):
    archive = json.loads(cli_ok("show", "--json").stdout)[0]["stored_filename"]
    (home / ".bakthat_store" / archive).unlink()
    listed = json.loads(cli_ok("ls", "--json").stdout)
    assert [(e["key"], e["state"], e["in_store"]) for e in listed] == [(archive, "missing", False)]


def test_delete_then_ls_shows_nothing(populated):
    assert run_cli("delete", "mydir").returncode == 0
    assert json.loads(cli_ok("ls", "--json").stdout) == []
    assert json.loads(cli_ok("info", "--json").stdout) == []


def test_retention_commands_run_under_both_names(populated, home):
    (home / ".bakthat.yml").write_text("default:\n  rotation: {keep_last: 1}\n")
    for name in ("rotate_backups", "rotate-backups"):
        result = run_cli(name, "mydir", "--dry-run")
        assert result.returncode == 0, result.stderr
    for name in ("delete_older_than", "delete-older-than"):
        result = run_cli(name, "mydir", "1Y", "--dry-run")
        assert result.returncode == 0, result.stderr


def test_restore_takes_the_current_directory_like_06(populated, tmp_path):
    work = tmp_path / "restore-here"
    work.mkdir()
    result = run_cli("restore", "mydir", cwd=work)
    assert result.returncode == 0, result.stderr
    assert (work / "mydir" / "text.txt").exists()


def test_backup_defaults_to_the_current_directory(tmp_path):
    folder = tmp_path / "cwd-source"
    folder.mkdir()
    (folder / "a").write_text("a")
    assert run_cli("backup", "--prompt", "no", cwd=folder).returncode == 0
    assert json.loads(cli_ok("show", "--json").stdout)[0]["filename"] == "cwd-source"
