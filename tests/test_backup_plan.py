"""bakthat.backup_plan: what one backup will store, decided before any byte is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from bakthat.actions import resolve
from bakthat.backup_plan import Plan, dumped_source, join_tags, plan_level, start_file_keys
from bakthat.errors import ConfigError


@pytest.mark.parametrize("given, stored", [
    (None, ""),
    ("", ""),
    ("daily  db", "daily db"),
    (["daily", "db daily", "  offsite "], "daily db offsite"),
    (("a", "b", "a"), "a b"),
])
def test_tags_are_stored_as_words_each_once_in_order(given, stored):
    assert join_tags(given) == stored


def test_a_path_is_not_a_dumped_source(tmp_path):
    assert dumped_source(str(tmp_path), None) is None
    assert dumped_source(tmp_path, None) is None


def test_a_sqlite_url_is_a_dumped_source_named_after_its_file_or_as_asked(tmp_path):
    database = tmp_path / "shop.db"
    found = dumped_source(f"sqlite:///{database}", None)
    assert (found.kind, found.name) == ("sqlite", "shop.db")
    renamed = dumped_source(f"sqlite:///{database}", "orders")
    assert (renamed.kind, renamed.name) == ("sqlite", "orders")


def test_a_custom_name_that_cannot_name_a_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="cannot be a backup name"):
        dumped_source(f"sqlite:///{tmp_path / 'shop.db'}", "a/b")


def plan(arcname: str) -> Plan:
    return Plan(
        source=Path("/nowhere"), source_path="/nowhere", name="app", arcname=arcname, compression="zstd",
        encryption="none", passphrase=None, recipients=[], excludes=None, tags="", key=None, profile="default",
        session_id="s", storage_class=None, warnings=[], stored_filename="app.20240101000000.tar.zst",
    )


def test_a_top_level_name_that_is_not_utf8_gets_a_full_backup_without_an_index(home, caplog):
    ctx = resolve(None, "default", None, {"scrypt_work_factor": 10})
    chosen = plan("caf\udce9")
    plan_level(ctx, chosen, "incr")
    assert (chosen.level, chosen.planner) == ("full", None)
    assert chosen.level_reason == "its name is not UTF-8: no file index"
    assert "its name is not UTF-8, so it has no file index" in caplog.text


def test_an_incremental_without_an_earlier_backup_is_a_full_with_a_change_planner(home):
    ctx = resolve(None, "default", None, {"scrypt_work_factor": 10})
    chosen = plan("app")
    plan_level(ctx, chosen, "incr")
    assert (chosen.level, chosen.base) == ("full", None)
    assert chosen.level_reason
    assert chosen.planner is not None


def test_an_encrypted_backup_s_file_keys_are_started_before_the_walk_one_per_stored_file(home):
    import dataclasses

    from bakthat import crypto

    ctx = resolve(None, "default", None, {"scrypt_work_factor": 11})
    plain = plan("app")
    start_file_keys(ctx, plain)
    assert plain.file_keys == [], "nothing to make without encryption"
    secret = dataclasses.replace(plan("app"), encryption="password", passphrase="pw")
    start_file_keys(ctx, secret)
    assert [type(key) for key in secret.file_keys] == [crypto.PendingFileKey] * 2, "the archive's and the index's"
    archive_key, index_key = (pending.result() for pending in secret.file_keys)
    assert archive_key is not index_key
    stanza = lambda key: key.header.split(b"\n")[1]
    assert stanza(archive_key).endswith(b" 11") and stanza(archive_key) != stanza(index_key), "the profile's work factor, a salt each"
    dump = dataclasses.replace(plan("app"), encryption="password", passphrase="pw", dump=object())
    start_file_keys(ctx, dump)
    assert len(dump.file_keys) == 1, "a dump has no index: one key"
