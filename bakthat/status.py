"""Progress you can poll: each running backup, restore or job publishes its state to a file.

A run writes ``<session_id>.json`` in the per-user status directory
(:func:`status_directory`) through a :class:`StatusPublisher`: job, source, name, phase,
bytes and files done (and totals when known), rate, ETA, pid, the process's start time,
host, session id, start time, and once over its final state and error.  Each write is an
atomic replace of a 0600 file, at most :data:`MIN_INTERVAL` apart (phase changes and the
end are always written; an update held back is written by a daemon thread at most one
interval later, so a stalled stream still shows its real progress).  Finished runs are kept: the newest :data:`KEEP_FINISHED`, none
older than :data:`KEEP_SECONDS`.

A backup, a dump or a job estimates its end from what it expects to handle (see
:mod:`bakthat.estimates`: the last backup of the same name and level, a job's sources
summed); ``eta_seconds`` is None, and ``eta_note`` says why, while there is no estimate
or once the work done exceeds it.  A restore knows its total (the stored size): its ETA
is the remaining bytes at the recent rate.  See docs/jobs.md, "Progress you can poll".

Any process of the same user reads them with :func:`list_runs`.  A run still marked
``running`` whose process is gone, or whose pid now belongs to another process (its
start time in ``/proc`` differs, or the machine rebooted), is reported as ``crashed``,
never as running forever.

Document format (``format: bakthat-status``, ``version: 1``): every field of
:class:`RunStatus`.  Linux: process start times come from ``/proc``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bakthat import process
from bakthat.atomic import save_file
from bakthat.context import runtime_directory
from bakthat.errors import ConfigError
from bakthat.estimates import Estimate, Parts
from bakthat.utils import human_size

log = logging.getLogger("bakthat")

FORMAT = "bakthat-status"
VERSION = 1
MIN_INTERVAL = 0.25
#: A run with an ETA is republished at least this often (seconds), progress or not.
REFRESH = 2.0
KEEP_FINISHED = 20
KEEP_SECONDS = 7 * 86400
MAX_FILE_SIZE = 1 << 20
RUNNING = "running"
CRASHED = "crashed"
FINAL_STATES = ("ok", "partial", "failed", "interrupted")
_SESSION = re.compile(r"^[0-9A-Za-z-]{1,64}$")


def status_directory(directory: str | os.PathLike[str] | None = None) -> Path:
    """Return the status directory, created (0700) if needed.

    ``directory`` if given, else ``$BAKTHAT_STATUS_DIR``, else ``$XDG_RUNTIME_DIR/bakthat``,
    else ``/run/bakthat`` for root (system services have no ``XDG_RUNTIME_DIR``, and a
    ``PrivateTmp`` service's temp directory is invisible to others), else
    ``<temp dir>/bakthat-status-<uid>``.  Raise ConfigError if the path exists but is
    not a directory we own and others cannot write (a symlink planted in /tmp, say).
    """
    if directory is None:
        directory = os.environ.get("BAKTHAT_STATUS_DIR") or None
    if directory is None:
        runtime = runtime_directory()
        if runtime:
            directory = os.path.join(runtime, "bakthat")
        elif os.getuid() == 0 and os.path.isdir("/run"):
            directory = "/run/bakthat"
        else:
            directory = os.path.join(tempfile.gettempdir(), f"bakthat-status-{os.getuid()}")
    path = Path(directory)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.lstat()
    except OSError as exc:
        raise ConfigError(f"status directory {path}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise ConfigError(f"status directory {path} is not a private directory of this user; remove it or set "
                          "BAKTHAT_STATUS_DIR")
    return path


def boot_id() -> str | None:
    """Return this boot's id (``/proc/sys/kernel/random/boot_id``), or None."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return None


@dataclass
class RunStatus:
    """The state of one run, as published.  ``state`` is running, ok, partial, failed,
    interrupted, or (only as read back by :func:`list_runs`) crashed."""

    session_id: str
    action: str
    job: str | None = None
    source: str | None = None
    name: str | None = None
    phase: str | None = None
    state: str = RUNNING
    pid: int = 0
    process_start: int | None = None
    boot_id: str | None = None
    host: str = ""
    started: float = 0.0
    updated: float = 0.0
    finished: float | None = None
    bytes_done: int = 0
    bytes_total: int | None = None
    files_done: int = 0
    files_total: int | None = None
    rate: float | None = None
    eta_seconds: float | None = None
    eta_basis: str | None = None
    eta_note: str | None = None
    files_expected: int | None = None
    bytes_expected: int | None = None
    error: str | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON document."""
        return {"format": FORMAT, "version": VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> RunStatus:
        """Given a parsed document, return the status.  Raise ValueError if it is not one."""
        if document.get("format") != FORMAT or not isinstance(document.get("session_id"), str):
            raise ValueError("not a bakthat status document")
        names = {item.name for item in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in document.items() if key in names})


class StatusPublisher:
    """Publish one run's state.  Call :meth:`start`, then :meth:`update`/:meth:`advance` as
    work progresses (cheap: throttled), then :meth:`finish` (a context manager does both).

    ``clock`` returns seconds (``time.time`` by default; tests pass their own).
    """

    def __init__(
        self,
        session_id: str,
        action: str,
        *,
        job: str | None = None,
        source: str | None = None,
        name: str | None = None,
        directory: str | os.PathLike[str] | None = None,
        min_interval: float = MIN_INTERVAL,
        refresh: float = REFRESH,
        keep: int = KEEP_FINISHED,
        clock: Callable[[], float] = time.time,
    ):
        if not _SESSION.match(session_id):
            raise ValueError(f"unusable session id {session_id!r}")
        self.directory = status_directory(directory)
        self.path = self.directory / f"{session_id}.json"
        self._clock = clock
        self._min_interval = min_interval
        self._refresh = refresh
        self._keep = keep
        self._last_write = float("-inf")
        self._last_rate_point: tuple[float, int] | None = None
        self.writes = 0
        self._lock = threading.RLock()
        self._dirty = False
        self._stopped = threading.Event()
        self._flusher: threading.Thread | None = None
        self._parts = Parts()
        self._counts: Any = None  # an object whose ``files`` grows while a walk runs
        self._files_base = 0
        own = process.proc_stat(os.getpid())
        now = clock()
        self.status = RunStatus(
            session_id=session_id, action=action, job=job, source=source, name=name, pid=os.getpid(),
            process_start=own.start_ticks if own else None, boot_id=boot_id(), host=socket.gethostname(),
            started=now, updated=now,
        )

    def _write(self) -> None:
        if self._counts is not None:
            self.status.files_done = self._files_base + self._counts.files
        self.status.updated = self._clock()
        data = json.dumps(self.status.as_dict(), sort_keys=True).encode()
        # Rewritten every few seconds and only a view of the run: not worth two fsyncs.
        with save_file(self.path, prefix=".tmp-", suffix=".json", durable=False) as handle:
            handle.write(data)
        self._last_write = self.status.updated
        self.writes += 1

    def _rate(self) -> None:
        now, done = self._clock(), self.status.bytes_done
        if self._last_rate_point is not None:
            then, before = self._last_rate_point
            if now - then >= 0.5:
                instant = (done - before) / (now - then)
                self.status.rate = instant if self.status.rate is None else 0.7 * self.status.rate + 0.3 * instant
                self._last_rate_point = (now, done)
        else:
            self._last_rate_point = (now, done)
        if self._parts:
            self._estimate(now)
            return
        total = self.status.bytes_total
        if total is not None:
            self.status.eta_basis = "the stored size"
            if self.status.rate:
                self.status.eta_seconds = max(total - done, 0) / self.status.rate

    def _estimate(self, now: float) -> None:
        """Set the ETA fields from the parts' estimates and the work done so far."""
        if self._counts is not None:
            self.status.files_done = self._files_base + self._counts.files
        guess = self._parts.guess(self.status.files_done, self.status.bytes_done, now)
        status = self.status
        status.eta_seconds, status.eta_basis, status.eta_note = guess.seconds, guess.basis, guess.note
        status.files_expected, status.bytes_expected = guess.files, guess.bytes

    def _publish(self) -> None:
        """Publish now (a part begins or ends: rare, and worth showing at once)."""
        self._rate()
        self._write()
        self._dirty = False

    def expect(self, parts: Iterable[tuple[str, Estimate | str]]) -> None:
        """Given the run's parts in order (a job's sources), each with its estimate or a
        text saying why there is none, record them for the ETA (see :meth:`begin`)."""
        with self._lock:
            self._parts.expect(parts)
            self._publish()

    def begin(self, name: str, estimate: Estimate | str | None = None, counts: Any = None) -> None:
        """Mark the part ``name`` as started now (added if :meth:`expect` did not list
        it), with a better ``estimate`` if given; parts listed before it that never
        began are skipped.  While it runs, ``files_done`` follows ``counts.files`` (a
        :class:`bakthat.tarwriter.TarStats` the walk fills), read at each publication."""
        with self._lock:
            self._close_part()
            self._parts.begin(name, estimate, self.status.files_done, self.status.bytes_done, self._clock())
            self._counts = counts
            self._publish()

    def end(self, files: int | None = None) -> None:
        """End the current part.  ``files`` (the walk's final count) replaces what the
        followed counts said; without it, the last count read stands."""
        with self._lock:
            if files is not None:
                self._counts = None
                self.status.files_done = self._files_base + files
            self._close_part()
            self._publish()

    def _close_part(self) -> None:
        if self._counts is not None:
            self.status.files_done = self._files_base + self._counts.files
            self._counts = None
        self._files_base = self.status.files_done
        self._parts.close(self.status.files_done, self.status.bytes_done)

    def _flush_later(self) -> None:
        """Publish what the last throttled updates left unwritten, every interval, so a
        stream that stalls (a dump waiting on its database) shows its real progress."""
        while not self._stopped.wait(self._min_interval):
            with self._lock:
                walking = self._counts is not None and self._files_base + self._counts.files != self.status.files_done
                # An ETA is an extrapolation in time: refreshed even while nothing moves.
                stale = bool(self._parts) and self._clock() - self._last_write >= self._refresh
                if (self._dirty or walking or stale) and self.status.state == RUNNING:
                    self._rate()
                    self._write()
                    self._dirty = False

    def start(self) -> StatusPublisher:
        """Publish the run as running; return self.  With the real clock, a daemon thread
        then publishes updates the throttle held back, at most one interval late."""
        with self._lock:
            self._write()
        if self._clock is time.time and self._flusher is None:
            self._flusher = threading.Thread(target=self._flush_later, name="bakthat-status", daemon=True)
            self._flusher.start()
        return self

    def update(self, *, force: bool = False, **changes: Any) -> None:
        """Given new values (``phase``, ``source``, ``name``, ``bytes_done``, ``bytes_total``,
        ``files_done``, ``files_total``, ``sources``), record them and publish unless the
        last write is younger than the interval.  A phase change is always published.
        Raise TypeError for an unknown field."""
        for key in changes:
            if key not in {"phase", "source", "name", "bytes_done", "bytes_total", "files_done", "files_total",
                           "sources"}:
                raise TypeError(f"update() got an unexpected field {key!r}")
        with self._lock:
            for key, value in changes.items():
                if key == "phase" and value != self.status.phase:
                    force = True
                setattr(self.status, key, value)
            self._rate()
            # With the flusher thread, only forced writes happen here: the periodic ones are
            # the thread's, off the caller's hot path (a rename can take tens of ms on a busy disk).
            due = self._flusher is None and self._clock() - self._last_write >= self._min_interval
            if force or due:
                self._write()
                self._dirty = False
            else:
                self._dirty = True

    def advance(self, count: int = 0, files: int = 0) -> None:
        """Add ``count`` bytes and ``files`` files done (usable as a ``progress`` callback)."""
        with self._lock:
            self.status.bytes_done += count
            self.status.files_done += files
            if self._flusher is not None:  # the thread computes the rate and publishes
                self._dirty = True
                return
            self.update()

    def finish(self, state: str, error: BaseException | str | None = None) -> None:
        """Publish the final state (one of :data:`FINAL_STATES`), then prune old runs."""
        if state not in FINAL_STATES:
            raise ValueError(f"unknown final state {state!r}")
        self._stopped.set()
        with self._lock:
            self._close_part()
            self.status.state = state
            self.status.finished = self._clock()
            self.status.eta_seconds = None
            self.status.eta_note = None
            self.status.error = None if error is None else (str(error) or type(error).__name__)
            self._write()
            self._dirty = False
        prune(self.directory, self._keep, now=self._clock())

    def __enter__(self) -> StatusPublisher:
        return self.start()

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        if self.status.state != RUNNING:
            return
        if kind is None:
            self.finish("ok")
        else:
            self.finish("failed" if issubclass(kind, Exception) else "interrupted", value)


def alive(status: RunStatus) -> bool:
    """Return True if the process that published ``status`` is still that process."""
    if status.boot_id and boot_id() and status.boot_id != boot_id():
        return False
    info = process.proc_stat(status.pid)
    if info is None or info.state in ("Z", "X"):
        return False
    return status.process_start is None or info.start_ticks == status.process_start


def _read(path: Path) -> RunStatus | None:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_SIZE + 1)
        if len(data) > MAX_FILE_SIZE:
            raise ValueError("too large")
        return RunStatus.from_dict(json.loads(data))
    except (OSError, ValueError, TypeError) as exc:
        log.debug("ignoring status file %s: %s", path, exc)
        return None


