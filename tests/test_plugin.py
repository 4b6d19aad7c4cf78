"""Plugins: the base class, loading, failures, patching, commands, hooks, the examples."""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
import textwrap
from pathlib import Path

import pytest

import bakthat
from bakthat import eventing, models, plugin, plugin_loading
from bakthat.errors import ConfigError, VetoedError
from bakthat.plugin import HookError, Param, Plugin, PluginError, call_hook, unload_plugins
from tests.conftest import ROOT, cli_ok, run_cli

EXAMPLES = ROOT / "plugins_example"


@pytest.fixture(autouse=True)
def unloaded():
    """Every test starts and ends with no plugin loaded (nothing leaks to the next test)."""
    unload_plugins()
    yield
    unload_plugins()


@pytest.fixture
def plugins_dir(tmp_path) -> Path:
    directory = tmp_path / "plugins"
    directory.mkdir()
    return directory


def write(directory: Path, module: str, source: str) -> None:
    (directory / f"{module}.py").write_text(textwrap.dedent(source))


def conf_for(directory: Path, *names: str, **extra) -> dict:
    return {"plugins_dir": str(directory), "plugins": list(names), **extra}


@pytest.fixture
def data(tmp_path) -> Path:
    root = tmp_path / "data" / "mydir"
    root.mkdir(parents=True)
    (root / "file.txt").write_text("hello\n")
    return root


RECORDER = """
    from bakthat.plugin import Plugin

    calls = []

    class First(Plugin):
        def activate(self):
            calls.append(("activate", type(self).__name__))
            self.before_backup += self.before
            self.on_backup += self.after

        def before(self, session_id):
            calls.append(("before_backup", session_id))

        def after(self, session_id, backup):
            calls.append(("on_backup", session_id, backup.filename))

        def deactivate(self):
            calls.append(("deactivate", type(self).__name__))

    class Second(First):
        pass
"""


# -- the base class ------------------------------------------------------------------------


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


# -- loading ---------------------------------------------------------------------------------


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


# -- failures: named, never skipped ----------------------------------------------------------------


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


@pytest.mark.parametrize("spec", sorted(BROKEN))
def test_a_broken_plugin_exits_2_from_the_command_line(spec, plugins_dir, home, data):
    source, reason = BROKEN[spec]
    if source is not None:
        (plugins_dir / f"{spec.split('.')[0]}.py").write_text(source)
    (home / ".bakthat.yml").write_text(f"default:\n  plugins_dir: {plugins_dir}\n  plugins: [{spec}]\n")
    result = run_cli("backup", str(data), "--prompt", "no")
    assert result.returncode == 2
    assert f"bakthat: error: plugin {spec!r}: " in result.stderr and reason in result.stderr
    assert "Traceback" not in result.stderr
    assert run_cli("show", "--json").returncode == 2


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


# -- before_ handlers of plugins loaded by the first action -----------------------------------------


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


# -- monkey patching ------------------------------------------------------------------------------------


def catalog_tables() -> set[str]:
    """The catalog's tables: ``backups`` and those of the other models (which the plugins
    here leave alone), whatever table a replaced Backups class would have made."""
    from bakthat import models

    return {"backups", *(model._meta.table_name for model in models.models()[1:])}


def tables(home: Path) -> dict[str, int]:
    connection = sqlite3.connect(home / ".bakthat.sqlite")
    try:
        names = [row[0] for row in connection.execute("select name from sqlite_master where type='table'")]
        return {name: connection.execute(f"select count(*) from {name}").fetchone()[0] for name in names}
    finally:
        connection.close()


