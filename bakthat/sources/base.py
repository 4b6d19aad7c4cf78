"""What every source kind shares: the Source record, the running Dump, and their errors.

A **dump** is a readable byte stream plus a verdict.  Read it to its end (``read``,
``readinto``, ``copy_to``, or the file descriptor itself through ``fileno()``), then call
:meth:`Dump.finish`, which returns a :class:`DumpResult` or raises :class:`DumpError`:
a dump that failed or was killed is never a success, even if its output looked whole.
On any error before ``finish``, call :meth:`Dump.abort` (or use the dump as a context
manager, which aborts whatever was not finished).

:class:`ProcessDump` is a program's stdout: the pipe's file descriptor is the stream,
so nothing is buffered on disk or in memory beyond one read; its stderr is drained by a
thread into a :class:`~bakthat.process.BoundedOutput`.  :class:`FileDump` is an open,
already unlinked file (SQLite's consistent copy).
"""

from __future__ import annotations

import difflib
import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from bakthat import process
from bakthat.context import RunContext, runtime_directory
from bakthat.errors import BakthatError, ConfigError

CHUNK = 1 << 20
#: Keys every mapping spec may hold, whatever its kind.
COMMON_KEYS = ("name", "hooks")
#: Seconds a dump may take to exit after its output ended.
EXIT_TIMEOUT = 300.0


class DumpError(BakthatError):
    """A dump program failed, was killed or could not start; nothing it wrote counts (exit 1).

    ``status`` is the program's return code (negative: killed by that signal) or None;
    ``output`` its bounded stderr, secrets masked.
    """

    def __init__(self, message: str, status: int | None = None, output: str = ""):
        super().__init__(message)
        self.status = status
        self.output = output


class RestoreIntoError(DumpError):
    """Feeding a dump back into its database failed; the tool's transaction was not committed."""


@dataclass(frozen=True)
class Source:
    """One validated source.  ``name`` is the backup name, ``display`` what messages and the
    run context show (never a secret), ``extension`` the stored file's type (``pgdump``,
    ``sql``, ``sqlite``...), ``hooks`` the raw ``hooks:`` mapping of the spec (parse it
    with :func:`bakthat.hooks.plan.parse_hooks`).  Subclasses add their own fields."""

    kind: str
    name: str
    display: str
    extension: str
    hooks: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    def secrets(self) -> tuple[str, ...]:
        """Return the secrets this source holds (masked wherever its output is shown)."""
        return ()


@dataclass(frozen=True)
class DatabaseSource(Source):
    """A database reached by URL (``scheme://user:password@host:port/database``)."""

    database: str = ""
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    options: tuple[str, ...] = ()
    restore_options: tuple[str, ...] = ()

    def secrets(self) -> tuple[str, ...]:
        return (self.password,) if self.password else ()


#: The mapping keys of a database source, besides ``name`` and ``hooks``.
DATABASE_KEYS = ("url", "password", "options", "restore_options")


