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
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
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


# --------------------------------------------------------------------------- Swift

SWIFT_AUTH_URL = os.environ.get("BAKTHAT_TEST_SWIFT_AUTH_URL", "http://127.0.0.1:18080/auth/v1.0")
SWIFT_USER = os.environ.get("BAKTHAT_TEST_SWIFT_USER", "test:tester")
SWIFT_KEY = os.environ.get("BAKTHAT_TEST_SWIFT_KEY", "testing")
SWIFT_START = Path(__file__).resolve().parent.parent / ".ci" / "swift-start"
_swift: dict[str, str] = {}


def _swift_answers() -> bool:
    """Return True if the Swift proxy hands out a token for the test user."""
    request = urllib.request.Request(SWIFT_AUTH_URL, headers={"X-Auth-User": SWIFT_USER, "X-Auth-Key": SWIFT_KEY})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return bool(response.headers.get("X-Storage-Url"))
    except OSError:
        return False


@pytest.fixture(scope="session")
def swift_server() -> dict[str, str]:
    """Return the settings of a running one-node Swift (auth_url, access_key, secret_key).

    A Swift already answering at ``BAKTHAT_TEST_SWIFT_AUTH_URL`` (default: the one
    ``.ci/swift-start`` runs on 127.0.0.1:18080) is used; otherwise the script is run to
    start it.  Where it cannot start (no packages, not root to install them), the test
    skips with the script's reason (fails under CI=true).
    """
    try:
        import swiftclient  # noqa: F401
    except ImportError:
        unavailable("python-swiftclient is not installed (pip install -e '.[test]')")
    if "error" in _swift:
        unavailable(_swift["error"])
    if not _swift_answers():
        started = subprocess.run([str(SWIFT_START)], capture_output=True, text=True, timeout=600)
        if started.returncode != 0 or not _swift_answers():
            reason = (started.stderr.strip().splitlines() or ["no output"])[-1]
            _swift["error"] = f"no Swift at {SWIFT_AUTH_URL} and .ci/swift-start could not start one: {reason}"
            unavailable(_swift["error"])
    return {"auth_url": SWIFT_AUTH_URL, "auth_version": "1", "access_key": SWIFT_USER, "secret_key": SWIFT_KEY}


def swift_connection():
    """Return a plain swiftclient Connection as the test user (for assertions in tests)."""
    from swiftclient.client import Connection

    return Connection(SWIFT_AUTH_URL, SWIFT_USER, SWIFT_KEY, retries=2)


def swift_names(container: str) -> list[str]:
    """Return the object names of a container ([] if it does not exist)."""
    from swiftclient.exceptions import ClientException

    try:
        return [item["name"] for item in swift_connection().get_container(container, full_listing=True)[1]]
    except ClientException as exc:
        if exc.http_status == 404:
            return []
        raise


@pytest.fixture
def swift_conf(swift_server) -> Iterator[dict[str, str]]:
    """Yield profile settings for a new, unique Swift container; both containers are removed after."""
    container = f"bakthat-test-{uuid.uuid4().hex[:12]}"
    yield {**swift_server, "swift_container": container}
    from swiftclient.exceptions import ClientException

    connection = swift_connection()
    for name in (container, f"{container}_segments"):
        for item in swift_names(name):
            try:
                connection.delete_object(name, item)
            except ClientException:
                pass
        try:
            connection.delete_container(name)
        except ClientException:
            pass
