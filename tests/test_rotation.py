"""Retention on a real catalog and store (bakthat.rotation): rotate_backups and
delete_older_than, their locking, events and failures.  The planning itself is tested in
tests/test_rotation_plan.py."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone

import pytest

import bakthat
from bakthat import models
from bakthat.errors import ConfigError, LockedError, PartialFailure, StorageError
from bakthat.rotation import RefusedError, delete_older_than, name_lock, rotate_backups
from tests.conftest import ROOT

UTC = timezone.utc
DAY = 86400
# 2026-11-22 12:00:00 UTC, a Sunday
NOW = int(datetime(2026, 11, 22, 12, 0, tzinfo=UTC).timestamp())


def aware(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


# -- the API on a real catalog and store ------------------------------------------------


def make_history(name, dates, tags=None, objects=True, profile="default", conf=None, destination=None):
    """Create catalog rows (and small stored objects) for ``name`` at the given dates."""
    from bakthat.core import _context
    from bakthat.manifest import SUFFIX as MANIFEST_SUFFIX
    from bakthat.utils import utc_stamp

    ctx = _context(destination, profile, None, conf)
    rows = []
    for index, when in enumerate(dates):
        stored = f"{name}.{utc_stamp(int(when))}.tar.zst"
        if objects:
            ctx.backend.put(stored, b"archive of " + stored.encode())
            ctx.backend.put(stored + MANIFEST_SUFFIX, b"{}")
        rows.append(models.Backups.create(
            backend=ctx.destination, backend_hash=ctx.backend.backend_hash, filename=name,
            stored_filename=stored, backup_date=int(when), last_updated=int(when), size=10,
            tags=(tags[index] if tags else ""), profile=profile, metadata={},
        ))
    return rows


def state(home):
    """Everything a rotation may change: the store's files and every catalog row."""
    store = sorted(p.relative_to(home).as_posix() for p in (home / ".bakthat_store").rglob("*"))
    catalog = [row.to_dict() for row in models.Backups.select().order_by(models.Backups.id)]
    return store, catalog


def live_names(name=None):
    return sorted(r.stored_filename for r in models.Backups.search(name=name))


@pytest.fixture
def messages():
    """Collect the ``bakthat`` logger's messages whatever its propagation (the CLI turns it off)."""
    import logging

    collected = []

    class Collect(logging.Handler):
        def emit(self, record):
            collected.append(record.getMessage())

    handler = Collect(logging.DEBUG)
    logger = logging.getLogger("bakthat")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield collected
    logger.removeHandler(handler)
    logger.setLevel(level)


def write_config(home, text):
    (home / ".bakthat.yml").write_text(textwrap.dedent(text))


DAILY = [NOW - k * DAY for k in range(20)]


def test_rotate_backups_deletes_what_the_plan_says_and_returns_the_rows(home):
    write_config(home, "default:\n  rotation: {days: 3, weeks: 2}\n")
    rows = make_history("web", DAILY)
    deleted = rotate_backups("web", now=NOW)
    plan = deleted.plan
    assert [r.id for r in deleted] == [r.id for r in plan.to_delete]
    assert isinstance(deleted, list) and all(isinstance(r, models.Backups) for r in deleted)
    # days: Nov 22, 21, 20; weeks (from Saturday): Nov 21 week -> Nov 22 (newest), Nov 14 week -> Nov 20
    kept = sorted(aware(r.backup_date).strftime("%m-%d") for r in models.Backups.search(name="web"))
    assert kept == ["11-20", "11-21", "11-22"]
    for row in deleted:
        stored = models.Backups.get_by_id(row.id)
        assert stored.is_deleted and stored.state == "deleted"
        assert not (home / ".bakthat_store" / row.stored_filename).exists()
        assert not (home / ".bakthat_store" / (row.stored_filename + ".manifest.json")).exists()
    assert len(deleted) == len(rows) - 3


def test_rotate_backups_matches_the_exact_name_in_one_destination_and_profile(home, tmp_path):
    write_config(home, f"""\
        default:
          rotation: {{keep_last: 1}}
        other:
          rotation: {{keep_last: 1}}
        elsewhere:
          local_path: {tmp_path / 'elsewhere'}
          rotation: {{keep_last: 1}}
        """)
    make_history("web", DAILY[:3])
    make_history("webapp", DAILY[:3])
    make_history("we", DAILY[:3])
    from bakthat.utils import utc_stamp

    other = make_history("web", [d - 1 for d in DAILY[:3]], profile="other")
    make_history("web", [d - 2 for d in DAILY[:3]], profile="elsewhere")
    deleted = rotate_backups("web", now=NOW)
    assert len(deleted) == 2 and {r.filename for r in deleted} == {"web"} and {r.profile for r in deleted} == {"default"}
    assert len(models.Backups.search(name="webapp")) == 3 and len(models.Backups.search(name="we")) == 3
    assert len(models.Backups.search(name="web")) == 7
    assert rotate_backups("web", profile="other", now=NOW)[0].id == other[-1].id
    assert len(rotate_backups("web", profile="elsewhere", now=NOW)) == 2
    assert [name.split(".")[1] for name in live_names("web")] == [utc_stamp(DAILY[0] - k) for k in (2, 1, 0)]