@pytest.mark.parametrize("name", ["ChangeModelPlugin", "PatchModelPlugin"])
def test_replacing_the_backups_model_changes_what_actions_use(name, home, data, caplog):
    original = models.Backups
    conf = conf_for(EXAMPLES, f"change_model_plugin.{name}")
    with caplog.at_level(logging.INFO, logger="bakthat"):
        row = bakthat.backup(str(data), conf=conf, prompt="no")
    MyBackups = sys.modules["change_model_plugin"].MyBackups
    assert type(row) is MyBackups and MyBackups.my_custom_method() is True
    assert models.Backups is MyBackups and models.models()[0] is MyBackups
    assert MyBackups._meta.table_name == "backups"
    assert tables(home)["backups"] == 1 and "mybackups" not in tables(home)
    assert all(type(found) is MyBackups for found in bakthat.search(conf=conf))
    assert type(bakthat.restore("mydir", conf=conf, target="out")) is MyBackups
    assert [type(r) for r in bakthat.rotate_backups("mydir", conf={**conf, "rotation": {"days": 1}})] == []
    assert type(bakthat.delete("mydir", conf=conf)) is MyBackups
    if name == "ChangeModelPlugin":
        assert "Replace Backups" in caplog.text
        assert "bakthat.models.Backups is now MyBackups" in caplog.text
    unload_plugins()
    assert models.Backups is original and models.models()[0] is original


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


# -- commands ---------------------------------------------------------------------------------------------

COMMANDS = """
    from bakthat.plugin import Plugin, Param
    ran = []
    class Commands(Plugin):
        def activate(self):
            self.register_command(
                "greet",
                self.greet,
                params=[Param("target", help="who to greet"), Param("times", type=int, required=False, default=1),
                        Param("loud", flag=True, help="shout")],
                help="say hello",
            )
        def greet(self, params):
            ran.append(params)
            text = ("hello " + params["target"]) * params["times"]
            print(text.upper() if params["loud"] else text)
            return 3 if params["target"] == "nobody" else None
"""


@pytest.fixture
def with_commands(plugins_dir, home):
    write(plugins_dir, "commands_plugin", COMMANDS)
    (home / ".bakthat.yml").write_text(f"default:\n  plugins_dir: {plugins_dir}\n  plugins: [commands_plugin.Commands]\n")
    return plugins_dir


def test_a_plugin_command_is_in_the_help_and_runs(with_commands, capsys):
    from bakthat.cli import main

    assert main(["greet", "--target", "world", "--times", "2"]) == 0
    assert capsys.readouterr().out == "hello worldhello world\n"
    ran = sys.modules["commands_plugin"].ran
    assert ran == [{"target": "world", "times": 2, "loud": False, "profile": "default", "config": None, "destination": None}]
    assert main(["greet", "--target", "nobody"]) == 3
    with pytest.raises(SystemExit) as helped:
        main(["--help"])
    assert helped.value.code == 0
    assert "greet" in capsys.readouterr().out


def test_a_missing_parameter_is_a_usage_error_and_nothing_runs(with_commands, capsys):
    from bakthat.cli import main

    with pytest.raises(SystemExit) as raised:
        main(["greet", "--times", "2"])
    assert raised.value.code == 2
    assert "--target" in capsys.readouterr().err
    assert sys.modules["commands_plugin"].ran == []


def test_plugin_commands_from_a_subprocess(with_commands):
    assert "say hello [plugin commands_plugin.Commands]" in " ".join(cli_ok("--help").stdout.split())
    result = run_cli("greet", "--target", "you", "--loud")
    assert result.returncode == 0 and result.stdout == "HELLO YOU\n", result.stderr
    missing = run_cli("greet")
    assert missing.returncode == 2 and "the following arguments are required: --target" in missing.stderr
    assert missing.stdout == ""


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


# -- hooks --------------------------------------------------------------------------------------------------


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


# -- Param ------------------------------------------------------------------------------------------------------


def test_param_defaults_make_a_required_option():
    param = Param("target")
    assert (param.required, param.positional, param.flag, param.type) == (True, False, False, str)


# -- the heartbeat example plugin -------------------------------------------------------------------------------

from tests.heartbeat_server import monitor, url  # noqa: E402,F401 - the HTTP recorder fixture


def heartbeat_conf(server, path="/ping/uuid") -> dict:
    return {"plugins_dir": str(EXAMPLES), "plugins": ["heartbeat_plugin.HeartbeatPlugin"], "heartbeat_url": url(server, path)}


