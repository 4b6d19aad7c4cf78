"""Record bakthat's events, with their session ids, to assert on them in a test.

::

    with EventRecorder() as recorder:
        bakthat.backup("mydir")
    assert recorder.names() == ["before_backup", "on_backup"]
    assert recorder.session("backup").result.stored_filename.startswith("mydir.")

The recorder subscribes one handler per declared event (``bakthat.eventing.EVENT_NAMES``)
on entry and removes exactly those on exit.  Its ``before_`` handlers never raise, so
recording cannot veto an action.  Nothing is done at import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

__all__ = ["EventRecorder", "RecordedEvent", "RecordedSession"]


@dataclass(frozen=True)
class RecordedEvent:
    """One event as a handler received it.

    ``name`` is the event (``on_backup``), ``action`` the action it belongs to
    (``backup``), ``session_id`` the uuid4 string of the action's session; ``result``
    is what an ``on_<action>`` handler received (a catalog row, a list of rows or a dry
    run's plan), ``exception`` what an ``on_failure`` handler received.
    """

    name: str
    action: str
    session_id: str
    result: Any = None
    exception: BaseException | None = None


@dataclass
class RecordedSession:
    """The events of one session id, in the order they fired."""

    session_id: str
    events: list[RecordedEvent] = field(default_factory=list)

    @property
    def action(self) -> str:
        return self.events[0].action

    @property
    def names(self) -> list[str]:
        return [event.name for event in self.events]

    @property
    def result(self) -> Any:
        """The result given to ``on_<action>``; raise AssertionError if it did not fire."""
        for event in self.events:
            if event.name == f"on_{event.action}":
                return event.result
        raise AssertionError(f"session {self.session_id} ({self.action}) has no on_ event: {self.names}")

    @property
    def exception(self) -> BaseException:
        """The exception given to ``on_failure``; raise AssertionError if it did not fire."""
        for event in self.events:
            if event.name == "on_failure":
                assert event.exception is not None
                return event.exception
        raise AssertionError(f"session {self.session_id} ({self.action}) has no on_failure event: {self.names}")

    @property
    def failed(self) -> bool:
        return any(event.name == "on_failure" for event in self.events)


class EventRecorder:
    """Given event names (default: every declared event), record them while active.

    Use it as a context manager (or call :meth:`start` and :meth:`stop`).  Raise
    ValueError for a name that is not a declared event, RuntimeError when started twice.
    """

    def __init__(self, names: Iterable[str] | None = None) -> None:
        from bakthat.eventing import EVENT_NAMES

        chosen = tuple(EVENT_NAMES if names is None else names)
        unknown = [name for name in chosen if name not in EVENT_NAMES]
        if unknown:
            raise ValueError(f"not bakthat events: {', '.join(unknown)} (declared: {', '.join(EVENT_NAMES)})")
        self.watched = chosen
        self.events: list[RecordedEvent] = []
        self._handlers: dict[str, Callable[..., None]] = {}

    # -- subscribing ------------------------------------------------------------------------

    def start(self) -> EventRecorder:
        """Subscribe to the watched events; return self."""
        from bakthat.eventing import events

        if self._handlers:
            raise RuntimeError("this EventRecorder is already recording")
        for name in self.watched:
            handler = self._handler_for(name)
            getattr(events, name).__iadd__(handler)
            self._handlers[name] = handler
        return self

    def stop(self) -> None:
        """Unsubscribe the recorder's handlers (and only those); the records are kept."""
        from bakthat.eventing import events

        for name, handler in self._handlers.items():
            slot = getattr(events, name)
            slot.targets[:] = [target for target in slot.targets if target is not handler]
        self._handlers.clear()

    def __enter__(self) -> EventRecorder:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def recording(self) -> bool:
        return bool(self._handlers)

    def _handler_for(self, name: str) -> Callable[..., None]:
        if name == "on_failure":

            def on_failure(session_id: str, action: str, exception: BaseException) -> None:
                self.events.append(RecordedEvent(name, action, session_id, exception=exception))

            return on_failure
        prefix, action = name.split("_", 1)
        if prefix == "before":

            def before(session_id: str) -> None:
                self.events.append(RecordedEvent(name, action, session_id))

            return before

        def on(session_id: str, result: Any) -> None:
            self.events.append(RecordedEvent(name, action, session_id, result=result))

        return on

    # -- reading ----------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Return the names of the recorded events, in firing order."""
        return [event.name for event in self.events]

    def of(self, name: str) -> list[RecordedEvent]:
        """Return the recorded events called ``name``, in firing order."""
        return [event for event in self.events if event.name == name]

    def sessions(self) -> list[RecordedSession]:
        """Return the recorded sessions, in the order their first event fired."""
        by_id: dict[str, RecordedSession] = {}
        for event in self.events:
            by_id.setdefault(event.session_id, RecordedSession(event.session_id)).events.append(event)
        return list(by_id.values())

    def session(self, action: str) -> RecordedSession:
        """Return the one recorded session of ``action``.

        Raise AssertionError (listing what was recorded) if there is none or more than
        one, or if its events name more than one action.
        """
        found = [recorded for recorded in self.sessions() if recorded.action == action]
        if len(found) != 1:
            raise AssertionError(
                f"expected one {action} session, recorded {len(found)}: "
                + "; ".join(f"{s.session_id}: {s.names}" for s in self.sessions())
            )
        mixed = {event.action for event in found[0].events}
        if mixed != {action}:
            raise AssertionError(f"session {found[0].session_id} mixes actions {sorted(mixed)}: {found[0].names}")
        return found[0]

    def clear(self) -> None:
        """Forget what was recorded (the recorder keeps recording if it was)."""
        self.events.clear()
