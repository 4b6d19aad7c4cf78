"""bakthat/plugin_state.py: the manager of a process's plugins, named hooks, and unloading,
which undoes every registration a plugin made (events, patches, commands, hooks, file
filters, its plugins directory and modules)."""

from __future__ import annotations

import logging
import sys

import pytest

import bakthat
from bakthat import eventing, file_filters, models, plugin
from bakthat.plugin import HookError, Plugin, call_hook, unload_plugins
from bakthat.plugin_state import record_of
from tests.plugin_files import conf_for, data, plugins_dir, write  # noqa: F401 - fixtures

# -- named hooks ------------------------------------------------------------------------------


def test_hooks_are_called_with_a_parameter_dict_and_return_their_results():
    class Provider(Plugin):
        def activate(self):
            self.register_hook("BACKUP_NAMES", self.names)

        def names(self, params):
            params["mutated"] = True
            return ["db-" + params["host"]]

    class Other(Plugin):
        def activate(self):
            self.register_hook("BACKUP_NAMES", lambda params: sorted(params))

    first, second = Provider({}), Other({})
    first.activate()
    second.activate()
    given = {"host": "h1"}
    assert call_hook("BACKUP_NAMES", given) == [["db-h1"], ["host"]]
    assert given == {"host": "h1"}  # each hook gets its own copy
    assert second.call_hook("nothing registered") == []
    plugin._undo(first)
    plugin._undo(second)
    assert call_hook("BACKUP_NAMES", given) == []


def test_a_failing_hook_stops_the_call_with_a_named_error():
    called = []

    class Failing(Plugin):
        def activate(self):
            self.register_hook("check", self.check)
            self.register_hook("check", called.append)

        def check(self, params):
            raise KeyError("disk")

    failing = Failing({})
    failing._bakthat_record.spec = "mine.Failing"
    failing.activate()
    with pytest.raises(HookError, match="hook 'check' of plugin 'mine.Failing' failed: KeyError") as raised:
        call_hook("check", {})
    assert isinstance(raised.value.__cause__, KeyError)
    assert called == []
    plugin._undo(failing)


def test_hooks_registered_by_loaded_plugins_are_dropped_on_unload(plugins_dir, data):
    write(plugins_dir, "hooks_plugin", """
        from bakthat.plugin import Plugin
        class Hooks(Plugin):
            def activate(self):
                self.register_hook("ping", lambda params: "pong " + params["who"])
    """)
    bakthat.backup(str(data), conf=conf_for(plugins_dir, "hooks_plugin.Hooks"), prompt="no")
    assert call_hook("ping", {"who": "me"}) == ["pong me"]
    unload_plugins()
    assert call_hook("ping", {"who": "me"}) == []


# -- unloading ------------------------------------------------------------------------------------

EVERYTHING = """
    import bakthat.models
    from bakthat import backends
    from bakthat.plugin import Plugin

    class MyBackups(bakthat.models.Backups):
        pass

    class Store(backends.get_backend_class("local")):
        pass

    class Everything(Plugin):
        def activate(self):
            self.on_backup += self.seen
            self.before_restore += self.before
            self.patch(bakthat.models, "Backups", MyBackups)
            self.patch(backends.registry, "everything_store", Store)
            self.register_command("everything", self.run)
            self.register_hook("everything", self.run)
            self.register_file_filter(self.skip, name="everything")

        def seen(self, session_id, backup):
            pass

        def before(self, session_id):
            pass

        def run(self, params):
            return 0

        def skip(self, path, info):
            return False
"""


def test_unloading_undoes_every_registration_and_starts_a_fresh_manager(plugins_dir):
    from bakthat import backends

    write(plugins_dir, "everything", EVERYTHING)
    original = models.Backups
    handlers = {name: list(getattr(eventing.events, name)) for name in eventing.EVENT_NAMES}
    (loaded,) = plugin.load_plugins(conf_for(plugins_dir, "everything.Everything"))
    before = plugin.manager()
    assert models.Backups is sys.modules["everything"].MyBackups
    assert loaded.seen in list(eventing.events.on_backup) and loaded.before in list(eventing.events.before_restore)
    assert set(plugin.commands()) == {"everything"} and call_hook("everything") == [0]
    assert "everything" in file_filters.REGISTRY and "everything_store" in backends.registry
    assert str(plugins_dir) in sys.path
    unload_plugins()
    assert models.Backups is original
    assert {name: list(getattr(eventing.events, name)) for name in eventing.EVENT_NAMES} == handlers
    assert plugin.commands() == {} and call_hook("everything") == []
    assert "everything" not in file_filters.REGISTRY and "everything_store" not in backends.registry
    assert str(plugins_dir) not in sys.path and "everything" not in sys.modules
    assert plugin.manager() is not before and plugin.loaded_plugins() == [] and plugin.failures() == {}


def test_after_unloading_the_same_plugin_loads_and_registers_again(plugins_dir):
    write(plugins_dir, "everything", EVERYTHING)
    conf = conf_for(plugins_dir, "everything.Everything")
    plugin.load_plugins(conf)
    unload_plugins()
    (again,) = plugin.load_plugins(conf)  # no "already declared" left over from the first load
    assert plugin.commands()["everything"].plugin is again


def test_a_deactivate_that_raises_is_logged_and_the_other_plugins_are_still_deactivated(plugins_dir, caplog):
    write(plugins_dir, "closing", """
        from bakthat.plugin import Plugin
        closed = []
        class Careful(Plugin):
            def activate(self):
                pass
            def deactivate(self):
                closed.append("Careful")
        class Clumsy(Plugin):
            def activate(self):
                self.on_backup += self.seen
            def seen(self, session_id, backup):
                pass
            def deactivate(self):
                raise OSError("socket already closed")
    """)
    plugin.load_plugins(conf_for(plugins_dir, "closing.Careful", "closing.Clumsy"))
    closed = sys.modules["closing"].closed
    with caplog.at_level(logging.WARNING, logger="bakthat.plugins"):
        unload_plugins()
    assert closed == ["Careful"]
    assert "closing.Clumsy: deactivate() raised OSError: socket already closed" in caplog.text
    assert len(eventing.events.on_backup) == 0  # its subscription undone all the same


def test_a_plugin_whose_init_skipped_the_base_class_still_gets_a_record():
    class Bare(Plugin):
        def __init__(self):  # no super().__init__()
            pass

        def activate(self):
            self.on_backup += self.seen

        def seen(self, session_id, backup):
            pass

    bare = Bare()
    record = record_of(bare)
    assert record.spec == "Bare" and record_of(bare) is record
    bare.activate()
    assert record.subscriptions == [("on_backup", bare.seen)]
    plugin._undo(bare)
    assert len(eventing.events.on_backup) == 0 and record.subscriptions == []


def test_the_command_running_is_recorded_for_plugins_and_forgotten_on_unload():
    assert plugin.cli_command() is None
    plugin.set_cli_command("backup")
    assert plugin.cli_command() == "backup"
    unload_plugins()
    assert plugin.cli_command() is None


def test_an_action_after_unloading_uses_the_original_model(plugins_dir, data):
    write(plugins_dir, "everything", EVERYTHING)
    conf = conf_for(plugins_dir, "everything.Everything")
    assert type(bakthat.backup(str(data), conf=conf, prompt="no")).__name__ == "MyBackups"
    unload_plugins()
    assert type(bakthat.backup(str(data), conf={}, prompt="no")) is models.Backups
