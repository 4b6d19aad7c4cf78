"""Dry runs of backup, restore and delete (bakthat.dryrun): what would happen is reported,
nothing is written.  First the plans themselves, then the dry runs through the API."""

from __future__ import annotations

import io
import os
import re
import tarfile
from types import SimpleNamespace

import pathspec
import pytest

import bakthat
from bakthat import dryrun, models
from bakthat.dryrun import BackupPlan, DeletePlan, RestorePlan, plan_backup, plan_entry, plan_restore
from bakthat.errors import IntegrityError, UnsafeArchiveError, WrongPasswordError
from bakthat.tarwriter import SourceError, write_tar
from bakthat.eventing import current_session, events
from tests.conftest import snapshot

FAST = {"scrypt_work_factor": 10}


# -- the plans ---------------------------------------------------------------------------------


def planned(source, excludes=None, skip=(), **changes) -> BackupPlan:
    options = dict(stored_filename="mydir.20261122120000.tar.zst", destination="local", compression="zstd",
                   encryption="none", tags="daily")
    options.update(changes)
    return plan_backup(source, source.name, excludes, list(skip), **options)


def test_a_backup_plan_walks_as_a_backup_would_and_counts_the_tar_it_would_write(tree):
    spec = pathspec.GitIgnoreSpec.from_lines(["*.bin", "sub/"])
    plan = planned(tree, spec, name="site", tags="a b")
    written = io.BytesIO()
    stats = write_tar(tree, "mydir", written, pathspec.GitIgnoreSpec.from_lines(["*.bin", "sub/"]))
    assert (plan.file_count, plan.source_size, plan.tar_size) == (stats.files, stats.bytes, len(written.getvalue()))
    assert sorted(plan.excluded) == ["random.bin", "sub/"] and plan.excluded_count == 2
    assert (plan.filename, plan.source_path, plan.tags, plan.dry_run) == ("site", str(tree.absolute()), "a b", True)
    assert planned(tree).filename == "mydir"  # the archive's top entry by default


def test_a_backup_plan_lists_at_most_max_listed_exclusions_and_counts_them_all(tree, monkeypatch):
    monkeypatch.setattr(dryrun, "MAX_LISTED", 2)
    plan = planned(tree, pathspec.GitIgnoreSpec.from_lines(["*"]))
    assert len(plan.excluded) == 2 and plan.excluded_count > 2


def test_a_backup_plan_leaves_out_bakthats_own_files_as_a_backup_would(tree):
    whole = planned(tree)
    without = planned(tree, skip=[str(tree / "text.txt")])  # and its hard link: the same inode
    assert without.file_count == whole.file_count - 2
    assert without.source_size == whole.source_size - (tree / "text.txt").stat().st_size


def test_a_backup_plan_of_a_missing_source_is_a_source_error(tmp_path):
    with pytest.raises(SourceError):
        planned(tmp_path / "missing")


def test_a_backup_plan_describes_itself_and_its_dict_holds_copies():
    plan = BackupPlan("www", "www.1.tar.zst", "s3", "/srv/www", "zstd", "age-scrypt", file_count=3, source_size=2048,
                      excluded=["a.log"], excluded_count=1, skipped=["/srv/www/x"])
    assert plan.describe().splitlines() == [
        "would store www.1.tar.zst in s3: 3 entries, 2.0 KiB of file data from /srv/www",
        "compression zstd, encryption age-scrypt",
        "1 excluded:", "  a.log",
        "1 could not be read and would be skipped:", "  /srv/www/x",
        "dry run: nothing was stored",
    ]
    data = plan.to_dict()
    data["excluded"].append("b.log")
    assert plan.excluded == ["a.log"] and data["dry_run"] is True


