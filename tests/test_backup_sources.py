"""What a backup takes from its source: the source as named, its name, what is left out
(patterns, bakthat's own files) and what changed while it was read."""

from __future__ import annotations

import json
import os
import socket
import tarfile
from pathlib import Path

import pytest

import bakthat
from bakthat.errors import ConfigError
from tests.conftest import run_cli


def members_of(home: Path, row) -> list[str]:
    """The member names of a stored, unencrypted archive."""
    import zstandard

    with open(home / ".bakthat_store" / row.stored_filename, "rb") as raw:
        with zstandard.ZstdDecompressor().stream_reader(raw) as plain, tarfile.open(fileobj=plain, mode="r|") as tar:
            return [member.name for member in tar]


def manifest_of(home: Path, row) -> dict:
    return json.loads((home / ".bakthat_store" / (row.stored_filename + ".manifest.json")).read_text())


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "data" / "proj"
    (root / "src").mkdir(parents=True)
    (root / "src" / "main.py").write_text("print('hi')\n")
    (root / ".env").write_text("SECRET=1\n")
    (root / "build").mkdir()
    (root / "build" / "out.bin").write_bytes(b"\0" * 10)
    (root / "debug.log").write_text("log\n")
    (root / ".gitignore").write_text(".env\nbuild/\n*.log\n")
    return root


# ---------------------------------------------------------------------------------------
# The source as named


@pytest.mark.parametrize("spelling", ["{link}", "{link}/"])
def test_a_symlink_to_a_directory_backs_up_the_directory_under_the_links_name(project, tmp_path, home, spelling):
    link = tmp_path / "www"
    link.symlink_to(project)
    row = bakthat.backup(spelling.format(link=link), password="")
    assert row.filename == "www" and row.source_path == str(link)
    assert "www/src/main.py" in members_of(home, row)
    bakthat.restore("www", target=tmp_path / "out")
    assert not (tmp_path / "out" / "www").is_symlink()
    assert (tmp_path / "out" / "www" / "src" / "main.py").read_text() == "print('hi')\n"


def test_a_symlink_to_a_file_backs_up_the_file(tmp_path):
    (tmp_path / "real.conf").write_text("x = 1\n")
    (tmp_path / "app.conf").symlink_to(tmp_path / "real.conf")
    bakthat.backup(str(tmp_path / "app.conf"), password="")
    bakthat.restore("app.conf", target=tmp_path / "out")
    assert not (tmp_path / "out" / "app.conf").is_symlink()
    assert (tmp_path / "out" / "app.conf").read_text() == "x = 1\n"


def test_a_dangling_symlink_as_source_is_a_source_error_naming_its_target(tmp_path):
    from bakthat.archive import SourceError

    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    with pytest.raises(SourceError, match="nowhere"):
        bakthat.backup(str(tmp_path / "gone"), password="")


def test_backup_of_dot_is_named_after_the_current_directory(project, home):
    result = run_cli("backup", ".", "--prompt", "no", "--json", cwd=project)
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["filename"] == "proj" and row["source_path"] == str(project)


def test_backup_of_the_root_directory_is_named_root_and_skips_what_proc_shows(home, tmp_path):
    result = run_cli("backup", "/", "--exclude", "/*", "--exclude", "!/proc/", "--prompt", "no", "--json", "-v")
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["filename"] == "root" and row["source_path"] == "/"
    assert row["metadata"]["entries"]["excluded"] == len(os.listdir("/"))  # all but proc, and proc's contents
    assert "Excluding proc/* (a proc file system)" in result.stderr
    restored = run_cli("restore", "root", "--target", str(tmp_path / "out"), "--prompt", "no")
    assert restored.returncode == 0, restored.stderr
    assert os.listdir(tmp_path / "out" / "root") == ["proc"]
    assert os.listdir(tmp_path / "out" / "root" / "proc") == []


def test_a_directory_whose_name_is_not_utf8_backs_up_and_restores(tmp_path, home):
    source = tmp_path / os.fsdecode(b"caf\xe9")
    source.mkdir()
    (source / os.fsdecode(b"\xff.txt")).write_bytes(b"bytes\n")
    row = bakthat.backup(str(source), password="")
    assert row.filename == "caf%E9" and row.stored_filename.startswith("caf%E9.")
    assert manifest_of(home, row)["source_path"].endswith("/caf%E9")
    bakthat.restore("caf%E9", target=tmp_path / "out")
    assert (tmp_path / "out" / os.fsdecode(b"caf\xe9") / os.fsdecode(b"\xff.txt")).read_bytes() == b"bytes\n"


# ---------------------------------------------------------------------------------------
# The store and the catalog are never in a backup


