"""bakthat.jobs: the profile's jobs: and hooks: keys, validated when the profile loads."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from bakthat.conf import get_profile
from bakthat.errors import ConfigError
from bakthat.jobs import parse_jobs

ISSUE_EXAMPLE = """\
default:
  jobs:
    nightly:
      sources:
        - /etc
        - postgresql://postgres@127.0.0.1:5432/app
        - mysql://root@127.0.0.1:3306/shop
        - sqlite:///var/lib/app/app.db
        - {name: pool, command: [zfs, send, tank@today]}
        - {path: /srv/www, hooks: {before: [{run: "touch /srv/www/.snap"}]}}
      hooks:
        before: [{run: "systemctl stop app", timeout: 60, err_is_fatal: true}]
        after: [{run: "systemctl start app"}]
"""


def write_config(home, text: str):
    path = home / ".bakthat.yml"
    path.write_text(textwrap.dedent(text))
    return path


def test_the_issue_example_loads_as_written(home):
    write_config(home, ISSUE_EXAMPLE)
    jobs = parse_jobs(get_profile()["jobs"])
    nightly = jobs["nightly"]
    assert [(source.kind, source.name) for source in nightly.sources] == [
        ("path", "etc"), ("postgresql", "app"), ("mysql", "shop"), ("sqlite", "app.db"), ("command", "pool"),
        ("path", "www"),
    ]
    assert nightly.hooks.before[0].run == ("systemctl", "stop", "app")
    assert nightly.hooks.before[0].timeout == 60 and nightly.hooks.before[0].err_is_fatal
    assert nightly.hooks.after[0].run == ("systemctl", "start", "app")
    assert nightly.sources[5].hooks == {"before": [{"run": "touch /srv/www/.snap"}]}


@pytest.mark.parametrize(
    ("job", "message"),
    [
        ("{sources: [/etc], rotaton: {days: 3}}", "jobs.nightly: unknown key 'rotaton' (did you mean 'rotation'?)"),
        ("{sources: []}", "jobs.nightly.sources: give a list of one or more sources"),
        ("{sources: [ftp://host/x]}", "jobs.nightly.sources[0].url: unknown source scheme 'ftp'"),
        ("{sources: [{command: [zfs, send]}]}", "jobs.nightly.sources[0]: a command source needs a name"),
        ("{sources: [/a/x, /b/x]}", "jobs.nightly.sources[1]: backup name 'x' is already used by sources[0]"),
        ("{sources: [/etc], hooks: {befor: [ls]}}", "jobs.nightly.hooks: unknown hook phase 'befor'"),
        ("{sources: [{path: /etc, hooks: {before: [{run: ls, timeout: -1}]}}]}",
         "jobs.nightly.sources[0].hooks.before[0].timeout"),
        ("{sources: [/etc], rotation: {dayz: 3}}", "jobs.nightly.rotation: unknown key(s) dayz"),
        ("{sources: [/etc], encryption: {recipient: [x]}}", "jobs.nightly.encryption: unknown key 'recipient'"),
        ("{sources: [/etc], require_encryption: maybe}", "jobs.nightly.require_encryption"),
    ],
)
def test_a_bad_job_is_refused_naming_file_profile_job_and_key(home, job, message):
    write_config(home, f"work:\n  jobs:\n    nightly: {job}\n")
    with pytest.raises(ConfigError) as caught:
        get_profile("work")
    assert "~/.bakthat.yml: profile 'work': key 'jobs' is invalid: " in str(caught.value)
    assert message in str(caught.value)


def test_a_bad_profile_hook_is_refused_naming_the_key(home):
    write_config(home, "default:\n  hooks:\n    before: [{run: ls, err_is_fatal: perhaps}]\n")
    with pytest.raises(ConfigError, match=r"profile 'default': key 'hooks' is invalid: hooks.before\[0\]"):
        get_profile()


def test_the_command_line_exits_2_on_a_bad_job_and_names_it(home):
    write_config(home, "default:\n  jobs:\n    nightly: {sources: [/etc], tags: 3}\n")
    result = subprocess.run([sys.executable, "-m", "bakthat", "run"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "profile 'default': key 'jobs' is invalid: jobs.nightly.tags: must be a string or a list" in result.stderr


def test_configure_show_masks_a_source_password(home):
    write_config(home, "default:\n  jobs:\n    db:\n      sources:\n"
                       "        - postgresql://app:Sup3rSecret@db.example/app\n"
                       "        - {url: 'mysql://root@db/shop', password: An0therSecret}\n")
    (home / ".bakthat.yml").chmod(0o600)
    result = subprocess.run([sys.executable, "-m", "bakthat", "configure", "--show"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Sup3rSecret" not in result.stdout and "An0therSecret" not in result.stdout
    assert "db.example/app" in result.stdout


def test_job_level_encryption_settings_become_the_jobs_profile_keys(home):
    jobs = parse_jobs({"n": {"sources": ["/etc"], "encryption": {"password_file": "/etc/pw"},
                             "require_encryption": True, "tags": ["daily", "db"]}})
    assert dict(jobs["n"].overrides) == {"password_file": "/etc/pw", "require_encryption": True}
    assert jobs["n"].tags == "daily db"


def test_the_issue_example_runs_as_written_in_a_dry_run(home):
    """Every source is planned (nothing dumped, nothing stored) and no hook runs: none
    declares dry_run: true.  /srv/www does not exist here, so that source fails alone."""
    import json
    import os

    write_config(home, ISSUE_EXAMPLE)
    result = subprocess.run([sys.executable, "-m", "bakthat", "run", "--dry-run", "--json"],
                            capture_output=True, text=True, timeout=300)
    report = json.loads(result.stdout)
    (job,) = report["jobs"]
    statuses = {source["name"]: source["status"] for source in job["sources"]}
    expected_www = "ok" if os.path.isdir("/srv/www") else "failed"
    assert statuses == {"etc": "ok", "app": "ok", "shop": "ok", "app.db": "ok", "pool": "ok", "www": expected_www}
    assert result.returncode == (0 if expected_www == "ok" else 3)
    assert [source["stored_filename"].split(".20")[0] for source in job["sources"][1:5]] == [
        "app", "shop", "app.db", "pool"]
    assert job["hooks"] == [] and all(source["hooks"] == [] for source in job["sources"])
    assert not (home / ".bakthat_store").exists() or not [p for p in (home / ".bakthat_store").iterdir() if p.is_file()]
