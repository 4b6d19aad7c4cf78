"""Run the CPU-heavy ends of a pipeline in a thread of their own.

Hashing, decryption and (de)compression release the GIL on large buffers, so on a
machine with more than one core they can run while the main thread walks a tree or
parses tar headers.  Two wrappers do that, each with a bounded queue (memory stays at
``depth`` chunks, whatever the data size):

* :class:`ReadAhead` reads a stream (a restore's store -> hash -> decrypt ->
  decompress chain) ahead of its consumer.
* :class:`WriteBehind` writes into a sink (a backup's hash -> store chain) behind its
  producer.

Errors are never lost or reordered: an exception in the thread is raised in the
caller at the point of the stream where it happened (ReadAhead), or by the next
``write``/``close`` (WriteBehind).  Neither touches the wrapped object from the
calling thread while its own thread runs.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

__all__ = ["ReadAhead", "WriteBehind"]

CHUNK = 1 << 20
DEPTH = 4
_POLL = 0.1


class _Failure:
    """An exception raised in the worker thread, carried through the queue."""

    def __init__(self, error: BaseException):
        self.error = error


class ReadAhead:
    """Given a readable stream, read it in a thread up to ``depth`` chunks of ``chunk``
    bytes ahead, and hand out what was read in order.

    :meth:`read` returns at most ``n`` bytes (fewer when a chunk ends) and ``b""`` only
    at the end of the stream.  An exception the stream raised is raised by the read
    that reaches its position, and again by every later read.  Once the end or an
    exception has been returned, the thread has finished and the wrapped stream (and
    what it wraps) may be used from the calling thread again.  :meth:`close` stops the
    thread early; it does not close the wrapped stream.
    """

    def __init__(self, source: Any, chunk: int = CHUNK, depth: int = DEPTH):
        self._source = source
        self._chunk_size = chunk
        self._queue: queue.Queue[bytes | _Failure] = queue.Queue(depth)
        self._stop = threading.Event()
        self._current = b""
        self._pos = 0
        self._end: bytes | _Failure | None = None  # b"" at the end, or the failure
        self._thread = threading.Thread(target=self._run, name="bakthat-read-ahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                data = self._source.read(self._chunk_size)
                self._put(bytes(data) if not isinstance(data, bytes) else data)
                if not data:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
            self._put(_Failure(exc))

    def _put(self, item: bytes | _Failure) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def _next(self) -> bool:
        """Make the next chunk current; return False at the end (or raise its failure)."""
        if self._end is None:
            item = self._queue.get()
            if isinstance(item, _Failure) or not item:
                self._end = item
                self._thread.join()
            else:
                self._current, self._pos = item, 0
                return True
        if isinstance(self._end, _Failure):
            raise self._end.error
        return False

    def read(self, n: int = -1) -> bytes:
        """Return up to ``n`` bytes (all the rest if ``n`` is negative); b"" at the end."""
        if n is None or n < 0:
            parts = []
            while True:
                part = self.read(self._chunk_size)
                if not part:
                    return b"".join(parts)
                parts.append(part)
        if self._pos >= len(self._current) and not self._next():
            return b""
        start = self._pos
        if start == 0 and n >= len(self._current):
            self._pos = len(self._current)
            return self._current
        self._pos = min(len(self._current), start + n)
        return self._current[start : self._pos]

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        """Stop the thread (after its current read) and wait for it.  Idempotent."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=_POLL)
            except queue.Empty:
                pass
        self._current, self._pos = b"", 0


class WriteBehind:
    """Given a sink, write into it from a thread, up to ``depth`` writes behind the
    caller.

    :meth:`write` queues the data (bytes-like objects are copied unless they are
    ``bytes``, so the caller may reuse its buffer) and raises the exception of an
    earlier write that failed in the thread.  :meth:`close` waits for every write to
    be done and raises such an exception; it does not close the sink.  After
    :meth:`close` the sink may be used from the calling thread again.  :meth:`abandon`
    stops the thread without waiting for queued writes.
    """

    def __init__(self, sink: Any, depth: int = DEPTH):
        self._sink = sink
        self._queue: queue.Queue[bytes | None] = queue.Queue(depth)
        self._error: BaseException | None = None
        self._closed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bakthat-write-behind", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=_POLL)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            if item is None or self._stop.is_set():
                return
            if self._error is not None:
                continue  # keep emptying the queue so the writer never blocks
            try:
                self._sink.write(item)
            except BaseException as exc:  # noqa: BLE001 - handed to the writing thread
                self._error = exc

    def _put(self, item: bytes | None) -> None:
        while True:
            try:
                self._queue.put(item, timeout=_POLL)
                return
            except queue.Full:
                if not self._thread.is_alive():
                    raise RuntimeError("the write-behind thread has stopped") from self._error

    def write(self, data: Any) -> int:
        """Queue ``data`` for the sink; return its length."""
        if self._error is not None:
            raise self._error
        if self._closed:
            raise ValueError("write to a closed WriteBehind")
        if not isinstance(data, bytes):
            data = bytes(data)
        if data:
            self._put(data)
        return len(data)

    def flush(self) -> None:
        """Nothing to do: :meth:`close` waits for the writes."""

    def close(self) -> None:
        """Wait until every queued write is done; raise the first write error, if any."""
        if not self._closed:
            self._closed = True
            self._put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error

    def abandon(self) -> None:
        """Stop the thread, dropping queued writes (after a failure elsewhere)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=_POLL)
            except queue.Empty:
                pass
            self._thread.join(_POLL)
