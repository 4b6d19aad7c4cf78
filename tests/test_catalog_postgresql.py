"""The catalog on a real PostgreSQL server (a fleet's shared catalog)."""

from __future__ import annotations

import psycopg2
import pytest

import bakthat
from bakthat import models
from tests.conftest import snapshot


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
