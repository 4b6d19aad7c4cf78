"""Tests for bakthat.extract_disk through safe_extract: every kind of entry and
attribute is created as the archive describes it (catalogue A7, as root; without root:
tests/test_roundtrip.py), and the disk layer alone never creates anything through a
link."""

from __future__ import annotations

import errno
import io
import os
import stat
import tarfile

import pytest

from bakthat.errors import UnsafeArchiveError
from bakthat.extract import safe_extract
from tests.test_extract import (  # noqa: F401 - target is a fixture
    MTIME,
    assert_refused_and_untouched,
    directory,
    regular,
    special,
    stream,
    symlink,
    target,
)


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
# Modes set at creation where the umask keeps them, and exactly otherwise


def test_a_mode_the_umask_would_cut_is_restored_exactly(tmp_path):
    old = os.umask(0o077)
    try:
        safe_extract(stream(regular("open", b"x", mode=0o666), regular("kept", b"y", mode=0o600)), tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "open").st_mode) == 0o666
    assert stat.S_IMODE(os.stat(tmp_path / "kept").st_mode) == 0o600


def test_a_read_only_file_with_an_extended_attribute_gets_both(tmp_path):
    info, data = regular("ro", b"data", mode=0o444)
    info.pax_headers = {"SCHILY.xattr.user.note": "kept"}
    safe_extract(stream((info, data)), tmp_path)
    assert stat.S_IMODE(os.stat(tmp_path / "ro").st_mode) == 0o444
    try:
        assert os.getxattr(tmp_path / "ro", "user.note") == b"kept"
    except OSError as exc:  # a file system without user xattrs: the mode is what matters here
        assert exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP)


def test_a_default_acl_on_the_target_does_not_change_a_restored_files_mode(tmp_path):
    """A default ACL replaces the umask when files are created: the mode must still be
    set exactly (here the ACL would make 0o644 into 0o600)."""
    from bakthat import fsmeta

    target = tmp_path / "acl"
    target.mkdir()
    try:
        os.setxattr(target, "system.posix_acl_default", fsmeta.acl_from_text("user::rw-,group::---,other::---"))
    except OSError as exc:
        pytest.skip(f"no default ACLs here: {exc}")
    safe_extract(stream(regular("f", b"x", mode=0o644)), target)
    assert stat.S_IMODE(os.stat(target / "f").st_mode) == 0o644


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


def test_the_disk_layer_makes_a_hard_link_to_a_symlink_itself_never_to_what_it_points_to(staging):
    root, victim, tree = staging
    os.symlink(victim / "passwd", root / "l")
    info = tarfile.TarInfo("h")
    info.type, info.linkname, info.mtime = tarfile.LNKTYPE, "l", 1_600_000_000
    tree.add(*unchecked(info, ["h"]))
    assert (root / "h").is_symlink()  # a second name of the link, not of the victim's file
    assert os.lstat(root / "h").st_ino == os.lstat(root / "l").st_ino != os.stat(victim / "passwd").st_ino
    assert os.stat(victim / "passwd").st_nlink == 1


def test_a_member_named_like_the_staging_directory_is_refused(tmp_path, monkeypatch):
    """The staging directory's name is random; a member that has it anyway (here: the
    name is made predictable) must not be moved onto the staging directory."""
    from bakthat import extract

    def predictable_mkdtemp(prefix, dir):
        path = os.path.join(dir, prefix + "guessed")
        os.mkdir(path, 0o700)
        return path

    monkeypatch.setattr(extract.tempfile, "mkdtemp", predictable_mkdtemp)
    target = tmp_path / "target"
    target.mkdir()
    members = [directory(".bakthat-restore-guessed"), regular(".bakthat-restore-guessed/x", b"x")]
    with pytest.raises(UnsafeArchiveError, match="has the name of this restore's staging directory"):
        safe_extract(stream(*members), target)
    assert os.listdir(target) == []


def test_the_disk_layer_replaces_a_symlink_at_a_files_name_instead_of_opening_it(staging):
    root, victim, tree = staging
    os.symlink(victim / "passwd", root / "f")
    info, _ = regular("f", b"evil\n")
    tree.add(*unchecked(info, ["f"]))
    assert not (root / "f").is_symlink() and (root / "f").read_bytes() == b"evil\n"
    assert (victim / "passwd").read_bytes() == b"root:x:0:0\n"


# ---------------------------------------------------------------------------------------
# Members are created in a writer thread: errors still come in archive order


def test_a_disk_error_on_an_earlier_member_wins_over_a_refusal_of_a_later_one(tmp_path, monkeypatch):
    import errno
    import threading

    from bakthat.extract_disk import StagingTree

    original = StagingTree.add

    def failing_add(self, member, parts):
        if member.name == "b":
            raise OSError(errno.EIO, "disk failed on b")
        return original(self, member, parts)

    monkeypatch.setattr(StagingTree, "add", failing_add)
    members = [regular("a", b"1"), regular("b", b"2" * 100_000), *(regular(f"c{i}", b"3") for i in range(50)),
               regular("../escape", b"x")]
    with pytest.raises(OSError, match="disk failed on b"):
        safe_extract(stream(*members), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [t for t in threading.enumerate() if t.name == "bakthat-restore-writer"]


def test_the_writer_thread_is_gone_after_a_refused_archive(tmp_path):
    import threading

    with pytest.raises(UnsafeArchiveError):
        safe_extract(stream(regular("a", b"1"), regular("../escape", b"x")), tmp_path / "out")
    assert not [t for t in threading.enumerate() if t.name == "bakthat-restore-writer"]
