"""Create a restore's checked members in several writer threads, in archive order per
path, errors reported in archive order.

The restore's main thread parses and checks each member (:mod:`bakthat.extract_members`)
and hands it, with its data, to :class:`BackgroundStaging`, which passes it to one of
a few writer threads.  Each writer runs a :class:`bakthat.extract_disk.StagingTree` of
its own over the same staging root (every directory opened without following links,
exactly as in a single thread), so the kernel's work of creating files (the largest
part of a restore's time) is spread over the cores, as restic does with its parallel
file writers.

Ordering rules, which keep a parallel restore identical to a sequential one:

* A member goes to the writer chosen by its path, so a path listed twice is created
  twice by the same writer, in archive order (the later one wins).
* A hard link goes to the writer of its target: the target (an earlier member, rule 7
  of the member check) exists when the link is made.
* Directories on a member's path are created by whichever writer needs them first
  (creating one that another writer has just made is not an error); directory
  attributes are applied once every writer is done, deepest first.
* Every member carries its archive position.  When a writer fails, members after the
  failing one are no longer created, the writers finish what came before it, and the
  error of the earliest failing member is raised: the same error a single writer
  would have raised.
"""

from __future__ import annotations

import os
import queue
import tarfile
import threading
from typing import Any

from bakthat.extract_disk import StagingTree
from bakthat.extract_members import HARDLINK, KINDS

__all__ = ["BackgroundStaging", "writer_count"]

#: No more writer threads than this, however many cores there are: the kernel's
#: directory locks and the parsing thread bound the gain beyond a few.
MAX_WRITERS = 4
_NEVER = float("inf")


def writer_count() -> int:
    """Return how many writer threads a restore uses: one per core, at most
    :data:`MAX_WRITERS`."""
    return max(1, min(MAX_WRITERS, os.cpu_count() or 1))


class _MissingData(Exception):
    """The reading thread stopped (with an error of its own) in the middle of a member's data."""


class _Feed:
    """The stream a writer's StagingTree reads member data from: the data pieces the
    reading thread queued right after their member."""

    def __init__(self, items: Any):
        self._items = items
        self._view: Any = b""

    def seek(self, offset: int) -> None:
        """Data always follows its member: nothing to do."""

    def read(self, n: int) -> Any:
        if not self._view:
            item = next(self._items, None)
            if item is None:
                raise _MissingData()
            if isinstance(item, tuple):
                raise RuntimeError("restore pipeline out of step: member data missing")
            if len(item) <= n:
                return item
            self._view = memoryview(item)
        data, self._view = self._view[:n], self._view[n:]
        return data


class _Writer:
    """One writer thread, its queue of batches and its StagingTree."""

    def __init__(self, root_fd: int, owner: BackgroundStaging, depth: int):
        self._owner = owner
        self.queue: queue.Queue[list[Any] | None] = queue.Queue(depth)
        self.batch: list[Any] = []
        self.batch_bytes = 0
        self.error: BaseException | None = None
        self.error_at = _NEVER
        self._pending = self._items()
        self.tree = StagingTree(root_fd, _Feed(self._pending))
        self.thread = threading.Thread(target=self._run, name="bakthat-restore-writer", daemon=True)
        self.thread.start()

    def _items(self) -> Any:
        while True:
            batch = self.queue.get()
            if batch is None:
                return
            if self.error is not None or self._owner.abandoned:
                continue  # keep emptying the queue after a failure
            yield from batch

    def _run(self) -> None:
        items = self._pending
        owner = self._owner
        position = -1
        try:
            for item in items:
                if isinstance(item, tuple):
                    position, member, parts = item
                    if position > owner.failed_at:
                        continue  # an earlier member failed: its data pieces are skipped too
                    self.tree.add(member, parts)
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
            self.error, self.error_at = exc, position
            owner.failed(position)
            for _ in items:
                pass


