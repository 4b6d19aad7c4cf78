"""docs/coming-from-0.6.md's walk-through ("Moving your backups over, step by step"),
followed command by command on a bakthat 0.6 user's data, in a local directory, in S3
(a moto server) and in Swift (the one-node Swift of .ci/swift-start).

The 0.6 data is made by tests/legacy_writer.py, an implementation of 0.6's writer that
shares no code with bakthat: ``.tgz`` archives in 0.6's GNU tar format, Blowfish
``.tgz.enc`` ones, one name in the pre-0.4 dot-less form, and the tree changing between
backups, so that each backup must restore its own state byte for byte.

Step 2 is taken both ways: with no 0.6 catalog (a lost one, or a new host: the catalog
is rebuilt from the store by ``sync``), and with the user's 0.6 ``~/.bakthat.sqlite``
kept in place (upgraded on first use, its rows and tags shown at once).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from datetime import datetime, timezone

import pytest

from tests.backends.conftest import aws, moto_server, s3_client  # noqa: F401
from tests.conftest import make_tree, run_cli, snapshot
from tests.legacy_writer import backup_object, raw_object, write_catalog

PASSWORDS = {"www": "www-0.6-password", "db": "another one", "notes.txt": "notes-0.6"}

#: (name, UTC time of the 0.6 backup, encrypted, dot-less name)
HISTORY = [
    ("db", datetime(2012, 12, 31, 23, 59, 59, tzinfo=timezone.utc), False, True),
    ("www", datetime(2013, 6, 4, 19, 10, 55, tzinfo=timezone.utc), False, False),
    ("www", datetime(2013, 7, 4, 8, 0, 0, tzinfo=timezone.utc), True, False),
    ("db", datetime(2013, 8, 1, 3, 30, 0, tzinfo=timezone.utc), True, False),
]
#: (UTC time, encrypted) of 0.6's uploads of the file notes.txt with ``compress: false``
RAW_HISTORY = [
    (datetime(2013, 5, 1, 12, 0, 0, tzinfo=timezone.utc), False),
    (datetime(2013, 9, 1, 12, 0, 0, tzinfo=timezone.utc), True),
]


def name_of(stored: str) -> str:
    """The backup name (for a raw upload, the file name) a stored 0.6 name gives."""
    return next(name for name in PASSWORDS if stored.startswith(name))


def date_of(stored: str) -> datetime:
    moments = [moment for _, moment, _, _ in HISTORY] + [moment for moment, _ in RAW_HISTORY]
    return next(moment for moment in moments if moment.strftime("%Y%m%d%H%M%S") in stored)


def check_restore(stored: str, target, state, env: dict | None = None) -> None:
    """Restore one 0.6 backup by its stored name into ``target`` and compare it with ``state``."""
    name = name_of(stored)
    raw = name == "notes.txt"
    env = dict(env or {})
    if stored.endswith(".enc"):
        env["BAKTHAT_PASSWORD"] = PASSWORDS[name]
    restored = run_cli("restore", stored, "--target", str(target), *(["--unverified"] if raw else []), env=env or None)
    assert restored.returncode == 0, restored.stderr
    if raw:
        assert (target / name).read_bytes() == state, stored
    else:
        assert snapshot(target / name) == state, stored


def make_history(tmp_path) -> tuple[dict[str, bytes], dict[str, dict]]:
    """Back up two trees the 0.6 way, changing them between backups.

    Return the objects 0.6 would have stored ``{stored name: bytes}`` and the state of
    the tree each one holds ``{stored name: snapshot}``.
    """
    sources = {"www": make_tree(tmp_path / "0.6-host" / "www"), "db": tmp_path / "0.6-host" / "db"}
    sources["db"].mkdir()
    (sources["db"] / "dump.sql").write_text("CREATE TABLE t (x int);\n" * 500)
    objects, states = {}, {}
    for round_number, (name, when, encrypted, dotless) in enumerate(HISTORY):
        source = sources[name]
        (source / f"changed-in-round-{round_number}.txt").write_bytes(os.urandom(1000 + round_number))
        stored, data = backup_object(source, when, password=PASSWORDS[name] if encrypted else "", dotless=dotless)
        objects[stored] = data
        states[stored] = snapshot(source)
    notes = tmp_path / "0.6-host" / "notes.txt"
    for when, encrypted in RAW_HISTORY:
        notes.write_bytes(os.urandom(3000) + when.isoformat().encode())
        stored, data = raw_object(notes, when, password=PASSWORDS["notes.txt"] if encrypted else "")
        objects[stored] = data
        states[stored] = notes.read_bytes()
    return objects, states


@pytest.fixture(params=["local", "s3", "swift"])
def store_06(request, tmp_path, home):
    """A 0.6 user's store of the given kind, filled with the history; their ~/.bakthat.yml.

    Return ``(objects, states, list_store)``: what 0.6 stored, what each holds, and a
    function listing the store's object names.
    """
    objects, states = make_history(tmp_path)
    kind = request.param
    profile = {"rotation": {"days": 7, "weeks": 4, "months": 6, "first_week_day": 5}, "glacier_vault": ""}
    if kind == "local":  # the bucket copied to a disk (aws s3 sync s3://... /srv/backups-0.6)
        directory = tmp_path / "backups-0.6"
        directory.mkdir()
        for stored, data in objects.items():
            (directory / stored).write_bytes(data)
        profile.update(default_destination="local", local_path=str(directory))

        def list_store():  # the store's objects (its temp directory, .bakthat-tmp, left out)
            return sorted(entry.name for entry in directory.iterdir() if entry.is_file())
    elif kind == "s3":
        request.getfixturevalue("aws")
        client = s3_client()
        client.create_bucket(Bucket="my-backups-06")
        for stored, data in objects.items():
            client.put_object(Bucket="my-backups-06", Key=stored, Body=data)  # 0.6: one PUT each
        profile.update(
            default_destination="s3",
            access_key="testing-access-key",
            secret_key="testing-secret-key",
            s3_bucket="my-backups-06",
            region_name="us-east-1",
        )

        def list_store():
            return sorted(item["Key"] for item in client.list_objects_v2(Bucket="my-backups-06").get("Contents", []))
    else:
        from tests.services import swift_connection, swift_names

        conf = request.getfixturevalue("swift_conf")
        connection = swift_connection()
        connection.put_container(conf["swift_container"])
        for stored, data in objects.items():
            connection.put_object(conf["swift_container"], stored, data)  # 0.6: put_object each
        profile.update(
            default_destination="swift",
            auth_url=conf["auth_url"],
            auth_version="1",
            access_key=conf["access_key"],
            secret_key=conf["secret_key"],
            s3_bucket=conf["swift_container"],
        )

        def list_store():
            return swift_names(conf["swift_container"])
    config = home / ".bakthat.yml"
    config.write_text(json.dumps({"default": profile}, indent=2))  # YAML is a superset of JSON
    os.chmod(config, 0o600)
    return objects, states, list_store


def dump(path) -> list[str]:
    """Return the SQL text of a SQLite database (its schema and every row)."""
    connection = sqlite3.connect(path)
    try:
        return list(connection.iterdump())
    finally:
        connection.close()


def cli(*args: str, password: str | None = None):
    done = run_cli(*args, env={"BAKTHAT_PASSWORD": password} if password else None)
    return done


def cli_json(*args: str):
    """Run a command that must succeed and return its JSON output."""
    done = cli(*args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_walk_through_restores_every_06_backup_byte_for_byte(store_06, tmp_path):
    objects, states, list_store = store_06
    stored_before = {name: data for name, data in objects.items()}

    # 1. the config: checked as it is
    checked = cli("configure", "--check")
    assert checked.returncode == 0, checked.stderr + checked.stdout

    # 3. sync: a dry run lists, then sync adds, every 0.6 backup
    dry = cli("sync", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert sorted(row["stored_filename"] for row in json.loads(dry.stdout)) == sorted(objects)
    assert cli_json("show", "--json") == []
    done = cli("sync")
    assert done.returncode == 0, done.stderr
    assert f"{len(objects)} backup(s) added" in done.stdout

    # 4. show them, and restore each, by its stored name, into its own target
    shown = cli_json("show", "--json")
    assert sorted(row["stored_filename"] for row in shown) == sorted(objects)
    assert {row["filename"] for row in shown} == {"www", "db", "notes.txt"}
    for stored, state in states.items():
        check_restore(stored, tmp_path / "restored" / stored, state)
    # the newest notes.txt is encrypted without an archive: it needs --unverified, and says why
    refused = cli("restore", "notes.txt", "--target", str(tmp_path / "notes"), password=PASSWORDS["notes.txt"])
    assert refused.returncode == 2 and "--unverified" in refused.stderr, refused.stderr
    assert not (tmp_path / "notes").exists()

    # "restore www": the newest backup of that name, asking for its password
    newest = cli("restore", "www", "--target", str(tmp_path / "newest"), password=PASSWORDS["www"])
    assert newest.returncode == 0, newest.stderr
    assert snapshot(tmp_path / "newest" / "www") == states["www.20130704080000.tgz.enc"]

    # a wrong password is refused, and nothing is written
    wrong = cli("restore", "db", "--target", str(tmp_path / "wrong"), password=PASSWORDS["www"])
    assert wrong.returncode == 5, wrong.stderr
    assert not (tmp_path / "wrong").exists()

    # nothing was written to the store: the 0.6 objects are as they were
    assert list_store() == sorted(stored_before)

    # 6. carry on: a new backup, and retention counts the adopted ones with it
    fresh = make_tree(tmp_path / "1.x-host" / "www")
    backed = cli("backup", str(fresh), "--prompt", "no")
    assert backed.returncode == 0, backed.stderr
    plan = cli("rotate_backups", "www", "--dry-run", "--json")
    assert plan.returncode == 0, plan.stderr
    decisions = {entry["stored_filename"]: entry["decision"] for entry in json.loads(plan.stdout)["backups"]}
    assert decisions["www.20130604191055.tgz"] == "delete" and decisions["www.20130704080000.tgz.enc"] == "delete"
    assert sum(1 for decision in decisions.values() if decision == "keep") == 1


def test_writing_manifests_lets_a_second_host_find_the_06_backups(store_06, tmp_path, home):
    objects, states, list_store = store_06
    done = cli("sync", "--write-manifests")
    assert done.returncode == 0, done.stderr
    assert list_store() == sorted([*objects, *(stored + ".manifest.json" for stored in objects)])
    # another host: its own catalog, the same store
    other = home / "other-host.sqlite"
    again = run_cli("sync", "--json", env={"BAKTHAT_DATABASE": str(other)})
    assert again.returncode == 0, again.stderr
    rows = json.loads(again.stdout)
    assert sorted(row["stored_filename"] for row in rows) == sorted(objects)
    assert all(row["sha256"] for row in rows)
    for stored in ("db.20130801033000.tgz.enc", "notes.txt.20130901120000.enc"):
        check_restore(stored, tmp_path / "out" / stored, states[stored], env={"BAKTHAT_DATABASE": str(other)})


@pytest.mark.parametrize("store_06", ["s3", "swift"], indirect=True)
def test_the_walk_through_with_the_06_catalog_kept_in_place(store_06, tmp_path, home):
    """Step 2 as most users take it: ~/.bakthat.sqlite from 0.6 stays where it is.

    (A local directory is not a 0.6 destination, so its rows cannot be in a 0.6 catalog.)
    """
    objects, states, list_store = store_06
    profile = json.loads((home / ".bakthat.yml").read_text())["default"]
    kind = profile["default_destination"]
    backend_hash = hashlib.sha512(f"{profile['access_key']}{profile['s3_bucket']}".encode()).hexdigest()
    rows = []
    for stored, data in objects.items():
        name = name_of(stored)
        when = date_of(stored)
        rows.append({
            "backend": kind, "backend_hash": backend_hash, "backup_date": int(when.timestamp()),
            "filename": name, "stored_filename": stored, "size": len(data), "tags": f"nightly {name}-0.6",
            "metadata": {"is_enc": stored.endswith(".enc"), "client": "old-host"},
        })
    catalog = home / ".bakthat.sqlite"
    write_catalog(catalog, rows)
    original = dump(catalog)

    # 1. the config is checked as it is
    checked = cli("configure", "--check")
    assert checked.returncode == 0, checked.stderr + checked.stdout

    # 2. first use upgrades the catalog in place, after keeping a copy: the rows show at once, with their tags
    shown = cli("show", "--json")
    assert shown.returncode == 0, shown.stderr
    assert dump(home / ".bakthat.sqlite.schema-0.bak") == original
    listed = {row["stored_filename"]: row for row in json.loads(shown.stdout)}
    assert sorted(listed) == sorted(objects)
    assert {stored: row["tags"] for stored, row in listed.items()} == {row["stored_filename"]: row["tags"] for row in rows}
    by_tag = cli_json("show", "-t", "www-0.6", "--json")
    assert sorted(row["stored_filename"] for row in by_tag) == sorted(stored for stored in objects if stored.startswith("www"))

    # 3. sync has nothing to add: the catalog already lists every 0.6 backup
    dry = cli("sync", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout) == []

    # 4. every 0.6 row restores, byte for byte, from the 0.6 bucket
    for stored, state in states.items():
        check_restore(stored, tmp_path / "restored" / stored, state)
    assert list_store() == sorted(objects)

    # 6. carry on: deleting a 0.6 row deletes its object in the 0.6 bucket
    deleted = cli("delete", "db.20130801033000.tgz.enc")
    assert deleted.returncode == 0, deleted.stderr
    assert list_store() == sorted(stored for stored in objects if stored != "db.20130801033000.tgz.enc")
    remaining = {row["stored_filename"] for row in cli_json("show", "--json")}
    assert remaining == set(objects) - {"db.20130801033000.tgz.enc"}