def list_runs(directory: str | os.PathLike[str] | None = None) -> list[RunStatus]:
    """Return every run in the status directory: running ones first (oldest first), then
    finished ones (newest first).  A run marked running whose process is gone or was
    replaced comes back with state ``crashed``.  Unreadable files are skipped."""
    runs = []
    host = socket.gethostname()
    for path in status_directory(directory).glob("*.json"):
        status = _read(path)
        if status is None:
            continue
        if status.state == RUNNING and status.host == host and not alive(status):
            status.state = CRASHED
        runs.append(status)
    running = sorted((run for run in runs if run.state == RUNNING), key=lambda run: run.started)
    others = sorted((run for run in runs if run.state != RUNNING),
                    key=lambda run: run.finished or run.updated, reverse=True)
    return running + others


def prune(directory: str | os.PathLike[str], keep: int = KEEP_FINISHED, now: float | None = None) -> list[str]:
    """Delete finished (and crashed) runs beyond the newest ``keep`` and those older than
    :data:`KEEP_SECONDS`, and stale temp files; return the session ids removed."""
    now = time.time() if now is None else now
    removed = []
    finished = [run for run in list_runs(directory) if run.state != RUNNING]
    for index, run in enumerate(finished):
        if index >= keep or (run.finished or run.updated) < now - KEEP_SECONDS:
            try:
                os.unlink(Path(directory) / f"{run.session_id}.json")
                removed.append(run.session_id)
            except FileNotFoundError:
                pass
    for leftover in Path(directory).glob(".tmp-*.json"):
        try:
            if leftover.stat().st_mtime < now - 3600:
                leftover.unlink()
        except FileNotFoundError:
            pass
    return removed


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def eta_text(run: RunStatus) -> str:
    """Return the ETA column of ``run``: a duration, ``exceeded`` once the work done is
    past the estimate, ``unknown`` without an estimate, ``-`` otherwise."""
    if run.state != RUNNING:
        return "-"
    if run.eta_seconds is not None:
        return _duration(run.eta_seconds)
    note = run.eta_note or ""
    if note.startswith("past the estimate"):
        return "exceeded"
    if note.startswith("no estimate"):
        return "unknown"
    return "-"


