"""bakthat.locks: one lock per (store, backup name), bounded waiting, the holder named."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from bakthat.errors import LockedError
from bakthat.locks import advisory_key, lock_directory, name_lock, uses_postgresql
from tests.conftest import ROOT


def test_lock_files_live_beside_the_sqlite_catalog_or_in_home_for_a_url(tmp_path, home):
    assert lock_directory({"database": str(tmp_path / "cat" / "c.sqlite")}) == tmp_path / "cat" / ".bakthat.locks"
    assert lock_directory({}) == home / ".bakthat.locks"
    assert lock_directory({"database_url": "postgresql://h/db"}) == home / ".bakthat.locks"
    assert uses_postgresql({"database_url": "postgres://h/db"}) and not uses_postgresql({"database": "x"})


def test_the_advisory_key_is_a_stable_signed_64_bit_number_per_store_and_name():
    key = advisory_key("store-a", "www")
    assert key == advisory_key("store-a", "www")
    assert -(1 << 63) <= key < (1 << 63)
    assert len({key, advisory_key("store-b", "www"), advisory_key("store-a", "db")}) == 3


HOLDER = textwrap.dedent(
    """
    import sys, time
    from bakthat.locks import name_lock
    with name_lock({"database": sys.argv[1]}, "store", sys.argv[2], 5):
        print("held", flush=True)
        sys.stdin.readline()
    """
)


@pytest.fixture
def held(tmp_path):
    """Another process holding the lock of 'www' until its stdin closes."""
    catalog = str(tmp_path / "c.sqlite")
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, catalog, "www"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout.readline() == "held\n"
    yield catalog, process
    process.stdin.close()
    process.wait(timeout=60)


def test_a_lock_held_by_another_process_is_a_locked_error_naming_the_holder(held):
    catalog, process = held
    with pytest.raises(LockedError, match=rf"'www'.*held by pid {process.pid} on .*waited 0\.2 s"):
        with name_lock({"database": catalog}, "store", "www", 0.2):
            pytest.fail("the lock was taken twice")


def test_another_name_or_store_is_not_blocked(held):
    catalog, _ = held
    with name_lock({"database": catalog}, "store", "db", 0):
        pass
    with name_lock({"database": catalog}, "other-store", "www", 0):
        pass


def test_the_lock_is_free_again_when_its_holder_ends(held):
    catalog, process = held
    process.stdin.close()
    process.wait(timeout=60)
    with name_lock({"database": catalog}, "store", "www", 5) as path:
        assert path.read_text().startswith(f"pid {os.getpid()} on ")
    assert path.read_text() == ""  # released: no stale holder left in the file
