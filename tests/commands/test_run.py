"""``bakthat run``: the profile's jobs, their report (text, --json) and exit status, --dry-run,
one heartbeat ping for the whole run."""

from __future__ import annotations

import json

import bakthat
from bakthat import models
from tests.commands.conftest import expect

#: Nothing listens on the discard port: a ping there fails at once, and is recorded as not delivered.
UNREACHABLE = "http://127.0.0.1:9/5c0f4f2e-secret-check-uuid"


def jobs(home, tree, extra: str = "") -> None:
    (home / ".bakthat.yml").write_text(
        "default:\n"
        + extra
        + "  jobs:\n"
        f"    docs:\n      sources: [{{path: {tree}}}]\n"
        "    broken:\n      sources: [{name: broken, command: [sh, -c, 'echo no dump >&2; exit 4']}]\n"
    )


def last_ping():
    models.bind_settings({})
    return models.Config.get_key("heartbeat_last_ping")


def test_a_named_job_runs_and_reports_each_source(cli, home, tree):
    jobs(home, tree)
    result = cli.ok("run", "docs")
    lines = result.stdout.splitlines()
    assert lines[0].startswith("job docs: ok in ") and lines[0].endswith(" s")
    stored = bakthat.search("mydir")[0].stored_filename
    assert lines[1].split()[:2] == ["ok", "mydir"] and lines[1].endswith(stored)
    assert len(lines) == 2, "the broken job was not named: it does not run"


def test_json_gives_every_jobs_result_and_a_failed_job_exits_1(cli, home, tree):
    jobs(home, tree)
    result = cli("run", "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    by_job = {job["job"]: job for job in report["jobs"]}
    assert by_job["docs"]["status"] == "ok" and by_job["docs"]["exit_code"] == 0
    assert by_job["broken"]["status"] == "failed" and by_job["broken"]["sources"][0]["status"] == "failed"
    text = cli("run", "broken")
    lines = text.stdout.splitlines()
    assert text.returncode == 1 and lines[0].endswith(": every source of job broken failed")
    assert lines[1].split() == ["failed", "broken", "-", "-"]
    assert lines[2].startswith("           ") and "(exit status 4): no dump" in lines[2]  # the error's first line


def test_a_dry_run_stores_nothing_and_says_so(cli, home, tree):
    jobs(home, tree)
    result = cli.ok("run", "docs", "--dry-run")
    assert result.stdout.startswith("job docs: ok (dry run) in ")
    assert bakthat.search() == []
    assert json.loads(cli.ok("run", "docs", "--dry-run", "--json").stdout)["jobs"][0]["dry_run"] is True


def test_the_heartbeat_is_pinged_once_per_run_and_never_on_a_dry_run(cli, home, tree):
    jobs(home, tree, f"  heartbeat_url: {UNREACHABLE}\n")
    cli.ok("run", "docs", "--dry-run")
    assert last_ping() is None
    cli("run")
    ping = last_ping()
    assert ping["status"] == "fail" and ping["delivered"] is False  # a job failed
    result = cli.ok("run", "docs")
    assert last_ping()["status"] == "success"
    assert "secret-check-uuid" not in result.stdout + result.stderr


def test_an_unknown_job_exits_2_and_runs_nothing(cli, home, tree):
    jobs(home, tree)
    expect(cli("run", "nightly"), 2, "nightly")
    assert bakthat.search() == []


def test_run_takes_no_destination_and_prompt_is_yes_or_no(cli, home, tree):
    jobs(home, tree)
    expect(cli("run", "docs", "-d", "s3"), 2, "unrecognized arguments: -d")
    expect(cli("run", "docs", "--prompt", "maybe"), 2, "invalid choice: 'maybe'")
