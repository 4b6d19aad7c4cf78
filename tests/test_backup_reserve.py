"""bakthat.backup_reserve: a backup's stored filename, claimed before the upload and removed after a failure."""

from __future__ import annotations

import socket
import subprocess
import time
from types import SimpleNamespace

import pytest

from bakthat import manifest, models
from bakthat.actions import resolve
from bakthat.backup_reserve import reserve, unstore, wait_until
from bakthat.index_store import index_key

WHEN = 1_700_000_000  # 2023-11-14T22:13:20Z
NAME = "app.20231114221320.tar.zst"
NEXT = "app.20231114221321.tar.zst"


@pytest.fixture
def ctx(home):
    return resolve(None, "default", None, {"scrypt_work_factor": 10})


def claim(ctx, session="s1"):
    reservation, stamp = reserve(ctx, "app", "tar.zst", WHEN, session)
    return reservation.stored_filename, stamp


def test_a_free_second_is_claimed_as_asked_and_recorded_for_this_process(ctx):
    assert claim(ctx) == (NAME, WHEN)
    row = models.Reservations.get(models.Reservations.stored_filename == NAME)
    assert (row.session_id, row.host) == ("s1", socket.gethostname())


def test_a_name_claimed_by_a_running_backup_moves_the_next_claim_one_second_on(ctx):
    assert claim(ctx, "s1") == (NAME, WHEN)
    assert claim(ctx, "s2") == (NEXT, WHEN + 1)


def test_a_name_in_the_catalog_or_in_the_store_is_not_claimed_again(ctx):
    models.Backups.create(backend="local", backup_date=WHEN, filename="app", stored_filename=NAME, size=1,
                          last_updated=WHEN)
    assert claim(ctx) == (NEXT, WHEN + 1)
    ctx.backend.put(manifest.key_for("app.20231114221322.tar.zst"), b"{}")
    assert claim(ctx, "s2") == ("app.20231114221323.tar.zst", WHEN + 3)


def test_a_claim_left_by_a_dead_process_on_this_host_is_swept(ctx):
    dead = subprocess.Popen(["true"])
    dead.wait()
    models.Reservations.create(stored_filename=NAME, session_id="old", host=socket.gethostname(), pid=dead.pid,
                               created=WHEN)
    assert claim(ctx) == (NAME, WHEN)
    assert [row.session_id for row in models.Reservations.select()] == ["s1"]


def test_unstore_removes_the_archive_its_manifest_and_its_index_and_says_so(ctx):
    for key in (NAME, manifest.key_for(NAME), index_key(NAME)):
        ctx.backend.put(key, b"data")
    assert unstore(ctx, SimpleNamespace(stored_filename=NAME)) == f"{NAME} was removed from local"
    assert not any(ctx.backend.exists(key) for key in (NAME, manifest.key_for(NAME), index_key(NAME)))


def test_unstore_of_objects_already_gone_is_not_an_error(ctx):
    ctx.backend.put(NAME, b"data")
    assert unstore(ctx, SimpleNamespace(stored_filename=NAME)) == f"{NAME} was removed from local"
    assert not ctx.backend.exists(NAME)


def test_wait_until_returns_once_the_clock_has_reached_the_stamp():
    stamp = int(time.time()) + 1
    wait_until(stamp)
    assert time.time() >= stamp
