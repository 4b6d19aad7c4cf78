"""The public API through bakthat.core: backup (and its round trip through restore), search, with the catalog and the local store.

Restore's choices are in tests/test_restore_action.py, delete's in tests/test_delete_action.py.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

import bakthat
from bakthat import models
from bakthat.errors import (
    ConfigError,
    PasswordRequiredError,
    StorageError,
    WrongPasswordError,
)
from tests.conftest import make_tree, snapshot

FAST = {"scrypt_work_factor": 10}


def store_dir(home: Path) -> Path:
    return home / ".bakthat_store"


def stored_files(home: Path) -> list[str]:
    """The objects in the local store (its temp directory left out)."""
    return sorted(p.name for p in store_dir(home).iterdir() if p.name != ".bakthat-tmp")


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
@pytest.mark.parametrize("password", ["", "correct horse"])
def test_backup_then_restore_reproduces_the_tree_byte_for_byte(tree, tmp_path, compression, password):
    row = bakthat.backup(str(tree), password=password, compression=compression, conf=FAST)
    target = tmp_path / "restored"
    bakthat.restore("mydir", password=password or None, target=target, conf=FAST)
    assert snapshot(target / "mydir") == snapshot(tree)
    restored = target / "mydir"
    assert os.stat(restored / "hardlink.txt").st_ino == os.stat(restored / "text.txt").st_ino
    assert row.compression == compression
    assert row.is_encrypted() == bool(password)


def test_backup_returns_the_row_with_the_0_6_stored_filename_shape(tree, home):
    row = bakthat.backup(str(tree), password="")
    assert isinstance(row, models.Backups)
    assert re.fullmatch(r"mydir\.\d{14}\.tar\.zst", row.stored_filename)
    assert row.filename == "mydir"
    assert row.backend == "local"
    assert abs(row.backup_date - time.time()) < 60
    assert row.size == (store_dir(home) / row.stored_filename).stat().st_size
    assert len(row.sha256) == 64 and len(row.backend_hash) == 128
    assert row.metadata["is_enc"] is False and row.metadata["client"] == row.host
    assert models.Backups.get(models.Backups.stored_filename == row.stored_filename).id == row.id


def test_encrypted_backup_is_stored_as_an_age_file(tree, home):
    row = bakthat.backup(str(tree), password="pw", conf=FAST)
    assert row.stored_filename.endswith(".tar.zst.age")
    assert (store_dir(home) / row.stored_filename).read_bytes().startswith(b"age-encryption.org/v1\n")
    assert row.encryption == "age-scrypt"


def test_each_archive_has_a_manifest_that_describes_it(tree, home):
    row = bakthat.backup(str(tree), password="pw", tags="daily db", conf=FAST)
    manifest = json.loads((store_dir(home) / (row.stored_filename + ".manifest.json")).read_text())
    assert manifest["name"] == "mydir"
    assert manifest["sha256"] == row.sha256
    assert manifest["size"] == row.size
    assert manifest["tags"] == ["daily", "db"]
    assert manifest["compression"] == "zstd" and manifest["encryption"] == "age-scrypt"
    assert manifest["backup_date"] == row.backup_date
    assert manifest["host"] == row.host and manifest["format_version"] == 1
    assert manifest["header_sha256"] == row.metadata["header_sha256"]


def test_developer_guide_first_example_runs_as_written(tmp_path, monkeypatch):
    source = make_tree(tmp_path / "dir" / "i" / "wanto" / "bak")
    monkeypatch.chdir(tmp_path / "work")
    bakthat_conf = {'access_key': 'YOURACCESSKEY',
                    'secret_key': 'YOURSECRETKEY',
                    'glacier_vault': 'yourvault',
                    's3_bucket': 'yours3bucket',
                    'region_name': 'eu-west-1',
                    'rotation': {'days': 7,
                                 'first_week_day': 5,
                                 'months': 6,
                                 'weeks': 6}}

    bakthat.backup(str(source), conf=bakthat_conf)
    bakthat.ls()
    # restore in the current working directory
    bakthat.restore("bak", conf=bakthat_conf)

    assert snapshot(tmp_path / "work" / "bak") == snapshot(source)


def test_conf_dict_replaces_the_config_file_profile(tree, home, tmp_path):
    (home / ".bakthat.yml").write_text(f"default:\n  local_path: {tmp_path / 'from-file'}\n")
    bakthat.backup(str(tree), password="", conf={"local_path": str(tmp_path / "from-conf")})
    assert list((tmp_path / "from-conf").glob("mydir.*.tar.zst"))
    assert not (tmp_path / "from-file").exists()


def test_config_file_profile_is_used_without_conf(tree, home, tmp_path):
    (home / ".bakthat.yml").write_text(
        f"default:\n  local_path: {tmp_path / 'a'}\nother:\n  local_path: {tmp_path / 'b'}\n  compression: gzip\n"
    )
    bakthat.backup(str(tree), password="", profile="other")
    assert list((tmp_path / "b").glob("mydir.*.tgz"))
    assert not (tmp_path / "a").exists()


def test_unknown_profile_is_a_config_error_naming_the_known_ones(tree, home):
    (home / ".bakthat.yml").write_text("default: {}\nwork: {}\n")
    with pytest.raises(ConfigError, match="no profile 'nope'.*default, work"):
        bakthat.backup(str(tree), password="", profile="nope")


def test_a_python_object_tag_in_the_config_is_refused(tree, home):
    (home / ".bakthat.yml").write_text("default: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        bakthat.backup(str(tree), password="")


def test_a_single_file_backs_up_and_restores_under_its_name(tmp_path):
    source = tmp_path / "data" / "dump.sql"
    source.parent.mkdir()
    source.write_text("CREATE TABLE t (id int);\n")
    row = bakthat.backup(str(source), password="")
    assert row.filename == "dump.sql"
    bakthat.restore("dump.sql", target=tmp_path / "out")
    assert (tmp_path / "out" / "dump.sql").read_text() == source.read_text()


@pytest.mark.parametrize("gitignore", [False, True])
def test_excludes_come_from_bakthatexclude_the_exclude_file_and_gitignore_only_when_asked(tree, tmp_path, gitignore):
    (tree / ".bakthatexclude").write_text("*.bin\n")
    (tree / ".gitignore").write_text("sub/\n!sub/\n*.md\n")
    exclude_file = tmp_path / "excl"
    exclude_file.write_text("empty.txt\n")
    bakthat.backup(str(tree), password="", exclude_file=str(exclude_file), conf={"exclude_gitignore": gitignore})
    bakthat.restore("mydir", target=tmp_path / "out")
    restored = {p.relative_to(tmp_path / "out" / "mydir").as_posix() for p in (tmp_path / "out" / "mydir").rglob("*")}
    assert "random.bin" not in restored
    assert "empty.txt" not in restored
    assert ("sub/deeper/note.md" in restored) is not gitignore
    assert "sub/deeper" in restored and "text.txt" in restored


def test_a_missing_exclude_file_is_a_config_error(tree):
    with pytest.raises(ConfigError, match="exclude file"):
        bakthat.backup(str(tree), password="", exclude_file="/nonexistent/excludes")


def test_backing_up_home_leaves_out_the_store_and_the_catalog(home, tmp_path):
    (home / "notes.txt").write_text("mine\n")
    bakthat.backup(str(home), password="")
    bakthat.backup(str(home), password="")
    bakthat.restore("home", target=tmp_path / "out")
    restored = sorted(p.name for p in (tmp_path / "out" / "home").iterdir())
    assert restored == [".cache", "notes.txt"]
    assert list((tmp_path / "out" / "home" / ".cache").iterdir()) == [], "the index cache is left out"


def test_backup_of_a_missing_path_fails_and_records_nothing(home):
    from bakthat.archive import SourceError

    with pytest.raises(SourceError, match="missing"):
        bakthat.backup(str(home / "missing"), password="")
    assert bakthat.search() == []
    assert [path for path in store_dir(home).rglob("*") if path.is_file()] == []


def test_search_filters_by_name_tags_destination_and_date(tree):
    a = bakthat.backup(str(tree), password="", tags="daily db")
    b = bakthat.backup(str(tree), password="", tags=["weekly"], custom_filename="other")
    assert [r.id for r in bakthat.search(tags="daily")] == [a.id]
    assert [r.id for r in bakthat.search(tags="daily db")] == [a.id]
    assert bakthat.search(tags="daily weekly") == []
    assert [r.id for r in bakthat.search(name="other")] == [b.id]
    assert {r.id for r in bakthat.search("ydi")} == {a.id}
    assert len(bakthat.search(destination="local")) == 2
    assert bakthat.search(destination="s3") == []
    assert len(bakthat.search(since=a.backup_date)) == 2
    assert bakthat.search(until=a.backup_date - 10) == []


def test_two_backups_in_the_same_second_get_distinct_stored_filenames(tree):
    rows = [bakthat.backup(str(tree), password="") for _ in range(3)]
    assert len({r.stored_filename for r in rows}) == 3


def test_a_full_store_fails_the_backup_cleanly(tree, home, monkeypatch):
    import errno

    from bakthat.backends import local

    (tree / "large.bin").write_bytes(os.urandom(5 << 20))
    real_write = local.LocalUpload.write
    calls = {"n": 0}

    def write_until_full(self, data):
        calls["n"] += 1
        if calls["n"] > 2:
            raise local._storage_error("writing", self.key, OSError(errno.ENOSPC, "No space left on device"))
        return real_write(self, data)

    monkeypatch.setattr(local.LocalUpload, "write", write_until_full)
    with pytest.raises(StorageError, match="no space left"):
        bakthat.backup(str(tree), password="", compression="none")
    assert bakthat.search() == []
    assert stored_files(home) == []


def test_public_key_backups_need_the_identity_to_restore(tree, tmp_path):
    from bakthat import crypto

    identity, recipient = crypto.generate_identity()
    identity_file = tmp_path / "identity.txt"
    identity_file.write_text(f"# backup key\n{identity}\n")
    backup_host = {"encryption_recipients": [recipient]}
    row = bakthat.backup(str(tree), conf=backup_host)
    assert row.encryption == "age-x25519" and row.stored_filename.endswith(".age")
    with pytest.raises(PasswordRequiredError, match="identity_file"):
        bakthat.restore("mydir", target=tmp_path / "out", conf=backup_host)
    other_identity, _ = crypto.generate_identity()
    (tmp_path / "other.txt").write_text(other_identity + "\n")
    with pytest.raises(WrongPasswordError):
        bakthat.restore("mydir", target=tmp_path / "out", conf={"identity_file": str(tmp_path / "other.txt")})
    bakthat.restore("mydir", target=tmp_path / "out", conf={"identity_file": str(identity_file)})
    assert snapshot(tmp_path / "out" / "mydir") == snapshot(tree)


def test_a_malformed_recipient_fails_the_backup_naming_it_and_stores_nothing(tree, home):
    # The file keys are made in a thread while the walk starts: the error still ends the
    # backup, as a ConfigError, with nothing under a final name and no catalog row.
    with pytest.raises(ConfigError, match="malformed age recipient 'age1bogus'"):
        bakthat.backup(str(tree), conf={"encryption_recipients": ["age1bogus"]})
    assert stored_files(home) == [] and list(models.Backups.select()) == []


def test_no_secret_reaches_a_log_record_or_an_error_message(tree, tmp_path, caplog):
    import logging

    secret = "Tr0ub4dor&3-unique-secret"
    caplog.set_level(logging.DEBUG)
    bakthat.backup(str(tree), password=secret, conf=FAST)
    bakthat.restore("mydir", password=secret, target=tmp_path / "out", conf=FAST)
    with pytest.raises(WrongPasswordError) as wrong:
        bakthat.restore("mydir", password=secret + "x", target=tmp_path / "out2", conf=FAST)
    assert secret not in caplog.text
    assert secret not in str(wrong.value)
    assert all(secret not in str(record.args) for record in caplog.records)


def test_a_file_that_shrinks_while_it_is_read_makes_a_partial_but_valid_archive(tmp_path):
    source = tmp_path / "data" / "logs"
    source.mkdir(parents=True)
    size = (1 << 20) + 100_000  # two reads: it shrinks between them
    (source / "app.log").write_bytes(b"x" * size)
    (source / "other.txt").write_text("fine\n")

    def truncate_after_the_first_chunk(count):
        if (source / "app.log").stat().st_size == size:
            os.truncate(source / "app.log", 10)

    row = bakthat.backup(str(source), password="", progress=truncate_after_the_first_chunk)
    [changed] = row.metadata["changed"]
    assert changed["path"].endswith("app.log") and "zeros" in changed["reason"]
    assert row.metadata["partial"] is True
    bakthat.restore("logs", target=tmp_path / "out")
    restored = (tmp_path / "out" / "logs" / "app.log").read_bytes()
    assert restored == b"x" * (1 << 20) + bytes(100_000)
    assert (tmp_path / "out" / "logs" / "other.txt").read_text() == "fine\n"


def test_backup_reports_progress_in_bytes_of_file_data(tree):
    seen = []
    row = bakthat.backup(str(tree), password="", progress=seen.append)
    assert sum(seen) == row.source_size > 0


def test_backups_of_one_name_started_in_the_same_second_are_never_dated_in_the_future(tree, home):
    import subprocess
    import sys

    from tests.conftest import ROOT

    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "bakthat", "backup", str(tree), "--prompt", "no", "--json"],
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(6)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0] * 6, outputs
    rows = [json.loads(stdout) for stdout, _ in outputs]
    assert len({row["stored_filename"] for row in rows}) == 6
    for row in rows:
        assert row["backup_date"] <= row["last_updated"], "the row was written before the time it is dated"
    plan = bakthat.rotate_backups("mydir", rotation={"keep_last": 2}, dry_run=True).plan
    assert not [d for d in plan.decisions if any(rule["rule"] == "future" for rule in d.rules)]
