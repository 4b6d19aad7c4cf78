"""Tests for bakthat.index_cache: the local copy of the last state loads back exactly,
and a missing, damaged, stale or foreign cache is ignored (rebuilt from the store)."""

from __future__ import annotations

import logging
import os
import stat

import pytest

from bakthat import index_cache
from bakthat.index import Index
from bakthat.index_cache import cache_path, load_state, save_state
from tests.chains import fake_stat


def a_state() -> Index:
    full = Index("delta", backup="www.1", root="www")
    full.add("www", fake_stat("d", ino=1), user="alice", group="staff")
    full.add(b"www/\xff name", fake_stat(ino=2), sha256=b"\x07" * 32)
    full.add("www/link", fake_stat("l", ino=3), "target")
    state = Index.state_of_full(full)
    incr = Index("delta", backup="www.2", level="incr", base="www.1", root="www")
    incr.add("www/new", fake_stat(ino=4))
    state.apply(incr)
    return state


def test_a_state_saved_to_the_cache_loads_back_exactly(tmp_path):
    state = a_state()
    path = cache_path(tmp_path / "cache", "backend-hash", "www")
    save_state(state, path)
    loaded = load_state(path, backup="www.2", root="www")
    assert loaded is not None
    assert loaded.records() == state.records() and list(loaded) == list(state)
    for name in ("kind", "backup", "level", "base", "root", "holders", "users", "groups"):
        assert getattr(loaded, name) == getattr(state, name)
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700


def test_each_name_and_store_has_its_own_cache_file(tmp_path):
    assert cache_path(tmp_path, "a", "www") != cache_path(tmp_path, "b", "www")
    assert cache_path(tmp_path, "a", "www") != cache_path(tmp_path, "a", "web")


def test_only_a_state_is_cached(tmp_path):
    with pytest.raises(ValueError, match="only a state"):
        save_state(Index("delta", backup="x", root="www"), tmp_path / "x.state")


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda data: data[:-1], "is damaged"),
        (lambda data: data[:40] + bytes([data[40] ^ 1]) + data[41:], "is damaged"),
        (lambda data: b"something else", "is damaged"),
        (lambda data: b"", "is damaged"),
    ],
)
def test_a_damaged_cache_is_ignored_with_a_warning(tmp_path, caplog, damage, message):
    path = tmp_path / "www.state"
    save_state(a_state(), path)
    path.write_bytes(damage(path.read_bytes()))
    with caplog.at_level(logging.WARNING, logger="bakthat"):
        assert load_state(path, backup="www.2", root="www") is None
    assert message in caplog.text


def test_a_cache_of_another_backup_or_name_is_ignored(tmp_path, caplog):
    path = tmp_path / "www.state"
    save_state(a_state(), path)
    with caplog.at_level(logging.INFO, logger="bakthat"):
        assert load_state(path, backup="www.3", root="www") is None
        assert load_state(path, backup="www.2", root="web") is None
    assert "is the state at www.2, not at www.3" in caplog.text


def test_a_missing_cache_is_simply_absent(tmp_path):
    assert load_state(tmp_path / "nothing.state", backup="www.2", root="www") is None


@pytest.mark.parametrize("key, record", [(b"www/bad", b"short"), ("www/text-key", None), (b"www/text-record", "")])
def test_a_cache_that_is_not_a_state_is_ignored(tmp_path, caplog, key, record):
    path = tmp_path / "www.state"
    save_state(a_state(), path)
    state = a_state()
    records = state.records()
    if record is None:
        record = next(iter(records.values()))
    elif record == "":
        record = next(iter(records.values())).decode("latin-1")  # long enough, but text
    records[key] = record
    save_state(state, path)
    with caplog.at_level(logging.WARNING, logger="bakthat"):
        assert load_state(path, backup="www.2", root="www") is None
    assert "not a state index" in caplog.text


def test_a_failed_write_leaves_the_previous_cache_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "cache" / "www.state"
    save_state(a_state(), path)
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(index_cache.os, "replace", fail)
    with pytest.raises(OSError, match="No space"):
        save_state(Index.state_of_full(Index("delta", backup="www.9", root="www")), path)
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == ["www.state"]
