"""bakthat/plugin_base.py: the Plugin class: events on ``self``, patching (recorded and
undone), and the registrations checked when they are made (hooks, file filters)."""

from __future__ import annotations

import sys
import types

import pytest

import bakthat
from bakthat import eventing, file_filters, plugin
from bakthat.plugin import Plugin, PluginError, unload_plugins
from tests.plugin_files import catalog_tables, conf_for, data, plugins_dir, tables, write  # noqa: F401 - fixtures

# -- the class and events on self ------------------------------------------------------------------


def test_activate_is_required_and_deactivate_is_optional():
    class NoActivate(Plugin):
        pass

    with pytest.raises(TypeError, match="activate"):
        NoActivate({})

    class Minimal(Plugin):
        def activate(self):
            pass

    minimal = Minimal({"a": 1})
    minimal.activate()
    minimal.deactivate()
    assert repr(minimal) == "<Plugin bakthat: Minimal>"


def test_conf_log_events_and_settings_are_on_self():
    class Probe(Plugin):
        def activate(self):
            pass

    probe = Probe({"plugins": ["x.Probe"], "extra": {"k": "v"}})
    assert probe.conf == {"plugins": ["x.Probe"], "extra": {"k": "v"}}
    assert probe.log.name == "bakthat.plugins.Probe"
    assert probe.log.name.startswith("bakthat.")  # so it goes where bakthat's messages go
    assert probe.events is eventing.events
    for name in eventing.EVENT_NAMES:
        assert len(getattr(probe, name)) == 0


def test_an_event_on_self_subscribes_to_bakthat_events(data):
    seen = []

    class Probe(Plugin):
        def activate(self):
            self.on_backup += self.record

        def record(self, session_id, backup):
            seen.append(backup.filename)

    probe = Probe({})
    probe.activate()
    assert probe.record in list(eventing.events.on_backup)
    bakthat.backup(str(data), prompt="no")
    assert seen == ["mydir"]
    probe.on_backup -= probe.record
    assert probe.record not in list(eventing.events.on_backup)


def test_an_undeclared_event_is_an_attribute_error_naming_the_valid_ones():
    class Probe(Plugin):
        def activate(self):
            pass

    probe = Probe({})
    with pytest.raises(AttributeError) as raised:
        probe.on_bakup  # noqa: B018 - the typo is the test
    assert "on_bakup" in str(raised.value)
    for name in eventing.EVENT_NAMES:
        assert name in str(raised.value)
    assert not hasattr(probe, "after_backup")
    with pytest.raises(AttributeError, match="is an event"):
        probe.on_backup = print


def test_a_handler_with_the_wrong_signature_is_refused_when_subscribed():
    class Probe(Plugin):
        def activate(self):
            self.on_backup += lambda session_id: None  # on_ handlers take (session_id, result)

    with pytest.raises(TypeError, match="on_backup"):
        Probe({}).activate()


# -- patching -------------------------------------------------------------------------------------------




def test_a_model_patched_before_the_catalog_is_created_uses_the_original_table(home, data, plugins_dir):
    write(plugins_dir, "own", """
        import bakthat.models
        from bakthat.plugin import Plugin
        class Other(bakthat.models.Backups):
            def describe(self):
                return "other " + self.filename
        class Own(Plugin):
            def activate(self):
                original = bakthat.models.Backups
                assert self.patch("bakthat.models", "Backups", Other) is original
    """)
    row = bakthat.backup(str(data), conf=conf_for(plugins_dir, "own.Own"), prompt="no")
    assert row.describe() == "other mydir"
    assert set(tables(home)) == catalog_tables()


def test_a_backend_class_replaced_in_the_registry_is_used_and_restored(plugins_dir, data):
    from bakthat import backends

    backends.get_backend_class("local")
    original = backends.registry["local"]
    write(plugins_dir, "spy", """
        from bakthat import backends
        from bakthat.plugin import Plugin
        stored = []
        class Spy(Plugin):
            def activate(self):
                base = backends.get_backend_class("local")
                class SpyBackend(base):
                    def put(self, key, data):
                        stored.append(key)
                        return super().put(key, data)
                self.patch(backends.registry, "local", SpyBackend)
    """)
    row = bakthat.backup(str(data), conf=conf_for(plugins_dir, "spy.Spy"), prompt="no")
    # put() carries the small objects beside the archive: its file index, then its manifest
    assert sys.modules["spy"].stored == [row.stored_filename + ".index.jsonl.zst", row.stored_filename + ".manifest.json"]
    unload_plugins()
    assert backends.registry["local"] is original


