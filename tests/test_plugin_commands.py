"""bakthat/plugin_commands.py: the commands a plugin adds, their parameters, and every
declaration checked when it is registered (a PluginError naming the plugin and the item,
so a bad command never reaches the command line's parser)."""

from __future__ import annotations

import pytest

import bakthat
from bakthat import plugin
from bakthat.plugin import Param, Plugin, PluginError
from bakthat.plugin_commands import Command, builtin_command_names
from tests.plugin_files import conf_for, data, plugins_dir, write  # noqa: F401 - fixtures


class Declaring(Plugin):
    """A plugin created directly, named like a profile's entry, to declare commands by hand."""

    def __init__(self, spec: str = "mine.Declaring") -> None:
        super().__init__({})
        self._bakthat_record.spec = spec

    def activate(self):
        pass


def run(params):
    return 0


def test_a_command_name_taken_is_a_plugin_error(plugins_dir, data):
    write(plugins_dir, "clash", """
        from bakthat.plugin import Plugin
        class Builtin(Plugin):
            def activate(self):
                self.register_command("delete-older-than", print)
        class Twice(Plugin):
            def activate(self):
                self.register_command("mine", print)
        class Again(Plugin):
            def activate(self):
                self.register_command("mine", print)
        class BadParam(Plugin):
            def activate(self):
                self.register_command("other", print, params=["profile"])
    """)
    with pytest.raises(PluginError, match="'delete-older-than' is a built-in bakthat command"):
        bakthat.backup(str(data), conf=conf_for(plugins_dir, "clash.Builtin"), prompt="no")
    with pytest.raises(PluginError, match="already declared by plugin 'clash.Twice'") as raised:
        bakthat.backup(str(data), conf=conf_for(plugins_dir, "clash.Twice", "clash.Again"), prompt="no")
    assert raised.value.plugin == "clash.Again"
    with pytest.raises(PluginError, match="parameter name 'profile'"):
        bakthat.backup(str(data), conf=conf_for(plugins_dir, "clash.BadParam"), prompt="no")


def test_param_defaults_make_a_required_option():
    param = Param("target")
    assert (param.required, param.positional, param.flag, param.type) == (True, False, False, str)


@pytest.mark.parametrize(
    "name, func, params, item",
    [
        ("Upper", run, [], "command name 'Upper' must be lower-case letters"),
        ("two words", run, [], "command name 'two words' must be"),
        ("mine", "run", [], "command 'mine': 'run' is not callable"),
        ("mine", lambda: 0, [], "command 'mine': <lambda>() cannot be called with the parameter dict"),
        ("mine", run, [{"name": "n"}], "command 'mine': parameters are Param objects or names, not {'name': 'n'}"),
        ("mine", run, [Param("count", type="int")], "parameter 'count' has type 'int', which is not callable"),
        ("mine", run, [Param("mode", choices="fast")], "the choices of parameter 'mode' are one string, not a list"),
        ("mine", run, ["n", "n"], "invalid or repeated parameter name 'n'"),
        ("mine", run, ["two-words"], "invalid or repeated parameter name 'two-words'"),
        ("mine", run, [Param(3)], "invalid or repeated parameter name 3"),
        ("mine", run, ["help"], "invalid or repeated parameter name 'help'"),
        ("restore", run, [], "command 'restore' is a built-in bakthat command"),
        ("delete_older_than", run, [], "command 'delete_older_than' is a built-in bakthat command"),
    ],
)
def test_a_bad_command_is_refused_when_registered_naming_the_plugin_and_the_item(name, func, params, item):
    with pytest.raises(PluginError) as raised:
        Declaring().register_command(name, func, params=params)
    assert raised.value.plugin == "mine.Declaring"
    assert str(raised.value).startswith("plugin 'mine.Declaring': ") and item in str(raised.value)
    assert plugin.commands() == {}


def test_a_command_name_differing_only_by_hyphens_and_underscores_is_a_duplicate():
    first = Declaring("mine.First")
    first.register_command("sync_now", run)
    with pytest.raises(PluginError, match="command 'sync-now' is already declared by plugin 'mine.First'") as raised:
        Declaring("mine.Second").register_command("sync-now", run)
    assert raised.value.plugin == "mine.Second"
    assert list(plugin.commands()) == ["sync_now"]
    plugin._undo(first)
    assert plugin.commands() == {}


def test_a_registered_command_keeps_its_parameters_in_order_with_names_made_params():
    declaring = Declaring()
    command = declaring.register_command(
        "report", run, params=["since", Param("format", required=False, choices=["text", "json"])], help="a report"
    )
    assert plugin.commands() == {"report": command}
    assert (command.name, command.help, command.plugin) == ("report", "a report", declaring)
    assert command.params == [Param("since"), Param("format", required=False, choices=["text", "json"])]
    plugin._undo(declaring)


@pytest.mark.parametrize("returned, code", [(None, 0), (0, 0), (4, 4), (True, 0), ("text", 0)])
def test_a_command_exits_with_the_integer_its_function_returns_else_0(returned, code):
    seen = []

    def func(params):
        seen.append(params)
        return returned

    command = Command("c", func, [], "", Declaring())
    given = {"profile": "default"}
    assert command.run(given) == code
    assert seen == [given] and seen[0] is not given  # its own copy


def test_the_built_in_command_names_are_the_command_modules_with_their_hyphenated_aliases():
    from bakthat.commands import command_modules

    names = builtin_command_names()
    declared = {module.NAME for module in command_modules()}
    assert names == declared | {name.replace("_", "-") for name in declared}
    assert {"backup", "delete_older_than", "delete-older-than"} <= names