def tar_of(*members) -> io.BytesIO:
    """An uncompressed tar of ``(name, kind)`` members: ``file``, ``dir``, or ``link`` (symbolic)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind in members:
            info = tarfile.TarInfo(name)
            data = b""
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind == "link":
                info.type, info.linkname = tarfile.SYMTYPE, "elsewhere"
            else:
                data = name.encode()
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


ARCHIVE = [("./", "dir"), ("www", "dir"), ("www/a.txt", "file"), ("www/sub", "dir"), ("www/sub/b.txt", "file"),
           ("www/link", "link")]


def test_a_restore_plan_lists_what_it_would_write_then_verifies(tmp_path):
    verified = []
    plan = plan_restore("row", tar_of(*ARCHIVE), tmp_path, False, lambda: verified.append(True))
    assert plan.would_write == ["www", "www/a.txt", "www/sub", "www/sub/b.txt", "www/link"]
    assert (plan.entries, plan.bytes, plan.conflicts, plan.refused, verified) == (5, 22, [], False, [True])


def test_without_overwrite_an_existing_top_entry_is_refused_and_what_is_inside_it_not_listed_twice(tmp_path):
    (tmp_path / "www" / "sub").mkdir(parents=True)
    (tmp_path / "www" / "a.txt").write_text("mine")
    plan = plan_restore("row", tar_of(*ARCHIVE), tmp_path, False, lambda: None)
    assert plan.conflicts == [
        {"path": "www", "existing": "directory", "archive": "directory", "outcome": "refused"},
        {"path": "www/a.txt", "existing": "file", "archive": "file", "outcome": "refused"},
    ]
    assert plan.refused and plan.conflict_count == 2


def test_with_overwrite_files_are_replaced_directories_merged_and_a_kind_change_refused(tmp_path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "a.txt").write_text("mine")
    (tmp_path / "www" / "sub").write_text("a file where the archive has a directory")
    os.symlink("x", tmp_path / "www" / "link")
    plan = plan_restore("row", tar_of(*ARCHIVE), tmp_path, True, lambda: None)
    assert plan.conflicts == [
        {"path": "www/a.txt", "existing": "file", "archive": "file", "outcome": "replaced"},
        {"path": "www/sub", "existing": "file", "archive": "directory", "outcome": "refused"},
        {"path": "www/link", "existing": "symbolic link", "archive": "symbolic link", "outcome": "replaced"},
    ]
    assert plan.refused


def test_a_restore_plan_lists_at_most_max_listed_entries_and_counts_them_all(tmp_path, monkeypatch):
    monkeypatch.setattr(dryrun, "MAX_LISTED", 1)
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "a.txt").write_text("mine")
    plan = plan_restore("row", tar_of(*ARCHIVE), tmp_path, True, lambda: None)
    assert plan.would_write == ["www"] and plan.entries == 5
    (tmp_path / "www" / "sub").write_text("x")
    plan = plan_restore("row", tar_of(*ARCHIVE), tmp_path, True, lambda: None)
    assert len(plan.conflicts) == 1 and plan.conflict_count == 2


def test_a_hostile_or_damaged_archive_raises_as_a_restore_would_and_is_never_verified(tmp_path):
    verified = []
    with pytest.raises(UnsafeArchiveError):
        plan_restore("row", tar_of(("../escape.txt", "file")), tmp_path, False, lambda: verified.append(True))
    truncated = io.BytesIO(tar_of(*ARCHIVE).getvalue()[:1500])
    with pytest.raises(IntegrityError):
        plan_restore("row", truncated, tmp_path, False, lambda: verified.append(True))
    assert verified == []


def test_a_restore_plan_describes_itself_and_says_when_it_could_not_verify(tmp_path):
    row = SimpleNamespace(stored_filename="www.1.tar.zst", to_dict=lambda: {"stored_filename": "www.1.tar.zst"})
    plan = RestorePlan(row, "/restore", False, entries=2, bytes=3, would_write=["www", "www/a"], verified=False,
                       conflicts=[{"path": "www", "existing": "directory", "archive": "directory", "outcome": "refused"}],
                       conflict_count=1)
    text = plan.describe()
    assert text.startswith("www.1.tar.zst read (it cannot be verified): 2 entries, 3 B of file data\n")
    assert "the restore would stop before writing anything (use --overwrite to replace files)" in text
    assert text.endswith("dry run: nothing was written")
    data = plan.to_dict()
    assert data["backup"] == {"stored_filename": "www.1.tar.zst"} and data["refused"] is True and data["verified"] is False


def test_an_entry_plan_refuses_or_replaces_what_exists(tmp_path):
    final = tmp_path / "value.json"
    assert plan_entry("row", final, False).conflicts == [] and plan_entry("row", final, False).would_write == ["value.json"]
    final.write_text("old")
    assert plan_entry("row", final, False).conflicts[0]["outcome"] == "refused"
    assert plan_entry("row", final, True).conflicts[0]["outcome"] == "replaced"
    final.unlink()
    final.mkdir()
    assert plan_entry("row", final, True).conflicts[0] == {"path": "value.json", "existing": "directory",
                                                           "archive": "file", "outcome": "refused"}


def test_a_delete_plan_names_the_backup_and_its_manifest():
    row = SimpleNamespace(stored_filename="www.1.tar.zst", to_dict=lambda: {"id": 3, "stored_filename": "www.1.tar.zst"})
    plan = DeletePlan(row)
    assert plan.stored_filename == "www.1.tar.zst"
    assert plan.to_dict() == {"id": 3, "stored_filename": "www.1.tar.zst", "dry_run": True}
    assert plan.describe() == "would delete www.1.tar.zst (and its manifest); dry run: nothing was deleted"


# -- dry runs through the API ---------------------------------------------------------------


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
