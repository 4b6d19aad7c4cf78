"""Command hooks: a program run before or after a piece of work, with the run's context.

A hook is written in a profile as a mapping (a bare string or argv list is short for
``{run: ...}``)::

    {run: "systemctl stop app", timeout: 60, err_is_fatal: true, dry_run: false, shell: false}

``run``
    an argv list, or a string split like a POSIX shell would (``shlex``) but run
    **without** a shell; with ``shell: true`` the string is run by ``/bin/sh -c``.
``timeout``
    seconds (default :data:`DEFAULT_TIMEOUT`, profile key ``hook_timeout``); past it the
    hook's whole process group gets SIGTERM, then SIGKILL after a grace period.
``err_is_fatal``
    what a failure (non-zero exit, a signal, a timeout, a missing program) means; see
    :mod:`bakthat.hooks.plan`.  Default false: the failure is logged and work goes on.
``dry_run``
    run this hook during a dry run too (default false: dry runs skip it).

The hook's environment is bakthat's own plus the context's ``BAKTHAT_*`` variables,
``BAKTHAT_CONTEXT`` (a private JSON file of the same context) and ``BAKTHAT_HOOK`` (the
phase: before, after, on_error, finally).  stdout and stderr are captured together,
bounded to the first and last ``hook_output_kib / 2`` KiB.
"""

from __future__ import annotations

import difflib
import logging
import os
import selectors
import shlex
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bakthat import process
from bakthat import profile_keys
from bakthat.context import CONTEXT_FILE_VARIABLE, RunContext, context_file
from bakthat.errors import ConfigError

log = logging.getLogger("bakthat")

DEFAULT_TIMEOUT = profile_keys.HOOK_TIMEOUT
DEFAULT_OUTPUT_KIB = profile_keys.HOOK_OUTPUT_KIB
#: Seconds between SIGTERM and SIGKILL for a hook past its timeout.
KILL_GRACE = 5.0
#: Seconds output is still read after the hook exited (from children it left running).
STRAGGLER_GRACE = 1.0
PHASES = ("before", "after", "on_error", "finally")
KEYS = ("run", "timeout", "err_is_fatal", "dry_run", "shell")

#: The profile keys read here, declared in :mod:`bakthat.profile_keys` (read without importing this module).
SETTINGS = profile_keys.HOOKS


@dataclass(frozen=True)
class CommandHook:
    """One validated command hook.  ``where`` names it in messages (``hooks.before[0]``)."""

    run: tuple[str, ...] | str
    timeout: float = DEFAULT_TIMEOUT
    err_is_fatal: bool = False
    dry_run: bool = False
    shell: bool = False
    where: str = "hook"

    def argv(self) -> list[str]:
        """Return the argv to execute (``/bin/sh -c RUN`` for a shell hook)."""
        if self.shell:
            return ["/bin/sh", "-c", str(self.run)]
        return list(self.run)

    def display(self, secrets: Iterable[str] = ()) -> str:
        """Return the command as shown in logs and reports, secrets masked."""
        if self.shell:
            return process.redact(str(self.run), secrets)
        return process.display_argv(self.run, secrets)


def _suggest(key: str, known: Iterable[str]) -> str:
    match = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def parse_hook(spec: Any, where: str, default_timeout: float = DEFAULT_TIMEOUT) -> CommandHook:
    """Given a hook as written in the configuration and its place (``jobs.x.hooks.before[0]``),
    return a CommandHook.

    Raise ConfigError naming ``where`` and the key for an unknown key, a missing or empty
    ``run``, a string that shlex cannot split, an argv that is not all strings, a
    ``shell: true`` hook whose ``run`` is not a string, a non-positive timeout, or a flag
    that is not true/false.
    """
    if isinstance(spec, (str, list, tuple)):
        spec = {"run": spec}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: a hook must be a mapping with 'run', a command string or an argv list")
    for key in spec:
        if key not in KEYS:
            raise ConfigError(f"{where}: unknown key {key!r}{_suggest(str(key), KEYS)}")
    flags = {}
    for key in ("err_is_fatal", "dry_run", "shell"):
        value = spec.get(key, False)
        if not isinstance(value, bool):
            raise ConfigError(f"{where}.{key}: must be true or false, not {value!r}")
        flags[key] = value
    timeout = spec.get("timeout", default_timeout)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ConfigError(f"{where}.timeout: must be a positive number of seconds, not {timeout!r}")
    run = spec.get("run")
    if run is None:
        raise ConfigError(f"{where}: missing key 'run' (the command to execute)")
    if flags["shell"]:
        if not isinstance(run, str) or not run.strip():
            raise ConfigError(f"{where}.run: with shell: true, run must be a non-empty command string")
        command: tuple[str, ...] | str = run
    elif isinstance(run, str):
        try:
            command = tuple(shlex.split(run))
        except ValueError as exc:
            raise ConfigError(f"{where}.run: cannot split {run!r}: {exc}") from None
    elif isinstance(run, (list, tuple)) and all(isinstance(word, str) for word in run):
        command = tuple(run)
    else:
        raise ConfigError(f"{where}.run: must be a command string or a list of strings, not {run!r}")
    if not command:
        raise ConfigError(f"{where}.run: the command is empty")
    return CommandHook(run=command, timeout=float(timeout), where=where, **flags)