def test_the_store_and_catalog_are_left_out_however_they_are_reached(tmp_path, home):
    source = tmp_path / "everything"
    (source / "real-store").mkdir(parents=True)
    (source / "db").mkdir()
    (source / "notes.txt").write_text("mine\n")
    (tmp_path / "store-link").symlink_to(source / "real-store")
    (tmp_path / "db-link").symlink_to(source / "db")
    conf = {"local_path": str(tmp_path / "store-link"), "database": str(tmp_path / "db-link" / "catalog.sqlite")}
    bakthat.backup(str(source), password="", conf=conf)  # a first archive in the store
    row = bakthat.backup(str(source), password="", conf=conf)
    assert sorted(os.listdir(source / "db")) == ["catalog.sqlite", "catalog.sqlite-shm", "catalog.sqlite-wal"]
    with open(source / "real-store" / row.stored_filename, "rb") as raw:
        import zstandard

        with zstandard.ZstdDecompressor().stream_reader(raw) as plain, tarfile.open(fileobj=plain, mode="r|") as tar:
            names = [member.name for member in tar]
    assert names == ["everything", "everything/db", "everything/notes.txt"]
    assert row.metadata["entries"]["excluded"] == 4
    assert sorted(row.metadata["excluded"]) == [
        "db/catalog.sqlite", "db/catalog.sqlite-shm", "db/catalog.sqlite-wal", "real-store",
    ]


def test_a_backup_of_the_store_into_itself_leaves_out_the_archive_being_written(tmp_path, home):
    (tmp_path / "small.txt").write_text("x\n")
    first = bakthat.backup(str(tmp_path / "small.txt"), password="")
    row = bakthat.backup(str(home / ".bakthat_store"), password="", custom_filename="store-copy")
    names = members_of(home, row)
    assert sorted(names) == [
        "store-copy", f"store-copy/{first.stored_filename}", f"store-copy/{first.stored_filename}.index.jsonl.zst",
        f"store-copy/{first.stored_filename}.manifest.json",
    ]
    assert row.metadata["entries"] == {"excluded": 1, "skipped": 0, "changed": 0}
    assert row.metadata["excluded"] == [".bakthat-tmp"]


# ---------------------------------------------------------------------------------------
# Files that change while they are read


def changing(path: Path, change):
    """A progress callback that applies ``change`` to ``path`` once, after the first chunk."""
    done = []

    def progress(count):
        if not done:
            done.append(count)
            change(path)

    return progress


def grow(path):
    with open(path, "ab") as handle:
        handle.write(b"more")


def shrink(path):
    os.truncate(path, 10)


def rewrite(path):
    os.utime(path, ns=(0, 1_000_000_000))


def replace(path):
    (path.parent / "new").write_bytes(b"new contents")
    os.replace(path.parent / "new", path)


def remove(path):
    path.unlink()


@pytest.mark.parametrize(
    "change, said",
    [
        (grow, "grew from 100000 to 100004 bytes while being read; the archive holds its first 100000 bytes"),
        (shrink, "shrank from 100000 to 10 bytes after being read"),
        (rewrite, "was modified while being read"),
        (replace, "was replaced while being read; the archive holds the earlier version"),
        (remove, "was removed while being read"),
    ],
    ids=["grow", "shrink", "rewrite", "replace", "remove"],
)
def test_a_file_that_changes_while_it_is_read_is_named_counted_and_makes_the_backup_partial(tmp_path, home, caplog, change, said):
    source = tmp_path / "logs"
    source.mkdir()
    (source / "app.log").write_bytes(b"x" * 100_000)
    row = bakthat.backup(str(source), password="", progress=changing(source / "app.log", change))
    assert row.metadata["partial"] is True
    assert row.metadata["entries"]["changed"] == 1
    [entry] = row.metadata["changed"]
    assert entry["path"] == str(source / "app.log") and entry["reason"].startswith(said)
    assert said in caplog.text and str(source / "app.log") in caplog.text
    assert manifest_of(home, row)["changed"] == [entry]
    bakthat.restore("logs", target=tmp_path / "out")
    assert (tmp_path / "out" / "logs" / "app.log").read_bytes() == b"x" * 100_000


def test_the_cli_exits_3_and_says_why_when_a_file_changed(tmp_path, home):
    source = tmp_path / "data"
    source.mkdir()
    (source / "ok.txt").write_text("fine\n")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(source / "daemon.sock"))
    try:
        result = run_cli("backup", str(source), "--prompt", "no", "--json")
    finally:
        sock.close()
    assert result.returncode == 3
    row = json.loads(result.stdout)
    assert row["metadata"]["skipped"] == [{"path": str(source / "daemon.sock"), "reason": "a socket cannot be archived"}]
    assert row["metadata"]["entries"]["skipped"] == 1
    assert "daemon.sock" in result.stderr and "is partial" in result.stderr


