"""bakthat check: the catalog against the store, and reading archives end to end."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

import bakthat
from bakthat import models
from bakthat.eventing import events


def store(home):
    return home / ".bakthat_store"


def fresh(row):
    return models.Backups.get(models.Backups.stored_filename == row.stored_filename)


def flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))


def test_a_sound_store_checks_ok_and_records_it(chain3):
    result = bakthat.check(read_data=True)
    assert result.ok and result.read_data
    assert [backup.status for backup in result.backups] == ["ok"] * 3
    assert all(fresh(row).check_result == "ok: objects and data" and fresh(row).checked_at for row in chain3)
    bakthat.check()
    assert fresh(chain3[0]).check_result == "ok: objects"


def test_a_flipped_byte_is_found_by_read_data_and_breaks_the_chains_through_it(chain3, home):
    flip_byte(store(home) / chain3[1].stored_filename)
    assert bakthat.check().ok, "without reading data, the sizes still match"
    result = bakthat.check(read_data=True)
    statuses = {backup.stored_filename: backup for backup in result.backups}
    assert statuses[chain3[0].stored_filename].status == "ok"
    assert statuses[chain3[1].stored_filename].status == "damaged"
    assert any("SHA-256" in problem or "damaged" in problem for problem in statuses[chain3[1].stored_filename].problems)
    assert statuses[chain3[2].stored_filename].status == "damaged"
    assert "its chain is broken" in statuses[chain3[2].stored_filename].problems[0]
    assert fresh(chain3[1]).check_result.startswith("damaged: ")


def test_a_missing_object_is_found_without_reading_data(chain3, home):
    (store(home) / (chain3[2].stored_filename + ".index.jsonl.zst")).unlink()
    (store(home) / chain3[0].stored_filename).unlink()
    result = bakthat.check()
    damaged = {backup.stored_filename: backup.problems for backup in result.damaged}
    assert sorted(damaged) == sorted(row.stored_filename for row in chain3)
    assert any("archive" in problem and "missing" in problem for problem in damaged[chain3[0].stored_filename])
    assert any("index" in problem and "missing" in problem for problem in damaged[chain3[2].stored_filename])
    assert any("chain is broken" in problem for problem in damaged[chain3[1].stored_filename])


def test_a_truncated_manifest_and_a_disagreeing_one_are_found(chain3, home):
    manifest = store(home) / (chain3[0].stored_filename + ".manifest.json")
    manifest.write_bytes(manifest.read_bytes()[:100])
    other = store(home) / (chain3[1].stored_filename + ".manifest.json")
    data = json.loads(other.read_text())
    data["sha256"] = "0" * 64
    other.write_text(json.dumps(data))
    result = bakthat.check([chain3[0].filename])
    problems = {backup.stored_filename: " ".join(backup.problems) for backup in result.damaged}
    assert "does not read" in problems[chain3[0].stored_filename]
    assert "says sha256" in problems[chain3[1].stored_filename]


def test_an_orphan_is_found_when_the_whole_destination_is_checked(chain3, home):
    orphan = store(home) / "lost.20200101000000.tar.zst"
    orphan.write_bytes(b"left by a killed backup")
    os.utime(orphan, (time.time() - 7200, time.time() - 7200))
    result = bakthat.check()
    assert [o.key for o in result.problem_orphans] == [orphan.name]
    assert not result.ok
    assert bakthat.check([chain3[0].filename]).orphans == [], "checking some names lists no orphans"


def test_read_data_subset_reads_a_share_and_rejects_a_bad_percentage(chain3):
    result = bakthat.check(read_data_subset="34%")
    assert sum(backup.data_read for backup in result.backups) == 1
    from bakthat.errors import ConfigError

    with pytest.raises(ConfigError, match="percentage"):
        bakthat.check(read_data_subset="lots")
    with pytest.raises(ConfigError, match="more than 0%"):
        bakthat.check(read_data_subset="0%")


def test_check_fires_its_events(chain3):
    seen = []
    events.before_check += lambda session_id: seen.append("before")
    events.on_check += lambda session_id, result: seen.append(("on", result.ok))
    bakthat.check()
    assert seen == ["before", ("on", True)]


def test_an_encrypted_backup_is_read_with_the_profiles_password(tree, monkeypatch):
    bakthat.backup(str(tree), password="check me")
    monkeypatch.setenv("BAKTHAT_PASSWORD", "check me")
    assert bakthat.check(read_data=True).ok
    monkeypatch.setenv("BAKTHAT_PASSWORD", "wrong")
    result = bakthat.check(read_data=True)
    assert [backup.status for backup in result.backups] == ["unreadable"] and not result.ok


def test_a_name_that_matches_nothing_is_not_found(chain3):
    from bakthat.errors import NotFoundError

    with pytest.raises(NotFoundError, match="nothing-here"):
        bakthat.check(["nothing-here"])


def test_archives_read_at_once_in_several_threads_still_name_every_damaged_backup(chain3, home, monkeypatch):
    from bakthat import checker

    threads = set()
    read_archive = checker._read_archive

    def spied(ctx, row, secret, found):
        threads.add(threading.current_thread().name)
        return read_archive(ctx, row, secret, found)

    monkeypatch.setattr(checker, "_read_archive", spied)
    flip_byte(store(home) / chain3[0].stored_filename)
    truncated = store(home) / chain3[2].stored_filename
    truncated.write_bytes(truncated.read_bytes()[:-40])
    monkeypatch.setattr(checker, "READ_THREADS", 3)
    result = bakthat.check(read_data=True)
    assert all(name.startswith("bakthat-check") for name in threads) and len(threads) > 1
    damaged = {backup.stored_filename: backup.problems for backup in result.damaged}
    assert sorted(damaged) == sorted(row.stored_filename for row in chain3)
    assert any("reading its data failed" in problem for problem in damaged[chain3[0].stored_filename])
    assert any("chain is broken" in problem for problem in damaged[chain3[1].stored_filename])
    assert any("holds" in problem or "reading its data failed" in problem for problem in damaged[chain3[2].stored_filename])


def test_a_damaged_archive_read_through_its_pipeline_stops_every_thread_it_started(chain3, home):
    from bakthat.chain_read import ArchiveStream, read_through
    from bakthat.core import _context
    from bakthat.errors import IntegrityError

    flip_byte(store(home) / chain3[0].stored_filename)
    before = set(threading.enumerate())
    stream = ArchiveStream(_context(None, "default", None, None).backend, fresh(chain3[0]), None)
    with pytest.raises(IntegrityError):
        read_through(stream)
    assert set(threading.enumerate()) - before == set()


def test_a_damaged_index_read_beside_its_sound_archive_is_named(chain3, home):
    from bakthat.index_store import index_key

    flip_byte(store(home) / index_key(chain3[1].stored_filename))
    result = bakthat.check([chain3[1].stored_filename], read_data=True)
    [outcome] = result.backups
    assert outcome.status == "damaged" and not outcome.data_read
    assert any(index_key(chain3[1].stored_filename) in problem for problem in outcome.problems)
