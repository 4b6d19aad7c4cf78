"""Uploads to Swift: one PUT, or a Static Large Object streamed in checked segments;
and the segment groups an upload killed midway leaves behind.

The contract is the one :mod:`bakthat.backends.swift` states (this module is its upload
half, kept apart for size): segments of ``swift_segment_size`` go to the segments
container as ``<key>/<upload id>/<n>``, each PUT with its MD5 for Swift to check, by
``swift_concurrency`` worker threads; the manifest (nested past the cluster's
``max_manifest_segments``) is PUT last with ``If-None-Match: *`` and the SHA-256, so the
object appears only complete; an aborted upload deletes what it stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bakthat.backends import base
from bakthat.backends._progress import Progress
from bakthat.backends._swift_http import SHA256_HEADER, Cancelled, listing_time, status_of, translate_error
from bakthat.errors import IntegrityError, StorageError

if TYPE_CHECKING:
    from bakthat.backends.swift import Backend

log = logging.getLogger("bakthat.backends")


class SwiftUpload(base.Upload):
    """A streaming upload: one PUT below a segment, else a Static Large Object (see module)."""

    def __init__(self, backend: Backend, key: str, metadata: dict[str, str] | None, progress: Callable[[int], None] | None):
        self.backend = backend
        self.key = key
        self.upload_id = f"{int(time.time())}-{secrets.token_hex(4)}"
        self.headers = backend.object_headers(metadata)
        self.progress = Progress("Upload", None, progress or backend.progress)
        self._chunks: list[bytes] = []  # the segment filling up
        self._filled = 0
        #: Shared with the caller's HashingWriter (base.Upload.running_sha256): hashed once.
        self.running_sha256 = hashlib.sha256()
        self.size = 0
        self._segments: dict[int, dict[str, Any]] = {}
        self._stored: list[str] = []  # names in the segments container, for abort
        self._count = 0
        self._futures: list[Future[None]] = []
        self._executor: ThreadPoolExecutor | None = None
        self._slots = threading.BoundedSemaphore(backend.concurrency)
        self._cancel = threading.Event()
        self._failure: BaseException | None = None
        self._lock = threading.Lock()
        self._state = "open"

    # -- writing -------------------------------------------------------------------
    def _check(self) -> None:
        if self._failure is not None:
            failure = self._failure
            if not isinstance(failure, Exception):
                raise failure
            raise translate_error(failure, "uploading a segment of", self.backend.describe(self.key))
        if self._state != "open":
            raise StorageError(f"upload of {self.key} is {self._state}; it cannot take more data")

    def write(self, data: bytes) -> int:
        """Take ``data``; hand each full segment to a worker (waiting for a free slot).

        A segment is joined into one ``bytes`` once full and given to its worker as it
        is, so at most ``swift_concurrency`` segments are in flight plus the one filling.
        """
        self._check()
        self.running_sha256.update(data)
        self.size += len(data)
        view = memoryview(data).cast("B")
        size = self.backend.segment_size
        while view:
            need = size - self._filled
            piece = bytes(view[:need])
            view = view[need:]
            self._chunks.append(piece)
            self._filled += len(piece)
            if self._filled >= size:
                self._submit(self._take())
        return len(data)

    def _take(self) -> bytes:
        """Return the bytes of the segment filling up, and start a new one."""
        segment = b"".join(self._chunks)
        self._chunks, self._filled = [], 0
        return segment

    def _segment_name(self, index: int) -> str:
        return f"{self.key}/{self.upload_id}/{index:08d}"

    def _submit(self, segment: bytes) -> None:
        if self._executor is None:
            self.backend.ensure_containers()
            self._executor = ThreadPoolExecutor(self.backend.concurrency, thread_name_prefix="bakthat-swift-segment")
        self._count += 1
        index = self._count
        while not self._slots.acquire(timeout=0.5):
            self._check()
        if self._failure is not None:
            self._slots.release()
            self._check()
        # In a box the worker empties: the executor's work item would keep the bytes
        # alive after the PUT, while the next segment already fills the freed slot.
        future = self._executor.submit(self._put_segment, index, [segment])
        future.add_done_callback(self._segment_done)
        self._futures.append(future)

    def _segment_done(self, future: Future[None]) -> None:
        self._slots.release()
        exc = None if future.cancelled() else future.exception()
        if exc is not None and not isinstance(exc, Cancelled):
            with self._lock:
                if self._failure is None:
                    self._failure = exc
            self._cancel.set()

    def _put_segment(self, index: int, box: list[bytes]) -> None:
        segment = box.pop()
        name = self._segment_name(index)
        etag = self._put_checked(self.backend.segment_container, name, segment)
        with self._lock:
            self._segments[index] = {"path": f"/{self.backend.segment_container}/{name}", "etag": etag, "size_bytes": len(segment)}
        self.progress.update(len(segment))

    def _put_checked(self, container: str, name: str, body: bytes, query: str | None = None, headers: dict[str, str] | None = None) -> str:
        """PUT ``body`` with its MD5 for Swift to verify; record it for abort; return the ETag."""
        md5 = hashlib.md5(body).hexdigest()  # noqa: S324 - Swift's integrity check, not security

        def send(connection: Any) -> str:
            if self._cancel.is_set():
                raise Cancelled()
            with self._lock:
                if name not in self._stored:
                    self._stored.append(name)
            try:
                return connection.put_object(
                    container, name, body, content_length=len(body), etag=None if query else md5,
                    query_string=query, headers=headers,
                )
            finally:
                forget_last_request(connection)

        etag = self.backend.call(f"storing segment {name}", send, stop=self._cancel.is_set)
        if not query and str(etag).strip('"') != md5:
            raise IntegrityError(f"{self.backend.describe(self.key)}: Swift stored segment {name} with another MD5")
        return str(etag).strip('"')

    # -- finishing -------------------------------------------------------------------
    def commit(self) -> base.ObjectInfo:
        """Store the object (one PUT, or the SLO manifest after the last segment), then check it."""
        self._check()
        digest = self.running_sha256.hexdigest()
        headers = {**self.headers, "If-None-Match": "*", SHA256_HEADER: digest}
        if self._executor is None:
            self.backend.ensure_containers()
            body = self._take()
            self._put_object(body, headers, None, digest)
            self.progress.update(len(body))
        else:
            if self._filled:
                self._submit(self._take())
            for future in self._futures:
                try:
                    future.result()
                except BaseException:  # noqa: BLE001 - recorded by _segment_done
                    pass
            self._check()
            entries = [self._segments[index] for index in sorted(self._segments)]
            if len(entries) != self._count:
                raise StorageError(f"{self.key}: {self._count - len(entries)} segments are missing; upload not completed")
            manifest = self._nest(entries)
            self._put_object(json.dumps(manifest).encode(), headers, "multipart-manifest=put", digest)
        self._state = "committed"
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self.progress.finish()
        return self.backend.verify_committed(self.key, self.size, digest)

    def _nest(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Group segment entries under sub-manifests until one manifest can hold them."""
        limit = self.backend.max_segments
        level = 0
        while len(entries) > limit:
            level += 1
            grouped = []
            for start in range(0, len(entries), limit):
                group = entries[start : start + limit]
                name = f"{self.key}/{self.upload_id}/manifest-{level}-{start // limit:06d}"
                etag = self._put_checked(
                    self.backend.segment_container, name, json.dumps(group).encode(), query="multipart-manifest=put"
                )
                grouped.append(
                    {"path": f"/{self.backend.segment_container}/{name}", "etag": etag, "size_bytes": sum(e["size_bytes"] for e in group)}
                )
            entries = grouped
        return entries

    def _put_object(self, body: bytes, headers: dict[str, str], query: str | None, digest: str) -> None:
        backend = self.backend
        md5 = None if query else hashlib.md5(body).hexdigest()  # noqa: S324 - integrity
        attempts = {"n": 0}

        def send(connection: Any) -> str:
            attempts["n"] += 1
            return connection.put_object(
                backend.container_name, self.key, body, content_length=len(body), etag=md5, headers=headers, query_string=query
            )

        try:
            backend.call(f"storing {self.key}", send, translate=False)
        except Exception as exc:
            if status_of(exc) == 412 and attempts["n"] > 1 and backend.holds(self.key, self.size, digest):
                return  # an earlier attempt succeeded; its answer was lost
            raise translate_error(exc, "storing", backend.describe(self.key)) from None

    def abort(self) -> None:
        """Stop the workers and delete every segment already stored.  Idempotent."""
        if self._state in ("aborted", "committed"):
            return
        self._state = "aborted"
        self._cancel.set()
        self._chunks, self._filled = [], 0
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            names = list(self._stored)
        left = self.backend.delete_segments(names)
        if left:
            log.warning(
                "could not delete %d segments of the aborted upload of %s; `bakthat cleanup_uploads -d swift` removes them later",
                len(left), self.key,
            )


