"""``bakthat cleanup_uploads``: incomplete multipart uploads older than --older-than, listed
(--dry-run) then aborted; text and --json; a store without such uploads is a config error."""

from __future__ import annotations

import json

import pytest

from tests.backends.conftest import aws, moto_server, s3_client  # noqa: F401 - fixtures
from tests.commands.conftest import expect

BUCKET = "uploads-bucket"


def in_progress() -> list[str]:
    return sorted(upload["Key"] for upload in s3_client().list_multipart_uploads(Bucket=BUCKET).get("Uploads", []))


@pytest.fixture
def uploads(aws, home):
    """An S3 profile (prefix ``pre/``) with one upload under its prefix and one elsewhere
    (moto dates every upload in 2010: both are stale for any interval)."""
    (home / ".bakthat.yml").write_text(f"default:\n  default_destination: s3\n  s3_bucket: {BUCKET}\n  s3_prefix: pre\n")
    client = s3_client()
    client.create_bucket(Bucket=BUCKET)
    client.create_multipart_upload(Bucket=BUCKET, Key="pre/killed.tar.zst")
    client.create_multipart_upload(Bucket=BUCKET, Key="elsewhere/not-ours")
    return client


def test_a_dry_run_lists_what_would_be_aborted_and_aborts_nothing(cli, uploads):
    lines = cli.ok("cleanup_uploads", "--older-than", "2D", "--dry-run").stdout.splitlines()
    assert len(lines) == 1 and lines[0].endswith("  would abort  killed.tar.zst")
    listed = json.loads(cli.ok("cleanup_uploads", "--dry-run", "--json").stdout)
    assert [(upload["key"], upload["aborted"]) for upload in listed] == [("killed.tar.zst", False)]
    assert set(listed[0]) == {"key", "upload_id", "initiated", "aborted"}
    assert in_progress() == ["elsewhere/not-ours", "pre/killed.tar.zst"]


def test_only_the_uploads_under_the_prefix_are_aborted(cli, uploads):
    aborted = json.loads(cli.ok("cleanup_uploads", "--json").stdout)
    assert [(upload["key"], upload["aborted"]) for upload in aborted] == [("killed.tar.zst", True)]
    assert in_progress() == ["elsewhere/not-ours"]
    assert cli.ok("cleanup_uploads").stdout == "no incomplete uploads older than 1D in s3\n"
    assert cli.ok("cleanup_uploads", "--older-than", "12h").stdout == "no incomplete uploads older than 12h in s3\n"


def test_a_store_without_multipart_uploads_exits_2(cli):
    expect(cli("cleanup_uploads", "-d", "local"), 2, "destination local has no multipart uploads to clean")


@pytest.mark.parametrize(("value", "message"), [("0s", "longer than 0 seconds"), ("soon", "soon")])
def test_a_bad_interval_exits_2_naming_the_option(cli, value, message):
    result = cli("cleanup_uploads", "-d", "local", "--older-than", value)
    expect(result, 2, "--older-than")
    assert message in result.stderr
