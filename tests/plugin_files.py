"""Helpers of the plugin tests: writing a plugin file into a plugins directory, a profile
naming plugins, and a small tree to back up (tests/test_plugin*.py import them)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT

EXAMPLES = ROOT / "plugins_example"


@pytest.fixture
def plugins_dir(tmp_path) -> Path:
    directory = tmp_path / "plugins"
    directory.mkdir()
    return directory


@pytest.fixture
def data(tmp_path) -> Path:
    root = tmp_path / "data" / "mydir"
    root.mkdir(parents=True)
    (root / "file.txt").write_text("hello\n")
    return root


def write(directory: Path, module: str, source: str) -> None:
    """Write ``source`` (dedented) as ``directory/<module>.py``."""
    (directory / f"{module}.py").write_text(textwrap.dedent(source))


def conf_for(directory: Path, *names: str, **extra) -> dict:
    """Return a profile (a ``conf=`` dict) with ``directory`` as plugins_dir, enabling ``names``."""
    return {"plugins_dir": str(directory), "plugins": list(names), **extra}


#: A plugin module recording its activation, the backup events it sees and its deactivation.
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


def catalog_tables() -> set[str]:
    """The catalog's tables: ``backups`` and those of the other models (which the plugins
    here leave alone), whatever table a replaced Backups class would have made."""
    from bakthat import models

    return {"backups", *(model._meta.table_name for model in models.models()[1:])}


def tables(home: Path) -> dict[str, int]:
    """Return ``{table: row count}`` of the SQLite catalog in ``home``."""
    import sqlite3

    connection = sqlite3.connect(home / ".bakthat.sqlite")
    try:
        names = [row[0] for row in connection.execute("select name from sqlite_master where type='table'")]
        return {name: connection.execute(f"select count(*) from {name}").fetchone()[0] for name in names}
    finally:
        connection.close()
