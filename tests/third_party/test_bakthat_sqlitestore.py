"""The SQLite store, tested the way its author would: with bakthat's kit only.

The conformance suite comes from ``bakthat.testing.conformance`` (three lines), the
temporary HOME, config and catalog from the ``bakthat_catalog`` fixture of bakthat's
pytest plugin; nothing here imports bakthat's own test helpers.
"""

from __future__ import annotations

import hashlib

import pytest

import bakthat
from bakthat import backends
from bakthat.testing.conformance import conformance_tests
from tests.third_party.bakthat_sqlitestore import SqliteStore

TestSqliteStoreConformance = conformance_tests(lambda tmp_path: SqliteStore({"sqlitestore_path": str(tmp_path / "objects.sqlite")}))


@pytest.fixture
def registered():
    """Destination sqlitestore, as the entry point would declare it, for one test."""
    backends.register("sqlitestore", SqliteStore, replace=True)
    yield
    backends.registry.pop("sqlitestore", None)


def test_a_backup_to_the_sqlite_store_restores_byte_for_byte(registered, bakthat_catalog):
    store = bakthat_catalog.home / "objects.sqlite"
    bakthat_catalog.configure(default_destination="sqlitestore", sqlitestore_path=str(store), scrypt_work_factor=10)
    source = bakthat_catalog.work / "letters"
    source.mkdir()
    (source / "a.txt").write_bytes(b"dear reader\n" * 1000)
    row = bakthat.backup(str(source), prompt="no")
    assert [info.key for info in SqliteStore({"sqlitestore_path": str(store)}).list()] == sorted(
        [row.stored_filename, row.stored_filename + ".index.jsonl.zst", row.stored_filename + ".manifest.json"]
    )
    target = bakthat_catalog.work / "restored"
    bakthat.restore("letters", target=str(target), prompt="no")
    restored = (target / "letters" / "a.txt").read_bytes()
    assert hashlib.sha256(restored).digest() == hashlib.sha256(b"dear reader\n" * 1000).digest()


def test_without_its_path_the_store_names_the_missing_key():
    with pytest.raises(bakthat.errors.ConfigError, match="sqlitestore_path"):
        SqliteStore({})