def test_a_patch_of_a_missing_key_is_removed_on_unload():
    registry: dict = {}

    class Adder(Plugin):
        def activate(self):
            assert self.patch(registry, "new", 1) is None

    adder = Adder({})
    adder.activate()
    assert registry == {"new": 1}
    plugin._undo(adder)
    assert registry == {}


def test_a_patch_of_an_attribute_the_object_lacked_is_deleted_on_undo_and_others_restored():
    target = types.SimpleNamespace(kept="original")

    class Patcher(Plugin):
        def activate(self):
            assert self.patch(target, "added", 1) is None
            assert self.patch(target, "kept", "patched") == "original"
            assert self.patch(target, "kept", "patched twice") == "patched"

    patcher = Patcher({})
    patcher.activate()
    assert (target.added, target.kept) == (1, "patched twice")
    plugin._undo(patcher)
    assert vars(target) == {"kept": "original"}


# -- registrations checked when they are made --------------------------------------------------------


class Registrar(Plugin):
    """A plugin created directly, named like a profile's entry, to register things by hand."""

    def __init__(self) -> None:
        super().__init__({})
        self._bakthat_record.spec = "mine.Registrar"

    def activate(self):
        pass


@pytest.mark.parametrize(
    "name, func, item",
    [
        ("", lambda params: None, "hook name must be a non-empty string"),
        (None, lambda params: None, "hook name must be a non-empty string, not None"),
        ("check", "not callable", "hook 'check': 'not callable' is not callable"),
        ("check", lambda: None, "hook 'check': <lambda>() cannot be called with the parameter dict"),
        ("check", lambda params, extra: None, "hook 'check': <lambda>(params, extra) cannot be called"),
    ],
)
def test_a_bad_hook_is_refused_when_registered_naming_the_plugin_and_the_hook(name, func, item):
    registrar = Registrar()
    with pytest.raises(PluginError) as raised:
        registrar.register_hook(name, func)
    assert raised.value.plugin == "mine.Registrar"
    assert str(raised.value).startswith("plugin 'mine.Registrar': ") and item in str(raised.value)
    assert plugin.manager().hooks == {}


def test_a_hook_taking_the_parameter_dict_is_accepted_in_every_form():
    registrar = Registrar()

    def optional_extra(params, extra=None):
        return "optional"

    registrar.register_hook("h", lambda *args: "varargs")
    registrar.register_hook("h", optional_extra)
    registrar.register_hook("h", dict)  # a class without a readable signature is accepted
    assert registrar.call_hook("h", {"a": 1}) == ["varargs", "optional", {"a": 1}]
    plugin._undo(registrar)


def test_a_file_filter_is_refused_when_not_callable_or_already_registered():
    registrar = Registrar()
    with pytest.raises(PluginError, match="^plugin 'mine.Registrar': file filter 'nope' is not callable"):
        registrar.register_file_filter("nope")
    registrar.register_file_filter(lambda path, info: False, name="mine")
    with pytest.raises(PluginError, match="a file filter named 'mine' is already registered") as raised:
        Registrar().register_file_filter(lambda path, info: True, name="mine")
    assert raised.value.plugin == "mine.Registrar"
    plugin._undo(registrar)
    assert "mine" not in file_filters.REGISTRY


def test_a_file_filter_is_named_after_its_plugin_and_function_by_default():
    registrar = Registrar()

    def skip_caches(path, info):
        return False

    registrar.register_file_filter(skip_caches)
    assert file_filters.REGISTRY["Registrar.skip_caches"] is skip_caches
    plugin._undo(registrar)
    assert "Registrar.skip_caches" not in file_filters.REGISTRY
