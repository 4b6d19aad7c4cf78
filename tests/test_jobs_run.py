"""bakthat.jobs_run: `bakthat run` against the real PostgreSQL and MariaDB, each source a failure domain."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

import bakthat
from bakthat import models
from tests.conftest import process_running
from tests.services import MARIADB_SERVER, POSTGRESQL_SERVER, mariadb_sql, postgresql_admin, require_binary
from tests.sources import test_mysql as mysql_helpers
from tests.sources import test_postgresql as pg_helpers
from tests.sources import test_sqlite as sqlite_helpers

PASSWORD = "job-password-" + uuid.uuid4().hex[:6]


def bakthat_cli(*args: str, config: Path, check_exit: int | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "bakthat", *args, "-c", str(config)],
                            capture_output=True, text=True, timeout=600)
    if check_exit is not None:
        assert result.returncode == check_exit, result.stderr
    return result


def profile(home: Path, body: str) -> Path:
    """Write a config whose default profile stores in HOME/store, encrypted with a password file."""
    (home / "password").write_text(PASSWORD + "\n")
    (home / "password").chmod(0o600)
    config = home / "bakthat.yml"
    config.write_text(
        "default:\n"
        f"  local_path: {home / 'store'}\n"
        f"  database: {home / 'catalog.sqlite'}\n"
        f"  password_file: {home / 'password'}\n"
        "  require_encryption: true\n" + textwrap.indent(textwrap.dedent(body), "  ")
    )
    return config


def live_names(config: Path) -> list[str]:
    models.bind(str(config.parent / "catalog.sqlite"))
    return sorted(row.filename for row in models.Backups.select().where(models.Backups.is_deleted == False))  # noqa: E712


@pytest.fixture
def fresh_postgresql():
    admin = postgresql_admin()
    names = []

    def make() -> str:
        names.append(f"bakthat_test_{uuid.uuid4().hex[:12]}")
        return f"{POSTGRESQL_SERVER}/{names[-1]}"

    yield make
    models.unbind()
    with admin.cursor() as cursor:
        for name in names:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def fresh_mariadb():
    names = []

    def make() -> str:
        names.append(f"bakthat_test_{uuid.uuid4().hex[:12]}")
        return f"{MARIADB_SERVER}/{names[-1]}"

    yield make
    for name in names:
        mariadb_sql(f"DROP DATABASE IF EXISTS `{name}`;")


def test_a_nightly_job_with_a_failing_source_stores_and_rotates_the_four_good_ones_and_exits_3(
    home, tmp_path, postgresql_database, mariadb_database, fresh_postgresql, fresh_mariadb
):
    require_binary("pg_dump", "pg_restore", "psql", "mariadb-dump", "mariadb")
    pg_helpers.populate(postgresql_database, rows=3000)
    mysql_helpers.populate(mariadb_database, rows=3000)
    tree = tmp_path / "www"
    (tree / "static").mkdir(parents=True)
    (tree / "index.html").write_text("<h1>shop</h1>\n" * 500)
    (tree / "static" / "logo.bin").write_bytes(os.urandom(100_000))
    app_db = tmp_path / "app.db"
    sqlite_helpers.make_database(app_db, "wal")
    log = tmp_path / "hooks.log"
    config = profile(home, f"""\
        jobs:
          nightly:
            sources:
              - {{path: {tree}, hooks: {{before: [{{run: [sh, -c, 'echo "www $BAKTHAT_NAME" >> {log}']}}]}}}}
              - {postgresql_database}
              - {mariadb_database}
              - sqlite://{app_db}
              - {{name: broken, command: [sh, -c, 'head -c 300000 /dev/urandom; echo dump failed >&2; exit 4']}}
            rotation: {{keep_last: 1}}
            hooks:
              before: [{{run: [sh, -c, 'echo "before $BAKTHAT_JOB" >> {log}'], err_is_fatal: true}}]
              after: [{{run: [sh, -c, 'echo "after $BAKTHAT_STATUS" >> {log}']}}]
        """)
    pg_name = postgresql_database.rsplit("/", 1)[1]
    maria_name = mariadb_database.rsplit("/", 1)[1]
    # Older backups: one of the directory (rotation must delete it), two of the failing
    # source's name (rotation must leave them: that source did not succeed).
    bakthat_cli("backup", str(tree), "--name", "www", config=config, check_exit=0)
    bakthat_cli("backup", str(tree), "--name", "broken", config=config, check_exit=0)
    bakthat_cli("backup", str(tree), "--name", "broken", config=config, check_exit=0)
    models.unbind()

    writer = subprocess.Popen([sys.executable, "-c", sqlite_helpers.WRITER, str(app_db)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        result = bakthat_cli("run", "--json", config=config)
    finally:
        writer.kill()
        writer.wait()
    assert result.returncode == 3, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "partial" and report["exit_code"] == 3
    (job,) = report["jobs"]
    statuses = {source["name"]: source["status"] for source in job["sources"]}
    assert statuses == {"www": "ok", pg_name: "ok", maria_name: "ok", "app.db": "ok", "broken": "failed"}
    broken = job["sources"][4]
    assert broken["stored_filename"] is None and "exit status 4" in broken["error"]
    assert "dump failed" in broken["error"]
    assert [source["rotated"] for source in job["sources"]] == [1, 0, 0, 0, None]
    assert log.read_text().splitlines() == ["before nightly", "www www", "after partial"]

    # Stored: the four good sources; the failed dump left no object; the old "broken" backups stay.
    assert live_names(config) == sorted(["www", pg_name, maria_name, "app.db", "broken", "broken"])
    stored = sorted(
        path.name for path in (home / "store").iterdir() if not path.name.endswith((".manifest.json", ".index.jsonl.zst", ".index.jsonl.zst.age"))
    )
    assert sum(name.startswith("broken.") for name in stored) == 2
    assert any(name.startswith(f"{pg_name}.") and name.endswith(".pgdump.zst.age") for name in stored)
    assert not [path for path in (home / "store" / ".bakthat-tmp").iterdir()]

    # The catalog records the job run, every source run and every hook run.
    job_run = models.JobRuns.get(models.JobRuns.session_id == job["session_id"])
    assert (job_run.job, job_run.status, job_run.pid > 0, job_run.finished >= job_run.started) == (
        "nightly", "partial", True, True)
    runs = list(models.SourceRuns.select().where(models.SourceRuns.job_run == job_run.session_id)
                .order_by(models.SourceRuns.position))
    assert [(run.name, run.status) for run in runs] == list(statuses.items())
    assert runs[1].stored_filename == job["sources"][1]["stored_filename"] and runs[1].size > 1000
    assert runs[4].error and runs[4].stored_filename is None
    hooks = list(models.HookRuns.select().where(models.HookRuns.job_run == job_run.session_id)
                 .order_by(models.HookRuns.started))
    assert [(hook.hook, hook.phase, hook.exit_status) for hook in hooks] == [
        ("jobs.nightly.hooks.before[0]", "before", 0),
        ("jobs.nightly.sources[0].hooks.before[0]", "before", 0),
        ("jobs.nightly.hooks.after[0]", "after", 0),
    ]
    assert hooks[1].source_run == runs[0].session_id and all(hook.duration >= 0 for hook in hooks)
    models.unbind()

    # Each database restores --into a fresh database whose content matches.
    pg_target = fresh_postgresql()
    bakthat_cli("restore", pg_name, "--into", pg_target, config=config, check_exit=0)
    assert pg_helpers.fingerprint(pg_target) == pg_helpers.fingerprint(postgresql_database)
    maria_target = fresh_mariadb()
    bakthat_cli("restore", maria_name, "--into", maria_target, config=config, check_exit=0)
    assert mysql_helpers.fingerprint(maria_target) == mysql_helpers.fingerprint(mariadb_database)
    restored = tmp_path / "restored.db"
    bakthat_cli("restore", "app.db", "--into", f"sqlite://{restored}", config=config, check_exit=0)
    a, b, n, sum_a, s = sqlite_helpers.invariant(restored)
    assert a == b == n >= 50 and sum_a == s  # a consistent copy taken under concurrent writes
    assert _tables(restored) == _tables(app_db)
    bakthat_cli("restore", "app.db", "--target", str(tmp_path / "dumped"), config=config, check_exit=0)
    assert _checksums(restored) == _checksums(tmp_path / "dumped" / "app.db.sqlite")  # every table, every row


def _checksums(path: Path) -> dict[str, tuple[int, str]]:
    """Return {table: (row count, sha256 of every row in rowid order)}."""
    import hashlib

    db = sqlite3.connect(path)
    try:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        result = {}
        for table in tables:
            digest = hashlib.sha256()
            count = 0
            for row in db.execute(f'SELECT * FROM "{table}" ORDER BY rowid'):
                digest.update(repr(row).encode())
                count += 1
            result[table] = (count, digest.hexdigest())
        return result
    finally:
        db.close()


def _tables(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return [row[0] for row in db.execute("SELECT sql FROM sqlite_master ORDER BY name")]
    finally:
        db.close()


def test_a_fatal_job_hook_skips_every_source_runs_the_matching_after_hooks_in_reverse_and_exits_1(home, tmp_path):
    log = tmp_path / "order.log"
    tree = tmp_path / "data"
    tree.mkdir()
    (tree / "f").write_text("x")

    def hook(word: str, extra: str = "") -> str:
        return f"{{run: [sh, -c, 'echo {word} >> {log}{extra}']}}"

    config = profile(home, f"""\
        jobs:
          nightly:
            sources: [{tree}]
            hooks:
              before:
                - {hook('before0')}
                - {{run: [sh, -c, 'echo before1 >> {log}; exit 2'], err_is_fatal: true}}
                - {hook('before2')}
              after: [{hook('after0')}, {hook('after1')}, {hook('after2')}]
              on_error: [{hook('on_error')}]
              finally: [{hook('finally0')}]
        """)
    result = bakthat_cli("run", "--json", config=config)
    assert result.returncode == 1, result.stderr
    job = json.loads(result.stdout)["jobs"][0]
    assert job["status"] == "failed" and "fatal before hook failed" in job["error"]
    assert [source["status"] for source in job["sources"]] == ["skipped"]
    assert log.read_text().split() == ["before0", "before1", "after1", "after0", "on_error", "finally0"]
    assert live_names(config) == []


def test_a_failing_hook_without_err_is_fatal_is_logged_and_the_job_goes_on(home, tmp_path):
    tree = tmp_path / "data"
    tree.mkdir()
    config = profile(home, f"""\
        jobs:
          nightly:
            sources: [{{path: {tree}, hooks: {{before: [[sh, -c, 'echo not fatal; exit 9']]}}}}]
        """)
    result = bakthat_cli("run", "--json", config=config)
    assert result.returncode == 0, result.stderr
    source = json.loads(result.stdout)["jobs"][0]["sources"][0]
    assert source["status"] == "ok" and source["hooks"][0]["exit_status"] == 9
    assert "exit status 9" in result.stderr and "not fatal" in result.stderr
    assert live_names(config) == ["data"]


def test_a_hook_past_its_timeout_is_killed_with_its_whole_process_group(home, tmp_path):
    pidfile = tmp_path / "child.pid"
    tree = tmp_path / "data"
    tree.mkdir()
    config = profile(home, f"""\
        jobs:
          nightly:
            sources: [{tree}]
            hooks:
              before: [{{run: [sh, -c, 'sleep 300 & echo $! > {pidfile}; wait'], timeout: 1, err_is_fatal: true}}]
        """)
    started = time.monotonic()
    result = bakthat_cli("run", "--json", config=config)
    assert time.monotonic() - started < 60
    assert result.returncode == 1, result.stderr
    hook = json.loads(result.stdout)["jobs"][0]["hooks"][0]
    assert hook["timed_out"] is True
    child = int(pidfile.read_text())
    assert not process_running(child), "the hook's child outlived the timeout"
    models.bind(str(home / "catalog.sqlite"))
    assert models.HookRuns.get().timed_out is True


def test_a_dry_run_runs_only_the_dry_run_hooks_with_the_flag_set_and_stores_nothing(home, tmp_path):
    log = tmp_path / "dry.log"
    tree = tmp_path / "data"
    tree.mkdir()
    config = profile(home, f"""\
        jobs:
          nightly:
            sources: [{tree}, {{name: cmd, command: [sh, -c, 'echo never run >> {log}']}}]
            hooks:
              before:
                - {{run: [sh, -c, 'echo "check dry=$BAKTHAT_DRY_RUN" >> {log}'], dry_run: true}}
                - {{run: [sh, -c, 'echo stop the app >> {log}']}}
        """)
    result = bakthat_cli("run", "--dry-run", "--json", config=config)
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)["jobs"][0]
    assert job["dry_run"] is True
    assert [source["stored_filename"].split(".")[0] for source in job["sources"]] == ["data", "cmd"]
    assert log.read_text().splitlines() == ["check dry=true"]
    assert live_names(config) == []
    assert models.JobRuns.select().count() == 0


def test_the_context_reaches_a_shell_hook_and_a_python_handler_with_one_session_id(home, tmp_path):
    seen = []

    def before(session_id):
        seen.append(("before", session_id, bakthat.current_context()))

    def after(session_id, row):
        current = bakthat.eventing.current_session()
        seen.append(("on", session_id, current.context))

    bakthat.events.before_backup += before
    bakthat.events.on_backup += after
    out = tmp_path / "env.json"
    tree = tmp_path / "www"
    tree.mkdir()
    config = profile(home, f"""\
        jobs:
          web:
            destination: local
            sources:
              - {{path: {tree}, hooks: {{after: [{{run: [sh, -c, 'cp "$BAKTHAT_CONTEXT" {out}; env | grep ^BAKTHAT_ > {out}.env']}}]}}}}
        """)
    result = bakthat.run("web", config=str(config))
    assert result.exit_code == 0
    source = result["web"].sources[0]
    document = json.loads(out.read_text())
    environment = dict(line.split("=", 1) for line in (tmp_path / "env.json.env").read_text().splitlines())
    (_, before_id, before_context), (_, on_id, on_context) = seen
    assert before_id == on_id == source.session_id == document["session_id"] == environment["BAKTHAT_SESSION_ID"]
    assert before_context.job == on_context.job == document["job"] == environment["BAKTHAT_JOB"] == "web"
    assert before_context.name == document["name"] == environment["BAKTHAT_NAME"] == "www"
    assert before_context.source == str(tree) == environment["BAKTHAT_SOURCE"]
    assert document["status"] == environment["BAKTHAT_STATUS"] == "ok"
    assert document["stored_filename"] == environment["BAKTHAT_STORED_FILENAME"] == source.stored_filename
    assert environment["BAKTHAT_DESTINATION"] == "local" and environment["BAKTHAT_HOOK"] == "after"
    assert PASSWORD not in out.read_text() + (tmp_path / "env.json.env").read_text()


def test_a_plain_backup_gives_python_handlers_the_context_and_runs_the_profile_hooks(home, tmp_path):
    seen = []
    bakthat.events.before_backup += lambda session_id: seen.append((session_id, bakthat.current_context()))
    log = tmp_path / "plain.log"
    tree = tmp_path / "docs"
    tree.mkdir()
    config = profile(home, f"""\
        hooks:
          before: [{{run: [sh, -c, 'echo "$BAKTHAT_ACTION $BAKTHAT_NAME $BAKTHAT_SESSION_ID" >> {log}']}}]
          after: [{{run: [sh, -c, 'echo "$BAKTHAT_STATUS $BAKTHAT_STORED_FILENAME" >> {log}']}}]
        """)
    row = bakthat.backup(str(tree), config=str(config))
    ((session_id, context),) = seen
    assert row.session_id == session_id == context.session_id
    assert (context.action, context.name, context.source, context.job) == ("backup", "docs", str(tree), None)
    assert log.read_text().splitlines() == [f"backup docs {session_id}", f"ok {row.stored_filename}"]
    assert bakthat.current_context() is None
    assert [hook.phase for hook in models.HookRuns.select().order_by(models.HookRuns.started)] == ["before", "after"]


def test_sigterm_during_a_job_kills_the_dump_runs_the_cleanup_hooks_and_records_the_run_interrupted(home, tmp_path):
    import signal

    cleaned = tmp_path / "cleaned"
    pidfile = tmp_path / "dump.pid"
    config = profile(home, f"""\
        jobs:
          slow:
            sources:
              - {{name: stream, command: [sh, -c, 'echo $$ > {pidfile}; head -c 1000 /dev/zero; sleep 300']}}
            hooks:
              before: [{{run: "true"}}]
              finally: [{{run: [sh, -c, 'echo cleaned > {cleaned}']}}]
        """)
    running = subprocess.Popen([sys.executable, "-m", "bakthat", "run", "-c", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    running.send_signal(signal.SIGTERM)
    out, err = running.communicate(timeout=60)
    assert running.returncode == 130, err
    assert cleaned.read_text() == "cleaned\n"
    assert not process_running(int(pidfile.read_text()))
    models.bind(str(home / "catalog.sqlite"))
    assert [(run.job, run.status) for run in models.JobRuns.select()] == [("slow", "interrupted")]
    assert [(run.name, run.status, run.error) for run in models.SourceRuns.select()] == [
        ("stream", "failed", "interrupted")]
    assert [hook.phase for hook in models.HookRuns.select().order_by(models.HookRuns.started)] == ["before", "finally"]
    assert live_names(config) == [] and not [p for p in (home / "store").iterdir() if p.is_file()]


def test_a_job_without_any_password_source_says_once_that_it_stores_unencrypted(home, tmp_path):
    tree = tmp_path / "data"
    tree.mkdir()
    (home / "bakthat.yml").write_text(f"default:\n  local_path: {home / 'store'}\n  jobs:\n"
                                      f"    plain:\n      sources: [{tree}, {{name: c, command: [echo, hi]}}]\n")
    result = bakthat_cli("run", config=home / "bakthat.yml", check_exit=0)
    assert result.stderr.count("stored unencrypted") == 1
    assert "every backup of job plain is stored unencrypted" in result.stderr
    assert all(not path.name.endswith(".age") for path in (home / "store").iterdir())


def test_a_job_run_whose_process_died_is_recorded_as_crashed_by_the_next_run_not_running_forever(home, tmp_path):
    tree = tmp_path / "www"
    tree.mkdir()
    (tree / "index.html").write_text("hello")
    config = profile(home, f"""\
        jobs:
          web:
            sources: [{tree}]
        """)
    killed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    killed.kill()
    killed.wait()
    models.bind(str(home / "catalog.sqlite"))
    models.JobRuns.create(session_id="killed-run", job="web", profile="default", host=socket.gethostname(),
                          pid=killed.pid, started=time.time() - 60, status="running")
    models.JobRuns.create(session_id="other-host", job="web", profile="default", host="elsewhere.example",
                          pid=killed.pid, started=time.time() - 60, status="running")
    assert bakthat.run("web", config=str(config)).exit_code == 0
    models.bind(str(home / "catalog.sqlite"))
    status = {run.session_id: run.status for run in models.JobRuns.select()}
    assert status.pop("killed-run") == "crashed"
    assert status.pop("other-host") == "running", "a run on another host is not ours to judge"
    assert list(status.values()) == ["ok"]
