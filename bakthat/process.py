"""Child processes: started in their own process group, killed as a group, output bounded.

Command hooks (:mod:`bakthat.hooks.command`) and database dumps (:mod:`bakthat.sources`)
run external programs.  The rules they share live here:

- every child starts in a **new process group** (``process_group=0``), so a shell hook
  that spawns children, or a ``sh -c 'a | b'`` dump, can be killed whole;
- :func:`terminate_group` sends SIGTERM to the group, waits a grace period, then
  SIGKILL; it never reaps the group leader before the group is gone, so the group id
  cannot have been reused by an unrelated process meanwhile;
- output is kept in a :class:`BoundedOutput`: the first and last bytes up to fixed
  limits, with a count of what was dropped, so a child printing gigabytes costs bounded
  memory and never blocks on a full pipe;
- :func:`redact` and :func:`display_argv` take secrets out of anything shown.

Linux only: group membership and process start times are read from ``/proc``.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

#: Mask put in place of a secret.
MASK = "***"
CHUNK = 1 << 16

_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@\s]*:)[^@/?#\s]*(@)")
_SECRET_OPTION = re.compile(r"^(--?[\w-]*(?:password|passwd|secret|token)[\w-]*=)(.+)$", re.IGNORECASE)
_SECRET_FLAG = re.compile(r"^--?[\w-]*(?:password|passwd|secret|token)[\w-]*$", re.IGNORECASE)


# -- secrets ------------------------------------------------------------------------------


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Given text and known secrets, return it with each secret and URL password masked.

    ``postgresql://user:pw@host`` becomes ``postgresql://user:***@host``; secrets shorter
    than 4 characters are ignored (masking ``a`` everywhere would garble the text).
    """
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _URL_PASSWORD.sub(lambda match: match.group(1) + MASK + match.group(2), text)


def display_argv(argv: Sequence[str], secrets: Iterable[str] = ()) -> str:
    """Given an argv, return it as a copy-pastable shell line with secrets masked.

    Besides the known ``secrets`` and URL passwords, the value of any option named like
    a password (``--password=x``, ``--password x``, ``--api-token x``) is masked.
    """
    secrets = list(secrets)
    shown: list[str] = []
    mask_next = False
    for word in argv:
        if mask_next:
            shown.append(MASK)
            mask_next = False
            continue
        match = _SECRET_OPTION.match(word)
        if match:
            shown.append(match.group(1) + MASK)
            continue
        mask_next = bool(_SECRET_FLAG.match(word))
        shown.append(redact(word, secrets))
    return shlex.join(shown)


# -- bounded output ---------------------------------------------------------------------------


class BoundedOutput:
    """Keep the first ``head`` and the last ``tail`` bytes fed to it, and count the rest.

    Memory stays below ``head + 2 * tail`` bytes whatever is fed.  Thread-safe: one
    thread may feed while another reads :meth:`text`.
    """

    def __init__(self, head: int = 32 * 1024, tail: int = 32 * 1024):
        if head < 0 or tail < 0:
            raise ValueError("head and tail must not be negative")
        self.head_limit = head
        self.tail_limit = tail
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0
        self._lock = threading.Lock()

    def feed(self, data: bytes) -> None:
        """Given a chunk of output, keep what the limits allow."""
        with self._lock:
            self.total += len(data)
            room = self.head_limit - len(self._head)
            if room > 0:
                self._head += data[:room]
                data = data[room:]
            if not data or not self.tail_limit:
                return
            self._tail += data
            if len(self._tail) > 2 * self.tail_limit:
                del self._tail[: len(self._tail) - self.tail_limit]

    @property
    def dropped(self) -> int:
        """Return how many bytes were fed but not kept."""
        with self._lock:
            return self.total - len(self._head) - min(len(self._tail), self.tail_limit)

    def text(self, secrets: Iterable[str] = ()) -> str:
        """Return what was kept as text (UTF-8, undecodable bytes replaced), secrets masked.

        When bytes were dropped, a line ``[... N bytes dropped ...]`` marks the gap.
        """
        with self._lock:
            head = bytes(self._head)
            tail = bytes(self._tail[-self.tail_limit:]) if self.tail_limit else b""
            dropped = self.total - len(head) - len(tail)
        text = head.decode("utf-8", "replace")
        if dropped:
            text += f"\n[... {dropped} bytes dropped ...]\n"
        text += tail.decode("utf-8", "replace")
        return redact(text, secrets)