def test_no_rotation_block_is_a_config_error_that_says_what_to_add(home):
    make_history("web", DAILY[:3])
    with pytest.raises(ConfigError, match=r"no rotation policy in profile 'default' .*add a 'rotation:' block"):
        rotate_backups("web")
    assert len(live_names("web")) == 3


def test_the_rotation_keyword_replaces_the_profile_policy(home):
    make_history("web", DAILY[:5])
    assert len(rotate_backups("web", rotation={"keep_last": 2}, now=NOW)) == 3


def test_the_0_6_day_keywords_are_ignored_with_a_warning(home, messages):
    write_config(home, "default:\n  rotation: {keep_last: 4}\n")
    make_history("web", DAILY[:5])
    assert len(rotate_backups("web", days=1, now=NOW)) == 1
    assert any("ignores days=" in message for message in messages)


def test_a_dry_run_changes_neither_storage_nor_catalog_and_its_events_say_it_is_one(home):
    from bakthat.eventing import current_session

    write_config(home, "default:\n  rotation: {days: 2}\n")
    make_history("web", DAILY)
    fired = []
    bakthat.events.before_rotate_backups += lambda session_id: fired.append(("before", current_session().dry_run))
    bakthat.events.on_rotate_backups += lambda session_id, result: fired.append(("on", result.dry_run))
    bakthat.events.before_delete_older_than += lambda session_id: fired.append(("before", current_session().dry_run))
    before = state(home)
    would = rotate_backups("web", dry_run=True, now=NOW)
    assert len(would) == len(DAILY) - 2 and would.plan.dry_run
    assert state(home) == before
    would_age = delete_older_than("web", "3D", dry_run=True, now=NOW)
    assert len(would_age) == len(DAILY) - 4
    assert state(home) == before
    assert fired == [("before", True), ("on", True), ("before", True)]
    assert [r.id for r in rotate_backups("web", now=NOW)] == [r.id for r in would]
    assert fired[-2:] == [("before", False), ("on", False)]


def test_events_get_the_session_and_the_deleted_rows(home):
    write_config(home, "default:\n  rotation: {keep_last: 2}\n")
    make_history("web", DAILY[:5])
    seen = []
    bakthat.events.before_rotate_backups += lambda session_id: seen.append(("before_rotate", session_id))
    bakthat.events.on_rotate_backups += lambda session_id, result: seen.append(("on_rotate", session_id, list(result)))
    bakthat.events.before_delete_older_than += lambda session_id: seen.append(("before_dot", session_id))
    bakthat.events.on_delete_older_than += lambda session_id, result: seen.append(("on_dot", session_id, list(result)))
    deleted = rotate_backups("web", now=NOW)
    assert seen[0][0] == "before_rotate" and seen[1][:2] == ("on_rotate", seen[0][1])
    assert [r.id for r in seen[1][2]] == [r.id for r in deleted] and len(deleted) == 3
    older = delete_older_than("web", "12h", now=NOW)
    assert seen[2][0] == "before_dot" and seen[3][:2] == ("on_dot", seen[2][1])
    assert [r.id for r in seen[3][2]] == [r.id for r in older] and len(older) == 1


def test_a_failure_fires_on_failure_not_on(home):
    make_history("web", DAILY[:3])
    failures = []
    bakthat.events.on_failure += lambda session_id, action, exc: failures.append((action, type(exc)))
    bakthat.events.on_rotate_backups += lambda session_id, result: failures.append("on")
    with pytest.raises(ConfigError):
        rotate_backups("web")
    assert failures == [("rotate_backups", ConfigError)]


def test_a_refused_policy_deletes_nothing_and_force_keeps_only_the_newest(home):
    write_config(home, "default:\n  rotation: {days: 7}\n")
    make_history("web", [NOW - 100 * DAY, NOW - 90 * DAY, NOW - 80 * DAY])
    before = state(home)
    with pytest.raises(RefusedError, match="would delete all 3 backups but the newest") as raised:
        rotate_backups("web", now=NOW)
    assert isinstance(raised.value, ConfigError) and raised.value.exit_code == 2
    assert raised.value.plan.refused
    assert state(home) == before
    assert len(rotate_backups("web", now=NOW, force=True)) == 2
    assert len(live_names("web")) == 1


