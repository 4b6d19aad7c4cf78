"""The run context: one typed object describing the work in progress, for Python and shell.

A :class:`RunContext` says what is being done (session id, action, job, source, backup
name, destination, dry run) and, once the work is over, how it went (status, stored
filename, size, error).  The same object reaches

- Python code, through :func:`current_context` while :func:`using_context` is active
  (an event handler calls ``bakthat.current_context()``; 0.6 handler signatures stay);
- command hooks, as ``BAKTHAT_*`` environment variables (:meth:`RunContext.as_environment`)
  and as one JSON document in a private file named by ``BAKTHAT_CONTEXT``
  (:func:`context_file`).

Variables (always all set; empty when unknown)::

    BAKTHAT_SESSION_ID  BAKTHAT_ACTION  BAKTHAT_JOB  BAKTHAT_SOURCE  BAKTHAT_NAME
    BAKTHAT_DESTINATION BAKTHAT_DRY_RUN ("true" or empty)
    after the work:     BAKTHAT_STATUS  BAKTHAT_STORED_FILENAME  BAKTHAT_SIZE  BAKTHAT_ERROR

**No secret is ever in a context**: it holds no settings, and every text field has URL
passwords masked when the object is built (``postgresql://u:***@h/db``); callers put the
display form of a source there, never its spec.  Immutable: :meth:`RunContext.finished`
returns a new object.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from bakthat.process import redact

#: Version of the JSON document; bumped when a field changes meaning or disappears.
CONTEXT_VERSION = 1

#: Statuses a finished context may carry.
STATUSES = ("ok", "partial", "failed", "skipped")

#: field name -> environment variable, in documentation order.
VARIABLES: dict[str, str] = {
    "session_id": "BAKTHAT_SESSION_ID",
    "action": "BAKTHAT_ACTION",
    "job": "BAKTHAT_JOB",
    "source": "BAKTHAT_SOURCE",
    "name": "BAKTHAT_NAME",
    "destination": "BAKTHAT_DESTINATION",
    "dry_run": "BAKTHAT_DRY_RUN",
    "status": "BAKTHAT_STATUS",
    "stored_filename": "BAKTHAT_STORED_FILENAME",
    "size": "BAKTHAT_SIZE",
    "error": "BAKTHAT_ERROR",
}
CONTEXT_FILE_VARIABLE = "BAKTHAT_CONTEXT"
_TEXT_FIELDS = ("job", "source", "name", "destination", "stored_filename", "error")


@dataclass(frozen=True)
class RunContext:
    """What is being done, and after the work how it went.  Never holds a secret.

    ``action`` is the public action (``backup``, ``restore``, ``run`` for a job...);
    ``source`` is the display form of the source (a path, a URL without password, an
    argv); ``status`` is None until the work is over, then one of :data:`STATUSES`.
    """

    session_id: str
    action: str
    job: str | None = None
    source: str | None = None
    name: str | None = None
    destination: str | None = None
    dry_run: bool = False
    status: str | None = None
    stored_filename: str | None = None
    size: int | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        if not self.session_id or not self.action:
            raise ValueError("a RunContext needs a session_id and an action")
        if self.status is not None and self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}: use one of {', '.join(STATUSES)}")
        for field in _TEXT_FIELDS:
            value = getattr(self, field)
            if value is not None:
                object.__setattr__(self, field, redact(str(value)))

    @classmethod
    def for_source(
        cls,
        session_id: str,
        action: str,
        source: Any,
        *,
        job: str | None = None,
        destination: str | None = None,
        dry_run: bool = False,
    ) -> RunContext:
        """Given a parsed source (a :class:`bakthat.sources.Source`: its ``display`` and
        ``name``, never its spec or password), return the context of its run."""
        return cls(session_id, action, job=job, source=source.display, name=source.name,
                   destination=destination, dry_run=dry_run)

    def replace(self, **changes: Any) -> RunContext:
        """Return a copy with the given fields changed (TypeError for an unknown field)."""
        return dataclasses.replace(self, **changes)

    def finished(
        self,
        status: str,
        stored_filename: str | None = None,
        size: int | None = None,
        error: BaseException | str | None = None,
    ) -> RunContext:
        """Given how the work ended, return the context that after-hooks and handlers see."""
        message = None if error is None else (str(error) or type(error).__name__)
        return self.replace(status=status, stored_filename=stored_filename, size=size, error=message)

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON document: every field plus ``context_version``."""
        return {"context_version": CONTEXT_VERSION, **dataclasses.asdict(self)}

    def as_json(self) -> str:
        """Return :meth:`as_dict` as one line of JSON."""
        return json.dumps(self.as_dict(), sort_keys=True)

    def as_environment(self) -> dict[str, str]:
        """Return exactly the ``BAKTHAT_*`` variables of :data:`VARIABLES`, as strings.

        Unknown values are empty strings (so ``set -u`` scripts work); ``BAKTHAT_DRY_RUN``
        is ``true`` or empty.  ``BAKTHAT_CONTEXT`` is added by :func:`context_file`'s user.
        """
        environment = {}
        for field, variable in VARIABLES.items():
            value = getattr(self, field)
            if isinstance(value, bool):
                value = "true" if value else ""
            environment[variable] = "" if value is None else str(value)
        return environment


def runtime_directory() -> str | None:
    """Return the per-user runtime directory (``$XDG_RUNTIME_DIR``) if usable, else None."""
    candidate = os.environ.get("XDG_RUNTIME_DIR")
    if candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK):
        return candidate
    return None


@contextmanager
def context_file(context: RunContext) -> Iterator[str]:
    """Given a context, write its JSON to a private file; yield the path; remove it after.

    The file (mode 0600) is in a new directory (mode 0700) under the runtime directory,
    or the temp directory when there is none; both are removed on exit, whatever happens.
    """
    directory = tempfile.mkdtemp(prefix="bakthat-context-", dir=runtime_directory())
    try:
        path = os.path.join(directory, "context.json")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(context.as_json() + "\n")
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


_CURRENT: ContextVar[RunContext | None] = ContextVar("bakthat_run_context", default=None)


def current_context() -> RunContext | None:
    """Return the context of the work running in this thread or task, or None."""
    return _CURRENT.get()


@contextmanager
def using_context(context: RunContext) -> Iterator[RunContext]:
    """Make ``context`` the :func:`current_context` inside the block; restore the previous
    one after (contexts nest: a job's, then each source's)."""
    token = _CURRENT.set(context)
    try:
        yield context
    finally:
        _CURRENT.reset(token)
