"""The source documents' examples (../shared/seeds/), as bakthat configurations that work.

- zrepl: hooks around an activity in stack order, with environment variables, a
  timeout, err_is_fatal: false, bounded output capture, and a database hook (here a
  streamed PostgreSQL source);
- hazelsync: slots as failure domains, "snapshotted" (here: rotated) only when they
  succeed;
- Elita: long work runs as a job with a UUID whose progress another process polls.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

from bakthat import models
from tests.services import require_binary
from tests.sources import test_postgresql as pg_helpers


def write_profile(home, body: str):
    config = home / ".bakthat.yml"
    config.write_text("default:\n" + textwrap.indent(textwrap.dedent(body), "  "))
    return config


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bakthat", *args], capture_output=True, text=True, timeout=300)


def test_zrepl_hooks_around_a_database_snapshot_in_stack_order_with_env_and_bounded_output(
    home, tmp_path, postgresql_database
):
    """zrepl: `hooks: [{type: command, path: zrepl-notify.sh, timeout: 30s, err_is_fatal: false},
    {type: postgres-checkpoint, dsn: ...}]` around the snapshot of a dataset."""
    require_binary("pg_dump")
    pg_helpers.populate(postgresql_database, rows=100)
    log = tmp_path / "notify.log"
    notify = tmp_path / "zrepl-notify.sh"
    notify.write_text(f"#!/bin/sh\necho \"$BAKTHAT_HOOK $BAKTHAT_NAME $BAKTHAT_STATUS\" >> {log}\n"
                      "head -c 1000000 /dev/zero | tr '\\0' x\n")
    notify.chmod(0o755)
    write_profile(home, f"""\
        hook_output_kib: 4
        jobs:
          snap:
            sources:
              - {{url: '{postgresql_database}', name: pgdata,
                  hooks: {{before: [{{run: {notify}, timeout: 30, err_is_fatal: false}}],
                           after: [{{run: {notify}, timeout: 30}}]}}}}
            hooks:
              before: [{{run: [sh, -c, 'echo job-before >> {log}']}}]
              after: [{{run: [sh, -c, 'echo job-after >> {log}']}}]
        """)
    result = run_cli("run", "--json", "--prompt", "no")
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines() == ["job-before", "before pgdata ", "after pgdata ok", "job-after"]
    hook = json.loads(result.stdout)["jobs"][0]["sources"][0]["hooks"][0]
    assert hook["output_bytes"] == 1_000_000 and hook["output_dropped"] == 1_000_000 - 4096
    assert len(hook["output"]) < 4096 + 200
    models.bind(str(home / ".bakthat.sqlite"))
    stored = models.HookRuns.select().where(models.HookRuns.hook.contains("sources[0]")).first()
    assert stored.output_bytes == 1_000_000 and len(stored.output) < 4096 + 200


def test_hazelsync_slots_are_failure_domains_and_only_successful_slots_are_snapshotted(home, tmp_path):
    """hazelsync: a job backs up slots (hosts, databases...) separately; `backup()` returns
    the slots that succeeded, and only they are snapshotted."""
    slots = {name: tmp_path / name for name in ("host1", "host2", "host3")}
    for path in slots.values():
        path.mkdir()
        (path / "data.txt").write_text(path.name)
    write_profile(home, f"""\
        jobs:
          slots:
            sources: [{slots['host1']}, {slots['host2']}, {slots['host3']}]
            rotation: {{keep_last: 1}}
        """)
    assert run_cli("run", "--prompt", "no").returncode == 0
    (slots["host2"] / "data.txt").unlink()
    slots["host2"].rmdir()  # the slot fails from now on
    second = run_cli("run", "--json", "--prompt", "no")
    assert second.returncode == 3, second.stderr
    sources = json.loads(second.stdout)["jobs"][0]["sources"]
    assert [(source["name"], source["status"], source["rotated"]) for source in sources] == [
        ("host1", "ok", 1), ("host2", "failed", None), ("host3", "ok", 1)]
    models.bind(str(home / ".bakthat.sqlite"))
    live = [row.filename for row in models.Backups.select().where(models.Backups.is_deleted == False)]  # noqa: E712
    assert sorted(live) == ["host1", "host2", "host3"]  # host2 keeps its last good backup


def test_elita_a_job_has_a_uuid_and_another_process_polls_its_progress(home, tmp_path, monkeypatch):
    """Elita: actions run as jobs with a UUID; the job's data (status, progress) is polled."""
    monkeypatch.setenv("BAKTHAT_STATUS_DIR", str(tmp_path / "status"))
    gate = tmp_path / "gate"
    write_profile(home, f"""\
        jobs:
          deploy:
            sources:
              - {{name: artifacts, command: [sh, -c, 'head -c 3000000 /dev/urandom; while [ ! -e {gate} ]; do sleep 0.1; done']}}
        """)
    running = subprocess.Popen([sys.executable, "-m", "bakthat", "run", "--json", "--prompt", "no"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            runs = json.loads(run_cli("status", "--json").stdout)
            seen = next((run for run in runs if run["job"] == "deploy" and run["state"] == "running"
                         and run["phase"] == "dump" and run["bytes_done"] > 0), None)
            if seen:
                break
            time.sleep(0.2)
        assert seen is not None, "the running job never showed its progress"
        assert seen["pid"] == running.pid and seen["name"] == "artifacts" and seen["action"] == "run"
        text = run_cli("status").stdout
        assert "running" in text and "deploy" in text and "artifacts" in text
    finally:
        gate.touch()
        out, err = running.communicate(timeout=120)
    assert running.returncode == 0, err
    session_id = json.loads(out)["jobs"][0]["session_id"]
    (final,) = [run for run in json.loads(run_cli("status", "--json").stdout) if run["session_id"] == session_id]
    assert final["state"] == "ok" and final["finished"] >= final["started"]
    assert final["sources"][0]["status"] == "ok" and final["sources"][0]["stored_filename"].startswith("artifacts.")