def test_the_heartbeat_plugin_pings_on_success_and_on_failure(monitor, data, tmp_path):
    conf = heartbeat_conf(monitor)
    bakthat.backup(str(data), conf=conf, prompt="no")
    assert monitor.paths == ["/ping/uuid"]
    with pytest.raises(bakthat.BakthatError):
        bakthat.backup(str(tmp_path / "missing"), conf=conf, prompt="no")
    assert monitor.paths == ["/ping/uuid", "/ping/uuid/fail"]
    with pytest.raises(bakthat.BakthatError):
        bakthat.restore("nothing-by-that-name", conf=conf)
    assert len(monitor.paths) == 2  # only backups are reported
    (active,) = plugin.loaded_plugins()
    assert active.pings == [("success", True), ("fail", True)]


def test_the_heartbeat_plugin_sends_no_ping_for_a_dry_run(monitor, data):
    conf = heartbeat_conf(monitor)
    bakthat.backup(str(data), conf=conf, prompt="no", dry_run=True)
    assert monitor.paths == []
    bakthat.backup(str(data), conf=conf, prompt="no")
    assert monitor.paths == ["/ping/uuid"]


def test_the_heartbeat_plugin_fills_the_key(monitor, data):
    conf = heartbeat_conf(monitor, "/ping/{key}/{status}")
    bakthat.backup(str(data), conf=conf, prompt="no", key="nightly db")
    bakthat.backup(str(data), conf=conf, prompt="no")  # no key: no ping due
    assert monitor.paths == ["/ping/nightly%20db/success"]


def test_the_heartbeat_plugin_does_not_ping_twice_under_bakthat_backup(monitor, data, home):
    (home / ".bakthat.yml").write_text(
        f"default:\n  plugins_dir: {EXAMPLES}\n  plugins: [heartbeat_plugin.HeartbeatPlugin]\n"
        f"  heartbeat_url: '{url(monitor)}'\n"
    )
    result = run_cli("backup", str(data), "--prompt", "no")
    assert result.returncode == 0, result.stderr
    assert monitor.paths == ["/ping/s3cr3t-uuid"]
    failed = run_cli("backup", str(data.parent / "missing"), "--prompt", "no")
    assert failed.returncode == 2
    assert monitor.paths == ["/ping/s3cr3t-uuid", "/ping/s3cr3t-uuid/fail"]


def test_the_heartbeat_plugin_pings_for_a_backup_made_by_a_plugin_command(monitor, data, home, plugins_dir):
    write(plugins_dir, "nightly", f"""
        import bakthat
        from bakthat.plugin import Plugin
        class Nightly(Plugin):
            def activate(self):
                self.register_command("nightly", self.run)
            def run(self, params):
                bakthat.backup({str(data)!r}, prompt="no", profile=params["profile"], config=params["config"])
    """)
    (home / ".bakthat.yml").write_text(
        f"default:\n  plugins_dir: {EXAMPLES}\n  plugins: [heartbeat_plugin.HeartbeatPlugin, nightly.Nightly]\n"
        f"  heartbeat_url: '{url(monitor)}'\n"
    )
    # nightly.py is in another directory: put it beside the examples through PYTHONPATH
    result = run_cli("nightly", env={"PYTHONPATH": f"{ROOT}:{plugins_dir}"})
    assert result.returncode == 0, result.stderr
    assert monitor.paths == ["/ping/s3cr3t-uuid"]


def test_the_heartbeat_plugin_without_a_url_warns_and_stays_quiet(data, caplog):
    with caplog.at_level(logging.WARNING, logger="bakthat"):
        bakthat.backup(str(data), conf={"plugins_dir": str(EXAMPLES), "plugins": ["heartbeat_plugin.HeartbeatPlugin"]}, prompt="no")
    assert "heartbeat_url is not set" in caplog.text


# -- the samples of docs/plugins.md ------------------------------------------------------------------------------


def doc_blocks(language: str = "python") -> list[str]:
    import re

    text = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def doc_block(marker: str) -> str:
    (found,) = [block for block in doc_blocks() if marker in block]
    return found


def test_every_python_sample_of_the_plugin_guide_compiles():
    blocks = doc_blocks()
    assert len(blocks) >= 10
    for block in blocks:
        compile(block, "docs/plugins.md", "exec")


