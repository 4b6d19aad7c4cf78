"""Dry runs of backup, restore and delete: what would happen is reported, nothing is written."""

from __future__ import annotations

import re

import pytest

import bakthat
from bakthat import models
from bakthat.errors import IntegrityError, WrongPasswordError
from bakthat.eventing import current_session, events
from tests.conftest import snapshot

FAST = {"scrypt_work_factor": 10}


def everything(home, *more) -> dict:
    """A snapshot of every file bakthat may write: the store, the catalog, and the given trees."""
    state = {}
    for root in (home, *more):
        if root.exists():
            for path in sorted(root.rglob("*")):
                if path.is_file() and not path.name.endswith(("-wal", "-shm")):
                    state[str(path)] = path.read_bytes()
    return state


def rows() -> list:
    models.unbind()
    return [row.stored_filename for row in bakthat.search(include_deleted=True)]


def test_a_backup_dry_run_reports_what_would_be_stored_and_stores_nothing(tree, home):
    (tree / ".bakthatexclude").write_text("*.bin\nsub/\n")
    bakthat.backup(str(tree), password="", custom_filename="other")  # a catalog exists already
    before = everything(home)

    plan = bakthat.backup(str(tree), password="", dry_run=True)

    assert plan.dry_run
    assert re.fullmatch(r"mydir\.\d{14}\.tar\.zst", plan.stored_filename)
    assert plan.filename == "mydir" and plan.destination == "local" and plan.encryption == "none"
    assert sorted(plan.excluded) == ["random.bin", "sub/"]
    kept_files = [p for p in tree.rglob("*") if p.is_file() and not p.is_symlink() and p.suffix != ".bin"
                  and "sub" not in p.relative_to(tree).parts]
    assert plan.source_size == sum(p.stat().st_size for p in kept_files if p.name != "hardlink.txt")
    # the top-level directory, its entries minus the excluded ones
    assert plan.file_count == 1 + len([p for p in tree.iterdir() if p.name not in ("random.bin", "sub")])
    assert everything(home) == before
    assert rows() == [r for r in rows() if not r.startswith("mydir")]


def test_a_backup_dry_run_names_the_encryption_without_asking(tree, home, monkeypatch):
    monkeypatch.setattr("bakthat.passwords.interactive", lambda: True)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": pytest.fail("a dry run must not prompt"))
    assert bakthat.backup(str(tree), dry_run=True).encryption == "age-scrypt"
    assert bakthat.backup(str(tree), password="pw", dry_run=True).stored_filename.endswith(".tar.zst.age")
    assert not (home / ".bakthat_store").exists() or not any((home / ".bakthat_store").rglob("*.age"))


def test_dry_run_events_fire_with_the_flag_visible(tree, home):
    seen = []
    events.before_backup += lambda session_id: seen.append(("before_backup", current_session().dry_run))
    events.on_backup += lambda session_id, result: seen.append(("on_backup", result.dry_run, current_session().dry_run))
    events.before_restore += lambda session_id: seen.append(("before_restore", current_session().dry_run))
    events.on_delete += lambda session_id, result: seen.append(("on_delete", result.dry_run))
    bakthat.backup(str(tree), password="", dry_run=True)
    bakthat.backup(str(tree), password="")
    bakthat.restore("mydir", target=tree.parent / "out", dry_run=True)
    bakthat.delete("mydir", dry_run=True)
    assert seen == [
        ("before_backup", True), ("on_backup", True, True),
        ("before_backup", False), ("on_backup", False, False),
        ("before_restore", True),
        ("on_delete", True),
    ]


def test_a_restore_dry_run_verifies_the_archive_and_lists_what_it_would_write(tree, home, tmp_path):
    bakthat.backup(str(tree), password="pw", conf=FAST)
    target = tmp_path / "target"
    (target / "mydir").mkdir(parents=True)
    (target / "mydir" / "text.txt").write_text("mine")
    before = everything(home, target)

    plan = bakthat.restore("mydir", password="pw", target=target, conf=FAST, dry_run=True)

    assert plan.dry_run and plan.row.filename == "mydir"
    assert "mydir/sub/deeper/note.md" in plan.would_write and "mydir" in plan.would_write
    assert plan.entries == len(snapshot(tree))
    assert plan.conflicts == [
        {"path": "mydir", "existing": "directory", "archive": "directory", "outcome": "refused"},
        {"path": "mydir/text.txt", "existing": "file", "archive": "hard link", "outcome": "refused"},
    ]
    assert plan.refused
    replacing = bakthat.restore("mydir", password="pw", target=target, conf=FAST, dry_run=True, overwrite=True)
    assert replacing.conflicts == [
        {"path": "mydir/text.txt", "existing": "file", "archive": "hard link", "outcome": "replaced"}
    ]
    assert not replacing.refused
    assert everything(home, target) == before


def test_a_restore_dry_run_finds_damage_and_wrong_passwords_as_a_restore_would(tree, home, tmp_path):
    row = bakthat.backup(str(tree), password="pw", conf=FAST)
    target = tmp_path / "target"
    with pytest.raises(WrongPasswordError):
        bakthat.restore("mydir", password="nope", target=target, conf=FAST, dry_run=True)
    archive = home / ".bakthat_store" / row.stored_filename
    data = bytearray(archive.read_bytes())
    data[-100] ^= 0xFF
    archive.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        bakthat.restore("mydir", password="pw", target=target, conf=FAST, dry_run=True)
    assert not target.exists()


def test_a_delete_dry_run_names_the_backup_and_deletes_nothing(tree, home):
    row = bakthat.backup(str(tree), password="")
    before = everything(home)
    plan = bakthat.delete("mydir", dry_run=True)
    assert plan.dry_run and plan.row.id == row.id and plan.stored_filename == row.stored_filename
    assert everything(home) == before
    assert models.Backups.get_by_id(row.id).state == "ok"