@dataclass(frozen=True)
class HookResult:
    """How one hook run went.  ``exit_status`` is None when the program could not start
    (``error`` says why); ``output`` is the bounded capture of stdout and stderr."""

    where: str
    phase: str
    command: str
    started: float
    duration: float
    exit_status: int | None
    timed_out: bool = False
    output: str = ""
    output_bytes: int = 0
    output_dropped: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True if the hook ran and exited with status 0 in time."""
        return self.exit_status == 0 and not self.timed_out and self.error is None

    def outcome(self) -> str:
        """Return how it ended: ``ok``, ``exit status 3``, ``killed by SIGKILL``, ``timed out ...``."""
        if self.error:
            return self.error
        if self.timed_out:
            return f"timed out after {self.duration:.1f} s, killed with its process group"
        return process.describe_exit(self.exit_status) if self.exit_status else "ok"

    def summary(self) -> str:
        """Return one line: what ran and how it ended."""
        return f"{self.where} `{self.command}`: {self.outcome()} ({self.duration:.2f} s)"


def environment(context: RunContext, phase: str, context_path: str) -> dict[str, str]:
    """Given a context, a phase and the context file's path, return a hook's environment."""
    return {
        **os.environ,
        **context.as_environment(),
        CONTEXT_FILE_VARIABLE: context_path,
        "BAKTHAT_HOOK": phase,
    }


def _collect(child: subprocess.Popen, output: process.BoundedOutput, deadline: float) -> bool:
    """Read the child's output until it exited and its pipe closed (or a short grace after
    its exit); return True if the deadline passed first (the child is then still running)."""
    fd = child.stdout.fileno()
    os.set_blocking(fd, False)
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ)
    exited_at = None
    open_pipe = True
    try:
        while True:
            now = time.monotonic()
            if exited_at is None and process.has_exited(child):
                exited_at = now
            if exited_at is not None and (not open_pipe or now - exited_at > STRAGGLER_GRACE):
                return False
            if exited_at is None and now >= deadline:
                return True
            if not open_pipe:
                time.sleep(0.01)
                continue
            for _key, _events in selector.select(timeout=0.05):
                try:
                    while chunk := os.read(fd, process.CHUNK):
                        output.feed(chunk)
                    open_pipe = False  # read returned b"": end of file
                    selector.unregister(fd)
                except BlockingIOError:
                    pass
    finally:
        selector.close()


def _read_available(fd: int, output: process.BoundedOutput) -> None:
    """Read what a killed hook left in its pipe, without blocking."""
    try:
        while chunk := os.read(fd, process.CHUNK):
            output.feed(chunk)
    except (BlockingIOError, OSError):
        pass


def run_hook(
    hook: CommandHook,
    context: RunContext,
    phase: str,
    *,
    output_kib: int = DEFAULT_OUTPUT_KIB,
    kill_grace: float = KILL_GRACE,
    secrets: Iterable[str] = (),
) -> HookResult:
    """Given a hook, the run's context and the phase, run the hook and return its result.

    Never raises for a failing hook (non-zero exit, signal, timeout, missing program):
    the result says so.  A KeyboardInterrupt or other BaseException while it runs kills
    the hook's process group, then propagates.  ``secrets`` are masked in the command
    shown and in the captured output.
    """
    secrets = list(secrets)
    shown = hook.display(secrets)
    output = process.BoundedOutput(head=output_kib * 512, tail=output_kib * 512)
    started_wall = time.time()
    started = time.monotonic()
    with context_file(context) as path:
        try:
            child = process.start(hook.argv(), environment(context, phase, path), stderr=subprocess.STDOUT)
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            reason = "command not found" if isinstance(exc, FileNotFoundError) else "cannot execute"
            return HookResult(hook.where, phase, shown, started_wall, time.monotonic() - started, None,
                              error=f"{reason}: {hook.argv()[0]}")
        try:
            timed_out = _collect(child, output, started + hook.timeout)
            if timed_out:
                process.terminate_group(child, kill_grace)
                _read_available(child.stdout.fileno(), output)
            else:
                child.wait()
        except BaseException:
            process.terminate_group(child, kill_grace)
            raise
        finally:
            child.stdout.close()
    return HookResult(
        where=hook.where, phase=phase, command=shown, started=started_wall,
        duration=time.monotonic() - started, exit_status=child.returncode, timed_out=timed_out,
        output=output.text(secrets), output_bytes=output.total, output_dropped=output.dropped,
    )


def log_result(result: HookResult) -> None:
    """Log a hook result: one INFO line when it succeeded (its output at DEBUG), a WARNING
    with its output when it failed."""
    if result.ok:
        log.info("hook %s", result.summary())
        if result.output:
            log.debug("hook %s output:\n%s", result.where, result.output)
    else:
        log.warning("hook %s%s", result.summary(), f"; output:\n{result.output}" if result.output else "")
