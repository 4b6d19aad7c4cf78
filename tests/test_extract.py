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
import types

import pytest

from bakthat import extract
from bakthat.errors import BakthatError, IntegrityError, TargetExistsError, UnsafeArchiveError
from bakthat.extract import list_members, safe_extract

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


# ---------------------------------------------------------------------------------------
# A7: special files, owners and modes (as root; without root: tests/test_roundtrip.py)

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def device(name, kind, major, minor, mode=0o660):
    info, data = special(name, kind)
    info.devmajor, info.devminor, info.mode = major, minor, mode
    return info, data


def test_fifos_are_recreated_with_their_mode_and_mtime(tmp_path):
    info, _ = special("pipe", tarfile.FIFOTYPE)
    info.mode = 0o620
    safe_extract(stream((info, None), regular("after.txt", b"ok")), tmp_path)
    st = os.lstat(tmp_path / "pipe")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o620 and st.st_mtime == MTIME
    assert (tmp_path / "after.txt").read_bytes() == b"ok"


@root_only
@pytest.mark.parametrize("kind, check", [(tarfile.CHRTYPE, stat.S_ISCHR), (tarfile.BLKTYPE, stat.S_ISBLK)])
def test_devices_are_recreated_as_root(tmp_path, kind, check):
    safe_extract(stream(device("dev", kind, 7, 200)), tmp_path)
    st = os.lstat(tmp_path / "dev")
    assert check(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (7, 200)
    assert stat.S_IMODE(st.st_mode) == 0o660


def test_a_contiguous_file_is_restored_as_a_regular_file(tmp_path):
    info, data = regular("contiguous", b"data")
    info.type = tarfile.CONTTYPE
    safe_extract(stream((info, data)), tmp_path)
    assert (tmp_path / "contiguous").read_bytes() == b"data"


@pytest.mark.parametrize("kind", [b"V", b"S", b"9"])
def test_a_member_of_an_unknown_or_unrestorable_type_is_refused(target, kind):
    info, _ = special("special", kind)
    assert_refused_and_untouched(target, [regular("good.txt", b"ok"), (info, None)], match="special")


@root_only
@pytest.mark.parametrize("mode", [0o4777, 0o2755, 0o1644, 0o666, 0o400, 0o000])
def test_file_modes_are_restored_exactly_as_root(tmp_path, mode):
    safe_extract(stream(regular("f", b"#!/bin/sh\n", mode=mode)), tmp_path)
    assert stat.S_IMODE(os.stat(tmp_path / "f").st_mode) == mode


@root_only
@pytest.mark.parametrize("mode", [0o700, 0o750, 0o3777, 0o555, 0o1777])
def test_directory_modes_and_mtimes_are_restored_exactly_as_root(tmp_path, mode):
    safe_extract(stream(directory("d", mode=mode), regular("d/f", b"x")), tmp_path)
    st = os.stat(tmp_path / "d")
    assert stat.S_IMODE(st.st_mode) == mode
    assert st.st_mtime == MTIME


@root_only
def test_owners_are_restored_by_name_falling_back_to_the_ids(tmp_path):
    named, _ = regular("named", b"x")
    named.uid, named.gid, named.uname, named.gname = 4000, 4000, "nobody", "root"
    numeric, _ = regular("numeric", b"x")
    numeric.uid, numeric.gid, numeric.uname, numeric.gname = 4321, 8765, "no-such-user-here", ""
    link, _ = symlink("link", "numeric")
    link.uid, link.gid = 1234, 5678
    safe_extract(stream((named, b"x"), (numeric, b"x"), (link, None)), tmp_path)
    import pwd

    assert (os.stat(tmp_path / "named").st_uid, os.stat(tmp_path / "named").st_gid) == (pwd.getpwnam("nobody").pw_uid, 0)
    assert (os.stat(tmp_path / "numeric").st_uid, os.stat(tmp_path / "numeric").st_gid) == (4321, 8765)
    assert (os.lstat(tmp_path / "link").st_uid, os.lstat(tmp_path / "link").st_gid) == (1234, 5678)


def test_mtimes_are_restored_to_the_nanosecond_for_every_kind(tmp_path):
    members = [directory("d"), regular("d/f", b"x"), symlink("d/l", "f"), special("d/p", tarfile.FIFOTYPE)]
    for index, (info, _) in enumerate(members):
        info.pax_headers = {"mtime": f"1600000000.{index + 1:09d}"}
    safe_extract(stream(*members), tmp_path)
    for index, (info, _) in enumerate(members):
        assert os.lstat(tmp_path / info.name).st_mtime_ns == 1_600_000_000_000_000_000 + index + 1


def test_extended_attributes_and_acls_are_restored(tmp_path):
    info, data = regular("f", b"x", mode=0o640)
    info.pax_headers = {
        "SCHILY.xattr.user.note": "caf\udce9",
        "SCHILY.acl.access": "user::rw-,user:1000:r--,group::r--,mask::r--,other::---",
    }
    safe_extract(stream((info, data)), tmp_path)
    assert os.getxattr(tmp_path / "f", "user.note") == b"caf\xe9"
    acl = os.getxattr(tmp_path / "f", "system.posix_acl_access")
    assert (2, 4, 1000) in [(tag, perm, ident) for tag, perm, ident in _acl_entries(acl)]


def _acl_entries(data):
    import struct

    return [struct.unpack_from("<HHI", data, offset) for offset in range(4, len(data), 8)]


def test_an_extended_attribute_the_file_system_refuses_is_a_warning(tmp_path, monkeypatch, caplog):
    import errno

    def refuse(*args, **kwargs):
        raise OSError(errno.ENOTSUP, "Operation not supported")

    monkeypatch.setattr(os, "setxattr", refuse)
    info, data = regular("f", b"x")
    info.pax_headers = {"SCHILY.xattr.user.note": "x"}
    safe_extract(stream((info, data)), tmp_path)
    assert (tmp_path / "f").read_bytes() == b"x"
    assert "user.note of 1 entries not restored" in caplog.text


def test_a_member_listed_twice_with_the_same_kind_is_restored_as_the_later_one(tmp_path):
    safe_extract(stream(symlink("l", "one"), symlink("l", "two"), regular("f", b"1"), regular("f", b"2")), tmp_path)
    assert os.readlink(tmp_path / "l") == "two"
    assert (tmp_path / "f").read_bytes() == b"2"


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
        safe_extract(OneWayStream(data), target)
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


def test_every_error_is_a_bakthat_error():
    for error in (UnsafeArchiveError, IntegrityError, TargetExistsError):
        assert issubclass(error, BakthatError)


# ---------------------------------------------------------------------------------------
# Rule 8: sparse maps


def sparse_member(name, realsize, segments, data, stored_extra=b""):
    """A GNU sparse 1.0 member: map then data, as GNU tar and bakthat write it."""
    table = f"{len(segments)}\n" + "".join(f"{offset}\n{length}\n" for offset, length in segments)
    table = table.encode() + bytes(-len(table) % 512)
    info = tarfile.TarInfo(f"GNUSparseFile.0/{name}")
    info.mtime, info.mode = MTIME, 0o644
    payload = table + data + stored_extra
    info.size = len(payload)
    info.pax_headers = {"path": info.name, "GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                        "GNU.sparse.name": name, "GNU.sparse.realsize": str(realsize)}
    return info, payload


def test_a_sparse_member_is_restored_with_its_holes(tmp_path):
    member = sparse_member("s", 1 << 30, [(0, 5), (1 << 29, 3), (1 << 30, 0)], b"helloabc")
    safe_extract(stream(member, regular("after", b"ok")), tmp_path)
    st = os.stat(tmp_path / "s")
    assert st.st_size == 1 << 30 and st.st_blocks * 512 <= 64 * 1024
    with open(tmp_path / "s", "rb") as handle:
        assert handle.read(6) == b"hello\0"
        handle.seek(1 << 29)
        assert handle.read(4) == b"abc\0"
    assert (tmp_path / "after").read_bytes() == b"ok"


@pytest.mark.parametrize(
    "realsize, segments, data, why",
    [
        (100, [(50, 5), (10, 5)], b"x" * 10, "overlapping or unordered"),
        (100, [(0, 10), (5, 5)], b"x" * 15, "overlapping or unordered"),
        (100, [(98, 5)], b"x" * 5, "past its size"),
        (1000, [(0, 600)], b"x" * 10, "more data than the member holds"),
    ],
)
def test_a_sparse_member_with_a_bad_map_is_refused(target, realsize, segments, data, why):
    assert_refused_and_untouched(target, [sparse_member("s", realsize, segments, data)], match=why)


def test_a_sparse_map_with_too_many_segments_is_refused_before_it_is_read(target):
    info, payload = sparse_member("s", 10, [(0, 1)], b"x")
    payload = b"99999999999\n" + payload[len(b"1\n"):]
    info.size = len(payload)
    assert_refused_and_untouched(target, [(info, payload)], match="segments")


# ---------------------------------------------------------------------------------------
# Rule 9: header sizes (a small compressed archive must not cost gigabytes of memory)


class HugeHeaderStream(io.RawIOBase):
    """A tar stream whose first header announces a huge extended header or long name,
    followed by endless filler, generated as it is read (never held in memory)."""

    def __init__(self, kind: bytes, size: int):
        info = tarfile.TarInfo("././@PaxHeader" if kind == tarfile.XHDTYPE else "././@LongLink")
        info.type, info.size = kind, size
        self._head = info.tobuf(tarfile.USTAR_FORMAT)
        self.bytes_read = 0

    def readable(self):
        return True

    def read(self, size=-1):
        size = 1 << 16 if size < 0 else size
        assert self.bytes_read < 16 << 20, "the restore reads the oversized header instead of refusing it"
        if self.bytes_read < len(self._head):
            chunk = self._head[self.bytes_read : self.bytes_read + size]
        else:
            chunk = b"9 a=bcde\n" * (size // 9 + 1)
            chunk = chunk[:size]
        self.bytes_read += len(chunk)
        return chunk


@pytest.mark.parametrize(
    "kind, why",
    [(tarfile.XHDTYPE, "PAX extended header"), (tarfile.XGLTYPE, "PAX extended header"), (tarfile.GNUTYPE_LONGNAME, "GNU long name"), (tarfile.GNUTYPE_LONGLINK, "GNU long name")],
)
def test_a_gigantic_header_is_refused_before_it_is_read_on_restore_and_on_listing(target, kind, why):
    before = snapshot(target)
    huge = HugeHeaderStream(kind, 1 << 30)
    with pytest.raises(UnsafeArchiveError, match=why):
        safe_extract(huge, target)
    assert huge.bytes_read < 1 << 20
    assert snapshot(target) == before
    assert_no_staging(target)
    huge = HugeHeaderStream(kind, 1 << 30)
    with pytest.raises(UnsafeArchiveError, match=why):
        list(list_members(huge))
    assert huge.bytes_read < 1 << 20


class EndlessOldSparseStream(HugeHeaderStream):
    """An old-style GNU sparse member whose header says "more sparse blocks follow",
    followed by endless such blocks."""

    def __init__(self):
        info = tarfile.TarInfo("sparse")
        info.type, info.size = tarfile.GNUTYPE_SPARSE, 0
        head = bytearray(info.tobuf(tarfile.GNU_FORMAT))
        head[482] = 1  # isextended
        head[148:156] = b"        "
        head[148:155] = b"%06o\0" % sum(head)
        self._head = bytes(head)
        self.bytes_read = 0
        self._filler = bytes(504) + b"\1" + bytes(7)

    def read(self, size=-1):
        if self.bytes_read >= len(self._head):
            assert self.bytes_read < 16 << 20, "the restore reads the sparse blocks instead of refusing them"
            self.bytes_read += size
            return (self._filler * (size // 512 + 1))[:size]
        return super().read(size)


def test_an_old_style_gnu_sparse_member_is_refused_before_its_blocks_are_read(target):
    before = snapshot(target)
    with pytest.raises(UnsafeArchiveError, match="old-style GNU sparse"):
        safe_extract(EndlessOldSparseStream(), target)
    assert snapshot(target) == before
    with pytest.raises(UnsafeArchiveError, match="old-style GNU sparse"):
        list(list_members(EndlessOldSparseStream()))


def test_large_but_sane_extended_headers_are_restored(tmp_path):
    info, data = regular("f", b"x")
    info.pax_headers = {"SCHILY.xattr.user.big": "v" * 3_000, "comment": "c" * 2_000_000}
    safe_extract(stream((info, data)), tmp_path)
    assert os.getxattr(tmp_path / "f", "user.big") == b"v" * 3_000


# ---------------------------------------------------------------------------------------
# The second layer: on disk, nothing is ever created through a link, even when the
# member check is bypassed


@pytest.fixture
def staging(tmp_path):
    from bakthat.extract_disk import StagingTree

    root = tmp_path / "staging"
    root.mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "passwd").write_bytes(b"root:x:0:0\n")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    tree = StagingTree(fd, io.BytesIO(b"evil\n" + bytes(507)))
    yield root, victim, tree
    tree.close()
    os.close(fd)


def unchecked(info, parts):
    info.offset_data = 0
    return info, parts


@pytest.mark.parametrize("name", ["passwd", "new"])
def test_the_disk_layer_never_writes_through_a_symlinked_directory(staging, name):
    root, victim, tree = staging
    os.symlink(victim, root / "evil")
    info, _ = regular(f"evil/{name}", b"evil\n")
    with pytest.raises(UnsafeArchiveError, match="not a directory on disk"):
        tree.add(*unchecked(info, ["evil", name]))
    assert os.listdir(victim) == ["passwd"] and (victim / "passwd").read_bytes() == b"root:x:0:0\n"


def test_the_disk_layer_never_creates_below_a_file(staging):
    root, _, tree = staging
    (root / "f").write_bytes(b"x")
    info, _ = symlink("f/l", "x")
    with pytest.raises(UnsafeArchiveError, match="not a directory on disk"):
        tree.add(*unchecked(info, ["f", "l"]))


def test_the_disk_layer_replaces_a_symlink_at_a_files_name_instead_of_opening_it(staging):
    root, victim, tree = staging
    os.symlink(victim / "passwd", root / "f")
    info, _ = regular("f", b"evil\n")
    tree.add(*unchecked(info, ["f"]))
    assert not (root / "f").is_symlink() and (root / "f").read_bytes() == b"evil\n"
    assert (victim / "passwd").read_bytes() == b"root:x:0:0\n"


# ---------------------------------------------------------------------------------------
# A6 again: --overwrite into a target whose links already point outside


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