def test_pinned_backups_survive_rotation_and_age_unless_forced(home):
    write_config(home, "default:\n  rotation: {keep_last: 1}\n")
    make_history("web", DAILY[:4], tags=["", "keep daily", "", "keep"])
    assert {r.backup_date for r in rotate_backups("web", now=NOW)} == {DAILY[2]}
    assert delete_older_than("web", "1h", now=NOW) == []
    assert len(delete_older_than("web", "1h", now=NOW, force=True)) == 2
    assert live_names("web") == [models.Backups.get(models.Backups.backup_date == DAILY[0]).stored_filename]


def test_delete_older_than_keeps_the_newest_and_the_recent(home):
    write_config(home, "default: {}\n")
    make_history("web", DAILY[:10])
    make_history("webapp", DAILY[:10])
    assert delete_older_than("web", "1Y", now=NOW) == []
    deleted = delete_older_than("web", "3D", now=NOW)
    assert sorted(r.backup_date for r in deleted) == sorted(DAILY[4:10])
    assert len(live_names("web")) == 4 and len(live_names("webapp")) == 10
    with pytest.raises(RefusedError, match="every backup of 'webapp' is older than 1h"):
        delete_older_than("webapp", "1h", now=NOW + DAY)
    assert len(delete_older_than("webapp", "1h", now=NOW + DAY, force=True)) == 9


def test_delete_older_than_with_a_malformed_interval_deletes_nothing(home):
    make_history("web", DAILY[:3])
    with pytest.raises(ConfigError, match="bad interval '1z'"):
        delete_older_than("web", "1z")
    assert len(live_names("web")) == 3


def test_an_archive_already_gone_is_a_warning(home, messages):
    write_config(home, "default:\n  rotation: {keep_last: 1}\n")
    rows = make_history("web", DAILY[:2])
    (home / ".bakthat_store" / rows[1].stored_filename).unlink()
    assert [r.id for r in rotate_backups("web", now=NOW)] == [rows[1].id]
    assert any("already gone" in message for message in messages)


def test_failed_deletions_continue_then_raise_partial_failure_and_are_retried(home, monkeypatch):
    from bakthat.backends import local

    write_config(home, "default:\n  rotation: {keep_last: 1}\n")
    rows = make_history("web", DAILY[:5])
    broken = rows[2].stored_filename
    original = local.Backend.delete

    def flaky(self, key):
        if key == broken:
            raise StorageError("disk on fire")
        return original(self, key)

    monkeypatch.setattr(local.Backend, "delete", flaky)
    with pytest.raises(PartialFailure, match="disk on fire") as raised:
        rotate_backups("web", now=NOW)
    assert raised.value.exit_code == 3
    assert broken in str(raised.value)
    assert sorted(r.id for r in raised.value.deleted) == sorted(r.id for r in rows[1:5] if r.stored_filename != broken)
    stuck = models.Backups.get_by_id(rows[2].id)
    assert stuck.is_deleted and stuck.state == "deleting"
    assert (home / ".bakthat_store" / broken).exists()
    monkeypatch.setattr(local.Backend, "delete", original)
    rehearsal = rotate_backups("web", now=NOW, dry_run=True)
    assert [r.id for r in rehearsal] == [rows[2].id] and rehearsal.plan.to_retry[0].id == rows[2].id
    assert models.Backups.get_by_id(rows[2].id).state == "deleting"
    retried = rotate_backups("web", now=NOW)
    assert [r.id for r in retried] == [rows[2].id]
    assert retried.plan.decision(retried[0]).action == "retry"
    assert models.Backups.get_by_id(rows[2].id).state == "deleted"
    assert not (home / ".bakthat_store" / broken).exists()


HOLDER = """
import sys, time
from bakthat.core import _context, delete_row
from bakthat import models
from bakthat.rotation import name_lock
ctx = _context(None, "default", None, None)
with name_lock(ctx.settings, ctx.backend.backend_hash, sys.argv[1], 5):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    for stored in sys.argv[3:]:
        delete_row(ctx, models.Backups.get(models.Backups.stored_filename == stored))
print("released", flush=True)
"""


