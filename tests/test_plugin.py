"""Plugins through the public ``bakthat.plugin`` surface, end to end: a broken plugin on the
command line, the example plugins (model replacement, heartbeat), plugin commands run by
``bakthat``, and the samples of docs/plugins.md.

What one module of the plugin machinery does is tested beside it: test_plugin_state.py
(manager, hooks, unloading), test_plugin_loading.py (finding, activating, failures),
test_plugin_base.py (events on self, patching, registrations), test_plugin_commands.py.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import sys

import pytest

import bakthat
from bakthat import models, plugin
from bakthat.plugin import unload_plugins
from tests.conftest import ROOT, cli_ok, run_cli
from tests.plugin_files import EXAMPLES, catalog_tables, conf_for, data, plugins_dir, tables, write  # noqa: F401
from tests.test_plugin_loading import BROKEN

# -- failures: named, never skipped, from the command line ----------------------------------


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

# -- monkey patching ------------------------------------------------------------------------------------

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

def test_a_plugin_assigning_a_subclass_to_bakthat_models_keeps_the_backups_table(home, data, plugins_dir):
    """``bakthat.models.Backups = MyBackups`` (plain assignment, the natural form) keeps every earlier backup."""
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