def drain(stream: IO[bytes], sink: BoundedOutput) -> threading.Thread:
    """Start a daemon thread that reads ``stream`` to its end into ``sink``; return it."""

    def pump() -> None:
        fd = stream.fileno()
        try:
            while chunk := os.read(fd, CHUNK):
                sink.feed(chunk)
        except OSError:
            pass

    thread = threading.Thread(target=pump, name="bakthat-drain", daemon=True)
    thread.start()
    return thread


# -- starting and stopping ---------------------------------------------------------------------


def start(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    stdin: Any = subprocess.DEVNULL,
    stdout: Any = subprocess.PIPE,
    stderr: Any = subprocess.PIPE,
    cwd: str | None = None,
) -> subprocess.Popen:
    """Given an argv and a complete environment, start it in a new process group.

    Pipes are unbuffered (``bufsize=0``): reading ``stdout`` reads the child's file
    descriptor directly.  Raise FileNotFoundError or PermissionError as Popen does.
    """
    return subprocess.Popen(
        list(argv), stdin=stdin, stdout=stdout, stderr=stderr, env=dict(env), cwd=cwd,
        process_group=0, close_fds=True, bufsize=0,
    )


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/<pid>/stat`` bakthat uses."""

    state: str
    pgrp: int
    start_ticks: int


def proc_stat(pid: int) -> ProcStat | None:
    """Given a pid, return its state, process group and start time (clock ticks since
    boot) from ``/proc``; None if no such process exists."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2:].split()
    return ProcStat(state=fields[0], pgrp=int(fields[2]), start_ticks=int(fields[19]))


def pid_alive(pid: int) -> bool:
    """Given a process id, return True if a process with that id exists on this host.

    A process owned by another user counts as alive (signalling it is refused, but it
    exists).  The id may have been reused: callers that must tell a restarted process
    apart compare its start time (:func:`proc_stat`).
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_members(pgid: int) -> list[int]:
    """Given a process group id, return the pids of its living (non-zombie) members."""
    members = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        info = proc_stat(int(name))
        if info is not None and info.pgrp == pgid and info.state not in ("Z", "X"):
            members.append(int(name))
    return members


def has_exited(process: subprocess.Popen) -> bool:
    """Return True if the child has exited, without reaping it (its pid stays reserved)."""
    if process.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def wait_exited(process: subprocess.Popen, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for the child to exit, without reaping it.

    Return True if it exited.
    """
    deadline = time.monotonic() + timeout
    delay = 0.001
    while not has_exited(process):
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def terminate_group(process: subprocess.Popen, grace: float = 5.0) -> None:
    """Given a child started by :func:`start`, end it and every process of its group; reap it.

    SIGTERM goes to the whole group; members still alive after ``grace`` seconds get
    SIGKILL.  The leader is reaped only at the end, so its pid (the group id) cannot be
    reused by another process while signals are sent.  A leader already reaped by
    someone else is only waited for: its group id is no longer safe to signal.
    """
    if process.returncode is not None:
        return
    pgid = process.pid
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if group_members(pgid):
        _signal_group(pgid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.01)
    process.wait()


def end_stragglers(process: subprocess.Popen) -> None:
    """Given a child that has exited but is not reaped, SIGKILL what is left of its group
    (background children it left behind), then reap it."""
    if process.returncode is None and group_members(process.pid):
        _signal_group(process.pid, signal.SIGKILL)
    process.wait()


def describe_exit(returncode: int) -> str:
    """Given a Popen return code, return ``exit status N`` or ``killed by SIGNAME``."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exit status {returncode}"
