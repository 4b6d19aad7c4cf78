"""bakthat.tarwriter: a tree written as a PAX tar stream that tarfile and GNU tar read back
exactly, with what it leaves out counted and named."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import tarfile

import pathspec
import pytest

from bakthat.tarwriter import SourceError, write_tar
from tests.conftest import make_tree


def archive_of(source, arcname="mydir", **kwargs):
    sink = io.BytesIO()
    stats = write_tar(source, arcname, sink, **kwargs)
    sink.seek(0)
    return stats, sink.getvalue()


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return {member.name: member for member in tar}


def test_every_kind_of_entry_is_stored_under_the_archive_name(tree):
    stats, data = archive_of(tree)
    found = members(data)
    assert found["mydir"].isdir()
    assert found["mydir/hardlink.txt"].isfile() and found["mydir/hardlink.txt"].size == len("compressible text\n" * 2000)
    assert found["mydir/text.txt"].islnk() and found["mydir/text.txt"].linkname == "mydir/hardlink.txt"
    assert found["mydir/link-to-text"].issym() and found["mydir/link-to-text"].linkname == "text.txt"
    assert found["mydir/script.sh"].mode & 0o777 == 0o755
    assert found["mydir/empty_dir"].isdir() and "mydir/héllo wörld ñ.txt" in found
    assert stats.files >= 8 and stats.bytes > 300_000 and not stats.partial


def test_the_stream_is_sorted_and_ends_with_the_end_of_archive_marker(tree):
    _, data = archive_of(tree)
    names = list(members(data))
    assert names[0] == "mydir"
    children: dict[str, list[str]] = {}
    for name in names[1:]:
        parent, _, child = name.rpartition("/")
        children.setdefault(parent, []).append(child)
    assert all(listed == sorted(listed) for listed in children.values()), children
    assert len(data) % 512 == 0 and data[-1024:] == bytes(1024)


def test_gnu_tar_lists_the_stream(tree, tmp_path):
    _, data = archive_of(tree)
    (tmp_path / "a.tar").write_bytes(data)
    listed = subprocess.run(["tar", "-tf", str(tmp_path / "a.tar")], capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert "mydir/sub/deeper/note.md" in listed.stdout.splitlines()


def test_file_contents_are_stored_byte_for_byte(tree):
    _, data = archive_of(tree)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        assert tar.extractfile("mydir/random.bin").read() == (tree / "random.bin").read_bytes()


def test_excluded_entries_are_left_out_and_counted(tree):
    spec = pathspec.GitIgnoreSpec.from_lines(["*.txt", "sub/"])
    stats, data = archive_of(tree, excludes=spec)
    names = set(members(data))
    assert not any(name.endswith(".txt") for name in names)
    assert not any(name.startswith("mydir/sub") for name in names)
    assert stats.excluded >= 5 and "sub" in stats.excluded_names


def test_a_socket_is_skipped_named_and_makes_the_backup_partial(tmp_path):
    source = tmp_path / "with-socket"
    source.mkdir()
    (source / "ok.txt").write_text("ok")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(source / "app.sock"))
    try:
        stats, data = archive_of(source, "with-socket")
    finally:
        server.close()
    assert "with-socket/app.sock" not in members(data) and "with-socket/ok.txt" in members(data)
    assert stats.partial and [entry["path"] for entry in stats.skipped] == [str(source / "app.sock")]


def test_a_single_file_source_is_one_member(tmp_path):
    (tmp_path / "one.txt").write_text("alone\n")
    _, data = archive_of(tmp_path / "one.txt", "one.txt")
    assert list(members(data)) == ["one.txt"]


def test_a_symlinked_source_stores_what_it_points_to(tree, tmp_path):
    os.symlink(tree, tmp_path / "www")
    _, data = archive_of(tmp_path / "www", "www")
    found = members(data)
    assert found["www"].isdir() and "www/sub/deeper/note.md" in found


def test_a_missing_source_or_a_dangling_link_is_a_source_error_naming_it(tmp_path):
    with pytest.raises(SourceError, match="nothing to back up: .*missing does not exist"):
        archive_of(tmp_path / "missing")
    os.symlink(tmp_path / "gone", tmp_path / "dangling")
    with pytest.raises(SourceError, match="dangling is a symbolic link to .*gone.*which does not exist"):
        archive_of(tmp_path / "dangling")


def test_bakthat_s_own_files_given_as_skip_are_left_out_wherever_they_are(tmp_path):
    source = make_tree(tmp_path / "src" / "home")
    (source / ".bakthat.sqlite").write_text("catalog")
    stats, data = archive_of(source, "home", skip=[str(source / ".bakthat.sqlite")])
    assert "home/.bakthat.sqlite" not in members(data)
    assert stats.excluded == 1


def test_progress_counts_every_byte_of_file_data(tree):
    seen = []
    stats, _ = archive_of(tree, progress=seen.append)
    assert sum(seen) == stats.bytes


def test_counts_given_to_the_walk_can_be_read_while_it_runs(tmp_path):
    from bakthat.tarwriter import TarStats

    source = tmp_path / "tree"
    source.mkdir()
    for index in range(5):
        (source / f"f{index}").write_bytes(b"x" * 100)
    counts = TarStats()
    seen = []  # files counted so far, sampled each time a file's data is read
    returned = write_tar(source, "t", io.BytesIO(), progress=lambda _: seen.append(counts.files), stats=counts)
    assert returned is counts and counts.files == 6 and counts.bytes == 500
    assert seen == [2, 3, 4, 5, 6]  # the directory, then one more header before each file's data
