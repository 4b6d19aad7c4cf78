"""bakthat.sources.postgresql against the real server on 127.0.0.1:5432: dump, restore --into, failures, secrets."""

from __future__ import annotations

import io
import os
import signal
import stat
import uuid

import pytest

from bakthat import sources
from bakthat.errors import ConfigError, IntegrityError, TargetExistsError
from bakthat.sources.base import DumpError, RestoreIntoError
from tests.services import POSTGRESQL_SERVER, postgresql_admin, require_binary

SECRET = "pg-Secret:with\\odd'chars-" + uuid.uuid4().hex[:6]


@pytest.fixture(autouse=True)
def _tools():
    require_binary("pg_dump", "pg_dumpall", "pg_restore", "psql")


def connect(url: str):
    import psycopg2

    connection = psycopg2.connect(url)
    connection.autocommit = True
    return connection


def populate(url: str, rows: int = 30_000) -> None:
    with connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("""
            CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE,
                                    balance numeric(12, 2), tags jsonb, photo bytea, created timestamptz);
            CREATE TABLE orders (id bigserial PRIMARY KEY, customer int REFERENCES customers(id), total numeric,
                                 note text);
            CREATE INDEX orders_customer ON orders (customer);
            CREATE VIEW big_spenders AS SELECT customer, sum(total) AS spent FROM orders GROUP BY customer;
            CREATE FUNCTION double_it(x int) RETURNS int LANGUAGE sql AS 'SELECT 2 * x';
        """)
        cursor.execute("""
            INSERT INTO customers (name, email, balance, tags, photo, created)
            SELECT 'name ' || i || ' é ✓', 'c' || i || '@example.org', (i * 7.31)::numeric(12, 2),
                   jsonb_build_object('i', i, 'even', i %% 2 = 0), decode(md5(i::text), 'hex'),
                   timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute'
            FROM generate_series(1, %s) AS i
        """, (rows,))
        cursor.execute("""
            INSERT INTO orders (customer, total, note)
            SELECT 1 + i %% %s, i * 1.5, repeat(md5(i::text), 2) FROM generate_series(1, %s) AS i
        """, (rows, rows * 2))


def fingerprint(url: str) -> dict[str, tuple[int, str]]:
    """Return {table: (row count, md5 of every row in order)} for every user table."""
    result = {}
    with connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
        for (table,) in cursor.fetchall():
            cursor.execute(f'SELECT count(*), md5(coalesce(string_agg(t::text, \'|\' ORDER BY t::text), \'\')) FROM "{table}" t')
            result[table] = cursor.fetchone()
        cursor.execute("SELECT double_it(21), (SELECT count(*) FROM big_spenders)")
        result["_objects"] = cursor.fetchone()
    return result


def dump_to_file(source, path, settings=None) -> int:
    with sources.open_dump(source, settings or {}) as dump, open(path, "wb") as handle:
        dump.copy_to(handle)
        return dump.finish().bytes


def new_database_url():
    """Return a URL for a database that does not exist yet, and a function dropping it."""
    name = f"bakthat_test_{uuid.uuid4().hex[:12]}"

    def drop():
        admin = postgresql_admin()
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    return f"{POSTGRESQL_SERVER}/{name}", drop


def test_a_database_dumps_and_restores_into_a_new_database_with_every_row_and_object(postgresql_database, tmp_path):
    populate(postgresql_database)
    dumped = tmp_path / "app.pgdump"
    size = dump_to_file(sources.parse(postgresql_database), dumped)
    assert size == dumped.stat().st_size > 1_000_000
    assert dumped.read_bytes()[:5] == b"PGDMP"
    target_url, drop = new_database_url()
    try:
        with open(dumped, "rb") as stream:
            sources.restore_into(sources.parse(target_url), stream, {})
        assert fingerprint(target_url) == fingerprint(postgresql_database)
    finally:
        drop()


