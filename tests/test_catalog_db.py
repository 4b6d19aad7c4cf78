"""bakthat.catalog_db: opening a catalog database, and driver errors turned into CatalogErrors that say what to do."""

from __future__ import annotations

import stat

import peewee
import pytest

from bakthat.catalog_db import CatalogSqlite, catalog_error, open_database
from bakthat.errors import CatalogError, ConfigError


def test_a_sqlite_path_is_created_owner_only_with_its_directory_and_not_connected(tmp_path):
    path = tmp_path / "new" / "catalog.sqlite"
    db = open_database(str(path))
    assert isinstance(db, CatalogSqlite) and db.is_closed()
    assert (db.kind, db.path) == ("sqlite", path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_directory_is_not_a_catalog(tmp_path):
    with pytest.raises(CatalogError, match="is a directory, not a SQLite file"):
        open_database(str(tmp_path))


def test_an_unsupported_url_scheme_is_a_configuration_error():
    with pytest.raises(ConfigError, match="database_url"):
        open_database("mongodb://host/db")


@pytest.mark.parametrize("driver, said", [
    ("file is not a database", "is damaged or not a SQLite database (file is not a database); move it aside"),
    ("attempt to write a readonly database", "cannot be written: attempt to write a readonly database"),
    ("database is locked", "is locked by another process (waited 30 s)"),
    ("unable to open database file", "cannot open the catalog /x.sqlite"),
])
def test_a_driver_error_becomes_a_catalog_error_naming_the_catalog_and_the_remedy(driver, said):
    error = catalog_error("/x.sqlite", peewee.OperationalError(driver))
    assert isinstance(error, CatalogError)
    assert said in str(error) and "/x.sqlite" in str(error)


def test_a_driver_error_of_a_sqlite_catalog_is_raised_as_a_catalog_error(tmp_path):
    path = tmp_path / "catalog.sqlite"
    path.write_bytes(b"this is not a SQLite database, not even its header" * 100)
    db = open_database(str(path))
    with pytest.raises(CatalogError, match="is damaged or not a SQLite database"):
        db.execute_sql("SELECT 1 FROM sqlite_master")
