"""bakthat.testing.pytest_plugin: registered through the pytest11 entry point, its fixtures
serve a project that has nothing but bakthat installed."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points

from tests.conftest import ROOT
from tests.services import unavailable


def installed_entry_point():
    found = [entry for entry in entry_points(group="pytest11") if entry.value == "bakthat.testing.pytest_plugin"]
    if not found:
        unavailable("bakthat's pytest11 entry point is not installed: reinstall with pip install -e '.[test]'")
    return found[0]


def run_pytest(*args, cwd):
    environment = {name: value for name, value in os.environ.items() if not name.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        capture_output=True, text=True, cwd=cwd, env=environment, timeout=300,
    )


def test_the_plugin_is_declared_as_the_pytest11_entry_point_named_bakthat():
    entry = installed_entry_point()
    assert entry.name == "bakthat"
    assert entry.load().__name__ == "bakthat.testing.pytest_plugin"


def test_the_third_party_plugin_and_backend_tests_pass_with_the_kit_alone():
    installed_entry_point()
    # --confcutdir keeps bakthat's own tests/conftest.py (and its fixtures) out
    result = run_pytest("-rA", "--confcutdir", str(ROOT / "tests" / "third_party"), "tests/third_party", cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED tests/third_party/test_bakthat_audit.py::") == 3
    assert "PASSED tests/third_party/test_bakthat_sqlitestore.py::test_a_backup_to_the_sqlite_store_restores_byte_for_byte" in result.stdout
    assert "PASSED tests/third_party/test_bakthat_sqlitestore.py::TestSqliteStoreConformance::" in result.stdout


def test_without_the_plugin_the_fixtures_do_not_exist(tmp_path):
    installed_entry_point()
    (tmp_path / "test_uses_kit.py").write_text(
        "import bakthat\n\n"
        "def test_backup(bakthat_catalog, bakthat_events):\n"
        "    (bakthat_catalog.work / 'd').mkdir()\n"
        "    bakthat.backup(str(bakthat_catalog.work / 'd'), password='')\n"
        "    assert bakthat_events.session('backup').names == ['before_backup', 'on_backup']\n"
        "    assert len(bakthat_catalog.backups()) == 1\n"
    )
    with_plugin = run_pytest("test_uses_kit.py", cwd=tmp_path)
    assert with_plugin.returncode == 0, with_plugin.stdout + with_plugin.stderr
    assert "1 passed" in with_plugin.stdout
    without = run_pytest("-p", "no:bakthat", "test_uses_kit.py", cwd=tmp_path)
    assert without.returncode == 1
    assert "fixture 'bakthat_catalog' not found" in without.stdout
