"""bakthat.sources.mysql against the real MariaDB on 127.0.0.1:3306: dump, restore --into, failures, secrets."""

from __future__ import annotations

import io
import os
import signal
import stat
import uuid

import pytest

from bakthat import sources
from bakthat.errors import TargetExistsError
from bakthat.sources.base import DumpError, RestoreIntoError
from tests.services import MARIADB_SERVER, mariadb_sql, require_binary

# Both quotes, a hash, a backslash, a dollar, a trailing space: what breaks a naive option file.
SECRET = 'my"Pa\'ss#word\\x$' + uuid.uuid4().hex[:6] + " "


@pytest.fixture(autouse=True)
def _tools():
    require_binary("mariadb-dump", "mariadb")


def sql(statements: str) -> str:
    result = mariadb_sql(statements)
    assert result.returncode == 0, result.stderr
    return result.stdout


def database_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def populate(url: str, rows: int = 20_000) -> None:
    name = database_of(url)
    sql(f"""
        SET NAMES utf8mb4;
        USE `{name}`;
        CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100) CHARACTER SET utf8mb4,
                                balance DECIMAL(12,2), photo VARBINARY(16), created DATETIME) ENGINE=InnoDB;
        CREATE TABLE orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, customer INT, total DECIMAL(12,2),
                             note TEXT, INDEX (customer)) ENGINE=InnoDB;
        CREATE VIEW big_spenders AS SELECT customer, SUM(total) AS spent FROM orders GROUP BY customer;
        CREATE FUNCTION double_it(x INT) RETURNS INT DETERMINISTIC RETURN 2 * x;
        INSERT INTO customers (name, balance, photo, created)
            SELECT CONCAT('name ', seq, ' é ✓ 😀'), seq * 7.31, UNHEX(MD5(seq)), '2026-01-01' + INTERVAL seq MINUTE
            FROM seq_1_to_{rows};
        INSERT INTO orders (customer, total, note)
            SELECT 1 + seq % {rows}, seq * 1.5, REPEAT(MD5(seq), 3) FROM seq_1_to_{rows * 2};
    """)


def fingerprint(url: str) -> list[str]:
    name = database_of(url)
    return sql(f"""
        USE `{name}`;
        SELECT COUNT(*) FROM customers; SELECT COUNT(*) FROM orders;
        CHECKSUM TABLE customers, orders EXTENDED;
        SELECT double_it(21), (SELECT COUNT(*) FROM big_spenders);
    """).replace(name, "DB").splitlines()


def dump_to_file(source, path, settings=None) -> None:
    with sources.open_dump(source, settings or {}) as dump, open(path, "wb") as handle:
        dump.copy_to(handle)
        dump.finish()


@pytest.fixture
def new_database_url():
    name = f"bakthat_test_{uuid.uuid4().hex[:12]}"
    yield f"{MARIADB_SERVER}/{name}"
    mariadb_sql(f"DROP DATABASE IF EXISTS `{name}`;")


def test_a_database_dumps_and_restores_into_a_new_database_with_every_row_and_checksum(
    mariadb_database, new_database_url, tmp_path
):
    populate(mariadb_database)
    dumped = tmp_path / "shop.sql"
    dump_to_file(sources.parse(mariadb_database), dumped)
    assert dumped.stat().st_size > 1_000_000
    with open(dumped, "rb") as stream:
        sources.restore_into(sources.parse(new_database_url), stream, {})
    expected = fingerprint(mariadb_database)
    assert fingerprint(new_database_url) == expected
    assert "41" not in expected[-1] and expected[-1].startswith("42")


def test_a_non_empty_target_is_refused_unless_overwrite(mariadb_database, new_database_url, tmp_path):
    populate(mariadb_database, rows=100)
    dumped = tmp_path / "shop.sql"
    dump_to_file(sources.parse(mariadb_database), dumped)
    with pytest.raises(TargetExistsError, match=r"is not empty \(\d+ tables\)"):
        with open(dumped, "rb") as stream:
            sources.restore_into(sources.parse(mariadb_database), stream, {})
    with open(dumped, "rb") as stream:
        sources.restore_into(sources.parse(new_database_url), stream, {})
    sql(f"DELETE FROM `{database_of(new_database_url)}`.orders WHERE id > 5;")
    with open(dumped, "rb") as stream:
        sources.restore_into(sources.parse(new_database_url), stream, {}, overwrite=True)
    assert fingerprint(new_database_url) == fingerprint(mariadb_database)


def test_a_failing_restore_is_a_restore_error(new_database_url):
    with pytest.raises(RestoreIntoError, match=r"(?s)mariadb failed \(exit status 1\): .*doesn't exist"):
        sources.restore_into(sources.parse(new_database_url), io.BytesIO(b"INSERT INTO missing VALUES (1);\n"), {})


def test_a_missing_database_is_a_dump_error_never_a_success():
    source = sources.parse(f"{MARIADB_SERVER}/bakthat_missing_{uuid.uuid4().hex[:8]}")
    with sources.open_dump(source, {}) as dump:
        dump.copy_to(io.BytesIO())
        with pytest.raises(DumpError, match=r"mariadb-dump failed \(exit status 2\): .*Unknown database"):
            dump.finish()


def test_a_dump_killed_midway_is_a_dump_error(mariadb_database):
    populate(mariadb_database)
    with sources.open_dump(sources.parse(mariadb_database), {}) as dump:
        assert dump.read(4096)
        os.kill(dump.process.pid, signal.SIGKILL)
        dump.copy_to(io.BytesIO())
        with pytest.raises(DumpError, match=r"killed by SIGKILL"):
            dump.finish()


@pytest.fixture
def user_with_password(mariadb_database):
    user = f"bk_{uuid.uuid4().hex[:10]}"
    literal = SECRET.replace("\\", "\\\\").replace("'", "\\'")
    sql(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{literal}';"
        f"GRANT ALL ON `{database_of(mariadb_database)}`.* TO '{user}'@'127.0.0.1';"
        f"GRANT SELECT ON mysql.proc TO '{user}'@'127.0.0.1';")  # --routines shows functions root defined
    yield user
    mariadb_sql(f"DROP USER IF EXISTS '{user}'@'127.0.0.1';")


def test_a_real_password_reaches_the_server_through_an_option_file_never_argv(mariadb_database, user_with_password):
    populate(mariadb_database)  # MBs: mariadb-dump blocks on the pipe until read
    url = mariadb_database.replace("root@", f"{user_with_password}@")
    with sources.open_dump(sources.parse({"url": url, "password": SECRET}), {}) as dump:
        pid = dump.process.pid
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = handle.read().decode().split("\0")
        with open(f"/proc/{pid}/environ", "rb") as handle:
            environment = handle.read().decode()
        assert "--single-transaction" in argv
        assert not any(SECRET in word for word in argv) and SECRET not in environment
        option_file = argv[1].removeprefix("--defaults-extra-file=")
        assert stat.S_IMODE(os.stat(option_file).st_mode) == 0o600
        assert dump.copy_to(io.BytesIO()) > 1_000_000
        dump.finish()  # the server accepted the password
    assert not os.path.exists(option_file)


def test_a_wrong_password_fails_and_the_error_never_shows_a_password(mariadb_database, user_with_password):
    url = mariadb_database.replace("root@", f"{user_with_password}@")
    with sources.open_dump(sources.parse(url), {"mysql_password": SECRET + "-wrong"}) as dump:
        dump.copy_to(io.BytesIO())
        with pytest.raises(DumpError, match="Access denied") as caught:
            dump.finish()
    assert SECRET not in str(caught.value)