def parse_database_url(spec: Mapping[str, Any], where: str, scheme: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Given a database source's mapping spec, return the fields common to every
    :class:`DatabaseSource` (the display URL shown as ``scheme://user@host:port/database``,
    the password from ``password:`` else the URL, options) and the URL's query pairs.

    Raise ConfigError naming ``where`` for an unknown key, a bad port or a missing database.
    """
    check_keys(spec, DATABASE_KEYS, where)
    try:
        parts = urlsplit(spec["url"])
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{where}.url: {exc}") from None
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise ConfigError(f"{where}.url: give one database ({scheme}://host/dbname)")
    user = unquote(parts.username) if parts.username else None
    host = unquote(parts.hostname) if parts.hostname else None
    password = spec.get("password") or (unquote(parts.password) if parts.password else None)
    if password is not None and not isinstance(password, str):
        raise ConfigError(f"{where}.password: must be a string")
    shown_host = f"{host or ''}{f':{port}' if port else ''}"
    fields = {
        "display": f"{scheme}://{f'{user}@' if user else ''}{shown_host}/{database}",
        "hooks": spec.get("hooks"),
        "database": database,
        "host": host,
        "port": port,
        "user": user,
        "password": password or None,
        "options": text_list(spec.get("options"), f"{where}.options"),
        "restore_options": text_list(spec.get("restore_options"), f"{where}.restore_options"),
    }
    return fields, parse_qsl(parts.query, keep_blank_values=True)


def environment(context: RunContext | None) -> dict[str, str]:
    """Return the environment of a dump or restore program: bakthat's own plus the run
    context's ``BAKTHAT_*`` variables."""
    result = dict(os.environ)
    if context is not None:
        result.update(context.as_environment())
    return result


def check_keys(spec: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    """Raise ConfigError naming ``where`` and the key if ``spec`` has a key not allowed."""
    allowed = [*COMMON_KEYS, *allowed]
    for key in spec:
        if key not in allowed:
            match = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {match[0]!r}?)" if match else f" (known keys: {', '.join(allowed)})"
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")


def check_name(name: Any, where: str) -> str:
    """Given a backup name, return it.  Raise ConfigError if it cannot name a stored file."""
    if not isinstance(name, str) or not name or name in {".", ".."} or "/" in name or "\x00" in name:
        raise ConfigError(f"{where}.name: {name!r} cannot be a backup name (no '/', not empty)")
    return name


def text_list(value: Any, where: str) -> tuple[str, ...]:
    """Given an optional list of strings (extra program options), return it as a tuple."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where}: must be a list of strings")
    return tuple(value)


def private_file(content: str, filename: str) -> tuple[str, Callable[[], None]]:
    """Given a secret file's content, write it to a new private file; return its path and
    a function removing it.  The file is mode 0600 in a new 0700 directory, in the
    per-user runtime directory (a tmpfs, when there is one) or else the temp directory."""
    directory = tempfile.mkdtemp(prefix="bakthat-", dir=runtime_directory())
    path = os.path.join(directory, filename)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return path, lambda: shutil.rmtree(directory, ignore_errors=True)


def require_program(*names: str) -> str:
    """Return the path of the first of ``names`` on PATH.  Raise DumpError if none is."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise DumpError(f"{' or '.join(names)} is not installed (not found on PATH)")


@dataclass(frozen=True)
class DumpResult:
    """A finished dump: bytes read through the Dump, seconds it ran, its bounded stderr."""

    bytes: int
    duration: float
    output: str = ""


class Dump:
    """A readable dump stream with a verdict.  See the module docstring for the protocol."""

    display = "dump"

    def __init__(self, stream: IO[bytes]):
        self.stream = stream
        self.bytes = 0
        self.started = time.monotonic()
        self._done = False

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (``b""`` at the end)."""
        data = self.stream.read(size)
        self.bytes += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        count = self.stream.readinto(buffer) or 0
        self.bytes += count
        return count

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.stream.fileno()

    def copy_to(self, writer: Any, progress: Callable[[int], None] | None = None) -> int:
        """Copy the whole stream into ``writer`` (anything with ``write``); return the byte count.

        ``progress`` is called with each chunk's size.  Memory: one 1 MiB buffer.
        """
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        total = 0
        while count := self.readinto(view):
            writer.write(view[:count])
            total += count
            if progress is not None:
                progress(count)
        return total

    def _at_end(self) -> bool:
        return not self.stream.read(1)

    def finish(self) -> DumpResult:
        """Given a stream read to its end, return the result.  Raise DumpError if the dump failed."""
        raise NotImplementedError

    def abort(self) -> None:
        """Stop the dump (kill its program) and release everything.  Idempotent."""
        raise NotImplementedError

    def __enter__(self) -> Dump:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if not self._done:
            self.abort()


class ProcessDump(Dump):
    """The stdout of a program, started at once in its own process group."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        display: str,
        *,
        secrets: Iterable[str] = (),
        cleanup: Callable[[], None] | None = None,
        stderr_kib: int = 64,
        kill_grace: float = 5.0,
    ):
        self.display = display
        self.program = os.path.basename(argv[0])
        self._secrets = list(secrets)
        self._cleanup = cleanup
        self._kill_grace = kill_grace
        self._stderr = process.BoundedOutput(head=stderr_kib * 512, tail=stderr_kib * 512)
        try:
            self.process = process.start(argv, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as exc:
            self._release()
            raise DumpError(f"{display}: cannot start {self.program}: {exc.strerror}") from None
        super().__init__(self.process.stdout)
        try:  # a bigger pipe means fewer, larger reads (Linux; the default is 64 KiB)
            fcntl.fcntl(self.process.stdout.fileno(), fcntl.F_SETPIPE_SZ, CHUNK)
        except (OSError, AttributeError):
            pass
        self._drain = process.drain(self.process.stderr, self._stderr)

    def _release(self) -> None:
        if self._cleanup is not None:
            cleanup, self._cleanup = self._cleanup, None
            cleanup()

    def _close(self) -> None:
        self._drain.join(5)
        for stream in (self.process.stdout, self.process.stderr):
            stream.close()
        self._release()

    def finish(self) -> DumpResult:
        """Given the stream read to its end, wait for the program and check its exit status.

        Raise DumpError (with the exit status or signal and the end of stderr) if it did
        not exit with status 0, or if it does not exit within :data:`EXIT_TIMEOUT` seconds
        of its output's end.  Raise RuntimeError if the stream was not read to its end
        (the dump is aborted then: unread output is never silently dropped).
        """
        if self._done:
            raise RuntimeError("finish() was already called")
        if not self._at_end():
            self.abort()
            raise RuntimeError(f"{self.display}: finish() called before the dump was read to its end")
        self._done = True
        try:
            if not process.wait_exited(self.process, EXIT_TIMEOUT):
                process.terminate_group(self.process, self._kill_grace)
                raise DumpError(f"{self.display}: {self.program} did not exit after its output ended; killed",
                                self.process.returncode, self._stderr.text(self._secrets))
            process.end_stragglers(self.process)
        finally:
            self._close()
        output = self._stderr.text(self._secrets)
        status = self.process.returncode
        if status != 0:
            detail = output.strip()
            raise DumpError(
                f"{self.display}: {self.program} failed ({process.describe_exit(status)})"
                + (f": {detail}" if detail else ""),
                status, output,
            )
        return DumpResult(self.bytes, time.monotonic() - self.started, output)

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            process.terminate_group(self.process, self._kill_grace)
        finally:
            self._close()


class FileDump(Dump):
    """An open file as a dump (already unlinked: nothing is left behind, even after a crash)."""

    def __init__(self, stream: IO[bytes], display: str):
        super().__init__(stream)
        self.display = display

    def finish(self) -> DumpResult:
        if self._done:
            raise RuntimeError("finish() was already called")
        at_end = self._at_end()
        self.abort()
        if not at_end:
            raise RuntimeError(f"{self.display}: finish() called before the dump was read to its end")
        return DumpResult(self.bytes, time.monotonic() - self.started)

    def abort(self) -> None:
        self._done = True
        self.stream.close()


def feed_program(
    argv: Sequence[str],
    env: Mapping[str, str],
    stream: Any,
    display: str,
    *,
    secrets: Iterable[str] = (),
    output_kib: int = 64,
    kill_grace: float = 5.0,
) -> str:
    """Given a restore program (``pg_restore``, ``psql``, ``mysql``) and a readable dump,
    write the dump to the program's stdin and return its bounded output.

    Only a complete stream reaches the program's end of input: if reading ``stream``
    raises (a damaged archive, an integrity error on the last read), the program is
    killed first, so a tool that commits at end of input never commits a partial dump;
    the error propagates.  Raise RestoreIntoError if the program fails or stops reading.
    """
    secrets = list(secrets)
    program = os.path.basename(argv[0])
    output = process.BoundedOutput(head=output_kib * 512, tail=output_kib * 512)
    try:
        child = process.start(argv, env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as exc:
        raise RestoreIntoError(f"{display}: cannot start {program}: {exc.strerror}") from None
    drained = process.drain(child.stdout, output)
    stopped_reading = False
    try:
        try:
            while chunk := stream.read(CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[child.stdin.write(view):]
        except BrokenPipeError:
            stopped_reading = True
        except BaseException:
            process.terminate_group(child, kill_grace)
            raise
        try:
            child.stdin.close()
        except BrokenPipeError:
            stopped_reading = True
        child.wait()
    except BaseException:
        process.terminate_group(child, kill_grace)
        raise
    finally:
        drained.join(5)
        child.stdout.close()
    text = output.text(secrets)
    if child.returncode != 0 or stopped_reading:
        why = process.describe_exit(child.returncode) if child.returncode else "it stopped reading its input"
        detail = text.strip()
        raise RestoreIntoError(f"{display}: {program} failed ({why})" + (f": {detail}" if detail else ""),
                               child.returncode, text)
    return text
