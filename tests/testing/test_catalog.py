"""bakthat.testing.catalog: a temporary HOME, config, catalog and store, and nothing leaks."""

from __future__ import annotations

import os

import pytest

import bakthat
from bakthat import eventing, models, plugin
from bakthat.errors import ConfigError
from bakthat.testing.catalog import TemporaryBakthat


def test_inside_home_and_cwd_are_temporary_and_bakthat_variables_are_gone(tmp_path, monkeypatch):
    monkeypatch.setenv("BAKTHAT_PASSWORD", "a developer's password")
    monkeypatch.setenv("BAKTHAT_DESTINATION", "s3")
    before_home, before_cwd = os.environ["HOME"], os.getcwd()
    with TemporaryBakthat(tmp_path / "t") as temporary:
        assert os.environ["HOME"] == str(tmp_path / "t" / "home")
        assert os.path.expanduser("~/.bakthat.sqlite") == str(temporary.catalog_path)
        assert os.getcwd() == str(tmp_path / "t" / "work")
        assert not [name for name in os.environ if name.startswith("BAKTHAT_")]
    assert os.environ["HOME"] == before_home
    assert os.getcwd() == before_cwd
    assert os.environ["BAKTHAT_PASSWORD"] == "a developer's password"
    assert os.environ["BAKTHAT_DESTINATION"] == "s3"


def test_a_backup_lands_in_the_temporary_catalog_and_store(tmp_path):
    with TemporaryBakthat(tmp_path / "t") as temporary:
        source = temporary.work / "notes"
        source.mkdir()
        (source / "a.txt").write_text("a\n")
        row = bakthat.backup(str(source), password="")
        assert temporary.catalog_path.is_file()
        assert [backup.stored_filename for backup in temporary.backups()] == [row.stored_filename]
        assert row.stored_filename in temporary.stored()
        assert row.stored_filename + ".manifest.json" in temporary.stored()
        bakthat.delete("notes")
        assert temporary.backups() == []
        assert [backup.stored_filename for backup in temporary.backups(include_deleted=True)] == [row.stored_filename]
    assert models.kind() is None  # the catalog binding is dropped on exit


def test_two_temporary_homes_do_not_see_each_other(tmp_path):
    with TemporaryBakthat(tmp_path / "one") as one:
        (one.work / "d").mkdir()
        bakthat.backup(str(one.work / "d"), password="")
        assert len(one.backups()) == 1
    with TemporaryBakthat(tmp_path / "two") as two:
        assert two.backups() == []
        assert two.stored() == []


def test_handlers_subscribed_inside_are_dropped_and_those_of_before_kept(tmp_path):
    def kept(session_id):
        pass

    def dropped(session_id):
        pass

    eventing.events.before_backup += kept
    try:
        with TemporaryBakthat(tmp_path / "t"):
            eventing.events.before_backup += dropped
            assert list(eventing.events.before_backup) == [kept, dropped]
        assert list(eventing.events.before_backup) == [kept]
    finally:
        eventing.events.before_backup -= kept


def test_plugins_loaded_inside_are_unloaded_on_exit(tmp_path):
    with TemporaryBakthat(tmp_path / "t") as temporary:
        temporary.plugins_dir.mkdir()
        (temporary.plugins_dir / "hello.py").write_text(
            "from bakthat.plugin import Plugin\n\nclass Hello(Plugin):\n"
            "    def activate(self):\n        self.on_backup += self.hi\n\n"
            "    def hi(self, session_id, backup):\n        pass\n"
        )
        temporary.configure(plugins=["hello.Hello"])
        (temporary.work / "d").mkdir()
        bakthat.backup(str(temporary.work / "d"), password="")
        assert [type(loaded).__name__ for loaded in plugin.loaded_plugins()] == ["Hello"]
    assert plugin.loaded_plugins() == []
    assert list(eventing.events.on_backup) == []


def test_configure_validates_the_profile_and_writes_nothing_when_it_is_wrong(tmp_path):
    with TemporaryBakthat(tmp_path / "t") as temporary:
        written = temporary.configure(compression="gzip")
        assert written == {"compression": "gzip"}
        assert "compression: gzip" in temporary.config_path.read_text()
        before = temporary.config_path.read_text()
        with pytest.raises(ConfigError, match="compresion"):
            temporary.configure(compresion="none")
        assert temporary.config_path.read_text() == before
        assert temporary.configure("other", compression="none") == {"compression": "none"}
        assert temporary.configure(compression_level=9) == {"compression": "gzip", "compression_level": 9}


def test_it_refuses_to_be_used_outside_its_block_or_entered_twice(tmp_path):
    temporary = TemporaryBakthat(tmp_path / "t")
    with pytest.raises(RuntimeError, match="not active"):
        temporary.configure(compression="gzip")
    with pytest.raises(RuntimeError, match="not active"):
        temporary.backups()
    with temporary:
        assert temporary.active
        with pytest.raises(RuntimeError, match="already active"):
            temporary.__enter__()
    assert not temporary.active
    assert not (tmp_path / "t" / "home" / ".bakthat.yml").exists()


def test_the_fixture_is_a_temporary_bakthat_rooted_in_tmp_path(bakthat_catalog, tmp_path):
    assert isinstance(bakthat_catalog, TemporaryBakthat)
    assert bakthat_catalog.active
    assert bakthat_catalog.home == tmp_path / "home"
    assert os.environ["HOME"] == str(tmp_path / "home")
    assert os.getcwd() == str(tmp_path / "work")