def test_the_dump_opens_with_stock_pg_restore(postgresql_database, tmp_path):
    import subprocess

    populate(postgresql_database, rows=100)
    dumped = tmp_path / "app.pgdump"
    dump_to_file(sources.parse(postgresql_database), dumped)
    listing = subprocess.run(["pg_restore", "--list", str(dumped)], capture_output=True, text=True, check=True)
    assert "TABLE DATA public customers" in listing.stdout


def test_restore_into_an_existing_empty_database_works_and_a_non_empty_one_is_refused(postgresql_database, tmp_path):
    populate(postgresql_database, rows=200)
    dumped = tmp_path / "app.pgdump"
    dump_to_file(sources.parse(postgresql_database), dumped)
    target_url, drop = new_database_url()
    try:
        admin = postgresql_admin()
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{target_url.rsplit("/", 1)[1]}"')
        admin.close()
        with open(dumped, "rb") as stream:
            sources.restore_into(sources.parse(target_url), stream, {})
        with open(dumped, "rb") as stream, pytest.raises(TargetExistsError, match=r"is not empty \(\d+ relations\)"):
            sources.restore_into(sources.parse(target_url), stream, {})
        with connect(target_url) as connection, connection.cursor() as cursor:
            cursor.execute("DELETE FROM orders WHERE id > 10")
        with open(dumped, "rb") as stream:
            sources.restore_into(sources.parse(target_url), stream, {}, overwrite=True)
        assert fingerprint(target_url) == fingerprint(postgresql_database)
    finally:
        drop()


class FailingReader:
    """Gives the first ``limit`` bytes of a file, then raises as a damaged archive would."""

    def __init__(self, path, limit):
        self._handle = open(path, "rb")
        self._left = limit

    def read(self, size=-1):
        if self._left <= 0:
            raise IntegrityError("damaged zstd data")
        data = self._handle.read(min(size if size > 0 else self._left, self._left))
        self._left -= len(data)
        return data


def test_a_restore_whose_stream_fails_midway_commits_nothing(postgresql_database, tmp_path):
    populate(postgresql_database)
    dumped = tmp_path / "app.pgdump"
    dump_to_file(sources.parse(postgresql_database), dumped)
    target_url, drop = new_database_url()
    try:
        with pytest.raises(IntegrityError):
            sources.restore_into(sources.parse(target_url), FailingReader(dumped, dumped.stat().st_size - 1000), {})
        with connect(target_url) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            assert cursor.fetchone()[0] == 0
    finally:
        drop()


def test_a_plain_sql_dump_is_restored_with_psql_in_one_transaction(tmp_path):
    target_url, drop = new_database_url()
    try:
        broken = b"CREATE TABLE t (x int);\nINSERT INTO t VALUES (1);\nINSERT INTO missing VALUES (2);\n"
        with pytest.raises(RestoreIntoError, match=r"psql failed \(exit status 3\).*relation \"missing\" does not exist"):
            sources.restore_into(sources.parse(target_url), io.BytesIO(broken), {})
        with connect(target_url) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            assert cursor.fetchone()[0] == 0
        cut = tmp_path / "cut.sql"
        cut.write_bytes(b"CREATE TABLE t (x int);\n" + b"INSERT INTO t VALUES (1);\n" * 1000)
        with pytest.raises(IntegrityError):  # psql would commit what it read if it saw an end of input
            sources.restore_into(sources.parse(target_url), FailingReader(cut, 24 + 26 * 100), {})
        with connect(target_url) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            assert cursor.fetchone()[0] == 0
        good = b"CREATE TABLE t (x int);\nINSERT INTO t VALUES (1), (2);\n"
        sources.restore_into(sources.parse(target_url), io.BytesIO(good), {})
        with connect(target_url) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT sum(x) FROM t")
            assert cursor.fetchone()[0] == 3
    finally:
        drop()


