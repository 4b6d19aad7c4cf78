"""Decide, entry by entry as the walker meets them, what a backup's archive must hold.

A :class:`ChangeSet` is fed every entry of the tree (``see``), in whatever order the
walker yields them, and answers at once whether the entry goes into the archive.  For
a full backup the answer is always yes.  For a differential or incremental it compares
with the state of the base (:func:`bakthat.index_records.changed`) and says yes only
for new and changed entries, so the archive is written in the same single pass.  A
directory the answer is no for is still walked: only its header is left out.  At the
end:

* :meth:`ChangeSet.tail` lists what must be **appended** to the archive after the walk:
  the header of every unchanged directory that is the parent of a stored file (or
  link, or device) or of a deleted entry (extracting a file into a directory, or
  deleting from it, changes the directory's mtime, so the archive must set it again;
  tar applies directory attributes after the contents anyway), and the unchanged
  members of a hard-link group some of whose members were stored (so the group is
  linked again on restore: tar writes them as hard links to the member already in this
  archive);
* :meth:`ChangeSet.finish` returns the **delta** index (what this archive holds, and
  the deleted paths) for the store, and the **state** index (the tree as of this
  backup, each entry with the backup that holds its data) for the local cache.

Deleted paths are the paths of the base's state that the walk did not meet, plus the
paths whose type changed (a directory replaced by a file and the reverse: delete, then
add); a rename is a deletion and an addition.  Only the topmost path of each deleted
subtree is recorded, so deleting them in order with ``rm -rf`` is exact.

Restoring a chain is then: for each backup from the full on, delete its recorded paths,
then extract its archive over the tree.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator

from bakthat.index import Index
from bakthat.index_records import (
    COMPARED_FROM,
    DIRECTORY,
    FLAG_UNSTABLE,
    FLAGS_AT,
    FS_ENCODING,
    FS_ERRORS,
    ancestors_of,
    changed,
    key_of,
    parent_of,
    record_from_stat,
    record_type,
    with_digest,
    with_flags,
    with_holder,
)


class ChangeSet:
    """The planner of one backup: which entries its archive stores, and what it deletes.

    Given ``previous``, the state index of the base (None for a full backup; it is
    consumed: its records are moved out as the walk meets them), and the new backup's
    stored filename, level, base and root (the backup name, the top-level archive
    path).  Feed every entry the walker meets to :meth:`see`; call :meth:`forget` for
    an entry that could not be stored after all, :meth:`mark_unstable` for one that
    changed while it was read, :meth:`set_digest` once a stored file's SHA-256 is known;
    then write what :meth:`tail` lists and call :meth:`finish`.
    """

    def __init__(
        self,
        previous: Index | None,
        *,
        backup: str,
        level: str,
        base: str | None,
        root: str,
    ) -> None:
        if (previous is None) != (level == "full"):
            raise ValueError("a full backup has no previous state; a differential or incremental needs one")
        if previous is not None:
            if previous.kind != "state":
                raise ValueError("the previous index must be a state")
            if previous.backup != base:
                raise ValueError(f"the previous state is at {previous.backup}, not at the base {base}")
            if previous.root != root:
                raise ValueError(f"the previous state's root is {previous.root!r}, not {root!r}")
        holders = [*previous.holders, backup] if previous is not None else [backup]
        self.delta = Index("delta", backup=backup, level=level, base=base, root=root)
        self.state = Index("state", backup=backup, level=level, base=base, root=root, holders=holders)
        if previous is not None:
            self.state.users.update(previous.users)
            self.state.groups.update(previous.groups)
        self._previous = previous
        self._previous_records = previous.records() if previous is not None else {}
        self._state_records = self.state.records()
        self._users, self._groups_named = self.state.users, self.state.groups
        self._holder = len(holders) - 1
        self._base_deleted: list[bytes] = []  # keys of the base met with another type, or forgotten
        self._stored_over_base: set[bytes] = set()  # stored keys the base had too
        self._groups: dict[tuple[int, int], list[bytes]] = {}  # (dev, ino) -> keys, for nlink > 1 files
        self._tail_done = False
        self._finished = False

    def see(
        self,
        path: str | bytes,
        st: os.stat_result,
        link: str | bytes | None = None,
        *,
        sha256: bytes = b"",
        user: str | None = None,
        group: str | None = None,
    ) -> bool:
        """Given an entry the walker met (its archive path, ``lstat`` result, the link
        target of a symbolic link, the owner's names and, when content hashing is on, its
        SHA-256), record it and return True if the archive must store it.

        Return True for every entry of a full backup, and for new or changed entries
        otherwise.  Raise ValueError if the path was already seen.
        """
        if self._tail_done:
            raise RuntimeError("see() after tail()")
        # The walker calls this once per entry: the dicts are used directly, and an
        # unchanged entry (one bytes comparison) takes the shortest path.
        key = path.encode(FS_ENCODING, FS_ERRORS) if type(path) is str else path
        record = record_from_stat(st, link, digest=sha256, holder=self._holder)
        states = self._state_records
        if key in states:
            raise ValueError(f"{os.fsdecode(key)!r} is already in the index")
        old = None if self._previous is None else self._previous_records.pop(key, None)
        if old is None:
            store = True
        elif (old[COMPARED_FROM:] == record[COMPARED_FROM:] and not old[FLAGS_AT] & FLAG_UNSTABLE) or not changed(old, record):
            # Unchanged: keep the old record (its holder, and its digest if this run
            # computes none), with this run's device and link count.
            store = False
            if sha256:
                old = with_digest(old, sha256)
            record = old if old[:12] == record[:12] else record[:12] + old[12:]
        else:
            store = True
            self._stored_over_base.add(key)
            if record[COMPARED_FROM] != old[COMPARED_FROM]:
                self._base_deleted.append(key)  # its type changed: delete, then add
        states[key] = record
        if store:
            self.delta.put(key, record)
        if user is not None or group is not None:
            uid, gid = st.st_uid, st.st_gid
            if (user is not None and uid not in self._users) or (group is not None and gid not in self._groups_named):
                self.state.name_owner(uid, user, gid, group)
            if store:
                self.delta.name_owner(uid, user, gid, group)
        if st.st_nlink > 1 and stat.S_ISREG(st.st_mode):
            self._groups.setdefault((st.st_dev, st.st_ino), []).append(key)
        return store

    def forget(self, path: str | bytes) -> None:
        """Given a path :meth:`see` met, drop it: it could not be stored (it vanished or
        could not be read).  It is then absent from this backup's state, so a restore of
        this backup does not have it (and deletes it if the base had it)."""
        key = key_of(path)
        record = self.state.pop(key)
        if record is None:
            raise KeyError(path)
        stored = self.delta.pop(key) is not None
        if self._previous is not None and (not stored or key in self._stored_over_base):
            self._base_deleted.append(key)  # see() moved the base's record out: delete it
        if record_type(record) == DIRECTORY:
            # Entries below it that the walker already met are gone from this backup too.
            prefix = key + b"/"
            for other in [other for other in self.state if other.startswith(prefix)]:
                self.state.pop(other)
                self.delta.pop(other)

    def mark_unstable(self, path: str | bytes) -> None:
        """Mark a stored entry as having changed while it was read: the next backup
        stores it again whatever it looks like then."""
        self._update(path, lambda record: with_flags(record, record[17] | FLAG_UNSTABLE))

    def set_digest(self, path: str | bytes, sha256: bytes) -> None:
        """Record the SHA-256 (raw 32 bytes) of a stored file's content."""
        self._update(path, lambda record: with_digest(record, sha256))

    def _update(self, path: str | bytes, change: Callable[[bytes], bytes]) -> None:
        key = key_of(path)
        record = self.state.record(key)
        if record is None:
            raise KeyError(path)
        record = change(record)
        self.state.put(key, record)
        if key in self.delta:
            self.delta.put(key, record)

    def tail(self) -> list[str]:
        """Return the archive paths to append to the archive after the walk, and count
        them as stored: unchanged parent directories of stored and deleted entries (a
        header each), then unchanged members of partly stored hard-link groups.

        Call it once, after the last :meth:`see`.  A full backup's tail is empty.
        """
        if self._tail_done:
            raise RuntimeError("tail() was already called")
        self._tail_done = True
        if self._previous is None:
            return []
        state, delta = self.state, self.delta
        directories: set[bytes] = set()
        # A stored directory that exists already is merged, its parent left alone; a
        # stored file, link or device is renamed into its parent, and a deletion
        # removes from it: both change the parent's mtime.
        touched = [key for key, record in delta.items() if record_type(record) != DIRECTORY]
        for key in [*touched, *self._deleted_keys()]:
            parent = parent_of(key)
            if parent is not None and parent not in delta:
                record = state.record(parent)
                if record is not None and record_type(record) == DIRECTORY:
                    directories.add(parent)
        linked: list[bytes] = []
        for keys in self._groups.values():
            present = [key for key in keys if key in state]
            if any(key in delta for key in present):
                linked += [key for key in present if key not in delta]
        tail = sorted(directories) + linked
        for key in tail:
            record = with_holder(state.record(key), self._holder)  # type: ignore[arg-type]
            state.put(key, record)
            delta.put(key, record)
            self._stored_over_base.add(key)
        return [os.fsdecode(key) for key in tail]

    def _deleted_keys(self) -> Iterator[bytes]:
        """Yield the keys of the base that this backup does not hold as they were: met
        with another type, forgotten, or never met."""
        yield from self._base_deleted
        if self._previous is not None:
            yield from self._previous

    def finish(self) -> tuple[Index, Index]:
        """Return ``(delta, state)``: the index to store beside the archive (its entries
        and its sorted deletions) and the state at this backup (for the local cache).

        Call :meth:`tail` first and write what it lists; finish() calls it if it was not
        called (its paths are then recorded as stored: only do that when no archive is
        being written, as in a dry run).
        """
        if self._finished:
            raise RuntimeError("finish() was already called")
        if not self._tail_done:
            self.tail()
        self._finished = True
        candidates = set(self._deleted_keys())
        self.delta.deletions = sorted(
            key for key in candidates if not any(ancestor in candidates for ancestor in ancestors_of(key))
        )
        self._previous = None
        return self.delta, self.state
