"""bakthat.naming: what a source's backups are called, and one name for one source."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

import bakthat
from bakthat import models
from bakthat.errors import ConfigError
from bakthat.naming import backup_names, name_conflict, printable, source_path


def test_a_byte_that_is_not_utf8_is_written_as_percent_hex():
    raw = os.fsdecode(b"caf\xe9-\xff")
    assert printable(raw) == "caf%E9-%FF"
    assert printable("héllo wörld") == "héllo wörld"


def test_the_source_path_is_absolute_and_printable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert source_path(Path("a/../b")) == str(tmp_path / "b")
    assert source_path(Path(os.fsdecode(b"x\xe9"))) == str(tmp_path) + "/x%E9"


@pytest.mark.parametrize(
    ("source", "name"),
    [("/srv/www", "www"), ("/srv/www/", "www"), ("/", "root"), ("relative/dir", "dir")],
)
def test_a_name_is_the_last_component_of_the_absolute_path(source, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert backup_names(Path(source), None) == (name, name)


def test_dot_is_the_current_directory_s_name(tmp_path, monkeypatch):
    (tmp_path / "project").mkdir()
    monkeypatch.chdir(tmp_path / "project")
    assert backup_names(Path("."), None) == ("project", "project")


def test_a_name_that_is_not_utf8_keeps_its_bytes_in_the_archive_entry():
    entry = os.fsdecode(b"/data/caf\xe9")
    assert backup_names(Path(entry), None) == ("caf%E9", os.fsdecode(b"caf\xe9"))


def test_a_custom_name_is_both_the_name_and_the_entry_and_a_bad_one_is_refused():
    assert backup_names(Path("/srv/www"), "site") == ("site", "site")
    for bad in ("", ".", "..", "a/b", "nul\x00"):
        with pytest.raises(ConfigError, match="cannot use .* as a backup name"):
            backup_names(Path("/srv/www"), bad)


@pytest.fixture
def two_sources(tmp_path):
    first = tmp_path / "one" / "www"
    second = tmp_path / "two" / "www"
    for path in (first, second):
        path.mkdir(parents=True)
        (path / "index.html").write_text(str(path))
    return first, second


def test_the_same_name_for_another_source_path_is_warned_about(two_sources, home, caplog):
    first, second = two_sources
    row = bakthat.backup(str(first), password="")
    models.bind(str(home / ".bakthat.sqlite"))
    assert name_conflict({}, "www", source_path(first)) is None
    with caplog.at_level(logging.WARNING, logger="bakthat"):
        message = name_conflict({}, "www", source_path(second))
    assert message is not None
    assert str(first) in message and str(second) in message and row.stored_filename in message and "--name" in message
    assert message in caplog.messages


def test_name_conflict_error_refuses_it(two_sources, home):
    first, second = two_sources
    bakthat.backup(str(first), password="")
    models.bind(str(home / ".bakthat.sqlite"))
    with pytest.raises(ConfigError, match="name_conflict: error"):
        name_conflict({"name_conflict": "error"}, "www", source_path(second))


def test_a_deleted_backup_leaves_no_conflict(two_sources, home):
    first, second = two_sources
    bakthat.backup(str(first), password="")
    bakthat.delete("www")
    models.bind(str(home / ".bakthat.sqlite"))
    assert name_conflict({"name_conflict": "error"}, "www", source_path(second)) is None
