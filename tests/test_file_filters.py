"""bakthat.file_filters: a plugin's per-file decision skips entries, counted and reported like excludes."""

from __future__ import annotations

import subprocess
import sys
import tarfile

import pytest

import bakthat
from bakthat import file_filters

PLUGIN = '''
from bakthat.plugin import Plugin


class SkipScratch(Plugin):
    """Skips *.tmp files and every directory named scratch; one big file by size."""

    def activate(self):
        self.register_file_filter(self.decide)

    def decide(self, path, st):
        if path.endswith(".tmp"):
            return True
        if path.rsplit("/", 1)[-1] == "scratch":
            return "scratch space"
        return st.st_size > 1_000_000 and "larger than 1 MB"
'''


@pytest.fixture
def with_plugin(home):
    plugins = home / ".bakthat_plugins"
    plugins.mkdir()
    (plugins / "skipscratch.py").write_text(PLUGIN)
    (home / ".bakthat.yml").write_text("default:\n  plugins: [skipscratch.SkipScratch]\n")


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "project"
    (root / "scratch" / "deep").mkdir(parents=True)
    (root / "src").mkdir()
    (root / "src" / "main.py").write_text("print('hi')\n")
    (root / "src" / "build.tmp").write_text("temporary\n")
    (root / "scratch" / "deep" / "junk.bin").write_bytes(b"x" * 100)
    (root / "big.iso").write_bytes(b"\0" * 2_000_000)
    return root


def members(home, row) -> list[str]:
    with tarfile.open(home / ".bakthat_store" / row.stored_filename) as archive:
        return sorted(archive.getnames())


def test_a_plugin_filter_skips_entries_and_they_are_counted_like_excludes(with_plugin, home, tree):
    row = bakthat.backup(str(tree), password="", compression="none")
    assert members(home, row) == ["project", "project/src", "project/src/main.py"]
    assert row.metadata["entries"]["excluded"] == 3
    assert sorted(row.metadata["excluded"]) == ["big.iso", "scratch", "src/build.tmp"]
    plan = bakthat.backup(str(tree), password="", dry_run=True)
    assert plan.excluded_count == 3 and sorted(plan.excluded) == ["big.iso", "scratch", "src/build.tmp"]
    assert plan.file_count == 3  # project, src, main.py


def test_the_command_line_reports_filtered_entries_in_its_counts(with_plugin, home, tree):
    result = subprocess.run([sys.executable, "-m", "bakthat", "backup", str(tree), "--prompt", "no", "-v"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "3 entries excluded, 0 skipped" in result.stderr
    assert "filter SkipScratch.decide: scratch space" in result.stderr


def test_a_filter_that_raises_stops_the_backup_and_nothing_is_stored(home, tree):
    def broken(path, st):
        raise RuntimeError("cannot decide")

    file_filters.register("broken", broken)
    try:
        with pytest.raises(RuntimeError, match="cannot decide"):
            bakthat.backup(str(tree), password="")
    finally:
        file_filters.unregister("broken")
    assert [path.name for path in (home / ".bakthat_store").iterdir() if path.is_file()] == []


def test_unloading_the_plugin_removes_its_filter(with_plugin, home, tree):
    from bakthat import plugin

    bakthat.backup(str(tree), password="")
    assert list(file_filters.REGISTRY) == ["SkipScratch.decide"]
    plugin.unload_plugins()
    assert file_filters.REGISTRY == {} and file_filters.active() is None


def test_without_filters_the_walk_gets_none_to_call():
    assert file_filters.REGISTRY == {}
    assert file_filters.active() is None



def direct_plugin():
    """Return a plugin created directly (as a test or an embedding does), not loaded from a profile."""
    from bakthat.plugin import Plugin

    class Filtering(Plugin):
        def activate(self):
            pass

    return Filtering()

def test_a_file_filter_that_is_not_callable_is_a_plugin_error_naming_the_plugin():
    from bakthat.plugin import PluginError

    with pytest.raises(PluginError, match=r"plugin 'Filtering': file filter 'skip' is not callable"):
        direct_plugin().register_file_filter("skip")
    assert file_filters.REGISTRY == {}


def test_a_second_file_filter_of_the_same_name_is_a_plugin_error_and_the_first_stays():
    from bakthat.plugin import PluginError, _undo

    first, second = direct_plugin(), direct_plugin()

    def keep(path, st):
        return False

    first.register_file_filter(keep, name="shared")
    try:
        with pytest.raises(PluginError, match=r"plugin 'Filtering': a file filter named 'shared' is already registered"):
            second.register_file_filter(lambda path, st: True, name="shared")
        assert file_filters.REGISTRY == {"shared": keep}
    finally:
        _undo(first)
    assert file_filters.REGISTRY == {}
