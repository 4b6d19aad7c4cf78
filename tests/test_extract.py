"""Tests for bakthat.extract: restore safety (catalogue A1-A10, one test or more per
rule of the member check in bakthat.extract_members) and exact restores of crafted
archives.  Round trips of real trees are in tests/test_roundtrip.py."""

from __future__ import annotations

import io
import os
import pathlib
import random
import stat
import tarfile

import pytest

from bakthat import extract
from bakthat.errors import BakthatError, IntegrityError, TargetExistsError, UnsafeArchiveError
from bakthat.extract import list_members, safe_extract, safe_write_file

MTIME = 1_600_000_000


# ---------------------------------------------------------------------------------------
# Helpers: archives built by hand, tree snapshots


def regular(name, data=b"", mode=0o644, mtime=MTIME):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, mtime
    return info, data


def directory(name, mode=0o755, mtime=MTIME):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, mtime
    return info, None


def symlink(name, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, target, 0o777, MTIME
    return info, None


def hardlink(name, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = tarfile.LNKTYPE, target, 0o644, MTIME
    return info, None


def special(name, kind):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, 0o644, MTIME
    return info, None


def tar_bytes(*members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


class OneWayStream(io.RawIOBase):
    """A stream that can only be read forward, like a download."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)
        self.at_eof = False
        self.bytes_read = 0

    def readable(self):
        return True

    def read(self, size=-1):
        chunk = self._data.read(size)
        if not chunk and size != 0:
            self.at_eof = True
        self.bytes_read += len(chunk)
        return chunk

    def seekable(self):
        return False


def without_hanging(function, *args, limit: float = 120):
    """Call ``function(*args)`` in a thread and return or raise what it does; fail the test
    if it is still running after ``limit`` seconds (a reader that misses the end of its
    stream loops forever: that must fail the suite, not stall it)."""
    import threading

    outcome: dict = {}

    def call():
        try:
            outcome["result"] = function(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome["error"] = exc

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(limit)
    assert not worker.is_alive(), f"{function.__name__} did not return within {limit} s: it does not notice the stream ended"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def stream(*members):
    return OneWayStream(tar_bytes(*members))


def snapshot(root) -> dict:
    """Map every path under root (root itself excluded) to its type, mode and content."""
    root = pathlib.Path(root)
    result = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = pathlib.Path(dirpath, name)
            st = path.lstat()
            rel = path.relative_to(root).as_posix()
            if stat.S_ISLNK(st.st_mode):
                result[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                result[rel] = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns)
            else:
                result[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_mtime_ns, path.read_bytes())
    return result


def assert_no_staging(target):
    assert not list(pathlib.Path(target).glob(extract.STAGING_PREFIX + "*"))


@pytest.fixture
def target(tmp_path):
    """A restore target that already holds some files, plus a before-snapshot."""
    path = tmp_path / "target"
    (path / "sub").mkdir(parents=True)
    (path / "keep.txt").write_bytes(b"precious\n")
    (path / "sub" / "inner.txt").write_bytes(b"inner\n")
    return path


def assert_refused_and_untouched(target, members, error=UnsafeArchiveError, match=None, **kwargs):
    before = snapshot(target)
    with pytest.raises(error, match=match):
        safe_extract(stream(*members), target, **kwargs)
    assert snapshot(target) == before
    assert_no_staging(target)


# ---------------------------------------------------------------------------------------
# Round trips


def build_tree(src: pathlib.Path) -> None:
    """A tree with the things a restore must keep exactly."""
    src.mkdir()
    files = {
        "plain.txt": (b"hello\n", 0o644),
        "script.sh": (b"#!/bin/sh\necho hi\n", 0o755),
        "secret": (b"s3cr3t", 0o600),
        "empty": (b"", 0o644),
        "big.bin": (random.Random(7).randbytes(2_500_000 + 123), 0o644),
        "dir with space/naïve café.txt": ("déjà vu\n".encode(), 0o644),
        "日本語/ファイル.txt": ("こんにちは".encode(), 0o600),
        "a/b/c/deep.txt": (b"deep\n", 0o644),
        "private/id_key": (b"-----KEY-----\n", 0o600),
    }
    for rel, (data, mode) in files.items():
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
    (src / "empty_dir").mkdir()
    os.link(src / "plain.txt", src / "a" / "hard-copy.txt")
    os.symlink("b/c/deep.txt", src / "a" / "link-to-deep")
    os.symlink("../../plain.txt", src / "a" / "b" / "up-link")
    os.symlink("a/b", src / "dir-link")
    os.symlink("missing.txt", src / "dangling")
    (src / "private").chmod(0o700)
    (src / "a" / "b").chmod(0o750)
    # mtimes last, deepest first, so that creating entries does not change them again
    paths = sorted(src.rglob("*"), key=lambda p: len(p.parts), reverse=True)
    for index, path in enumerate(paths):
        os.utime(path, (MTIME + index, MTIME + index), follow_symlinks=False)


def archive_of(src: pathlib.Path, rooted_at_dot=False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        if rooted_at_dot:
            tar.add(src, arcname=".")
        else:
            for name in sorted(os.listdir(src)):
                tar.add(src / name, arcname=name)
    return buf.getvalue()


def test_a_normal_tree_round_trips_exactly(tmp_path):
    src = tmp_path / "src"
    build_tree(src)
    dst = tmp_path / "dst"
    restored = safe_extract(OneWayStream(archive_of(src)), dst)

    assert restored == [dst / name for name in sorted(os.listdir(src))]
    assert snapshot(dst) == snapshot(src)
    assert os.stat(dst / "plain.txt").st_ino == os.stat(dst / "a" / "hard-copy.txt").st_ino
    assert os.stat(dst / "plain.txt").st_nlink == 2
    assert os.readlink(dst / "dir-link") == "a/b"
    assert (dst / "a" / "link-to-deep").read_bytes() == b"deep\n"
    assert stat.S_IMODE(os.stat(dst / "private").st_mode) == 0o700
    assert_no_staging(dst)


def test_an_archive_rooted_at_dot_restores_its_contents_and_leaves_the_target_itself_alone(
    tmp_path,
):
    src = tmp_path / "src"
    build_tree(src)
    src.chmod(0o700)
    dst = tmp_path / "dst"
    dst.mkdir(mode=0o755)
    dst.chmod(0o755)
    safe_extract(OneWayStream(archive_of(src, rooted_at_dot=True)), dst)
    assert snapshot(dst) == snapshot(src)
    assert stat.S_IMODE(os.stat(dst).st_mode) == 0o755


def test_a_missing_target_is_created(tmp_path):
    dst = tmp_path / "new" / "deeper"
    assert safe_extract(stream(regular("f.txt", b"x")), dst) == [dst / "f.txt"]
    assert (dst / "f.txt").read_bytes() == b"x"


def test_an_empty_archive_restores_nothing(tmp_path):
    assert safe_extract(stream(), tmp_path / "dst") == []
    assert os.listdir(tmp_path / "dst") == []


def test_a_directory_listed_twice_is_accepted(tmp_path):
    safe_extract(stream(directory("d"), regular("d/f", b"1"), directory("d", mode=0o700)), tmp_path)
    assert (tmp_path / "d" / "f").read_bytes() == b"1"
    assert stat.S_IMODE(os.stat(tmp_path / "d").st_mode) == 0o700


# ---------------------------------------------------------------------------------------
# A1 / A2: names


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "a/../b", "./..", ".."])
def test_a_member_with_a_dotdot_component_is_refused_and_nothing_is_written(target, name):
    assert_refused_and_untouched(target, [regular(name, b"evil")], match=r"'\.\.' component")
    assert not (target.parent / "evil").exists()


def test_a_member_with_an_empty_name_is_refused(target):
    assert_refused_and_untouched(target, [regular("", b"x")], match="empty")


def test_a_member_with_a_nul_byte_in_its_name_is_refused(target):
    info, data = regular("x", b"x")
    info.pax_headers = {"path": "a\0b"}
    assert_refused_and_untouched(target, [(info, data)], match="NUL")


@pytest.mark.parametrize("name", ["/etc/evil", "//etc//evil", "/./etc/evil"])
def test_an_absolute_member_lands_under_the_target(tmp_path, name):
    dst = tmp_path / "dst"
    assert safe_extract(stream(regular(name, b"evil")), dst) == [dst / "etc"]
    assert (dst / "etc" / "evil").read_bytes() == b"evil"


# ---------------------------------------------------------------------------------------
# A3: a symbolic link is data: restored verbatim, whatever it points to


@pytest.mark.parametrize(
    "link", ["/etc/passwd", "../../x", "..", "a/../../x", "sub/../../x", "./../x", "no/such/file", "/"]
)
def test_a_symlink_is_restored_with_its_exact_target_whatever_it_points_to(tmp_path, link):
    outside = snapshot(tmp_path)
    dst = tmp_path / "dst"
    safe_extract(stream(regular("ok.txt", b"ok"), symlink("evil", link)), dst)
    assert os.readlink(dst / "evil") == link
    assert (dst / "ok.txt").read_bytes() == b"ok"
    assert {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("dst")} == outside


@pytest.mark.parametrize(
    "members",
    [
        [symlink("up", "."), symlink("x", "up/..")],
        [symlink("x", "up/.."), symlink("up", ".")],
        [symlink("x", "d/up/../.."), directory("d"), symlink("d/up", "..")],
        [symlink("loop", "loop"), symlink("ping", "pong"), symlink("pong", "ping")],
    ],
    ids=["link-first", "link-last", "nested", "loops"],
)
def test_chains_of_symlinks_are_restored_as_they_are(tmp_path, members):
    safe_extract(stream(*members), tmp_path / "dst")
    for info, _ in members:
        if info.issym():
            assert os.readlink(tmp_path / "dst" / info.name) == info.linkname


def test_a_symlink_with_an_empty_target_is_refused(target):
    assert_refused_and_untouched(target, [symlink("empty", "")], match="empty target")


def test_a_symlink_whose_target_holds_a_nul_byte_is_refused(target):
    info, data = symlink("nul", "x")
    info.pax_headers = {"linkpath": "a\0b"}
    assert_refused_and_untouched(target, [(info, data)], match="link target contains a NUL")


# ---------------------------------------------------------------------------------------
# A4: members through symbolic links


def test_a_member_written_through_a_symlink_to_the_tree_root_is_refused(target):
    assert_refused_and_untouched(
        target, [symlink("evil", "."), regular("evil/passwd", b"x")], match="evil/passwd"
    )


def test_a_member_written_through_a_symlink_to_an_inner_directory_is_refused(target):
    assert_refused_and_untouched(
        target,
        [directory("real"), symlink("evil", "real"), regular("evil/passwd", b"x")],
        match="parent 'evil' is a symbolic link",
    )


def test_a_symlink_to_etc_never_lets_a_later_member_reach_etc(target):
    name = f"bakthat-test-{os.getpid()}-{random.randrange(1 << 30)}"
    try:
        assert_refused_and_untouched(
            target, [symlink("a", "/etc"), regular(f"a/{name}", b"owned\n")], match="parent 'a' is a symbolic link"
        )
        assert not os.path.lexists(f"/etc/{name}")
    finally:
        if os.path.lexists(f"/etc/{name}"):
            os.unlink(f"/etc/{name}")


def test_a_symlink_to_a_victim_directory_never_lets_a_later_member_reach_it(target, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "passwd").write_bytes(b"root:x:0:0\n")
    assert_refused_and_untouched(
        target, [symlink("evil", str(victim)), regular("evil/passwd", b"owned\n")]
    )
    assert (victim / "passwd").read_bytes() == b"root:x:0:0\n"
    assert os.listdir(victim) == ["passwd"]


def test_a_member_below_a_file_of_the_archive_is_refused(target):
    assert_refused_and_untouched(
        target, [regular("f", b"x"), regular("f/g", b"y")], match="parent 'f' is a regular file"
    )


def test_a_member_deeper_below_a_symlink_or_file_is_refused_by_the_member_check(target):
    # The directory between them is not an archive member: the check must look past it.
    assert_refused_and_untouched(
        target, [directory("real"), symlink("evil", "real"), regular("evil/sub/passwd", b"x")],
        match="parent 'evil' is a symbolic link",
    )
    assert_refused_and_untouched(
        target, [directory("d"), regular("d/f", b"x"), regular("d/f/g/h", b"y")], match="parent 'd/f' is a regular file"
    )


# ---------------------------------------------------------------------------------------
# A5: hard links


def test_a_hard_link_to_a_symlink_is_refused(target, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"outside\n")
    assert_refused_and_untouched(
        target,
        [regular("inner.txt", b"in"), symlink("s", "inner.txt"), hardlink("h", "s")],
        match="which is a symbolic link",
    )
    assert os.stat(outside).st_nlink == 1


@pytest.mark.parametrize(
    "members, why",
    [
        ([directory("d"), hardlink("h", "d")], "which is a directory"),
        ([regular("d/f", b"x"), hardlink("h", "d")], "which is a directory"),
        ([hardlink("h", "not-there")], "not an earlier member"),
        ([hardlink("h", "later"), regular("later", b"x")], "not an earlier member"),
        ([hardlink("h", "/etc/passwd")], "absolute path"),
        ([hardlink("h", "../outside.txt")], r"'\.\.' component"),
        ([regular("f", b"x"), hardlink("f", "f")], "appears twice"),
        ([regular("f", b"x"), hardlink("h", "f"), regular("f", b"y")], "appears twice"),
    ],
)
def test_a_hard_link_not_to_an_earlier_regular_file_is_refused(target, members, why):
    assert_refused_and_untouched(target, members, match=why)


def test_a_hard_link_to_an_earlier_file_shares_its_inode(tmp_path):
    safe_extract(stream(regular("f", b"data"), hardlink("dir/h", "./f")), tmp_path)
    assert os.stat(tmp_path / "f").st_ino == os.stat(tmp_path / "dir" / "h").st_ino


# ---------------------------------------------------------------------------------------
# A6: symbolic links already in the target


@pytest.fixture
def target_with_link_out(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "file").write_bytes(b"outside\n")
    target = tmp_path / "target"
    target.mkdir()
    (target / "dir").symlink_to(outside)
    return target, outside


def test_a_restore_never_writes_through_a_symlink_in_the_target(target_with_link_out):
    target, outside = target_with_link_out
    members = [directory("dir"), regular("dir/file", b"evil\n"), regular("dir/new", b"evil\n")]
    assert_refused_and_untouched(target, members, error=TargetExistsError, match="dir")
    assert_refused_and_untouched(
        target, members, error=UnsafeArchiveError, match="symbolic link", overwrite=True
    )
    assert os.listdir(outside) == ["file"]
    assert (outside / "file").read_bytes() == b"outside\n"
    assert os.readlink(target / "dir") == str(outside)


def test_a_directory_swapped_for_a_link_after_the_check_is_not_followed(target_with_link_out, monkeypatch):
    """The race the commit step guards against: ``dir`` is seen as a directory when the
    target is examined, and is a link to elsewhere when it is opened."""
    from bakthat import extract_commit

    target, outside = target_with_link_out
    real_lstat = extract_commit._lstat

    def seen_before_the_swap(name, dir_fd):
        found = real_lstat(name, dir_fd)
        return os.stat(target.parent) if name == "dir" else found

    monkeypatch.setattr(extract_commit, "_lstat", seen_before_the_swap)
    members = [directory("dir"), regular("dir/file", b"evil\n"), regular("dir/new", b"evil\n")]
    with pytest.raises(OSError):
        safe_extract(stream(*members), target, overwrite=True)
    assert os.listdir(outside) == ["file"]
    assert (outside / "file").read_bytes() == b"outside\n"
    assert os.readlink(target / "dir") == str(outside)
    assert_no_staging(target)


def test_a_conflict_is_found_before_anything_is_moved_into_the_target(tmp_path, monkeypatch):
    from bakthat import extract_commit

    target = tmp_path / "target"
    target.mkdir()
    (target / "b").write_bytes(b"mine\n")
    moves = []
    real_rename = os.rename

    def recording_rename(*args, **kwargs):
        moves.append(args)
        return real_rename(*args, **kwargs)

    monkeypatch.setattr(extract_commit.os, "rename", recording_rename)
    with pytest.raises(TargetExistsError, match="b already exists"):
        safe_extract(stream(regular("a", b"new\n"), regular("b", b"theirs\n")), target)
    assert moves == []  # 'a' was not moved in and back out: the target was never touched
    assert sorted(os.listdir(target)) == ["b"] and (target / "b").read_bytes() == b"mine\n"


def test_overwrite_replaces_a_symlink_in_the_target_itself_not_the_file_it_points_to(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"outside\n")
    target = tmp_path / "target"
    target.mkdir()
    (target / "link").symlink_to(outside)
    safe_extract(stream(regular("link", b"restored\n")), target, overwrite=True)
    assert not (target / "link").is_symlink()
    assert (target / "link").read_bytes() == b"restored\n"
    assert outside.read_bytes() == b"outside\n"



def test_overwrite_into_a_target_with_links_pointing_outside_never_writes_outside(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "file").write_bytes(b"outside\n")
    target = tmp_path / "target"
    (target / "app").mkdir(parents=True)
    (target / "app" / "config").symlink_to(outside / "file")
    (target / "app" / "data").symlink_to(outside)
    (target / "app" / "cache").symlink_to(outside)
    members = [
        directory("app"),
        regular("app/config", b"restored config\n"),
        symlink("app/cache", "/var/cache/app"),
        regular("app/data/new", b"evil\n"),
    ]
    before = snapshot(outside)
    with pytest.raises(UnsafeArchiveError, match="symbolic link in the target"):
        safe_extract(stream(*members), target, overwrite=True)
    assert snapshot(outside) == before and os.listdir(outside) == ["file"]
    safe_extract(stream(*members[:3]), target, overwrite=True)
    assert (target / "app" / "config").read_bytes() == b"restored config\n"
    assert not (target / "app" / "config").is_symlink()
    assert os.readlink(target / "app" / "cache") == "/var/cache/app"
    assert snapshot(outside) == before


# ---------------------------------------------------------------------------------------
# A8: no partial restore


def test_a_malicious_member_after_good_ones_leaves_the_target_exactly_as_before(target):
    members = [
        directory("newdir"),
        regular("newdir/good.txt", b"good"),
        regular("good.txt", b"good"),
        regular("../evil", b"evil"),
    ]
    assert_refused_and_untouched(target, members, match=r"'\.\./evil'")
    assert not (target.parent / "evil").exists()


def test_a_failure_removes_a_target_directory_the_restore_created(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    dst = base / "new" / "deeper"
    with pytest.raises(UnsafeArchiveError):
        safe_extract(stream(regular("good", b"x"), regular("../evil", b"x")), dst)
    assert os.listdir(base) == []


def test_the_staging_directory_of_a_failed_restore_is_removed_even_when_read_only(target):
    members = [
        directory("ro", mode=0o555),
        directory("ro/inner", mode=0o500),
        regular("ro/inner/f", b"x", mode=0o400),
        regular("../evil"),
    ]
    assert_refused_and_untouched(target, members)


# ---------------------------------------------------------------------------------------
# A9: the checks are bakthat's own, not a filter the running Python may lack


def test_restores_and_refusals_do_not_depend_on_tarfiles_extraction_filters(tmp_path, monkeypatch):
    for name in ("data_filter", "tar_filter", "fully_trusted_filter"):
        monkeypatch.delattr(tarfile, name, raising=False)
    safe_extract(stream(regular("f", b"x"), symlink("l", "/etc")), tmp_path / "ok")
    assert os.readlink(tmp_path / "ok" / "l") == "/etc"
    with pytest.raises(UnsafeArchiveError, match=r"'\.\.' component"):
        safe_extract(stream(regular("../evil", b"x")), tmp_path / "bad")
    assert not (tmp_path / "evil").exists()


# ---------------------------------------------------------------------------------------
# Existing files and overwrite


def test_an_existing_file_is_not_overwritten_without_overwrite(target):
    assert_refused_and_untouched(
        target,
        [regular("a-new.txt", b"new"), regular("keep.txt", b"replaced\n")],
        error=TargetExistsError,
        match="keep.txt",
    )


def test_an_existing_file_is_replaced_with_overwrite(target):
    restored = safe_extract(stream(regular("keep.txt", b"replaced\n")), target, overwrite=True)
    assert restored == [target / "keep.txt"]
    assert (target / "keep.txt").read_bytes() == b"replaced\n"
    assert (target / "sub" / "inner.txt").read_bytes() == b"inner\n"
    assert_no_staging(target)


def test_overwrite_merges_directories_and_applies_the_archives_directory_attributes(target):
    members = [
        directory("sub", mode=0o700, mtime=MTIME + 5),
        regular("sub/inner.txt", b"new inner\n", mtime=MTIME + 1),
        regular("sub/added.txt", b"added\n"),
        regular("sub/deeper/x", b"x"),
    ]
    safe_extract(stream(*members), target, overwrite=True)
    assert sorted(os.listdir(target / "sub")) == ["added.txt", "deeper", "inner.txt"]
    assert (target / "sub" / "inner.txt").read_bytes() == b"new inner\n"
    assert os.stat(target / "sub" / "inner.txt").st_mtime == MTIME + 1
    assert (target / "keep.txt").read_bytes() == b"precious\n"
    st = os.stat(target / "sub")
    assert (stat.S_IMODE(st.st_mode), st.st_mtime) == (0o700, MTIME + 5)


@pytest.mark.parametrize(
    "members",
    [
        [regular("a-fine.txt", b"x"), regular("sub", b"a file where a directory is")],
        [regular("a-fine.txt", b"x"), directory("keep.txt"), regular("keep.txt/x", b"x")],
    ],
    ids=["file-over-dir", "dir-over-file"],
)
def test_overwrite_never_swaps_a_directory_and_a_file(target, members):
    assert_refused_and_untouched(
        target, members, error=TargetExistsError, match="even with overwrite", overwrite=True
    )


@pytest.mark.parametrize("hard_links_work", [True, False])
def test_a_failure_in_the_middle_of_the_commit_puts_everything_back(
    target, monkeypatch, hard_links_work
):
    if not hard_links_work:
        monkeypatch.setattr(os, "link", _no_hard_links)
    (target / "sub").chmod(0o750)
    os.utime(target / "sub", (MTIME, MTIME))
    before = snapshot(target)
    real_rename = os.rename
    calls = []

    def flaky_rename(src, dst, **kwargs):
        calls.append(src)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_rename(src, dst, **kwargs)

    monkeypatch.setattr(os, "rename", flaky_rename)
    members = [
        regular("keep.txt", b"replaced\n"),
        directory("sub", mode=0o700),
        regular("sub/inner.txt", b"new\n"),
        regular("sub/new1", b"1"),
        regular("sub/new2", b"2"),
        regular("z-new", b"z"),
    ]
    with pytest.raises(KeyboardInterrupt):
        safe_extract(stream(*members), target, overwrite=True)
    assert len(calls) >= 3
    assert snapshot(target) == before
    assert_no_staging(target)


def _no_hard_links(*args, **kwargs):
    raise PermissionError(1, "Operation not permitted")


def test_overwrite_works_where_hard_links_cannot_be_made(target, monkeypatch):
    monkeypatch.setattr(os, "link", _no_hard_links)
    safe_extract(stream(regular("keep.txt", b"replaced\n")), target, overwrite=True)
    assert (target / "keep.txt").read_bytes() == b"replaced\n"
    assert_no_staging(target)


# ---------------------------------------------------------------------------------------
# Stream handling, before_commit and integrity


def test_before_commit_runs_after_the_whole_stream_was_read(tmp_path):
    source = stream(regular("f", b"x"))
    seen = []
    safe_extract(source, tmp_path, before_commit=lambda: seen.append(source.at_eof))
    assert seen == [True]


@pytest.mark.parametrize("error", [IntegrityError("checksum mismatch"), KeyboardInterrupt()])
def test_before_commit_raising_leaves_the_target_unchanged(target, error):
    def refuse():
        raise error

    before = snapshot(target)
    with pytest.raises(type(error)):
        safe_extract(
            stream(regular("new.txt", b"new"), regular("sub/x", b"x")), target,
            before_commit=refuse, overwrite=True,
        )
    assert snapshot(target) == before
    assert_no_staging(target)


def two_member_archive():
    """Return an archive and the offset of its second member's header."""
    data = tar_bytes(regular("one", b"1" * 5000), regular("two", b"2" * 100_000))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return data, tar.getmembers()[1].offset


def truncated_variants():
    data, second_header = two_member_archive()
    yield "in-file-data", data[: second_header + 1024 + 50_000]
    yield "at-member-boundary", data[:second_header]
    yield "inside-a-header", data[: second_header + 100]
    damaged = bytearray(data)
    damaged[second_header : second_header + 512] = b"\x07" * 512
    yield "damaged-header", bytes(damaged)
    yield "trailing-garbage", data + b"garbage"
    yield "empty", b""


@pytest.mark.parametrize(
    "data", [v for _, v in truncated_variants()], ids=[k for k, _ in truncated_variants()]
)
def test_a_truncated_or_damaged_archive_is_an_integrity_error_and_changes_nothing(target, data):
    before = snapshot(target)
    with pytest.raises(IntegrityError, match="truncated or damaged archive"):
        without_hanging(safe_extract, OneWayStream(data), target)
    assert snapshot(target) == before
    assert_no_staging(target)


def test_an_upstream_error_found_while_reading_the_rest_of_a_damaged_stream_wins(target):
    data = tar_bytes(regular("one", b"1" * 5000), regular("two", b"2" * 100_000))

    class ChecksummedStream(OneWayStream):
        def read(self, size=-1):
            chunk = super().read(size)
            if not chunk:
                raise IntegrityError("backup 'x': SHA-256 mismatch")
            return chunk

    with pytest.raises(IntegrityError, match="SHA-256 mismatch"):
        safe_extract(ChecksummedStream(data[:-3000] + b"\x01" * 3000), target)
    assert_no_staging(target)


def test_a_target_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(TargetExistsError, match="not a directory"):
        safe_extract(stream(regular("f")), tmp_path / "file")


# ---------------------------------------------------------------------------------------
# Type changes within one archive


@pytest.mark.parametrize(
    "members",
    [
        [directory("a"), regular("a", b"x")],
        [regular("a/b", b"x"), regular("a", b"x")],
        [regular("a", b"x"), directory("a")],
        [regular("t", b"x"), symlink("a", "t"), regular("a", b"x")],
        [regular("a", b"x"), symlink("a", "t")],
        [directory("a"), symlink("a", ".")],
    ],
)
def test_a_path_that_changes_type_within_the_archive_is_refused(target, members):
    assert_refused_and_untouched(target, members, match="already restored as a")


def test_a_root_entry_that_is_not_a_directory_is_refused(target):
    assert_refused_and_untouched(target, [regular("./", b"x")], match="restore directory itself")


# ---------------------------------------------------------------------------------------
# list_members


def test_list_members_yields_the_checked_members_without_writing(tmp_path):
    data = tar_bytes(directory("."), directory("d"), regular("d/f", b"x"), symlink("l", "d/f"))
    names = [member.name for member in list_members(OneWayStream(data))]
    assert names == ["d", "d/f", "l"]


def test_list_members_refuses_an_unsafe_member(tmp_path):
    members = list_members(stream(regular("ok", b"x"), symlink("l", "/etc"), regular("l/passwd", b"x")))
    assert next(members).name == "ok"
    assert next(members).linkname == "/etc"
    with pytest.raises(UnsafeArchiveError, match="l/passwd"):
        next(members)


def test_list_members_reports_a_truncated_archive(tmp_path):
    data, second_header = two_member_archive()
    with pytest.raises(IntegrityError):
        list(list_members(OneWayStream(data[: second_header + 8000])))
    with pytest.raises(IntegrityError):
        list(list_members(OneWayStream(data[:second_header])))


# ---------------------------------------------------------------------------------------
# safe_write_file


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "/etc/passwd", "nul\x00"])
def test_safe_write_file_refuses_a_name_that_is_not_one_component(tmp_path, name):
    with pytest.raises(UnsafeArchiveError, match="not a single file name"):
        safe_write_file(io.BytesIO(b"data"), tmp_path / "target", name)
    assert not (tmp_path / "target").exists()


def test_safe_write_file_commits_only_after_the_check_and_leaves_no_staging(tmp_path):
    target = tmp_path / "target"
    target.mkdir()

    def refuse():
        assert [entry.name.startswith(".bakthat-restore-") for entry in target.iterdir()] == [True]
        raise IntegrityError("checked after the last byte")

    with pytest.raises(IntegrityError, match="after the last byte"):
        safe_write_file(OneWayStream(os.urandom(300_000)), target, "f", before_commit=refuse)
    assert os.listdir(target) == []
    data = os.urandom(300_000)
    assert safe_write_file(OneWayStream(data), target, "f") == target / "f"
    assert (target / "f").read_bytes() == data and os.listdir(target) == ["f"]


def test_safe_write_file_replaces_a_link_itself_never_writing_through_it(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    outside = tmp_path / "outside"
    outside.write_text("keep")
    (target / "f").symlink_to(outside)
    with pytest.raises(TargetExistsError):
        safe_write_file(io.BytesIO(b"new"), target, "f")
    safe_write_file(io.BytesIO(b"new"), target, "f", overwrite=True)
    assert not (target / "f").is_symlink() and (target / "f").read_bytes() == b"new"
    assert outside.read_text() == "keep"


def test_every_error_is_a_bakthat_error():
    for error in (UnsafeArchiveError, IntegrityError, TargetExistsError):
        assert issubclass(error, BakthatError)


def test_a_tar_error_that_is_not_damage_is_a_bakthat_error_naming_the_step():
    from bakthat.extract import _tar_errors
    from bakthat.tarreader import TarReader

    with pytest.raises(BakthatError, match="could not restore the archive: seeking backwards is not allowed") as raised:
        with _tar_errors(TarReader(io.BytesIO(b"")), "restore"):
            raise tarfile.StreamError("seeking backwards is not allowed")
    assert type(raised.value) is BakthatError
