"""``bakthat ls``: the objects really in the store, marked with what the catalog knows of them."""

from __future__ import annotations

import json

from tests.commands.conftest import expect


def test_ls_lists_the_store_and_marks_the_catalog(cli, backed_up, home):
    (home / ".bakthat_store" / "stranger.bin").write_bytes(b"?")
    archive = backed_up.stored_filename
    listed = json.loads(cli.ok("ls", "--json").stdout)
    assert set(listed[0]) == {"key", "size", "modified", "in_store", "in_catalog", "state", "name", "manifest"}
    assert [(e["key"], e["state"], e["in_catalog"], e["name"]) for e in listed] == [
        (archive, "catalog", True, "mydir"),
        ("stranger.bin", None, False, None),
    ]
    assert listed[0]["size"] == backed_up.size
    with_manifests = json.loads(cli.ok("ls", "--all", "--json").stdout)
    assert [(e["key"], e["manifest"]) for e in with_manifests] == [
        (archive, False), (archive + ".index.jsonl.zst", True), (archive + ".manifest.json", True),
        ("stranger.bin", False),
    ]
    human = cli.ok("ls").stdout
    assert "unknown  stranger.bin" in human and f"catalog  {archive}" in human
    assert [e["key"] for e in json.loads(cli.ok("ls", "stran", "--json").stdout)] == ["stranger.bin"]


def test_ls_reports_a_catalogued_archive_whose_object_is_gone(cli, backed_up, home):
    archive = backed_up.stored_filename
    (home / ".bakthat_store" / archive).unlink()
    listed = json.loads(cli.ok("ls", "--json").stdout)
    assert [(e["key"], e["state"], e["in_store"]) for e in listed] == [(archive, "missing", False)]
    line = cli.ok("ls").stdout.strip()
    assert line.startswith("-  ") and line.endswith(f"missing  {archive}")  # no date: nothing is stored


def test_a_deleted_backup_is_no_longer_listed(cli, backed_up):
    cli.ok("delete", "mydir")
    assert json.loads(cli.ok("ls", "--json").stdout) == []


def test_an_unknown_destination_exits_2(cli):
    expect(cli("ls", "-d", "ftp"), 2, "unknown destination 'ftp'")


def test_the_profiles_default_destination_is_listed_when_none_is_given(cli, backed_up, home):
    (home / ".bakthat.yml").write_text("default:\n  default_destination: memory\n")
    assert json.loads(cli.ok("ls", "--json").stdout) == []
    assert [e["key"] for e in json.loads(cli.ok("ls", "-d", "local", "--json").stdout)] == [backed_up.stored_filename]
