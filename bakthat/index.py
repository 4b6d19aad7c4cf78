"""The file index of a backup: one record per entry of the backed-up tree.

An :class:`Index` maps each entry's **archive path** (its tar member name, such as
``www/sub/file.txt``: the backup name, then the path below the source) to the record of
what the entry looked like when it was backed up (:mod:`bakthat.index_records`: type,
size, mtime and ctime in nanoseconds, inode, device, link count, mode, owner, device
number, symbolic-link target, optionally the SHA-256 of its content).

There are two kinds of index, with the same records:

* a **delta** index describes one backup: the entries its archive holds and, for a
  differential or incremental, the archive paths it records as deleted (relative to
  the state of its base).  A full backup's delta holds every entry.
* a **state** index is the whole tree as of one backup: every entry, each with the
  *holder*, the backup of the chain whose archive holds its data (an index into
  :attr:`Index.holders`).  It is what the next backup compares against, what ``files``
  lists and what a restore of a chain follows.  :meth:`Index.apply` turns the state of
  a base plus a delta into the state of the delta's backup.

This module never touches the filesystem.  The serialised form is in
:mod:`bakthat.index_file`, the planner that decides what a differential or
incremental stores in :mod:`bakthat.changes`, chains in :mod:`bakthat.levels` and
:mod:`bakthat.chain_state`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from bakthat.index_records import (
    DIRECTORY,
    FLAG_UNSTABLE,
    KINDS,
    LEVEL_NAMES,
    LEVELS,
    SYMLINK,
    TYPE_NAMES,
    BadIndexError,
    key_of,
    parent_of,
    record_from_stat,
    record_type,
    unpack,
    with_holder,
)


@dataclass(frozen=True)
class Entry:
    """One entry of an index, readable: what ``files --json`` and a restore plan show.

    ``path`` and ``link`` are ``str`` with surrogateescape for bytes that are not UTF-8;
    ``sha256`` is hex or None; ``holder`` the stored filename of the backup whose
    archive holds the entry (None in a delta index, where it is the index's own backup).
    """

    path: str
    type: str
    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    dev: int
    nlink: int
    mode: int
    uid: int
    gid: int
    rdev: int
    link: str | None
    sha256: str | None
    unstable: bool
    user: str | None = None
    group: str | None = None
    holder: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the entry as JSON-serialisable data (paths as surrogateescape text)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


class Index:
    """The records of one backup's tree (a ``delta``) or of the state at a backup.

    ``backup`` is the stored filename of the backup it belongs to, ``level`` its level
    (``full``, ``diff``, ``incr``), ``base`` the stored filename of its base (None for
    a full), ``root`` the top-level archive path every entry is under (the backup
    name).  ``holders`` lists the backups records point to: in a delta it is
    ``[backup]``; in a state, the chain from the full to ``backup``.  ``deletions``
    (delta only) are the keys of the paths this backup records as deleted: the topmost
    path of each deleted subtree, sorted.  ``users`` and ``groups`` map ids to the names
    they had at backup time.

    Paths are keys (bytes); iteration order is insertion order.  ``records``, if given,
    is the key -> record dict to use (taken as is, not copied: for readers of a
    serialised index); :meth:`records` returns it.
    """

    __slots__ = ("kind", "backup", "level", "base", "root", "holders", "deletions", "users", "groups", "_records")

    def __init__(
        self,
        kind: str = "delta",
        *,
        backup: str = "",
        level: str = "full",
        base: str | None = None,
        root: str = "",
        holders: Iterable[str] | None = None,
        records: dict[bytes, bytes] | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"an index is a delta or a state, not {kind!r}")
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r} (full, diff or incr)")
        self.kind = kind
        self.backup = backup
        self.level = level
        self.base = base
        self.root = root
        self.holders: list[str] = list(holders) if holders is not None else [backup]
        self.deletions: list[bytes] = []
        self.users: dict[int, str] = {}
        self.groups: dict[int, str] = {}
        self._records: dict[bytes, bytes] = {} if records is None else records

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, (str, bytes)) and key_of(path) in self._records

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._records)

    def __repr__(self) -> str:
        return f"<Index {self.kind} of {self.backup or '?'} ({self.level}): {len(self)} entries>"

    def add(
        self,
        path: str | bytes,
        st: os.stat_result,
        link: str | bytes | None = None,
        *,
        sha256: bytes = b"",
        user: str | None = None,
        group: str | None = None,
        unstable: bool = False,
        holder: int = 0,
    ) -> bytes:
        """Given an archive path, its ``lstat`` result, the link target of a symbolic
        link and optionally the owner's names and the content's SHA-256 (raw bytes),
        add the entry and return its record.

        Raise ValueError if the path is already in the index or a field is out of range.
        """
        record = record_from_stat(st, link, digest=sha256, unstable=unstable, holder=holder)
        self.put(key_of(path), record, new=True)
        self.name_owner(st.st_uid, user, st.st_gid, group)
        return record

    def name_owner(self, uid: int, user: str | None, gid: int, group: str | None) -> None:
        """Remember the names of ``uid`` and ``gid`` (a None name is left out)."""
        if user is not None and uid not in self.users:
            self.users[uid] = user
        if group is not None and gid not in self.groups:
            self.groups[gid] = group

    def setdefault(self, key: bytes, record: bytes) -> bytes:
        """Set the record of ``key`` unless it has one; return the record it has."""
        return self._records.setdefault(key, record)

    def put(self, key: bytes, record: bytes, *, new: bool = False) -> None:
        """Set the record of ``key``; with ``new``, raise ValueError if it is already set."""
        if not new:
            self._records[key] = record
        elif self._records.setdefault(key, record) is not record:
            raise ValueError(f"{os.fsdecode(key)!r} is already in the index")

    def record(self, path: str | bytes) -> bytes | None:
        """Return the record of a path, or None if the index does not hold it."""
        return self._records.get(key_of(path))

    def pop(self, key: bytes) -> bytes | None:
        """Remove a key and return its record (None if absent)."""
        return self._records.pop(key, None)

    def records(self) -> dict[bytes, bytes]:
        """Return the key -> record dict itself (not a copy: for serialisers)."""
        return self._records

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Yield ``(key, record)`` in insertion order."""
        return iter(self._records.items())

    def entry(self, path: str | bytes) -> Entry | None:
        """Return the readable :class:`Entry` of a path, or None."""
        key = key_of(path)
        record = self._records.get(key)
        return None if record is None else self.entry_of(key, record)

    def entry_of(self, key: bytes, record: bytes) -> Entry:
        """Return the readable :class:`Entry` of a key and its record."""
        (kind, size, mtime_ns, ctime_ns, ino, dev, nlink, mode, uid, gid, rdev, link, digest,
         flags, holder) = unpack(record)
        return Entry(
            path=os.fsdecode(key),
            type=kind,
            size=size,
            mtime_ns=mtime_ns,
            ctime_ns=ctime_ns,
            ino=ino,
            dev=dev,
            nlink=nlink,
            mode=mode,
            uid=uid,
            gid=gid,
            rdev=rdev,
            link=os.fsdecode(link) if kind == SYMLINK else None,
            sha256=digest.hex() if digest else None,
            unstable=bool(flags & FLAG_UNSTABLE),
            user=self.users.get(uid),
            group=self.groups.get(gid),
            holder=self.holders[holder] if self.kind == "state" and holder < len(self.holders) else None,
        )

    def entries(self, *, sort: bool = True) -> Iterator[Entry]:
        """Yield every entry, sorted by path (bytes order) unless ``sort`` is false."""
        keys = sorted(self._records) if sort else list(self._records)
        for key in keys:
            yield self.entry_of(key, self._records[key])

    def remove_tree(self, key: bytes) -> int:
        """Remove ``key`` and, if it is a directory, everything below it; return the count."""
        record = self._records.pop(key, None)
        if record is None:
            return 0
        if record_type(record) != DIRECTORY:
            return 1
        prefix = key + b"/"
        below = [other for other in self._records if other.startswith(prefix)]
        for other in below:
            del self._records[other]
        return 1 + len(below)

    def apply(self, delta: Index) -> None:
        """Given the delta of the next backup of this state's chain, make this index the
        state at that backup.

        The delta's deletions are applied first (each removes a whole subtree), then its
        entries are set with the new backup as holder (appended to :attr:`holders`).
        Raise BadIndexError if this is not a state, if the delta's base is not this
        state's backup, if its root differs, or if it deletes a path that is not there.
        """
        if self.kind != "state" or delta.kind != "delta":
            raise ValueError("apply() takes a delta and applies it to a state")
        where = f"index of {delta.backup}"
        if delta.level == "full":
            raise BadIndexError(f"{where}: a full backup does not apply on top of {self.backup}")
        if delta.base != self.backup:
            raise BadIndexError(f"{where}: its base is {delta.base}, not {self.backup}")
        if delta.root != self.root:
            raise BadIndexError(f"{where}: its root is {delta.root!r}, the chain's is {self.root!r}")
        directories = []
        for key in delta.deletions:
            record = self._records.pop(key, None)
            if record is None:
                raise BadIndexError(
                    f"{where}: it deletes {os.fsdecode(key)!r}, which the state at {self.backup} does not hold"
                )
            if record_type(record) == DIRECTORY:
                directories.append(key + b"/")
        if directories:
            prefixes = tuple(directories)
            for other in [other for other in self._records if other.startswith(prefixes)]:
                del self._records[other]
        holder = len(self.holders)
        self.holders.append(delta.backup)
        for key, record in delta.items():
            self._records[key] = with_holder(record, holder)
        self.users.update(delta.users)
        self.groups.update(delta.groups)
        self.backup, self.level, self.base = delta.backup, delta.level, delta.base

    def check_tree(self) -> None:
        """Check that every path is under :attr:`root` and every parent is a directory.

        Raise BadIndexError naming the first path that breaks it.  For a state, or the
        delta of a full backup.
        """
        root = key_of(self.root)
        for key in self._records:
            parent = parent_of(key)
            if parent is None:
                if key != root:
                    raise BadIndexError(
                        f"index of {self.backup}: {os.fsdecode(key)!r} is not under {self.root!r}"
                    )
                continue
            parent_record = self._records.get(parent)
            if parent_record is None or record_type(parent_record) != DIRECTORY:
                what = "missing" if parent_record is None else f"a {TYPE_NAMES[record_type(parent_record)]}"
                raise BadIndexError(
                    f"index of {self.backup}: the parent of {os.fsdecode(key)!r} is {what}, not a directory"
                )

    def copy(self) -> Index:
        """Return an independent copy (records are immutable bytes and are shared)."""
        other = Index(self.kind, backup=self.backup, level=self.level, base=self.base, root=self.root,
                      holders=self.holders, records=dict(self._records))
        other.deletions = list(self.deletions)
        other.users.update(self.users)
        other.groups.update(self.groups)
        return other

    @classmethod
    def state_of_full(cls, delta: Index) -> Index:
        """Given the delta index of a full backup, return the state at that backup."""
        if delta.level != "full" or delta.kind != "delta":
            raise BadIndexError(
                f"index of {delta.backup}: a chain starts with a full backup, and this one is "
                f"{LEVEL_NAMES.get(delta.level, delta.level)}"
            )
        state = cls("state", backup=delta.backup, level="full", root=delta.root, holders=[delta.backup])
        for key, record in delta.items():
            state._records[key] = with_holder(record, 0)
        state.users.update(delta.users)
        state.groups.update(delta.groups)
        return state