def format_runs(runs: Iterable[RunStatus], now: float | None = None) -> str:
    """Given runs (from :func:`list_runs`), return a table for a terminal, one line each,
    and under each running run with an estimate (or a reason for none) what it says."""
    now = time.time() if now is None else now
    lines = [f"{'STATE':<11} {'ACTION':<8} {'JOB':<12} {'NAME':<20} {'PHASE':<10} {'FILES':>8} {'DONE':>10} "
             f"{'RATE':>11} {'ETA':>8} {'ELAPSED':>8}  PID"]
    for run in runs:
        end = run.finished if run.finished is not None else (run.updated if run.state == CRASHED else now)
        rate = f"{human_size(int(run.rate))}/s" if run.rate else "-"
        lines.append(
            f"{run.state:<11} {run.action:<8} {(run.job or '-'):<12} {(run.name or run.source or '-')[:20]:<20} "
            f"{(run.phase or '-'):<10} {run.files_done:>8} {human_size(run.bytes_done):>10} {rate:>11} "
            f"{eta_text(run):>8} {_duration(end - run.started):>8}  {run.pid}"
        )
        if run.state == RUNNING and (run.eta_note or run.eta_basis):
            detail = run.eta_note or ""
            if run.eta_basis and detail in ("", "estimating"):
                detail = f"{detail + ', ' if detail else ''}from {run.eta_basis}"
            lines.append(f"{'':11} ETA: {detail}")
    return "\n".join(lines)
