"""The index beside each archive, the local cache, and how a backup picks its level."""

from __future__ import annotations

import shutil

import pytest

import bakthat
from bakthat import index_store
from bakthat.errors import ConfigError


def store(home):
    return home / ".bakthat_store"


def test_index_keys_name_their_archive():
    assert index_store.index_key("www.20261120020000.tar.zst") == "www.20261120020000.tar.zst.index.jsonl.zst"
    assert index_store.index_key("www.20261120020000.tar.zst.age") == "www.20261120020000.tar.zst.age.index.jsonl.zst.age"
    assert index_store.archive_of_index("www.20261120020000.tar.zst.age.index.jsonl.zst.age") == "www.20261120020000.tar.zst.age"
    assert index_store.archive_of_index("www.20261120020000.tar.zst.index.jsonl.zst.age") is None  # not one we write
    assert index_store.archive_of_index("www.20261120020000.tar.zst") is None


def test_an_unchanged_run_reads_nothing_from_the_store_thanks_to_the_cache(tree, home):
    full = bakthat.backup(str(tree), password="", level="full")
    (store(home) / (full.stored_filename + ".index.jsonl.zst")).unlink()  # the store could not give it
    again = bakthat.backup(str(tree), password="", level="auto")
    assert (again.level, again.base) == ("incr", full.stored_filename)
    assert again.metadata["index"]["entries"] == 0, "nothing changed: an empty archive and index"


def test_without_cache_the_state_comes_from_the_store(tree, home):
    full = bakthat.backup(str(tree), password="", level="full")
    shutil.rmtree(home / ".cache")
    (tree / "new.txt").write_text("new")
    incr = bakthat.backup(str(tree), password="", level="incr")
    assert (incr.level, incr.base) == ("incr", full.stored_filename)
    assert incr.metadata["index"]["entries"] == 2  # new.txt and its directory


def test_a_base_whose_state_cannot_be_read_gives_a_full_with_the_reason(tree, home, caplog):
    full = bakthat.backup(str(tree), password="", level="full")
    shutil.rmtree(home / ".cache")
    (store(home) / (full.stored_filename + ".index.jsonl.zst")).unlink()
    row = bakthat.backup(str(tree), password="", level="incr")
    assert row.level == "full" and row.base is None
    assert "cannot be read" in row.metadata["level_reason"]
    assert "Storing a full backup" in caplog.text


def test_a_base_encrypted_with_another_password_gives_a_full(tree, home):
    bakthat.backup(str(tree), password="first")
    shutil.rmtree(home / ".cache")
    row = bakthat.backup(str(tree), password="second", level="incr")
    assert row.level == "full" and "cannot be read" in row.metadata["level_reason"]


def test_an_encrypted_backup_s_archive_and_index_are_each_an_age_file_of_its_own_and_both_read_back(tree, home, monkeypatch):
    from bakthat import crypto

    cheap = {"scrypt_work_factor": 10}
    bakthat.backup(str(tree), password="two keys", level="full", conf=cheap)
    derivations = []
    real = crypto._scrypt_key
    monkeypatch.setattr(crypto, "_scrypt_key", lambda *args: derivations.append(args[2]) or real(*args))
    monkeypatch.setattr(crypto, "_DERIVED", {})
    (tree / "new.txt").write_text("new")
    incr = bakthat.backup(str(tree), password="two keys", level="auto", conf=cheap)
    assert incr.level == "incr" and incr.metadata["index"]["entries"] == 2
    assert derivations == [10, 10], "one derivation for each file, at the work factor asked for"
    archive = (store(home) / incr.stored_filename).read_bytes()
    index = (store(home) / index_store.index_key(incr.stored_filename)).read_bytes()
    stanza = lambda data: data.split(b"\n")[1]
    assert stanza(archive).startswith(b"-> scrypt ") and stanza(index).startswith(b"-> scrypt ")
    assert stanza(archive) != stanza(index), "age: a new salt for each file"
    monkeypatch.setenv("BAKTHAT_PASSWORD", "two keys")
    assert bakthat.check([incr.stored_filename], read_data=True).ok
    assert len(derivations) == 4, "check read the archive and its index, one derivation each"


def test_level_auto_follows_max_chain_and_full_every(tree):
    conf = {"level": "auto", "max_chain": 1}
    levels = []
    for number in range(3):
        (tree / f"file{number}.txt").write_text(str(number))
        levels.append(bakthat.backup(str(tree), password="", conf=conf).level)
    assert levels == ["full", "incr", "full"]
    assert bakthat.backup(str(tree), password="", conf={"level": "auto", "full_every": "1h"}).level == "incr"
    assert bakthat.backup(str(tree), password="", conf={"level": "auto", "full_every": 1}).level == "full"


def test_a_bad_level_is_a_config_error(tree):
    with pytest.raises(ConfigError, match="level"):
        bakthat.backup(str(tree), password="", level="weekly")
    with pytest.raises(ConfigError, match="level"):
        bakthat.backup(str(tree), password="", conf={"level": "sometimes"})
    with pytest.raises(ConfigError, match="max_chain"):
        bakthat.backup(str(tree), password="", conf={"level": "auto", "max_chain": -1})


def test_a_differential_is_based_on_the_last_full(tree):
    full = bakthat.backup(str(tree), password="", level="full")
    (tree / "a.txt").write_text("a")
    bakthat.backup(str(tree), password="", level="incr")
    (tree / "b.txt").write_text("b")
    diff = bakthat.backup(str(tree), password="", level="diff")
    assert (diff.level, diff.base) == ("diff", full.stored_filename)
    assert {entry.path for entry in bakthat.files(diff.stored_filename)} >= {"mydir/a.txt", "mydir/b.txt"}
