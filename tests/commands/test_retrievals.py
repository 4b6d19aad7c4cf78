"""``bakthat retrievals``: the archive retrievals the catalog records, refreshed from the store."""

from __future__ import annotations

import json

import bakthat
from tests.backends.conftest import aws, moto_server  # noqa: F401 - fixtures
from tests.commands.conftest import expect

KEYS = {"key", "destination", "kind", "tier", "status", "requested", "ready_until", "job_id"}


def test_none_recorded_says_so(cli):
    assert cli.ok("retrievals").stdout == "no pending retrievals\n"
    assert cli.ok("retrievals", "--all").stdout == "no retrievals recorded\n"
    assert cli.ok("retrievals", "--json").stdout == "[]\n"


def test_a_requested_retrieval_is_pending_then_ready_once_the_store_says_so(cli, aws, home, tree, tmp_path):
    (home / ".bakthat.yml").write_text("default:\n  s3_bucket: cold-bucket\n  retrieval_tier: Bulk\n")
    row = bakthat.backup(str(tree), destination="glacier", prompt="no")
    expect(cli("restore", "mydir", "-d", "glacier", "--target", str(tmp_path / "out")), 11, "Bulk retrieval was requested")
    # the catalog's view: pending, as recorded when the restore asked
    pending = json.loads(cli.ok("retrievals", "--no-refresh", "--json").stdout)
    assert [(r["key"], r["status"], r["tier"], r["destination"]) for r in pending] == [
        (row.stored_filename, "pending", "Bulk", "glacier")
    ]
    assert set(pending[0]) == KEYS
    lines = cli.ok("retrievals", "--no-refresh").stdout.splitlines()
    assert lines[0].split() == ["requested", "destination", "tier", "status", "key"]
    assert lines[1].split()[-4:] == ["glacier", "Bulk", "pending", row.stored_filename]
    # moto completes restores at once: asked again, the store says it is ready (listed with --all)
    assert cli.ok("retrievals", "-d", "glacier").stdout == "no pending retrievals\n"
    ready = cli.ok("retrievals", "-d", "glacier", "--all").stdout.splitlines()
    assert "ready" in ready[1].split() and row.stored_filename in ready[1]
    assert [r["status"] for r in json.loads(cli.ok("retrievals", "--all", "--json").stdout)] == ["ready"]


def test_an_unknown_destination_exits_2(cli):
    expect(cli("retrievals", "-d", "ftp"), 2, "unknown destination 'ftp'")
