"""BakHelper: the temporary working directory, and backup/restore/rotate/delete_older_than."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import bakthat
from bakthat.errors import ConfigError, PasswordRequiredError
from bakthat.helper import BakHelper, KeyValue
from bakthat.keyvalue import KeyValue as KeyValueItself

FAST = {"scrypt_work_factor": 10}
ROTATION = {"rotation": {"days": 7, "first_week_day": 5, "months": 6, "weeks": 6}}


def test_keyvalue_is_still_exported():
    assert KeyValue is KeyValueItself


def test_the_block_runs_in_a_fresh_private_directory_removed_afterwards(tmp_path):
    start = os.getcwd()
    with BakHelper("mybackup") as bh:
        inside = os.getcwd()
        assert inside == bh.dir and Path(inside).name.startswith("mybackup_")
        assert (os.stat(inside).st_mode & 0o777) == 0o700
        Path("dump.sql").write_text("data")
    assert os.getcwd() == start
    assert not os.path.exists(inside) and bh.dir is None


def test_the_directory_is_removed_and_cwd_restored_when_the_block_raises(tmp_path):
    start = os.getcwd()
    with pytest.raises(RuntimeError, match="dump failed"):
        with BakHelper("mybackup") as bh:
            inside = bh.dir
            Path("partial.sql").write_text("half")
            os.mkdir("sub")
            raise RuntimeError("dump failed")
    assert os.getcwd() == start and not os.path.exists(inside)


def test_tmpdir_is_honoured(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    with BakHelper("x") as bh:
        assert Path(bh.dir).parent == tmp_path


def test_backup_stores_the_directory_under_the_backup_name(tmp_path, home):
    with BakHelper("myhost_mysql", tags=["mysql", "daily"], key="k1", conf=FAST) as bh:
        Path("dump.sql").write_text("CREATE TABLE t (id int);\n")
        row = bh.backup()
        temp_name = Path(bh.dir).name
    assert row.filename == "myhost_mysql" and row.stored_filename.startswith("myhost_mysql.")
    assert temp_name not in row.stored_filename
    assert row.tags == "mysql daily" and row["key"] == "k1"
    assert row.encryption == "none"
    bakthat.restore("myhost_mysql", conf=FAST, target=str(tmp_path / "out"))
    assert (tmp_path / "out" / "myhost_mysql" / "dump.sql").read_text() == "CREATE TABLE t (id int);\n"


def test_password_encrypts_and_restore_uses_it(tmp_path):
    with BakHelper("secret", password="pw", conf=FAST) as bh:
        Path("a.txt").write_text("a")
        row = bh.backup()
        assert row.is_encrypted()
        restored = bh.restore()  # into the temporary directory (the cwd)
        assert restored.stored_filename == row.stored_filename
        assert Path("secret", "a.txt").read_text() == "a"
    with pytest.raises(PasswordRequiredError):
        BakHelper("secret", conf=FAST).restore(target=str(tmp_path / "nopw"))
    BakHelper("secret", password="pw", conf=FAST).restore(target=str(tmp_path / "pw"))
    assert (tmp_path / "pw" / "secret" / "a.txt").read_text() == "a"


def test_no_prompt_and_bakthat_password_from_the_environment(monkeypatch):
    monkeypatch.setenv("BAKTHAT_PASSWORD", "from-env")
    monkeypatch.setattr("bakthat.passwords.interactive", lambda: True)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": pytest.fail("BakHelper must not prompt"))
    with BakHelper("envpw", conf=FAST) as bh:
        Path("a").write_text("a")
        assert bh.backup().is_encrypted()
    monkeypatch.delenv("BAKTHAT_PASSWORD")
    with BakHelper("plain", conf=FAST) as bh:
        Path("a").write_text("a")
        assert not bh.backup().is_encrypted()


def test_as_a_plain_object_the_name_is_the_files_name(tmp_path):
    Path("myfile.txt").write_text("mydata")
    bh = BakHelper(conf={**FAST, **ROTATION})
    assert bh.dir is None
    row = bh.backup("myfile.txt")
    assert row.filename == "myfile.txt"
    assert bh.rotate("myfile.txt") == []  # a single backup is kept
    named = BakHelper("nightly", conf=FAST).backup(str(Path("myfile.txt").absolute()))
    assert named.filename == "nightly"


def test_actions_on_a_path_given_to_backup_use_the_name_it_was_stored_under(tmp_path):
    source = tmp_path / "exports" / "db.sql"
    source.parent.mkdir()
    source.write_text("x")
    bh = BakHelper("db_nightly", conf={**FAST, **ROTATION})
    bh.backup(str(source))
    bh.backup(str(source))
    planned = bh.rotate(str(source), dry_run=True)
    assert len(planned.plan.to_keep) + len(planned) == 2  # both backups of db_nightly considered
    assert {row.filename for row in [*planned.plan.to_keep, *planned]} == {"db_nightly"}
    deleted = bh.delete_older_than(str(source), interval="1D", now=time.time() + 3 * 86400, force=True)
    assert [row.filename for row in deleted] == ["db_nightly"]  # the newest is kept
    assert len(bakthat.search(name="db_nightly", conf=FAST)) == 1


def test_rotate_and_delete_older_than_default_to_the_backup_name():
    with BakHelper("rot", conf={**FAST, **ROTATION}) as bh:
        Path("a").write_text("a")
        first = bh.backup()
        second = bh.backup()
        assert first.stored_filename != second.stored_filename
        plan = bh.rotate(now=time.time() + 2 * 86400)
        assert [row.stored_filename for row in plan] == [first.stored_filename]
        assert bh.delete_older_than(interval="1D", now=time.time() + 3 * 86400) == []


def test_profile_config_and_destination_are_used(tmp_path, home):
    store = tmp_path / "elsewhere"
    config = tmp_path / "bakthat.yml"
    config.write_text(f"nightly:\n  local_path: {store}\n  scrypt_work_factor: 10\n")
    with BakHelper("cfg", profile="nightly", config=str(config), destination="local") as bh:
        Path("a").write_text("a")
        row = bh.backup()
    assert row.profile == "nightly" and row.backend == "local"
    assert (store / row.stored_filename).exists()
    assert not (home / ".bakthat_store").exists()
    # a method's keywords override the helper's
    other = tmp_path / "other.yml"
    other.write_text(f"default:\n  local_path: {tmp_path / 'other'}\n")
    with BakHelper("cfg", profile="nightly", config=str(config)) as bh:
        Path("b").write_text("b")
        bh.backup(profile="default", config=str(other), tags="override")
    newest = bakthat.search(config=str(other))[0]
    assert (newest.tags, newest.profile) == ("override", "default")
    assert (tmp_path / "other" / newest.stored_filename).exists()


def test_clear_errors_for_what_cannot_be_done():
    with pytest.raises(ConfigError, match="with BakHelper"):
        BakHelper("x").backup()
    with BakHelper() as bh:
        with pytest.raises(ConfigError, match="needs a backup_name"):
            bh.backup()
    with pytest.raises(ConfigError, match="needs a name"):
        BakHelper().rotate()
    with pytest.raises(ConfigError, match="needs an interval"):
        BakHelper("x").delete_older_than()


def test_repr_names_the_backup():
    assert "mybackup" in repr(BakHelper("mybackup"))
