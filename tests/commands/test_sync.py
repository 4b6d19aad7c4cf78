"""``bakthat sync``: the store's backups the catalog lacks are added; its report, --json, --dry-run,
--write-manifests, --remove-orphans.  The sync logic itself: tests/test_sync.py, tests/test_adopt.py."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone

import bakthat
from bakthat import models
from tests.commands.conftest import expect
from tests.conftest import lose_catalog
from tests.legacy_writer import backup_object


def names() -> list[str]:
    models.unbind()
    return [row.filename for row in bakthat.search()]


def test_sync_rebuilds_a_lost_catalog_after_a_dry_run_that_adds_nothing(cli, backed_up, home):
    lose_catalog(home)
    dry = json.loads(cli.ok("sync", "--dry-run", "--json").stdout)
    assert [row["stored_filename"] for row in dry] == [backed_up.stored_filename]
    assert cli.ok("sync", "--dry-run").stdout == "1 backup(s) would add\n"
    assert names() == []
    assert cli.ok("sync").stdout.splitlines() == ["1 backup(s) added"]
    assert names() == ["mydir"]
    assert cli.ok("sync").stdout.splitlines() == ["0 backup(s) added"]


def test_write_manifests_stores_one_beside_each_adopted_06_backup(cli, home, tree):
    store = home / ".bakthat_store"
    store.mkdir()
    stored, data = backup_object(tree, datetime(2013, 6, 4, 19, 10, 55, tzinfo=timezone.utc))
    (store / stored).write_bytes(data)
    cli.ok("sync")
    assert not (store / (stored + ".manifest.json")).exists(), "no manifest unless asked"
    lose_catalog(home)
    rows = json.loads(cli.ok("sync", "--write-manifests", "--json").stdout)
    assert [row["stored_filename"] for row in rows] == [stored]
    assert json.loads((store / (stored + ".manifest.json")).read_text())["name"] == "mydir"


def test_orphans_are_listed_then_removed_with_remove_orphans(cli, backed_up, home, tree):
    store = home / ".bakthat_store"
    killed = bakthat.backup(str(tree), password="", custom_filename="killed")
    (store / (killed.stored_filename + ".manifest.json")).unlink()  # killed before its manifest
    models.Backups.delete().where(models.Backups.filename == "killed").execute()
    past = time.time() - 7200
    for path in store.iterdir():
        if path.is_file():
            os.utime(path, (past, past))
    report = cli.ok("sync").stdout.splitlines()
    assert report[:2] == ["0 backup(s) added", "1 orphan(s):"]
    assert report[2].split()[:2] == ["kept", "archive"] and killed.stored_filename in report[2]
    assert report[3] == "remove them with: bakthat sync --remove-orphans (see first with --dry-run)"
    dry = cli.ok("sync", "--remove-orphans", "--dry-run").stdout
    assert dry.count("would remove  archive") == 1 and (store / killed.stored_filename).exists()
    assert "remove them with" not in dry
    cli.ok("sync", "--remove-orphans")
    assert not (store / killed.stored_filename).exists()
    assert (store / backed_up.stored_filename).exists()


def test_an_unknown_destination_exits_2(cli):
    expect(cli("sync", "-d", "ftp"), 2, "unknown destination 'ftp'")