def hold_lock(name, seconds, *delete):
    """Start a process that holds the lock of ``name``, deletes ``delete`` rows, then releases it."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, name, str(seconds), *delete],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout.readline().strip() == "locked"
    return process


def test_a_second_run_waits_for_the_lock_then_raises_locked(home):
    write_config(home, "default:\n  rotation: {keep_last: 1}\n")
    make_history("web", DAILY[:3])
    make_history("db", DAILY[:3])
    holder = hold_lock("web", 3)
    try:
        started = time.monotonic()
        with pytest.raises(LockedError, match="another bakthat process is deleting backups of 'web'") as raised:
            rotate_backups("web", now=NOW, lock_timeout=0.5)
        assert 0.4 < time.monotonic() - started < 2.5
        assert raised.value.exit_code == 12 and "pid" in str(raised.value)
        assert len(rotate_backups("db", now=NOW, lock_timeout=0.5)) == 2  # another name is not blocked
    finally:
        holder.wait(timeout=30)
    assert len(live_names("web")) == 3
    assert len(rotate_backups("web", now=NOW, lock_timeout=0.5)) == 2


def test_rows_are_read_after_the_lock_so_a_concurrent_deletion_is_seen(home):
    write_config(home, "default:\n  rotation: {keep_last: 3}\n")
    rows = make_history("web", DAILY[:10])
    # While it holds the lock, another process deletes the 2nd and 3rd newest backups.
    holder = hold_lock("web", 0.5, rows[1].stored_filename, rows[2].stored_filename)
    try:
        deleted = rotate_backups("web", now=NOW, lock_timeout=30)
    finally:
        holder.wait(timeout=30)
    assert {rows[1].id, rows[2].id}.isdisjoint(r.id for r in deleted)
    assert len(live_names("web")) == 3  # the policy's three, not one
    assert len(deleted) == 5


def test_an_unwritable_lock_directory_is_a_clear_error(tmp_path):
    from bakthat.errors import BakthatError

    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(BakthatError, match="cannot open the lock file"):
        with name_lock({"database": str(tmp_path / "file" / "c.sqlite")}, "h", "web", 0):
            pass


def test_the_lock_file_lives_beside_the_catalog(home, tmp_path):
    from bakthat.rotation import lock_directory

    assert lock_directory({"database": "~/.bakthat.sqlite"}) == home / ".bakthat.locks"
    assert lock_directory({"database": str(tmp_path / "x" / "c.sqlite")}) == tmp_path / "x" / ".bakthat.locks"
    assert lock_directory({"database_url": "postgresql://h/db"}) == home / ".bakthat.locks"
    with name_lock({"database": str(tmp_path / "c.sqlite")}, "h", "web", 1) as path:
        assert path.parent == tmp_path / ".bakthat.locks" and "pid" in path.read_text()
        with pytest.raises(LockedError):
            with name_lock({"database": str(tmp_path / "c.sqlite")}, "h", "web", 0):
                pass
        with name_lock({"database": str(tmp_path / "c.sqlite")}, "h", "db", 0):
            pass


# -- chains: the bases of kept backups are kept ---------------------------------------------


def test_delete_older_than_keeps_the_chain_of_the_backup_it_keeps_and_deletes_an_older_chain(tree, tmp_path):
    rows = [bakthat.backup(str(tree), password="", level="full")]
    (tree / "one.txt").write_text("1")
    rows.append(bakthat.backup(str(tree), password="", level="incr"))
    rows.append(bakthat.backup(str(tree), password="", level="full"))
    (tree / "two.txt").write_text("2")
    rows.append(bakthat.backup(str(tree), password="", level="incr"))
    (tree / "three.txt").write_text("3")
    rows.append(bakthat.backup(str(tree), password="", level="incr"))
    # Everything is older than the interval (force: the newest alone is kept), and the
    # newest's chain with it.
    deleted = bakthat.delete_older_than("mydir", "5s", now=rows[-1].backup_date + 10, force=True)
    assert sorted(row.stored_filename for row in deleted) == sorted(row.stored_filename for row in rows[:2])
    plan = deleted.plan
    from bakthat.levels import utc_iso

    assert plan.decision(rows[3]).reasons == ["kept: base of incremental of " + utc_iso(rows[4].backup_date)]
    assert plan.decision(rows[2]).rules == [{"rule": "base", "of": rows[4].stored_filename, "dependents": 1}]
    bakthat.restore("mydir", target=tmp_path / "out", password="")
    assert (tmp_path / "out" / "mydir" / "three.txt").read_text() == "3"
    assert (tmp_path / "out" / "mydir" / "two.txt").read_text() == "2"


def test_a_rotation_whose_only_deletions_are_bases_is_not_refused(tree):
    rows = [bakthat.backup(str(tree), password="", level="full")]
    (tree / "one.txt").write_text("1")
    rows.append(bakthat.backup(str(tree), password="", level="incr"))
    kept = bakthat.delete_older_than("mydir", "1s", now=rows[-1].backup_date + 3600)
    assert kept == [] and [d.action for d in kept.plan.decisions] == ["keep", "keep"]