def test_the_commands_sample_of_the_plugin_guide(plugins_dir, home, tmp_path):
    (plugins_dir / "snapshots.py").write_text(doc_block("class Snapshots(Plugin)"))
    (home / ".bakthat.yml").write_text(f"default:\n  plugins_dir: {plugins_dir}\n  plugins: [snapshots.Snapshots]\n")
    volume = tmp_path / "srv"
    volume.mkdir()
    (volume / "f").write_text("x")
    assert "snapshot a volume and back it up [plugin snapshots.Snapshots]" in " ".join(cli_ok("--help").stdout.split())
    dry = run_cli("snapshot", "--volume", str(volume), "--keep", "3", "--dry-run")
    assert dry.returncode == 0 and dry.stdout == f"would back up {volume}\n", dry.stderr
    real = run_cli("snapshot", "--volume", str(volume))
    assert real.returncode == 0, real.stderr
    assert bakthat.search("srv")[0].filename == "srv"
    missing = run_cli("snapshot")
    assert missing.returncode == 2 and "the following arguments are required: --volume" in missing.stderr


def test_the_monkey_patching_sample_of_the_plugin_guide(plugins_dir, data, capsys):
    (plugins_dir / "change_things.py").write_text(doc_block("class ChangeThings(Plugin)"))
    row = bakthat.backup(str(data), conf=conf_for(plugins_dir, "change_things.ChangeThings"), prompt="no")
    assert type(row).my_custom_method() is True and row.describe() == f"mydir ({row.size} bytes)"
    assert capsys.readouterr().out == f"writing {row.stored_filename}.index.jsonl.zst\nwriting {row.stored_filename}.manifest.json\n"


def test_the_hooks_sample_of_the_plugin_guide(plugins_dir, data, caplog):
    (plugins_dir / "hook_sample.py").write_text("from bakthat.plugin import Plugin\n\n" + doc_block("LIST_DATABASES"))
    with caplog.at_level(logging.INFO, logger="bakthat"):
        bakthat.backup(str(data), conf=conf_for(plugins_dir, "hook_sample.Databases", "hook_sample.Dumper"), prompt="no")
    assert "databases: ['app', 'billing']" in caplog.text


def test_the_testing_sample_of_the_plugin_guide_passes_with_the_kit_alone(tmp_path):
    import os
    import subprocess

    from tests.testing.test_pytest_plugin import installed_entry_point

    installed_entry_point()
    (tmp_path / "bakthat_audit.py").write_text(doc_block("class Audit(Plugin)"))
    (tmp_path / "test_bakthat_audit.py").write_text(doc_block("def test_a_freeze_vetoes"))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_bakthat_audit.py"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={name: value for name, value in os.environ.items() if not name.startswith("PYTEST_")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


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


def test_a_plugin_assigning_a_subclass_to_bakthat_models_keeps_the_backups_table(home, data, plugins_dir):
    """``bakthat.models.Backups = MyBackups`` (plain assignment, the natural form) keeps every earlier backup."""
    from tests.conftest import run_cli

    assert run_cli("backup", str(data), "--prompt", "no").returncode == 0
    write(plugins_dir, "assigning", """
        import bakthat.models
        from bakthat.plugin import Plugin
        class MyBackups(bakthat.models.Backups):
            def label(self):
                return "mine: " + self.filename
        class Assigning(Plugin):
            def activate(self):
                bakthat.models.Backups = MyBackups
    """)
    (home / ".bakthat.yml").write_text(f"default:\n  plugins_dir: {plugins_dir}\n  plugins: [assigning.Assigning]\n")
    assert run_cli("backup", str(data), "--prompt", "no", "-t", "second").returncode == 0
    shown = run_cli("show", "--json")
    assert shown.returncode == 0, shown.stderr
    assert [row["tags"] for row in json.loads(shown.stdout)] == ["second", ""]
    assert set(tables(home)) == catalog_tables() and tables(home)["backups"] == 2
    connection = sqlite3.connect(home / ".bakthat.sqlite")
    try:
        assert connection.execute("select count(*) from backups where filename = 'mydir'").fetchone() == (2,)
    finally:
        connection.close()