class BackgroundStaging:
    """Create members in writer threads of their own, while the caller reads the stream on.

    The caller hands over each checked member with :meth:`add` and its data with
    :meth:`data` (as many bytes as :meth:`StagingTree.data_length` says, in order);
    the writers create them as a single :class:`StagingTree` would (see the module
    docstring for the order kept).  Work is passed in batches through bounded queues,
    so at most a few MiB of data wait per writer.  :meth:`finish` waits for the
    writers, then applies the directory attributes.

    An error in a writer is raised by the next :meth:`add`, :meth:`data` or
    :meth:`finish`, once the writers have finished every earlier member: the error of
    the earliest failing member.  When the caller fails itself, :meth:`stop` lets the
    writers create what was handed over before the failing member and raises a
    writer's error if there was one (it comes first in the archive), so an archive
    fails with the same error whether or not its members are created in threads.
    """

    BATCH_ITEMS = 256
    BATCH_BYTES = 1 << 20
    DEPTH = 2

    def __init__(self, root_fd: int, writers: int | None = None):
        self.abandoned = False
        self.failed_at = _NEVER
        self._lock = threading.Lock()
        self._position = 0
        self._joined = False
        self._writers = [_Writer(root_fd, self, self.DEPTH) for _ in range(writers or writer_count())]
        self._current = self._writers[0]
        self.tree = self._writers[0].tree

    def failed(self, position: int) -> None:
        """Called by a writer whose member at ``position`` failed."""
        with self._lock:
            self.failed_at = min(self.failed_at, position)

    def _first_error(self) -> BaseException | None:
        failed = [writer for writer in self._writers if writer.error is not None]
        return min(failed, key=lambda writer: writer.error_at).error if failed else None

    def _raise(self) -> None:
        if self.failed_at != _NEVER:
            self._join()  # let every writer finish the members before the failure
            error = self._first_error()
            if error is not None:
                raise error

    def _put(self, writer: _Writer, batch: list[Any] | None) -> None:
        try:
            writer.queue.put_nowait(batch)
            return
        except queue.Full:
            pass
        # This writer is busy (a large file): the others need not wait for full batches.
        for other in self._writers:
            if other is not writer and other.batch:
                try:
                    other.queue.put_nowait(other.batch)
                except queue.Full:
                    continue
                other.batch, other.batch_bytes = [], 0
        while True:
            try:
                writer.queue.put(batch, timeout=0.1)
                return
            except queue.Full:
                # A writer that failed keeps emptying its queue, so this wait ends.
                if not writer.thread.is_alive():
                    raise RuntimeError("the restore writer thread has stopped") from None

    def _flush(self, writer: _Writer) -> None:
        if writer.batch:
            batch, writer.batch, writer.batch_bytes = writer.batch, [], 0
            self._put(writer, batch)

    def _writer_for(self, member: tarfile.TarInfo, parts: list[str]) -> _Writer:
        if len(self._writers) == 1:
            return self._writers[0]
        if KINDS[member.type] == HARDLINK:
            key = "/".join(part for part in member.linkname.split("/") if part not in ("", "."))
        else:
            key = "/".join(parts)
        return self._writers[hash(key) % len(self._writers)]

    def add(self, member: tarfile.TarInfo, parts: list[str]) -> None:
        """Queue a checked member (its path components ``parts``)."""
        self._raise()
        writer = self._current = self._writer_for(member, parts)
        writer.batch.append((self._position, member, parts))
        self._position += 1
        writer.batch_bytes += tarfile.BLOCKSIZE
        if len(writer.batch) >= self.BATCH_ITEMS or writer.batch_bytes >= self.BATCH_BYTES:
            self._flush(writer)

    def data(self, piece: Any) -> None:
        """Queue the next piece of the current member's data."""
        writer = self._current
        writer.batch.append(piece)
        writer.batch_bytes += len(piece)
        if writer.batch_bytes >= self.BATCH_BYTES:
            self._flush(writer)

    def _join(self) -> None:
        if self._joined:
            return
        self._joined = True
        for writer in self._writers:
            self._flush(writer)
        for writer in self._writers:
            self._put(writer, None)
        for writer in self._writers:
            writer.thread.join()

    def finish(self) -> None:
        """Wait until every member is created, then apply directory attributes."""
        self._join()
        error = self._first_error()
        if error is not None:
            raise error
        for writer in self._writers[1:]:
            self.tree.adopt(writer.tree)
        self.tree.finish()

    def stop(self, cause: BaseException) -> None:
        """After the caller failed with ``cause``: let the writers finish what came
        before, and raise the first writer error (else return; the caller re-raises)."""
        if not isinstance(cause, Exception):  # KeyboardInterrupt and the like: quickly
            self.abandoned = True
        try:
            self._join()
        except BaseException:  # noqa: BLE001 - the caller's error is raised instead
            self.abandoned = True
            for writer in self._writers:
                writer.thread.join()
        error = self._first_error()
        if error is not None and error is not cause and not isinstance(error, _MissingData):
            raise error from cause

    def close(self) -> None:
        """Close the directory descriptors (once the writers are done)."""
        alive = [writer for writer in self._writers if writer.thread.is_alive()]
        if alive:
            self.abandoned = True
        for writer in alive:
            while writer.thread.is_alive():
                try:
                    writer.queue.get_nowait()
                except queue.Empty:
                    pass
                try:
                    writer.queue.put_nowait(None)
                except queue.Full:
                    pass
                writer.thread.join(0.1)
        for writer in self._writers:
            writer.tree.close()
