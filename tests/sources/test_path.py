"""A file or directory as a source (bakthat.sources.path): the spec is checked and the path
made absolute at load; the backup itself is the tar walk."""

from __future__ import annotations

import os

import pytest

from bakthat.errors import ConfigError
from bakthat.sources.path import PathSource, parse


def test_a_path_is_made_absolute_and_named_after_its_last_component(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = parse({"path": "www/"}, "src")
    assert source == PathSource(kind="path", name="www", display=str(tmp_path / "www"), extension="tar",
                                path=str(tmp_path / "www"))


def test_a_home_relative_path_is_expanded(home):
    source = parse({"path": "~/notes"}, "src")
    assert source.path == os.path.join(os.path.expanduser("~"), "notes") and source.name == "notes"
    assert "~" not in source.display


def test_the_root_directory_is_named_root():
    assert parse({"path": "/"}, "src").name == "root"


def test_an_explicit_name_and_hooks_are_kept():
    hooks = {"before": [{"run": "sync"}]}
    source = parse({"path": "/srv/www", "name": "site", "hooks": hooks}, "src")
    assert (source.name, source.hooks, source.secrets()) == ("site", hooks, ())


@pytest.mark.parametrize("path", ["", "   ", None, 5, ["/etc"]])
def test_a_path_that_is_not_a_non_empty_string_is_refused_naming_the_key(path):
    with pytest.raises(ConfigError, match=r"^jobs\.a\.sources\[1\]\.path: must be a non-empty path$"):
        parse({"path": path}, "jobs.a.sources[1]")


def test_an_unknown_key_or_a_bad_name_is_refused_naming_its_place():
    with pytest.raises(ConfigError, match=r"^src: unknown key 'exclude'"):
        parse({"path": "/etc", "exclude": "*.log"}, "src")
    with pytest.raises(ConfigError, match=r"^src\.name: 'a/b' cannot be a backup name"):
        parse({"path": "/etc", "name": "a/b"}, "src")
