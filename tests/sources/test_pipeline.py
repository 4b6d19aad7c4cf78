"""bakthat.sources.pipeline: `bakthat backup postgresql://...` without a job, restore as a file or --into."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

import bakthat
from bakthat import models, sources
from bakthat.errors import ConfigError, TargetExistsError
from bakthat.sources.base import DumpError
from tests.services import POSTGRESQL_SERVER, postgresql_admin, require_binary
from tests.sources import test_postgresql as pg_helpers


def cli(*args: str, env_password: str | None = None) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ)
    if env_password is not None:
        env["BAKTHAT_PASSWORD"] = env_password
    return subprocess.run([sys.executable, "-m", "bakthat", *args], capture_output=True, text=True, timeout=300,
                          env=env)


def stored_objects(home) -> list[str]:
    store = home / ".bakthat_store"
    return sorted(path.name for path in store.iterdir() if path.is_file()) if store.exists() else []


def test_a_postgresql_url_is_backed_up_without_a_job_named_after_its_database_and_opens_with_stock_tools(
    home, tmp_path, postgresql_database
):
    require_binary("pg_dump", "pg_restore", "age", "age-keygen", "zstd")
    pg_helpers.populate(postgresql_database, rows=500)
    name = postgresql_database.rsplit("/", 1)[1]
    identity = tmp_path / "key.txt"
    subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(identity)], check=True, capture_output=True,
                               text=True).stdout.strip()
    (home / ".bakthat.yml").write_text(f"default:\n  encryption_recipients: [{recipient}]\n")
    result = cli("backup", postgresql_database, "--json")
    assert result.returncode == 0, result.stderr
    stored = [entry for entry in stored_objects(home) if not entry.endswith(".manifest.json")]
    assert len(stored) == 1 and stored[0].startswith(f"{name}.") and stored[0].endswith(".pgdump.zst.age")
    plain = tmp_path / "app.pgdump"
    subprocess.run(f"age -d -i {identity} {home / '.bakthat_store' / stored[0]} | zstd -d -q -o {plain}",
                   shell=True, check=True)
    listing = subprocess.run(["pg_restore", "--list", str(plain)], capture_output=True, text=True, check=True)
    assert "TABLE DATA public customers" in listing.stdout


def test_restore_without_into_writes_the_dump_file_and_refuses_to_replace_it(home, tmp_path, postgresql_database):
    require_binary("pg_dump")
    pg_helpers.populate(postgresql_database, rows=100)
    name = postgresql_database.rsplit("/", 1)[1]
    bakthat.backup(postgresql_database, password="")
    target = tmp_path / "out"
    bakthat.restore(name, target=str(target))
    dumped = target / f"{name}.pgdump"
    assert dumped.read_bytes()[:5] == b"PGDMP" and dumped.stat().st_mode & 0o777 == 0o600
    assert [entry.name for entry in target.iterdir()] == [dumped.name]
    with pytest.raises(TargetExistsError):
        bakthat.restore(name, target=str(target))


def test_a_failing_dump_is_never_catalogued_and_leaves_no_object(home):
    require_binary("pg_dump")
    missing = f"{POSTGRESQL_SERVER}/bakthat_missing_{uuid.uuid4().hex[:8]}"
    result = cli("backup", missing, "--prompt", "no")
    assert result.returncode == 1
    assert "pg_dump failed (exit status 1)" in result.stderr and "does not exist" in result.stderr
    assert stored_objects(home) == []
    models.bind(str(home / ".bakthat.sqlite"))
    assert models.Backups.select().count() == 0


def test_a_dump_killed_midway_is_never_catalogued_and_its_partial_object_is_removed(home):
    killed = sources.parse({"command": ["sh", "-c", "head -c 3000000 /dev/urandom; kill -9 $$"], "name": "zfs"})
    with pytest.raises(DumpError, match="killed by SIGKILL"):
        bakthat.backup(killed, password="")
    assert stored_objects(home) == []
    assert not list((home / ".bakthat_store" / ".bakthat-tmp").iterdir())
    assert models.Backups.select().count() == 0


def test_restore_into_a_database_of_another_kind_is_refused_before_anything_is_read(home, tmp_path):
    command = sources.parse({"command": ["printf", "raw bytes"], "name": "raw", "extension": "raw"})
    bakthat.backup(command, password="")
    with pytest.raises(ConfigError, match="a command dump, it cannot be restored into a sqlite target"):
        bakthat.restore("raw", into=f"sqlite://{tmp_path / 'x.db'}")
    (tree := tmp_path / "tree").mkdir()
    bakthat.backup(str(tree), password="")
    with pytest.raises(ConfigError, match="is a file archive, not a database dump"):
        bakthat.restore("tree", into=f"sqlite://{tmp_path / 'x.db'}")
    bakthat.restore("raw", target=str(tmp_path / "out"))
    assert (tmp_path / "out" / "raw.raw").read_bytes() == b"raw bytes"


def test_a_damaged_dump_never_reaches_the_end_of_the_restore_tools_input(home, tmp_path):
    path = tmp_path / "app.db"
    import sqlite3

    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1000)])
    db.commit()
    db.close()
    row = bakthat.backup(f"sqlite://{path}", password="", compression="none")
    stored = home / ".bakthat_store" / row.stored_filename
    data = bytearray(stored.read_bytes())
    data[-100] ^= 0xFF  # inside a page SQLite may never look at: only the SHA-256 can tell
    stored.write_bytes(bytes(data))
    target = tmp_path / "restored.db"
    from bakthat.errors import IntegrityError

    with pytest.raises(IntegrityError):
        bakthat.restore("app.db", into=f"sqlite://{target}")
    assert not target.exists()
    assert [entry.name for entry in tmp_path.iterdir() if entry.name.startswith(".bakthat")] == []


@pytest.fixture
def dropped_database():
    names = []
    yield names
    admin = postgresql_admin()
    with admin.cursor() as cursor:
        for name in names:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def test_restore_into_a_non_empty_database_is_refused_unless_overwrite(home, postgresql_database, dropped_database):
    require_binary("pg_dump", "pg_restore", "psql")
    pg_helpers.populate(postgresql_database, rows=50)
    name = postgresql_database.rsplit("/", 1)[1]
    bakthat.backup(postgresql_database, password="")
    target = f"copy_{uuid.uuid4().hex[:8]}"
    dropped_database.append(target)
    bakthat.restore(name, into=f"{POSTGRESQL_SERVER}/{target}")
    result = cli("restore", name, "--into", f"{POSTGRESQL_SERVER}/{target}")
    assert result.returncode == 8 and "is not empty" in result.stderr
    bakthat.restore(name, into=f"{POSTGRESQL_SERVER}/{target}", overwrite=True)
    assert pg_helpers.fingerprint(f"{POSTGRESQL_SERVER}/{target}") == pg_helpers.fingerprint(postgresql_database)
