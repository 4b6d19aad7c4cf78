"""``bakthat periodic_backups``: the heartbeat_url (host only), the last ping, each -k key's backups."""

from __future__ import annotations

import json

import bakthat
from tests.commands.conftest import expect

#: Nothing listens on the discard port: a ping there fails at once, and is recorded as not delivered.
UNREACHABLE = "http://127.0.0.1:9/5c0f4f2e-secret-check-uuid"


def test_help_explains_the_successor_of_bakmanager(cli):
    result = cli.ok("periodic_backups", "--help")
    assert "BakManager" in result.stdout and "heartbeat_url" in result.stdout


def test_nothing_configured_says_how_to_set_it(cli):
    assert cli.ok("periodic-backups").stdout.splitlines() == [
        "heartbeat_url: not set (bakthat configure --heartbeat-url URL sets it)",
        "last ping: none yet",
    ]
    assert json.loads(cli.ok("periodic_backups", "--json").stdout) == {"heartbeat_url": None, "last_ping": None, "keys": []}


def test_the_last_ping_and_the_keys_backups_without_the_urls_secret(cli, home, tree, tmp_path):
    (home / ".bakthat.yml").write_text(f"default:\n  heartbeat_url: {UNREACHABLE}\n")
    first = json.loads(cli.ok("backup", str(tree), "--prompt", "no", "-k", "nightly", "--json").stdout)
    second = json.loads(cli.ok("backup", str(tree), "--prompt", "no", "-k", "nightly", "--json").stdout)
    other = tmp_path / "other.txt"
    other.write_text("x")
    bakthat.backup(str(other), password="", key="hourly")
    bakthat.backup(str(other), password="")  # no key: not listed
    state = json.loads(cli.ok("periodic_backups", "--json").stdout)
    assert state["heartbeat_url"] == "http://127.0.0.1:9/…"
    assert state["last_ping"]["status"] == "success" and state["last_ping"]["delivered"] is False
    assert [(key["key"], key["count"]) for key in state["keys"]] == [("hourly", 1), ("nightly", 2)]
    assert state["keys"][1]["total_size"] == first["size"] + second["size"]
    assert state["keys"][1]["newest"] == second["backup_date"]
    text = cli.ok("periodic_backups").stdout
    assert "secret-check-uuid" not in text + json.dumps(state)
    lines = text.splitlines()
    assert lines[0] == "heartbeat_url: http://127.0.0.1:9/… (pinged after each bakthat backup)"
    assert lines[1].startswith("last ping: success at ") and lines[1].endswith(", NOT delivered")
    assert lines[3].split() == ["KEY", "BACKUPS", "NEWEST", "TOTAL", "SIZE"]
    assert lines[4].split()[:2] == ["hourly", "1"] and lines[5].split()[:2] == ["nightly", "2"]
    assert json.loads(cli.ok("periodic_backups", "-d", "s3", "--json").stdout)["keys"] == []


def test_an_unknown_option_is_a_usage_error(cli):
    expect(cli("periodic_backups", "--key", "nightly"), 2, "unrecognized arguments")
