"""The declared events, the session id, and dispatch with explicit failure semantics.

``bakthat.events`` is an :class:`events.Events` object whose names are declared: a typo
such as ``events.on_bakup`` raises :class:`events.EventsException`.  Handlers are checked
at registration: one that cannot accept the event's arguments is refused with TypeError.

Semantics, per kind of event:

``before_<action>(session_id)``
    Fired first.  A handler that raises **vetoes** the action: the remaining handlers do
    not run, nothing is stored or changed, and :class:`~bakthat.errors.VetoedError` is
    raised to the caller (after ``on_failure`` has been fired).
``on_<action>(session_id, result)``
    Fired just before the action returns, once its work is durable.  A handler that
    raises is logged and recorded; the other handlers still run, and the result (the
    stored archive, the catalog row) is kept.
``on_failure(session_id, action, exception)``
    Fired when an action fails (including a veto).  Handlers are called robustly like
    ``on_`` handlers; the original exception is then re-raised.

A dry run (``dry_run=True``) fires the same events.  Handlers tell it from the session:
``current_session()`` returns the running :class:`Session`, whose ``dry_run`` is true,
and the result given to ``on_`` handlers has ``dry_run = True`` (a plan, not a row).

Ctrl-C (or SIGTERM) while the ``on_`` handlers run, after the action's work is durable,
stops the remaining handlers and raises :class:`~bakthat.errors.Interrupted` saying what
was kept; ``on_failure`` is not fired, since the action itself succeeded.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import events as _events_package

from bakthat.errors import Interrupted, VetoedError

log = logging.getLogger("bakthat")

ACTIONS = ("backup", "restore", "delete", "delete_older_than", "rotate_backups", "check")
EVENT_NAMES: tuple[str, ...] = tuple(
    f"{prefix}_{action}" for action in ACTIONS for prefix in ("before", "on")
) + ("on_failure",)


def _arity(name: str) -> int:
    if name == "on_failure":
        return 3
    return 1 if name.startswith("before_") else 2


class EventSlot(_events_package.events._EventSlot):
    """An event slot that refuses handlers whose signature cannot take the event's arguments."""

    def __iadd__(self, handler: Callable[..., Any]) -> EventSlot:
        if not callable(handler):
            raise TypeError(f"{self.__name__} handler must be callable, got {handler!r}")
        arity = _arity(self.__name__)
        try:
            signature = inspect.signature(handler)
        except (TypeError, ValueError):  # builtins without a signature: accept
            signature = None
        if signature is not None:
            try:
                signature.bind(*range(arity))
            except TypeError:
                expected = "(session_id)" if arity == 1 else (
                    "(session_id, result)" if arity == 2 else "(session_id, action, exception)"
                )
                raise TypeError(
                    f"{getattr(handler, '__qualname__', handler)!r} cannot handle "
                    f"{self.__name__}: handlers are called as {expected}"
                ) from None
        return super().__iadd__(handler)


def new_events() -> _events_package.Events:
    """Return a fresh events object with bakthat's declared event names."""
    return _events_package.Events(EVENT_NAMES, event_slot_cls=EventSlot)


events = new_events()


@dataclass
class Session:
    """One run of one public action: its uuid4 id, whether it is a dry run, and the
    handler errors it collected."""

    action: str
    dry_run: bool = False
    session_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    handler_errors: list[tuple[str, BaseException]] = field(default_factory=list)

    @property
    def context(self) -> Any:
        """Return the :class:`bakthat.context.RunContext` of this session's work (what is
        backed up, the job, the destination...), or None if the action publishes none."""
        from bakthat.context import current_context

        found = current_context()
        return found if found is not None and found.session_id == self.session_id else None

    def finish(self, result: Any) -> Any:
        """Given the action's result, fire ``on_<action>`` robustly and return the result.

        Raise Interrupted (saying the result is kept) if Ctrl-C or SIGTERM arrives while
        a handler runs; the remaining handlers are not called.
        """
        try:
            self.handler_errors.extend(fire_robust(f"on_{self.action}", self.session_id, result))
        except KeyboardInterrupt:
            error = Interrupted(
                f"interrupted while the on_{self.action} handlers ran, after the {self.action} was complete: "
                f"{_describe(result)}; the remaining on_{self.action} handlers did not run"
            )
            error.kept = result  # type: ignore[attr-defined]
            raise error from None
        return result


def _describe(result: Any) -> str:
    """Say what an action's result means for the user: what is kept, or what was done."""
    if getattr(result, "dry_run", False):
        return "it was a dry run, nothing was changed"
    if isinstance(result, list):
        names = ", ".join(str(getattr(row, "stored_filename", row)) for row in result[:5])
        more = f" and {len(result) - 5} more" if len(result) > 5 else ""
        return f"{len(result)} backup(s) were deleted ({names}{more})" if result else "nothing was deleted"
    stored = getattr(result, "stored_filename", None)
    if stored is None:
        return f"{result!r} is done"
    if getattr(result, "is_deleted", False):
        return f"{stored} is deleted"
    return f"{stored} is stored, catalogued and kept"


_CURRENT: ContextVar[Session | None] = ContextVar("bakthat_session", default=None)


def current_session() -> Session | None:
    """Return the session of the action running in this thread/context, if any."""
    return _CURRENT.get()


def _handlers(name: str) -> list[Callable[..., Any]]:
    return list(getattr(events, name))


def _handler_name(handler: Callable[..., Any]) -> str:
    return getattr(handler, "__qualname__", None) or repr(handler)


def fire_robust(name: str, *args: Any) -> list[tuple[str, BaseException]]:
    """Given an event name and its arguments, call every handler; return the failures.

    A handler that raises (any Exception) is logged with its traceback and does not stop
    the others.  Return a list of ``(handler name, exception)``.
    """
    failures = []
    for handler in _handlers(name):
        try:
            handler(*args)
        except Exception as exc:  # noqa: BLE001 - on_ handlers must never stop the others
            log.warning("%s handler %s failed: %s", name, _handler_name(handler), exc, exc_info=True)
            failures.append((_handler_name(handler), exc))
    return failures


@contextmanager
def session(action: str, dry_run: bool = False, session_id: str | None = None) -> Iterator[Session]:
    """Given an action name (and whether it is a dry run), run its block in a new session.

    ``session_id`` is a uuid4 made for it unless the caller made one already (so that
    the run context, the command hooks and the events carry the same id).

    Fire ``before_<action>`` on entry; a raising handler is turned into VetoedError.  On
    an exception from the block (or a veto), fire ``on_failure`` robustly and re-raise
    (not for an interruption after the work was complete, see :meth:`Session.finish`).
    The block calls :meth:`Session.finish` with its result to fire ``on_<action>``.
    """
    current = Session(action, dry_run=bool(dry_run))
    if session_id is not None:
        current.session_id = session_id
    token = _CURRENT.set(current)
    try:
        for handler in _handlers(f"before_{action}"):
            try:
                handler(current.session_id)
            except Exception as exc:
                raise VetoedError(
                    f"{action} refused by before_{action} handler {_handler_name(handler)}: {exc}"
                ) from exc
        yield current
    except BaseException as exc:
        if not hasattr(exc, "kept"):
            fire_robust("on_failure", current.session_id, action, exc)
        raise
    finally:
        _CURRENT.reset(token)