# ---------------------------------------------------------------------------------------
# What is excluded is visible


def test_gitignore_is_not_applied_unless_asked(project, home):
    row = bakthat.backup(str(project), password="")
    assert {"proj/.env", "proj/build/out.bin", "proj/debug.log"} <= set(members_of(home, row))
    assert row.metadata["entries"]["excluded"] == 0
    row = bakthat.backup(str(project), password="", conf={"exclude_gitignore": True}, custom_filename="ignored")
    assert not {"ignored/.env", "ignored/build", "ignored/debug.log"} & set(members_of(home, row))
    assert row.metadata["entries"]["excluded"] == 3


def test_exclude_patterns_from_the_profile_and_the_command_line_add_up_and_are_reported(project, home):
    (home / ".bakthat.yml").write_text("default:\n  exclude:\n    - '*.log'\n")
    result = run_cli("backup", str(project), "--prompt", "no", "--json", "-v", "--exclude", "build/", "--exclude", ".env")
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["metadata"]["entries"] == {"excluded": 3, "skipped": 0, "changed": 0}
    assert sorted(row["metadata"]["excluded"]) == [".env", "build", "debug.log"]
    assert "3 entries excluded, 0 skipped, 0 changed while being read" in result.stderr
    assert "Excluding build (exclude pattern)" in result.stderr
    manifest = json.loads((home / ".bakthat_store" / (row["stored_filename"] + ".manifest.json")).read_text())
    assert manifest["entries"]["excluded"] == 3 and manifest["skipped"] == [] and manifest["changed"] == []


def test_an_exclude_pattern_string_in_the_api_holds_one_pattern_per_line(project, home):
    row = bakthat.backup(str(project), password="", exclude="*.log\nbuild/")
    assert row.metadata["entries"]["excluded"] == 2


# ---------------------------------------------------------------------------------------
# One name, one source


@pytest.fixture
def two_projects(tmp_path) -> tuple[Path, Path]:
    first, second = tmp_path / "data" / "proj", tmp_path / "other" / "proj"
    for root in (first, second):
        root.mkdir(parents=True)
        (root / "f").write_text(str(root))
    return first, second


def test_name_sets_the_backup_name_and_the_top_level_entry(two_projects, tmp_path, home):
    result = run_cli("backup", str(two_projects[1]), "--name", "other-proj", "--prompt", "no", "--json")
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["filename"] == "other-proj" and row["stored_filename"].startswith("other-proj.")
    assert row["source_path"] == str(two_projects[1]) and row["host"] == socket.gethostname()
    bakthat.restore("other-proj", target=tmp_path / "out")
    assert (tmp_path / "out" / "other-proj" / "f").read_text() == str(two_projects[1])


def test_a_path_derived_name_used_for_another_source_warns_with_both_paths(two_projects, caplog):
    first, second = two_projects
    assert not bakthat.backup(str(first), password="").metadata.get("warnings")
    assert not bakthat.backup(str(first), password="").metadata.get("warnings")  # same source: fine
    row = bakthat.backup(str(second), password="")
    [warning] = row.metadata["warnings"]
    assert str(first) in warning and str(second) in warning and "--name" in warning
    assert warning in caplog.text


def test_the_name_conflict_warning_is_in_the_json_output(two_projects):
    first, second = two_projects
    assert run_cli("backup", str(first), "--prompt", "no").returncode == 0
    result = run_cli("backup", str(second), "--prompt", "no", "--json")
    assert result.returncode == 0
    assert str(first) in json.loads(result.stdout)["metadata"]["warnings"][0]
    assert "warning" in result.stderr and str(second) in result.stderr


def test_an_explicit_name_never_warns(two_projects):
    first, second = two_projects
    bakthat.backup(str(first), password="", custom_filename="nightly")
    row = bakthat.backup(str(second), password="", custom_filename="nightly")
    assert not row.metadata.get("warnings")


def test_name_conflict_error_refuses_the_backup_and_stores_nothing(two_projects, home):
    first, second = two_projects
    bakthat.backup(str(first), password="")
    with pytest.raises(ConfigError, match="name_conflict"):
        bakthat.backup(str(second), password="", conf={"name_conflict": "error"})
    assert [row.source_path for row in bakthat.search()] == [str(first)]
    assert len(list((home / ".bakthat_store").glob("*.manifest.json"))) == 1
    (home / ".bakthat.yml").write_text("default:\n  name_conflict: error\n")
    result = run_cli("backup", str(second), "--prompt", "no")
    assert result.returncode == 2 and str(first) in result.stderr
