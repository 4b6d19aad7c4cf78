"""``bakthat plugins`` (what can be enabled, from where, and with which status), and a plugin
installed as a separate package through an entry point (real processes: a PYTHONPATH of its own)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli_ok, make_tree, run_cli

EXAMPLES = ROOT / "plugins_example"


def listing(*args: str, env: dict | None = None) -> dict:
    result = run_cli("plugins", "--json", *args, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def by_name(listed: dict) -> dict:
    return {item["name"]: item for item in listed["plugins"]}


def test_no_plugins(cli, home):
    listed = json.loads(cli.ok("plugins", "--json").stdout)
    assert listed == {"plugins_dir": str(home / ".bakthat_plugins"), "plugins": []}
    result = cli.ok("plugins")
    assert result.stdout == "" and "no plugins found" in result.stderr
    assert "plugins_dir: ~/.bakthat_plugins (does not exist)" in result.stderr


def test_plugins_dir_files_are_read_not_run(cli, home, tmp_path):
    directory = home / ".bakthat_plugins"
    directory.mkdir()
    marker = tmp_path / "ran"
    (directory / "side_effect.py").write_text(textwrap.dedent(f"""\
        open({str(marker)!r}, "w").close()
        from bakthat.plugin import Plugin
        class Unused(Plugin):
            def activate(self):
                pass
        class Helper:
            pass
    """))
    (directory / "package_plugin").mkdir()
    (directory / "package_plugin" / "__init__.py").write_text(
        "import bakthat.plugin\nclass InPackage(bakthat.plugin.Plugin):\n    def activate(self):\n        pass\n"
    )
    (directory / "_private.py").write_text("from bakthat.plugin import Plugin\nclass Hidden(Plugin):\n    pass\n")
    listed = by_name(json.loads(cli.ok("plugins", "--json").stdout))
    assert set(listed) == {"side_effect.Unused", "package_plugin.InPackage"}
    assert listed["side_effect.Unused"] == {
        "name": "side_effect.Unused", "source": "plugins_dir", "location": str(directory / "side_effect.py"),
        "enabled": None, "status": "available", "error": None,
    }
    assert not marker.exists()


def test_enabled_plugins_in_order_with_their_status(home):
    (home / ".bakthat.yml").write_text(
        f"default:\n  plugins_dir: {EXAMPLES}\n"
        "  plugins: [test_plugin.TestPlugin, change_model_plugin.ChangeModelPlugin]\n"
        "other:\n  plugins: [json.JSONDecoder]\n"
    )
    listed = listing()
    assert listed["plugins_dir"] == str(EXAMPLES)
    names = [item["name"] for item in listed["plugins"]]
    assert names[:2] == ["test_plugin.TestPlugin", "change_model_plugin.ChangeModelPlugin"]
    items = by_name(listed)
    assert items["test_plugin.TestPlugin"]["status"] == "active" and items["test_plugin.TestPlugin"]["enabled"] == 1
    assert items["test_plugin.TestPlugin"]["location"] == f"plugins_dir file {EXAMPLES / 'test_plugin.py'}"
    assert items["heartbeat_plugin.HeartbeatPlugin"]["status"] == "available"
    assert items["change_model_plugin.PatchModelPlugin"]["enabled"] is None
    table = run_cli("plugins")
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split() == ["NAME", "SOURCE", "ORDER", "STATUS", "LOCATION"]
    assert "test_plugin.TestPlugin" in table.stdout.splitlines()[1]
    # another profile: -p is read before the plugins are loaded
    other = run_cli("plugins", "-p", "other")
    assert other.returncode == 0
    assert "failed: json.JSONDecoder" not in other.stdout
    assert "is not a subclass of bakthat.plugin.Plugin" in other.stdout
    assert "bakthat: warning: plugin 'json.JSONDecoder'" in other.stderr


def test_a_failing_plugin_is_listed_with_its_reason_and_other_commands_stop(home, tmp_path):
    directory = tmp_path / "plugins"
    directory.mkdir()
    (directory / "angry.py").write_text(
        "from bakthat.plugin import Plugin\nclass Angry(Plugin):\n    def activate(self):\n        raise OSError('no socket')\n"
    )
    (home / ".bakthat.yml").write_text(f"default:\n  plugins_dir: {directory}\n  plugins: [angry.Angry, missing.Nope]\n")
    listed = by_name(listing())
    assert listed["angry.Angry"]["status"] == "failed"
    assert listed["angry.Angry"]["error"] == "activate() raised OSError: no socket"
    assert listed["missing.Nope"] == {
        "name": "missing.Nope", "source": "import path", "location": "not found",
        "enabled": 2, "status": "not loaded", "error": None,
    }
    shown = run_cli("configure", "--show")
    assert shown.returncode == 0 and "bakthat: warning: plugin 'angry.Angry'" in shown.stderr
    stopped = run_cli("show")
    assert stopped.returncode == 2
    assert stopped.stderr == "bakthat: error: plugin 'angry.Angry': activate() raised OSError: no socket\n"
    helped = run_cli("--help")
    assert helped.returncode == 0 and "bakthat: warning: plugin 'angry.Angry'" in helped.stderr


def test_the_version_does_not_load_plugins(home, tmp_path):
    (home / ".bakthat.yml").write_text("default:\n  plugins: [missing.Nope]\n")
    result = run_cli("--version")
    assert result.returncode == 0 and result.stderr == ""


def test_plugins_from_the_environment(cli, home, monkeypatch):
    monkeypatch.setenv("BAKTHAT_PLUGINS", "missing.Nope")
    monkeypatch.setenv("BAKTHAT_PLUGINS_DIR", str(EXAMPLES))
    listed = json.loads(cli.ok("plugins", "--json").stdout)
    assert listed["plugins_dir"] == str(EXAMPLES)
    assert by_name(listed)["missing.Nope"]["status"] == "failed"


def test_plugins_takes_no_destination(cli):
    result = cli("-d", "s3", "plugins")
    assert result.returncode == 2 and "plugins does not take -d/--destination" in result.stderr
    assert cli("plugins", "-d", "s3").returncode == 2


# -- a plugin installed as a separate package ---------------------------------------------------------------

HELLO_PLUGIN = '''\
"""A plugin shipped in its own package, found through the bakthat.plugins entry point."""

import os

from bakthat.plugin import Param, Plugin


class HelloPlugin(Plugin):
    def activate(self):
        self.on_backup += self.greet_backup
        self.register_command("hello", self.hello, params=[Param("name", help="who to greet")], help="say hello")

    def greet_backup(self, session_id, backup):
        path = os.path.join(os.path.expanduser("~"), "hello-plugin.log")
        with open(path, "a") as log:
            log.write("hello " + backup.filename + "\\n")

    def hello(self, params):
        print("hello " + params["name"])
'''

SETUP_PY = '''\
from setuptools import setup

setup(
    name="bakthat-hello-plugin",
    version="0.1",
    py_modules=["hello_plugin"],
    entry_points={"bakthat.plugins": ["hello = hello_plugin:HelloPlugin"]},
)
'''


def _can_build_offline() -> bool:
    """True if setuptools can build a wheel here without fetching anything."""
    import setuptools

    major, minor = (int(part) for part in setuptools.__version__.split(".")[:2])
    return importlib.util.find_spec("wheel") is not None or (major, minor) >= (70, 1)


@pytest.fixture(scope="module")
def installed_package(tmp_path_factory) -> Path:
    """Build the hello plugin package and ``pip install --target`` it; return the target."""
    base = tmp_path_factory.mktemp("hello_plugin")
    source = base / "src"
    source.mkdir()
    (source / "hello_plugin.py").write_text(HELLO_PLUGIN)
    (source / "setup.py").write_text(SETUP_PY)
    target = base / "site"
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(source)]
    if _can_build_offline():
        command.insert(5, "--no-build-isolation")
    # else: pip fetches setuptools and wheel into an isolated build environment
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PIP_TARGET")}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment, cwd=base)
    if result.returncode != 0:
        pytest.fail(f"pip could not install the test plugin package: {result.stderr[-2000:]}")
    assert list(target.glob("bakthat_hello_plugin-0.1.dist-info"))
    return target


def test_an_entry_point_plugin_is_discovered_and_used(installed_package, home, tmp_path):
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), str(installed_package)])}
    listed = by_name(listing(env=env))
    assert listed["hello"]["source"] == "entry point" and listed["hello"]["status"] == "available"
    assert listed["hello"]["location"] == "hello_plugin:HelloPlugin (package bakthat-hello-plugin 0.1)"
    (home / ".bakthat.yml").write_text("default:\n  plugins: [hello]\n")
    listed = by_name(listing(env=env))
    assert listed["hello"]["status"] == "active" and listed["hello"]["enabled"] == 1
    assert listed["hello"]["location"].startswith("entry point hello = hello_plugin:HelloPlugin")
    data = make_tree(tmp_path / "data" / "mydir")
    backup = run_cli("backup", str(data), "--prompt", "no", env=env)
    assert backup.returncode == 0, backup.stderr
    assert (home / "hello-plugin.log").read_text() == "hello mydir\n"
    greeted = run_cli("hello", "--name", "world", env=env)
    assert greeted.returncode == 0 and greeted.stdout == "hello world\n", greeted.stderr
    assert "say hello [plugin hello]" in " ".join(cli_ok("--help", env=env).stdout.split())
    # without the package on the path, enabling it is a named error
    missing = run_cli("backup", str(data), "--prompt", "no")
    assert missing.returncode == 2
    assert "plugin 'hello': no installed package declares it" in missing.stderr


def test_an_entry_point_plugin_from_python(installed_package, home, tmp_path, monkeypatch):
    data = make_tree(tmp_path / "data" / "mydir")
    script = (
        "import bakthat\n"
        f"bakthat.backup({str(data)!r}, conf={{'plugins': ['hello']}}, prompt='no')\n"
        "from bakthat.plugin import loaded_plugins\n"
        "print([type(p).__name__ for p in loaded_plugins()])\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(installed_package)]))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['HelloPlugin']"
    assert (home / "hello-plugin.log").read_text() == "hello mydir\n"
