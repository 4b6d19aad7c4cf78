"""Every command, under its 0.6 name and its hyphenated alias, from a real subprocess."""

from __future__ import annotations

import json

import pytest

from bakthat.cli import build_parser
from tests.conftest import make_tree, run_cli

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


def test_retention_commands_run_under_both_names(populated, home):
    (home / ".bakthat.yml").write_text("default:\n  rotation: {keep_last: 1}\n")
    for name in ("rotate_backups", "rotate-backups"):
        result = run_cli(name, "mydir", "--dry-run")
        assert result.returncode == 0, result.stderr
    for name in ("delete_older_than", "delete-older-than"):
        result = run_cli(name, "mydir", "1Y", "--dry-run")
        assert result.returncode == 0, result.stderr