def forget_last_request(connection: Any) -> None:
    """Drop the response swiftclient keeps after a request: it holds the request, and so
    the segment just sent, until the thread's next request (memory per worker thread)."""
    http_conn = getattr(connection, "http_conn", None)
    if isinstance(http_conn, tuple) and len(http_conn) == 2 and hasattr(http_conn[1], "resp"):
        http_conn[1].resp = None


# --------------------------------------------------------------------------- stale segments


@dataclass
class StaleUpload:
    """The segments of a large-object upload that no manifest references (a killed backup)."""

    key: str
    upload_id: str
    initiated: float
    segments: list[str]


def stale_uploads(backend: Backend, older_than: float = 0) -> list[StaleUpload]:
    """Return the segment groups no manifest references, last written over ``older_than`` s ago."""
    limit = time.time() - older_than
    groups: dict[tuple[str, str], StaleUpload] = {}
    try:
        _headers, items = backend.call(
            f"listing {backend.segment_container}",
            lambda c: c.get_container(backend.segment_container, full_listing=True),
            translate=False,
        )
    except Exception as exc:
        if status_of(exc) == 404:
            return []
        raise translate_error(exc, "listing", f"swift://{backend.segment_container}") from None
    for item in items:
        parts = item["name"].rsplit("/", 2)
        if len(parts) != 3:
            continue
        key, upload_id, _index = parts
        group = groups.setdefault((key, upload_id), StaleUpload(key, upload_id, 0.0, []))
        group.segments.append(item["name"])
        group.initiated = max(group.initiated, listing_time(item.get("last_modified")) or 0.0)
    stale = [group for group in groups.values() if group.initiated <= limit and not _referenced(backend, group)]
    return sorted(stale, key=lambda group: group.initiated)

def _referenced(backend: Backend, group: StaleUpload) -> bool:
    """Return True if the object ``group.key`` is a large object built from this upload."""
    try:
        _headers, body = backend.call(
            f"reading the manifest of {group.key}",
            lambda c: c.get_object(backend.container_name, group.key, query_string="multipart-manifest=get"),
            translate=False,
        )
    except Exception as exc:
        if status_of(exc) == 404:
            return False
        raise translate_error(exc, "reading the manifest of", backend.describe(group.key)) from None
    try:
        entries = json.loads(body)
    except ValueError:
        return False
    marker = f"/{group.key}/{group.upload_id}/"
    return isinstance(entries, list) and any(marker in str(entry.get("name", "")) for entry in entries if isinstance(entry, dict))
