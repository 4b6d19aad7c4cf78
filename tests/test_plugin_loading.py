"""bakthat/plugin_loading.py: finding plugins (plugins_dir, the import path, installed entry
points), creating and activating them in order, failures named and never skipped, and
what a plugin changed while activating recorded so that unloading undoes it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import bakthat
from bakthat import eventing, models, plugin, plugin_loading
from bakthat.errors import ConfigError, VetoedError
from bakthat.plugin import PluginError, call_hook, unload_plugins
from tests.conftest import run_cli
from tests.plugin_files import RECORDER, conf_for, data, plugins_dir, write  # noqa: F401 - fixtures

# -- loading in order, once ---------------------------------------------------------------------


def test_plugins_load_in_list_order_once_per_process_and_deactivate_in_reverse(plugins_dir, data):
    write(plugins_dir, "recorder", RECORDER)
    conf = conf_for(plugins_dir, "recorder.Second", "recorder.First")
    first = bakthat.backup(str(data), conf=conf, prompt="no")
    bakthat.backup(str(data), conf=conf, prompt="no")
    calls = sys.modules["recorder"].calls
    assert calls[:2] == [("activate", "Second"), ("activate", "First")]
    assert [c[0] for c in calls].count("activate") == 2
    # the first action's before_backup reached the plugins loaded during that action
    assert calls[2] == ("before_backup", first.session_id)
    assert calls.count(("on_backup", first.session_id, "mydir")) == 2
    assert [type(p).__name__ for p in plugin.loaded_plugins()] == ["Second", "First"]
    unload_plugins()
    assert calls[-2:] == [("deactivate", "First"), ("deactivate", "Second")]
    assert plugin.loaded_plugins() == []
    assert str(plugins_dir) not in sys.path and "recorder" not in sys.modules


def test_a_later_profile_adds_its_plugins_without_reloading_the_first(plugins_dir, data):
    write(plugins_dir, "recorder", RECORDER)
    bakthat.backup(str(data), conf=conf_for(plugins_dir, "recorder.First"), prompt="no")
    bakthat.backup(str(data), conf=conf_for(plugins_dir, "recorder.First", "recorder.Second"), prompt="no")
    activations = [c for c in sys.modules["recorder"].calls if c[0] == "activate"]
    assert activations == [("activate", "First"), ("activate", "Second")]


def test_conf_is_the_raw_profile_and_settings_the_resolved_one(plugins_dir, data, monkeypatch):
    write(plugins_dir, "probe", """
        from bakthat.plugin import Plugin
        seen = {}
        class Probe(Plugin):
            def activate(self):
                seen["conf"] = self.conf
                seen["settings"] = self.settings
                self.log.info("hello from %s", type(self).__name__)
    """)
    monkeypatch.setenv("BAKTHAT_COMPRESSION", "gzip")
    conf = conf_for(plugins_dir, "probe.Probe", extra={"mine": 1})
    bakthat.backup(str(data), conf=conf, prompt="no")
    seen = sys.modules["probe"].seen
    assert seen["conf"] == conf
    assert seen["settings"]["compression"] == "gzip" and seen["settings"]["extra"] == {"mine": 1}


def test_deactivate_runs_at_exit_in_reverse_order(plugins_dir, home, data, tmp_path):
    marker = tmp_path / "order.txt"
    write(plugins_dir, "atexit_plugin", f"""
        from bakthat.plugin import Plugin
        class A(Plugin):
            def activate(self):
                pass
            def deactivate(self):
                with open({str(marker)!r}, "a") as f:
                    f.write(type(self).__name__ + "\\n")
        class B(A):
            pass
    """)
    (home / ".bakthat.yml").write_text(f"default:\n  plugins_dir: {plugins_dir}\n  plugins: [atexit_plugin.A, atexit_plugin.B]\n")
    result = run_cli("backup", str(data), "--prompt", "no")
    assert result.returncode == 0, result.stderr
    assert marker.read_text() == "B\nA\n"


BROKEN = {
    "missing.Plugin": (None, "no module named 'missing'"),
    "syntax_error.Broken": ("class Broken(:\n", "importing syntax_error failed: SyntaxError"),
    "import_error.Broken": ("import not_installed_anywhere\n", "importing import_error failed: ModuleNotFoundError"),
    "not_a_plugin.Thing": ("class Thing:\n    def activate(self):\n        pass\n", "is not a subclass of bakthat.plugin.Plugin"),
    "no_class.Nope": ("x = 1\n", "module no_class has no 'Nope'"),
    "no_activate.Lazy": (
        "from bakthat.plugin import Plugin\nclass Lazy(Plugin):\n    pass\n", "does not implement activate() (required)"
    ),
    "raises.Angry": (
        "from bakthat.plugin import Plugin\nclass Angry(Plugin):\n    def activate(self):\n"
        "        raise RuntimeError('no database')\n",
        "activate() raised RuntimeError: no database",
    ),
    "not_installed_entry_point": (None, "no installed package declares it (entry points of group bakthat.plugins"),
}


@pytest.mark.parametrize("spec", sorted(BROKEN))
def test_a_broken_plugin_is_a_named_error_from_the_api(spec, plugins_dir, data):
    source, reason = BROKEN[spec]
    if source is not None:
        (plugins_dir / f"{spec.split('.')[0]}.py").write_text(source)
    with pytest.raises(PluginError) as raised:
        bakthat.backup(str(data), conf=conf_for(plugins_dir, spec), prompt="no")
    assert raised.value.plugin == spec
    assert str(raised.value).startswith(f"plugin {spec!r}: ")
    assert reason in str(raised.value)
    assert isinstance(raised.value, ConfigError) and raised.value.exit_code == 2
    assert bakthat.search(conf=conf_for(plugins_dir)) == []  # nothing stored
    assert plugin.failures() == {spec: raised.value.reason}
    with pytest.raises(PluginError):  # not skipped the second time either
        bakthat.backup(str(data), conf=conf_for(plugins_dir, spec), prompt="no")


def test_a_failing_activate_leaves_nothing_behind(plugins_dir, data):
    write(plugins_dir, "half", """
        import bakthat.models
        from bakthat.plugin import Plugin, Param
        class MyBackups(bakthat.models.Backups):
            pass
        class Half(Plugin):
            def activate(self):
                self.on_backup += self.noop
                self.patch(bakthat.models, "Backups", MyBackups)
                self.register_command("half", self.noop2)
                self.register_hook("half", self.noop2)
                raise ValueError("half-way")
            def noop(self, session_id, backup):
                pass
            def noop2(self, params):
                pass
    """)
    original = models.Backups
    with pytest.raises(PluginError, match="half-way"):
        bakthat.backup(str(data), conf=conf_for(plugins_dir, "half.Half"), prompt="no")
    assert models.Backups is original
    assert len(eventing.events.on_backup) == 0
    assert plugin.commands() == {} and call_hook("half") == []


def test_plugins_before_the_broken_one_stay_active(plugins_dir, data):
    write(plugins_dir, "recorder", RECORDER)
    with pytest.raises(PluginError, match="missing"):
        bakthat.backup(str(data), conf=conf_for(plugins_dir, "recorder.First", "missing.X"), prompt="no")
    assert [type(p).__name__ for p in plugin.loaded_plugins()] == ["First"]


def test_a_plugin_loaded_by_the_first_action_can_veto_it(plugins_dir, data):
    write(plugins_dir, "veto", """
        from bakthat.plugin import Plugin
        failures = []
        class Veto(Plugin):
            def activate(self):
                self.before_backup += self.refuse
                self.on_failure += lambda session_id, action, exc: failures.append(action)
            def refuse(self, session_id):
                raise RuntimeError("not on Sundays")
    """)
    with pytest.raises(VetoedError, match="not on Sundays"):
        bakthat.backup(str(data), conf=conf_for(plugins_dir, "veto.Veto"), prompt="no")
    assert bakthat.search(conf=conf_for(plugins_dir)) == []
    assert sys.modules["veto"].failures == ["backup"]


def test_the_first_action_reaches_handlers_subscribed_on_bakthat_events_too(plugins_dir, data):
    write(plugins_dir, "direct", """
        import bakthat
        from bakthat.plugin import Plugin
        seen = []
        class Direct(Plugin):
            def __init__(self, conf):  # 0.6 style, without super().__init__
                self.mine = conf
            def activate(self):
                bakthat.events.before_restore += seen.append
                self.before_backup += seen.append
    """)
    row = bakthat.backup(str(data), conf=conf_for(plugins_dir, "direct.Direct"), prompt="no")
    assert sys.modules["direct"].seen == [row.session_id]
    (direct,) = plugin.loaded_plugins()
    assert direct.conf == direct.mine and direct.log.name == "bakthat.plugins.Direct"
    unload_plugins()
    write(plugins_dir, "direct2", """
        import bakthat
        from bakthat.plugin import Plugin
        seen = []
        class Direct(Plugin):
            def activate(self):
                bakthat.events.before_restore += seen.append
    """)
    sessions = []
    bakthat.events.on_restore += lambda session_id, restored: sessions.append(session_id)
    bakthat.restore("mydir", conf=conf_for(plugins_dir, "direct2.Direct"), target="out")
    assert sys.modules["direct2"].seen == sessions and len(sessions) == 1


def test_loading_again_is_cheap_when_everything_is_active(plugins_dir, data, monkeypatch):
    write(plugins_dir, "recorder", RECORDER)
    conf = conf_for(plugins_dir, "recorder.First")
    bakthat.backup(str(data), conf=conf, prompt="no")
    monkeypatch.setattr(plugin_loading, "_add_plugins_dir", lambda directory: pytest.fail("nothing to load"))
    bakthat.backup(str(data), conf=conf, prompt="no")


def test_a_plugin_is_named_by_module_colon_class_too(plugins_dir):
    write(plugins_dir, "recorder", RECORDER)
    (loaded,) = plugin.load_plugins(conf_for(plugins_dir, "recorder:First"))
    assert type(loaded).__name__ == "First"
    assert plugin.record_of(loaded).origin == f"plugins_dir file {plugins_dir / 'recorder.py'}"


def test_a_plugins_list_written_as_one_string_is_split_on_commas_and_spaces(plugins_dir):
    write(plugins_dir, "recorder", RECORDER)
    loaded = plugin.load_plugins({"plugins_dir": str(plugins_dir), "plugins": "recorder.Second, recorder.First"})
    assert [type(p).__name__ for p in loaded] == ["Second", "First"]


def test_a_plugins_dir_that_does_not_exist_is_named_in_the_error(tmp_path):
    missing = tmp_path / "no-such-dir"
    with pytest.raises(PluginError) as raised:
        plugin.load_plugins(conf_for(missing, "mine.Mine"))
    assert raised.value.plugin == "mine.Mine"
    assert f"the directory of key 'plugins_dir', {missing}, does not exist" in str(raised.value)


def test_a_plugin_named_by_something_else_than_a_string_is_a_named_error():
    with pytest.raises(PluginError, match=r"^plugin '42': a plugin is named by a 'module.Class' path"):
        plugin.load_plugins({"plugins": [42]})


# -- a failing activate() -----------------------------------------------------------------------------


def test_a_handler_with_the_wrong_signature_stops_the_loading_naming_the_plugin_and_the_event(plugins_dir):
    write(plugins_dir, "wrong", """
        from bakthat.plugin import Plugin
        class Wrong(Plugin):
            def activate(self):
                self.before_backup += self.fine
                self.on_backup += self.too_few
            def fine(self, session_id):
                pass
            def too_few(self, session_id):
                pass
    """)
    with pytest.raises(PluginError) as raised:
        plugin.load_plugins(conf_for(plugins_dir, "wrong.Wrong"))
    assert raised.value.plugin == "wrong.Wrong"
    assert "activate() raised TypeError: 'Wrong.too_few' cannot handle on_backup" in str(raised.value)
    assert len(eventing.events.before_backup) == 0  # the handler accepted before it is unsubscribed
    assert plugin.loaded_plugins() == []


def test_ctrl_c_in_activate_is_not_turned_into_a_plugin_error_and_leaves_nothing_behind(plugins_dir):
    write(plugins_dir, "interrupted", """
        import bakthat.models
        from bakthat.plugin import Plugin
        class MyBackups(bakthat.models.Backups):
            pass
        class Interrupted(Plugin):
            def activate(self):
                self.on_backup += self.seen
                bakthat.models.Backups = MyBackups
                raise KeyboardInterrupt
            def seen(self, session_id, backup):
                pass
    """)
    original = models.Backups
    with pytest.raises(KeyboardInterrupt):
        plugin.load_plugins(conf_for(plugins_dir, "interrupted.Interrupted"))
    assert models.Backups is original
    assert len(eventing.events.on_backup) == 0 and plugin.loaded_plugins() == []


# -- models replaced in activate(): undone on unload ----------------------------------------------------

MODEL_FORMS = {
    # the developer guide's form: a global of the plugin's module rebinds the model's name
    "guide": """
        from bakthat.plugin import Plugin
        from bakthat.models import Backups
        class MyBackups(Backups):
            pass
        class Replacing(Plugin):
            def activate(self):
                global Backups
                Backups = MyBackups
    """,
    # the plain form: an assignment to the attribute of bakthat.models
    "plain": """
        import bakthat.models
        from bakthat.plugin import Plugin
        class MyBackups(bakthat.models.Backups):
            pass
        class Replacing(Plugin):
            def activate(self):
                bakthat.models.Backups = MyBackups
    """,
    "patch": """
        import bakthat.models
        from bakthat.plugin import Plugin
        class MyBackups(bakthat.models.Backups):
            pass
        class Replacing(Plugin):
            def activate(self):
                self.patch(bakthat.models, "Backups", MyBackups)
    """,
}


@pytest.mark.parametrize("form", sorted(MODEL_FORMS))
def test_a_model_replaced_in_activate_in_any_form_is_restored_on_unload(form, plugins_dir):
    write(plugins_dir, f"replacing_{form}", MODEL_FORMS[form])
    original = models.Backups
    plugin.load_plugins(conf_for(plugins_dir, f"replacing_{form}.Replacing"))
    assert models.Backups is sys.modules[f"replacing_{form}"].MyBackups
    assert models.models()[0] is models.Backups
    unload_plugins()
    assert models.Backups is original and models.models()[0] is original


def test_a_model_assigned_then_patched_by_one_plugin_is_restored_to_the_original(plugins_dir):
    write(plugins_dir, "both", """
        import bakthat.models
        from bakthat.plugin import Plugin
        class First(bakthat.models.Backups):
            pass
        class Second(bakthat.models.Backups):
            pass
        class Both(Plugin):
            def activate(self):
                bakthat.models.Backups = First
                self.patch(bakthat.models, "Backups", Second)
    """)
    original = models.Backups
    plugin.load_plugins(conf_for(plugins_dir, "both.Both"))
    assert models.Backups is sys.modules["both"].Second
    unload_plugins()
    assert models.Backups is original


# -- installed entry points --------------------------------------------------------------------------------


def install(site: Path, project: str, module: str, source: str, entry_points: str) -> None:
    """Install a distribution the way pip lays one out: a module and its dist-info."""
    write(site, module, source)
    info = site / f"{project.replace('-', '_')}-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project}\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text(f"[{plugin.ENTRY_POINT_GROUP}]\n{entry_points}\n")


@pytest.fixture
def site(tmp_path, monkeypatch) -> Path:
    """A directory on sys.path for this test only, as a site-packages; its modules are
    forgotten afterwards."""
    directory = tmp_path / "site"
    directory.mkdir()
    monkeypatch.syspath_prepend(str(directory))
    yield directory
    for name, module in list(sys.modules.items()):
        if (getattr(module, "__file__", None) or "").startswith(str(directory)):
            del sys.modules[name]


def test_a_plugin_of_an_installed_package_loads_by_its_entry_point_name(site, data):
    install(site, "bakthat-stamp", "stamp_plugin", """
        from bakthat.plugin import Plugin
        stamped = []
        class Stamp(Plugin):
            def activate(self):
                self.on_backup += lambda session_id, backup: stamped.append(backup.filename)
    """, "stamp = stamp_plugin:Stamp")
    assert "stamp" in [entry.name for entry in plugin.entry_points()]
    row = bakthat.backup(str(data), conf={"plugins": ["stamp"]}, prompt="no")
    assert sys.modules["stamp_plugin"].stamped == [row.filename]
    (loaded,) = plugin.loaded_plugins()
    assert plugin.record_of(loaded).origin == "entry point stamp = stamp_plugin:Stamp (package bakthat-stamp 1.2)"


def test_an_entry_point_that_fails_to_load_is_a_named_error(site):
    install(site, "bakthat-broken", "broken_plugin", "import not_installed_anywhere\n", "broken = broken_plugin:Broken")
    with pytest.raises(PluginError) as raised:
        plugin.load_plugins({"plugins": ["broken"]})
    assert raised.value.plugin == "broken"
    assert "loading entry point broken_plugin:Broken failed: ModuleNotFoundError" in str(raised.value)


def test_an_unknown_entry_point_name_lists_the_installed_ones(site):
    install(site, "bakthat-stamp", "stamp_plugin", "", "stamp = stamp_plugin:Stamp\nother = stamp_plugin:Other")
    with pytest.raises(PluginError) as raised:
        plugin.load_plugins({"plugins": ["stmap"]})
    assert "no installed package declares it (entry points of group bakthat.plugins: " in str(raised.value)
    assert "other, " in str(raised.value) and "stamp" in str(raised.value)  # sorted, with any others installed