def test_a_missing_database_is_a_dump_error_never_a_success():
    source = sources.parse(f"{POSTGRESQL_SERVER}/bakthat_missing_{uuid.uuid4().hex[:8]}")
    with sources.open_dump(source, {}) as dump:
        assert dump.copy_to(io.BytesIO()) == 0
        with pytest.raises(DumpError, match=r"pg_dump failed \(exit status 1\): .*does not exist") as caught:
            dump.finish()
    assert caught.value.status == 1


def test_a_dump_killed_midway_is_a_dump_error(postgresql_database):
    populate(postgresql_database)
    with sources.open_dump(sources.parse(postgresql_database), {}) as dump:
        assert len(dump.read(4096)) > 0
        os.kill(dump.process.pid, signal.SIGKILL)
        dump.copy_to(io.BytesIO())
        with pytest.raises(DumpError, match="pg_dump failed \\(killed by SIGKILL\\)"):
            dump.finish()


def test_the_password_travels_in_a_private_pgpass_file_never_in_argv_or_environment(postgresql_database):
    populate(postgresql_database)  # several MB: pg_dump blocks on the pipe until it is read
    url = postgresql_database.replace("postgres@", f"postgres:{SECRET.replace(':', '%3A').replace(chr(92), '%5C').replace(chr(39), '%27')}@")
    source = sources.parse(url)
    assert source.password == SECRET
    with sources.open_dump(source, {"postgresql_password": "not-used-the-url-wins"}) as dump:
        pid = dump.process.pid
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = handle.read().decode()
        with open(f"/proc/{pid}/environ", "rb") as handle:
            environment = dict(item.split("=", 1) for item in handle.read().decode().split("\0") if "=" in item)
        assert "pg_dump" in argv and "--no-password" in argv
        assert SECRET not in argv and SECRET not in "".join(environment.values())
        pgpass = environment["PGPASSFILE"]
        assert stat.S_IMODE(os.stat(pgpass).st_mode) == 0o600
        assert open(pgpass).read() == "*:*:*:*:" + SECRET.replace("\\", "\\\\").replace(":", "\\:") + "\n"
        dump.copy_to(io.BytesIO())
        dump.finish()
    assert not os.path.exists(pgpass)


def test_the_profile_password_is_used_when_the_source_gives_none_and_never_shown_in_errors():
    source = sources.parse(f"{POSTGRESQL_SERVER}/bakthat_missing_{uuid.uuid4().hex[:8]}")
    with sources.open_dump(source, {"postgresql_password": SECRET}) as dump:
        with open(f"/proc/{dump.process.pid}/environ", "rb") as handle:
            environment = dict(item.split("=", 1) for item in handle.read().decode().split("\0") if "=" in item)
        assert SECRET.split(":")[0] in open(environment["PGPASSFILE"]).read()
        dump.copy_to(io.BytesIO())
        with pytest.raises(DumpError) as caught:
            dump.finish()
    assert SECRET not in str(caught.value) and SECRET not in caught.value.output


def test_a_whole_server_dump_uses_pg_dumpall(tmp_path):
    source = sources.parse({"url": f"{POSTGRESQL_SERVER}/*", "options": ["--globals-only"]})
    assert source.name == "postgresql-all" and source.extension == "sql"
    with sources.open_dump(source, {}) as dump:
        data = dump.read()
        dump.finish()
    assert b"CREATE ROLE postgres" in data
    with pytest.raises(ConfigError, match="restore a whole-server dump without --into"):
        sources.restore_into(source, io.BytesIO(data), {})


def test_copying_a_dump_keeps_memory_flat(postgresql_database):
    import tracemalloc

    populate(postgresql_database)
    tracemalloc.start()
    try:
        with sources.open_dump(sources.parse(postgresql_database), {}) as dump:
            copied = dump.copy_to(open(os.devnull, "wb"))
            dump.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert copied > 4_000_000
    assert peak < 3 * 1024 * 1024
