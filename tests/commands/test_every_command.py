"""Every command, under its 0.6 name and its hyphenated alias (in-process; each command's own
contract is tested in its module, tests/commands/test_<command>.py)."""

from __future__ import annotations

import pytest

from bakthat.cli import build_parser

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


def every_name_and_alias():
    from bakthat.commands import command_modules

    for module in command_modules():
        yield module.NAME
        yield from {module.NAME.replace("_", "-")} - {module.NAME}
        yield from getattr(module, "ALIASES", ())


@pytest.mark.parametrize("name", list(every_name_and_alias()))
def test_help_of_every_command_and_alias(cli, name):
    result = cli(name, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: bakthat ")

