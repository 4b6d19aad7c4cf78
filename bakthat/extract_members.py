"""The member check: the first layer of restore safety, run on every member before
anything of it is written.

The rule it enforces: **a member is data, never an instruction to write elsewhere.**
Its name must stay inside the restore directory, and no member may be written through
a symbolic link or below a non-directory; a symbolic link itself is restored verbatim,
whatever it points to (absolute, outward, dangling), because restoring it writes
nothing through it.  The second layer (:mod:`bakthat.extract_disk`) makes the same
promise on disk, by opening every directory without following links.

Each rule below has a test of its own in tests/test_extract.py.

1. Names: not empty, no NUL byte, no ``..`` component; a leading ``/`` and ``.``
   components are dropped (``/etc/x`` lands at ``<target>/etc/x``).
2. Kinds: regular files, directories, symbolic links, hard links, FIFOs, character and
   block devices; any other type is refused.
3. The archive root (``./``) may only be a directory, and is not restored itself.
4. Parents: every component above a member must be a directory of this archive (or
   not named by it): never a symbolic link, regular file or special file.
5. One path, one kind: a path may not change kind within the archive, nor appear twice
   when a hard link involves it.
6. Symbolic links: a target that is empty or holds a NUL byte is refused.
7. Hard links: the target must be a relative path without ``..`` naming an earlier
   regular-file member.
8. Sparse maps: segments in order, inside the file's size, and no more data than the
   member holds.
9. Header sizes: a PAX header or GNU long name larger than a sane limit is refused
   before it is read into memory, as are old-style GNU sparse members and sparse maps
   with too many segments (the limits are enforced by restore's header parser,
   :mod:`bakthat.tarreader`, the only code that reads headers).
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from typing import Any

from bakthat.errors import UnsafeArchiveError

FILE, DIR, SYMLINK, HARDLINK = "regular file", "directory", "symbolic link", "hard link"
FIFO, CHAR_DEVICE, BLOCK_DEVICE = "FIFO", "character device", "block device"
KINDS = {
    tarfile.REGTYPE: FILE,
    tarfile.AREGTYPE: FILE,
    tarfile.CONTTYPE: FILE,
    tarfile.DIRTYPE: DIR,
    tarfile.SYMTYPE: SYMLINK,
    tarfile.LNKTYPE: HARDLINK,
    tarfile.FIFOTYPE: FIFO,
    tarfile.CHRTYPE: CHAR_DEVICE,
    tarfile.BLKTYPE: BLOCK_DEVICE,
}
#: The largest PAX extended header read: paths, link targets, extended attributes and
#: ACLs of one member fit many times over.
MAX_PAX_HEADER = 8 << 20
#: The largest GNU long name or long link target read (PATH_MAX is 4096 on Linux).
MAX_LONG_NAME = 64 << 10


def unsafe(name: str, why: str) -> UnsafeArchiveError:
    """Return the error refusing member ``name`` for reason ``why``."""
    return UnsafeArchiveError(f"refusing to restore archive member {name!r}: {why}")


def path_parts(member_name: str, path: str, what: str) -> list[str]:
    """Return the components of an archive path, without '', '.' and leading '/' (rule 1)."""
    if not path:
        raise unsafe(member_name, f"{what} is empty")
    if "\0" in path:
        raise unsafe(member_name, f"{what} contains a NUL byte")
    parts = path.split("/")
    if "" in parts or "." in parts:
        parts = [part for part in parts if part not in ("", ".")]
    if ".." in parts:
        raise unsafe(member_name, f"{what} {path!r} has a '..' component")
    return parts


class MemberChecker:
    """The member check, fed every member in archive order.

    It keeps a model of the tree built so far (path -> kind), so it can tell whether a
    member goes through a symbolic link or a file, whether a hard link points to an
    earlier regular file and whether a path changes kind.  The staging directory is
    fresh, so the model is exactly what is on disk.
    """

    def __init__(self) -> None:
        self._kinds: dict[str, str] = {}  # normalized path -> kind (hard links as FILE)
        self._hardlinked: set[str] = set()  # paths that share an inode with another member
        self.explicit_dirs: set[str] = set()  # directories the archive names itself

    def check(self, member: tarfile.TarInfo) -> list[str] | None:
        """Return the member's path components, or None for the archive root (skip it).

        Raise UnsafeArchiveError if the member must not be restored.
        """
        name = member.name
        parts = path_parts(name, name, "its name")
        kind = KINDS.get(member.type)
        if kind is None:
            raise unsafe(name, f"it is a member of unknown type {member.type!r}")
        if not parts:
            if kind == DIR:
                return None
            raise unsafe(name, f"a {kind} cannot be the restore directory itself")
        path = "/".join(parts)
        # Every path in the model has all its ancestors in it, as directories (they are
        # added with it, and no path ever changes kind): when the parent is there, it is
        # the only one to look at.
        parent = path.rpartition("/")[0]
        parent_kind = self._kinds.get(parent) if parent else DIR
        if parent_kind is None:
            for depth in range(1, len(parts)):
                parent_kind = self._kinds.get("/".join(parts[:depth]), DIR)
                if parent_kind != DIR:
                    raise unsafe(name, f"its parent {'/'.join(parts[:depth])!r} is a {parent_kind} in this archive")
        elif parent_kind != DIR:
            raise unsafe(name, f"its parent {parent!r} is a {parent_kind} in this archive")
        model_kind = FILE if kind == HARDLINK else kind
        previous = self._kinds.get(path)
        if previous is not None:
            if previous != model_kind:
                raise unsafe(name, f"it was already restored as a {previous} and would be replaced by a {kind}")
            if model_kind == FILE and (kind == HARDLINK or path in self._hardlinked):
                raise unsafe(name, "it appears twice and is part of a hard-linked group")
        link_target = None
        if kind == SYMLINK:
            if not member.linkname:
                raise unsafe(name, "it is a symbolic link with an empty target")
            if "\0" in member.linkname:
                raise unsafe(name, "its link target contains a NUL byte")
        elif kind == HARDLINK:
            link_target = self._check_hardlink(member)
        elif member.sparse is not None:
            self._check_sparse(member)
        if parent and parent not in self._kinds:
            for depth in range(1, len(parts)):
                self._kinds.setdefault("/".join(parts[:depth]), DIR)
        self._kinds[path] = model_kind
        if kind == DIR:
            self.explicit_dirs.add(path)
        elif link_target is not None:
            self._hardlinked.update((path, link_target))
        return parts

    def _check_hardlink(self, member: tarfile.TarInfo) -> str:
        link = member.linkname
        if link.startswith("/"):
            raise unsafe(member.name, f"it is a hard link to the absolute path {link!r}")
        target = "/".join(path_parts(member.name, link, "its hard-link target"))
        target_kind = self._kinds.get(target)
        if target_kind is None:
            raise unsafe(member.name, f"it is a hard link to {link!r}, which is not an earlier member of the archive")
        if target_kind != FILE:
            raise unsafe(member.name, f"it is a hard link to {link!r}, which is a {target_kind}, not a regular file")
        return target

    @staticmethod
    def _check_sparse(member: tarfile.TarInfo) -> None:
        end = 0
        for offset, length in member.sparse:
            if offset < end or length < 0:
                raise unsafe(member.name, "its sparse map has overlapping or unordered segments")
            end = offset + length
        if end > member.size:
            raise unsafe(member.name, f"its sparse map reaches byte {end}, past its size of {member.size}")

    @staticmethod
    def check_stored(member: tarfile.TarInfo, stored: int) -> None:
        """Raise UnsafeArchiveError if a sparse member's segments hold more data than the
        ``stored`` bytes the archive has for it (rule 8)."""
        if member.sparse is not None and sum(length for _, length in member.sparse) > stored:
            raise unsafe(member.name, "its sparse map lists more data than the member holds")

    def members(self, tar: Any) -> Iterator[tuple[tarfile.TarInfo, list[str]]]:
        """Yield ``(member, path components)`` for the members of ``tar`` (a TarFile or
        a :class:`bakthat.tarreader.TarReader`) to restore, each checked first."""
        for member in tar:
            # tarfile keeps every header it reads in ``tar.members``; nothing here needs
            # them again, and keeping them would make memory grow with the number of
            # files.  TarFile's iterator reads the next header whenever its index is
            # past the list, so clearing it is safe.
            tar.members.clear()
            parts = self.check(member)
            if parts is not None:
                self.check_stored(member, tar.offset - member.offset_data)
                yield member, parts
