"""The real services some tests need, and one rule for when one is missing.

A test that needs PostgreSQL, MariaDB, the stock ``age`` tool or Swift calls
:func:`unavailable` when the service cannot be reached: on a developer's machine the
test is skipped with that reason; in CI (``CI=true``) it fails, so a missing service is
seen instead of hidden behind a green run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from typing import NoReturn

import pytest

POSTGRESQL_SERVER = "postgresql://postgres@127.0.0.1:5432"
MARIADB_SERVER = "mysql://root@127.0.0.1:3306"


def in_ci() -> bool:
    """Return True when running in CI, where a missing service is a failure."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> NoReturn:
    """Given why a needed service is missing, skip the test, or fail it in CI."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: tests that need a service must not skip)", pytrace=False)
    pytest.skip(reason)


def require_binary(*names: str) -> None:
    """Return if every program in ``names`` is on PATH; otherwise skip (fail in CI)."""
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        unavailable(f"{', '.join(missing)} not installed on this machine")


def postgresql_admin():
    """Return an autocommit psycopg2 connection to the local server's ``postgres`` database."""
    try:
        import psycopg2
    except ImportError:
        unavailable("psycopg2 is not installed (pip install '.[test]')")
    try:
        connection = psycopg2.connect(POSTGRESQL_SERVER + "/postgres", connect_timeout=3)
    except psycopg2.OperationalError as exc:
        unavailable(f"no PostgreSQL server on 127.0.0.1:5432 ({exc.__class__.__name__})")
    connection.autocommit = True
    return connection


@pytest.fixture
def postgresql_database() -> Iterator[str]:
    """Yield the URL of a new, empty PostgreSQL database, dropped after the test."""
    admin = postgresql_admin()
    name = f"bakthat_test_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRESQL_SERVER}/{name}"
    finally:
        from bakthat import models

        models.unbind()
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def mariadb_client() -> str:
    """Return the path of the mariadb/mysql client; skip (fail in CI) without a server."""
    client = shutil.which("mariadb") or shutil.which("mysql")
    if client is None:
        unavailable("no mariadb/mysql client on this machine (apt-get install mariadb-client)")
    probe = subprocess.run(
        [client, "-u", "root", "-h", "127.0.0.1", "-P", "3306", "-e", "SELECT 1"],
        capture_output=True, text=True, timeout=30,
    )
    if probe.returncode != 0:
        unavailable(f"no MariaDB server reachable as root on 127.0.0.1:3306: {probe.stderr.strip()}")
    return client


def mariadb_sql(statements: str) -> subprocess.CompletedProcess:
    """Run SQL as the local MariaDB's root over TCP, statements on stdin; return the result."""
    return subprocess.run(
        [mariadb_client(), "-u", "root", "-h", "127.0.0.1", "-P", "3306"],
        input=statements, capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
def mariadb_database() -> Iterator[str]:
    """Yield the URL of a new, empty MariaDB database, dropped after the test."""
    name = f"bakthat_test_{uuid.uuid4().hex[:12]}"
    created = mariadb_sql(f"CREATE DATABASE `{name}`;")
    assert created.returncode == 0, created.stderr
    try:
        yield f"{MARIADB_SERVER}/{name}"
    finally:
        mariadb_sql(f"DROP DATABASE IF EXISTS `{name}`;")
