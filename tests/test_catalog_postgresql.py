"""The catalog on a real PostgreSQL server (a fleet's shared catalog)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psycopg2
import pytest

import bakthat
from bakthat import migrations, models
from tests.conftest import ROOT, snapshot


@pytest.fixture
def database_url(postgresql_database):
    return postgresql_database


def test_backups_are_catalogued_in_postgresql_and_restore_from_it(tree, tmp_path, database_url):
    conf = {"database_url": database_url}
    row = bakthat.backup(str(tree), password="", tags="fleet", conf=conf)
    models.unbind()
    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT filename, stored_filename, sha256, tags FROM backups")
        assert cursor.fetchall() == [("mydir", row.stored_filename, row.sha256, "fleet")]
    bakthat.restore("mydir", target=tmp_path / "out", conf=conf)
    assert snapshot(tmp_path / "out" / "mydir") == snapshot(tree)
    assert [r.id for r in bakthat.search(tags="fleet", conf=conf)] == [row.id]


# -- a catalog shared by several processes and hosts ----------------------------------------


def bakthat_process(*args, env: dict, home=None):
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    if home is not None:
        environment["HOME"] = str(home)
    return subprocess.Popen(
        [sys.executable, "-m", "bakthat", *args], env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_six_processes_first_using_a_new_catalog_at_once_all_succeed(database_url):
    processes = [bakthat_process("show", "--json", env={"BAKTHAT_DATABASE_URL": database_url}) for _ in range(6)]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0] * 6, outputs
    assert all(json.loads(stdout) == [] for stdout, _ in outputs)
    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT value FROM config WHERE key = 'schema_version'")
        assert cursor.fetchall() == [(str(migrations.latest()),)]


def two_hosts(tmp_path, database_url):
    """Two hosts (their own HOME, hence their own lock directory) sharing a store and a PostgreSQL catalog."""
    hosts = []
    for name in ("host-a", "host-b"):
        home = tmp_path / name
        home.mkdir()
        (home / ".bakthat.yml").write_text(
            f"default:\n  database_url: {database_url}\n  local_path: {tmp_path / 'shared-store'}\n"
            "  rotation: {keep_last: 5}\n"
        )
        os.chmod(home / ".bakthat.yml", 0o600)
        hosts.append(home)
    return hosts


HOLDER = """
import sys, time
from bakthat.core import _context
from bakthat.locks import name_lock
ctx = _context(None, "default", None, None)
with name_lock(ctx.settings, ctx.backend.backend_hash, sys.argv[1], 5):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_name_locked_on_one_host_cannot_be_rotated_or_deleted_from_another(tmp_path, database_url):
    from tests.test_rotation import make_history

    host_a, host_b = two_hosts(tmp_path, database_url)
    conf = {"database_url": database_url, "local_path": str(tmp_path / "shared-store")}
    make_history("web", [int(time.time()) - k * 86400 for k in range(8)], conf=conf)
    models.unbind()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, "web", "30"],
        env={**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(host_a)}, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        for args in (("rotate_backups", "web"), ("delete", "web")):
            process = bakthat_process(*args, "--lock-timeout", "0.5", env={}, home=host_b)
            _, stderr = process.communicate(timeout=60)
            assert process.returncode == 12, stderr
            assert "PostgreSQL advisory lock" in stderr and "another bakthat process is deleting backups of 'web'" in stderr
    finally:
        holder.kill()
        holder.wait()
    process = bakthat_process("rotate_backups", "web", "--json", env={}, home=host_b)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert len(json.loads(stdout)["deleted"]) == 3


def test_two_hosts_rotating_one_name_at_once_delete_only_what_the_policy_allows(tmp_path, database_url):
    from tests.test_rotation import make_history

    hosts = two_hosts(tmp_path, database_url)
    conf = {"database_url": database_url, "local_path": str(tmp_path / "shared-store")}
    rows = make_history("web", [int(time.time()) - k * 3600 for k in range(40)], conf=conf)
    models.unbind()
    processes = [bakthat_process("rotate_backups", "web", "--json", env={}, home=home) for home in hosts for _ in range(2)]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0] * 4, outputs
    deleted = [name for stdout, _ in outputs for name in json.loads(stdout)["deleted"]]
    assert sorted(deleted) == sorted(row.stored_filename for row in rows[5:]), "each backup deleted exactly once"
    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM backups WHERE NOT is_deleted")
        assert cursor.fetchone() == (5,)
