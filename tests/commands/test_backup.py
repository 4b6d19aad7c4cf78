"""``bakthat backup``: its options, its output (text, --json, --progress) and its dry run."""

from __future__ import annotations

import json
import os

import pytest

import bakthat
from tests.commands.conftest import ROW_KEYS, expect


def store(home) -> list[str]:
    """The objects of the local store (not its temporary directory)."""
    directory = home / ".bakthat_store"
    return sorted(name for name in os.listdir(directory) if not name.startswith(".")) if directory.exists() else []


def paths_in(row) -> set[str]:
    return {entry.path for entry in bakthat.files(row.stored_filename)}


def test_json_prints_the_new_row_and_the_messages_go_to_stderr(cli, tree, home):
    result = cli.ok("backup", str(tree), "--prompt", "no", "--json", "-t", "daily db", "-k", "nightly")
    row = json.loads(result.stdout)
    assert set(row) == ROW_KEYS and len(result.stdout.splitlines()) == 1
    assert row["filename"] == "mydir" and row["tags"] == "daily db" and row["metadata"]["key"] == "nightly"
    assert row["source_path"] == str(tree) and row["encryption"] == "none"
    assert row["stored_filename"] in store(home)
    assert f"Backing up {tree}" in result.stderr and "Stored mydir." in result.stderr


def test_without_json_stdout_stays_empty(cli, tree):
    assert cli.ok("backup", str(tree), "--prompt", "no").stdout == ""


def test_the_source_defaults_to_the_current_directory(cli, tmp_path, monkeypatch):
    folder = tmp_path / "cwd-source"
    folder.mkdir()
    (folder / "a").write_text("a")
    monkeypatch.chdir(folder)
    cli.ok("backup", "--prompt", "no")
    assert [row.filename for row in bakthat.search()] == ["cwd-source"]


def test_name_exclude_and_exclude_file_shape_what_is_stored(cli, tree, tmp_path):
    patterns = tmp_path / "patterns"
    patterns.write_text("*.bin\n")
    row = json.loads(cli.ok(
        "backup", str(tree), "--prompt", "no", "--json", "--name", "photos", "--exclude", "sub/",
        "--exclude", "*.key", "--exclude-file", str(patterns),
    ).stdout)
    assert row["filename"] == "photos" and row["stored_filename"].startswith("photos.")
    stored = paths_in(bakthat.search("photos")[0])
    assert "photos/text.txt" in stored
    assert not {path for path in stored if path.startswith("photos/sub") or path.endswith((".key", ".bin"))}


@pytest.mark.parametrize("compression", ["gzip", "none", "zstd"])
def test_compression_overrides_the_profile(cli, tree, home, compression):
    (home / ".bakthat.yml").write_text("default:\n  compression: zstd\n")
    row = json.loads(cli.ok("backup", str(tree), "--prompt", "no", "--json", "--compression", compression).stdout)
    assert row["compression"] == compression


def test_level_incr_stores_only_the_changes_on_its_base(cli, tree):
    full = json.loads(cli.ok("backup", str(tree), "--prompt", "no", "--json", "--level", "full").stdout)
    (tree / "new.txt").write_text("new")
    incr = json.loads(cli.ok("backup", str(tree), "--prompt", "no", "--json", "--level", "incr").stdout)
    assert (full["level"], incr["level"]) == ("full", "incr")
    assert incr["base"] == full["stored_filename"]
    assert incr["size"] < full["size"]


@pytest.mark.parametrize(
    ("option", "value"), [("--compression", "xz"), ("--level", "weekly"), ("--prompt", "maybe")],
)
def test_a_value_outside_the_choices_is_a_usage_error_naming_the_option(cli, tree, home, option, value):
    expect(cli("backup", str(tree), option, value), 2, f"argument {option}: invalid choice: '{value}'")
    assert store(home) == []


def test_a_missing_source_exits_2_and_stores_nothing(cli, tmp_path, home):
    expect(cli("backup", str(tmp_path / "missing"), "--prompt", "no"), 2, "does not exist")
    assert store(home) == []


def test_an_unknown_destination_exits_2(cli, tree):
    expect(cli("backup", str(tree), "--prompt", "no", "-d", "ftp"), 2, "unknown destination 'ftp'")


def test_a_dry_run_prints_the_plan_and_stores_nothing(cli, tree, home):
    cli.ok("backup", str(tree), "--prompt", "no")
    before = (store(home), [row.stored_filename for row in bakthat.search(include_deleted=True)])
    plan = cli.ok("backup", str(tree), "--prompt", "no", "--dry-run", "--json", "--exclude", "*.key")
    assert len(plan.stdout.splitlines()) == 1
    plan = json.loads(plan.stdout)
    assert plan["dry_run"] is True and plan["filename"] == "mydir" and plan["file_count"] > 5
    assert plan["excluded_count"] == 1
    text = cli.ok("backup", str(tree), "--prompt", "no", "--dry-run").stdout
    assert "would store mydir." in text and "dry run: nothing was stored" in text
    assert (store(home), [row.stored_filename for row in bakthat.search(include_deleted=True)]) == before


def test_progress_can_be_forced_and_refused(cli, tree):
    forced = cli.ok("backup", str(tree), "--prompt", "no", "--progress")
    assert "B/s" in forced.stderr and "mydir" in forced.stderr
    refused = cli.ok("backup", str(tree), "--prompt", "no", "--no-progress")
    assert "B/s" not in refused.stderr and "\r" not in refused.stderr
    default = cli.ok("backup", str(tree), "--prompt", "no")  # stderr is not a terminal here
    assert "B/s" not in default.stderr


def test_s3_reduced_redundancy_takes_effect(cli, home, tree, request):
    pytest.importorskip("bakthat.backends.s3", reason="the s3 backend is not available")
    pytest.importorskip("moto", reason="moto is not installed")
    request.getfixturevalue("aws")
    from tests.backends.conftest import s3_client

    (home / ".bakthat.yml").write_text("default:\n  s3_bucket: rrs-bucket\n")
    result = cli.ok("backup", str(tree), "-d", "s3", "--prompt", "no", "--s3-reduced-redundancy", "--json")
    stored = json.loads(result.stdout)["stored_filename"]
    head = s3_client().head_object(Bucket="rrs-bucket", Key=stored)
    assert head.get("StorageClass") == "REDUCED_REDUNDANCY"


from tests.backends.conftest import aws, moto_server  # noqa: E402, F401 - fixtures for the S3 test
