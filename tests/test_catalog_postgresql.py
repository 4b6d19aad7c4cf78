"""The catalog on a real PostgreSQL server (a fleet's shared catalog)."""

from __future__ import annotations

import uuid

import pytest

import bakthat
from bakthat import models
from tests.conftest import snapshot

psycopg2 = pytest.importorskip("psycopg2", reason="psycopg2 is not installed (pip install '.[test]')")

SERVER = "postgresql://postgres@127.0.0.1:5432"


@pytest.fixture
def database_url():
    try:
        admin = psycopg2.connect(SERVER + "/postgres", connect_timeout=3)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server on 127.0.0.1:5432 ({exc.__class__.__name__})")
    admin.autocommit = True
    name = f"bakthat_test_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    yield f"{SERVER}/{name}"
    models.unbind()
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


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
