"""The stack executor: hooks around one piece of work, in a fixed and documented order.

A :class:`Plan` runs, for one unit of work (a job, or one source of a job)::

    before[0], before[1], ... before[n-1]     declaration order
    the work (the activity callable)
    after[k], ... after[1], after[0]          reverse order: after[i] undoes before[i]
    on_error[0], on_error[1], ...             only if the unit failed
    finally[k], ... finally[0]                reverse order

Rules (zrepl's stack, with the cleanup guarantee zrepl lacks):

- ``after[i]`` and ``finally[i]`` are paired with ``before[i]`` and run only if
  ``before[i]`` **ran**, whether it succeeded or not (an ``xfs_freeze -f`` that timed
  out may still have frozen the filesystem).  An ``after`` without a matching ``before``
  runs if the work ran; a ``finally`` without one always runs.
- A failing ``before`` hook with ``err_is_fatal: true`` skips the remaining ``before``
  hooks and the work; the unit is failed.  Without it, the failure is logged and the
  run goes on.
- A failing ``after`` or ``finally`` hook with ``err_is_fatal: true`` marks the unit
  failed (what the work stored stays stored); the remaining hooks still run.  Failures
  of ``on_error`` hooks are only logged.
- During a dry run (``context.dry_run``) only hooks with ``dry_run: true`` run; the
  others are skipped (and a skipped ``before`` counts as not run).
- The work raising an Exception fails the unit; the exception is in the result, not
  raised.  A KeyboardInterrupt (or other BaseException) in a ``before`` hook or the work
  skips what is left of the front half, runs the cleanup hooks, then propagates; one
  during the cleanup hooks propagates at once.

``before`` hooks see the context as given; the others see it finished (status, stored
filename, size, error).  :meth:`Plan.report` can be called from another thread while
:meth:`Plan.run` runs.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bakthat.context import RunContext
from bakthat.errors import BakthatError, ConfigError
from bakthat.hooks.command import (
    DEFAULT_OUTPUT_KIB,
    DEFAULT_TIMEOUT,
    KILL_GRACE,
    PHASES,
    CommandHook,
    HookResult,
    log_result,
    parse_hook,
    run_hook,
)

STATES = ("pending", "running", "ok", "failed", "skipped")


class HookFailed(BakthatError):
    """A hook with ``err_is_fatal: true`` failed, so the unit of work failed (exit code 1)."""


@dataclass(frozen=True)
class HookSet:
    """The validated hooks of one unit of work, by phase."""

    before: tuple[CommandHook, ...] = ()
    after: tuple[CommandHook, ...] = ()
    on_error: tuple[CommandHook, ...] = ()
    finally_: tuple[CommandHook, ...] = ()

    def phase(self, name: str) -> tuple[CommandHook, ...]:
        """Return the hooks of a phase (``finally`` included, despite the attribute name)."""
        return getattr(self, "finally_" if name == "finally" else name)

    def __bool__(self) -> bool:
        return any(self.phase(name) for name in PHASES)


def parse_hooks(spec: Any, where: str = "hooks", default_timeout: float = DEFAULT_TIMEOUT) -> HookSet:
    """Given a ``hooks:`` mapping as written (or None) and its place in the configuration,
    return a HookSet.

    Each phase holds a list of hooks (a single hook is accepted too).  Raise ConfigError
    naming the key for an unknown phase or a bad hook (see :func:`parse_hook`).
    """
    if spec is None:
        return HookSet()
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: must be a mapping of before, after, on_error, finally")
    phases: dict[str, tuple[CommandHook, ...]] = {}
    for name, items in spec.items():
        if name not in PHASES:
            import difflib

            match = difflib.get_close_matches(str(name), PHASES, n=1)
            hint = f" (did you mean {match[0]!r}?)" if match else f" (use {', '.join(PHASES)})"
            raise ConfigError(f"{where}: unknown hook phase {name!r}{hint}")
        if items is None:
            items = []
        elif not isinstance(items, list):
            items = [items]
        phases["finally_" if name == "finally" else name] = tuple(
            parse_hook(item, f"{where}.{name}[{index}]", default_timeout) for index, item in enumerate(items)
        )
    return HookSet(**phases)


@dataclass(frozen=True)
class ActivityResult:
    """What the work reports when it returns: ``ok`` or ``partial`` (some items skipped),
    what it stored, and any value the caller wants back in :attr:`PlanResult.value`."""

    status: str = "ok"
    stored_filename: str | None = None
    size: int | None = None
    value: Any = None


@dataclass
class Step:
    """One step of a plan, as :meth:`Plan.report` shows it."""

    phase: str
    index: int | None
    label: str
    state: str = "pending"
    reason: str = ""
    fatal: bool = False
    started: float | None = None
    duration: float | None = None
    result: HookResult | None = None


@dataclass(frozen=True)
class PlanResult:
    """How the unit went: status (ok, partial, failed), the finished context, the work's
    value, the error that failed it (None if it did not fail), and every step."""

    status: str
    context: RunContext
    value: Any
    error: BaseException | None
    steps: tuple[Step, ...] = field(default_factory=tuple)

    @property
    def hook_results(self) -> list[HookResult]:
        """Return the results of the hooks that ran, in the order they ran."""
        ran = [step for step in self.steps if step.result is not None]
        return [step.result for step in sorted(ran, key=lambda step: step.started or 0.0)]


HookRunner = Callable[..., HookResult]


class Plan:
    """Hooks around one activity.  Build it, then call :meth:`run` once.

    ``activity(context)`` does the work and returns an :class:`ActivityResult` (or None
    for a plain ``ok``).  ``on_change(step)`` is called after each step changes state
    (for progress displays); it must not raise.  ``output_kib``, ``kill_grace`` and
    ``secrets`` are passed to :func:`~bakthat.hooks.command.run_hook`.
    """

    def __init__(
        self,
        hooks: HookSet,
        activity: Callable[[RunContext], ActivityResult | None],
        context: RunContext,
        *,
        activity_label: str = "work",
        output_kib: int = DEFAULT_OUTPUT_KIB,
        kill_grace: float = KILL_GRACE,
        secrets: Iterable[str] = (),
        on_change: Callable[[Step], None] | None = None,
        runner: HookRunner = run_hook,
    ):
        self.hooks = hooks
        self.activity = activity
        self.context = context
        self._options = {"output_kib": output_kib, "kill_grace": kill_grace, "secrets": list(secrets)}
        self._on_change = on_change
        self._runner = runner
        self._lock = threading.Lock()
        self._steps: dict[tuple[str, int | None], Step] = {}
        for index, hook in enumerate(hooks.before):
            self._add("before", index, hook)
        self._steps[("activity", None)] = Step("activity", None, activity_label)
        for name in ("after", "on_error", "finally"):
            order = range(len(hooks.phase(name)))
            for index in (order if name == "on_error" else reversed(order)):
                self._add(name, index, hooks.phase(name)[index])
        self._ran = False

    def _add(self, phase: str, index: int, hook: CommandHook) -> None:
        self._steps[(phase, index)] = Step(phase, index, hook.display(self._options["secrets"]))

    # -- reporting ------------------------------------------------------------------------

    def report(self) -> list[Step]:
        """Return a copy of every step in execution order, safe to call while running."""
        with self._lock:
            return [dataclasses.replace(step) for step in self._steps.values()]

    def _set(self, step: Step, state: str, reason: str = "", **changes: Any) -> None:
        with self._lock:
            step.state = state
            step.reason = reason
            for name, value in changes.items():
                setattr(step, name, value)
            copy = dataclasses.replace(step)
        if self._on_change is not None:
            self._on_change(copy)

    # -- running --------------------------------------------------------------------------

    def _hook(self, phase: str, index: int, hook: CommandHook, context: RunContext) -> HookResult:
        """Run one hook as a step; return its result (BaseException propagates)."""
        step = self._steps[(phase, index)]
        self._set(step, "running", started=time.time())
        try:
            result = self._runner(hook, context, phase, **self._options)
        except BaseException:
            self._set(step, "failed", "interrupted", duration=time.time() - (step.started or time.time()))
            raise
        log_result(result)
        fatal = not result.ok and hook.err_is_fatal and phase != "on_error"
        self._set(
            step, "ok" if result.ok else "failed", "" if result.ok else result.outcome(),
            fatal=fatal, duration=result.duration, result=result,
        )
        return result

    def _skip(self, phase: str, index: int | None, reason: str) -> None:
        self._set(self._steps[(phase, index)], "skipped", reason)

    def _runs(self, phase: str, index: int, hook: CommandHook, gate: bool, gate_reason: str) -> bool:
        if not gate:
            self._skip(phase, index, gate_reason)
            return False
        if self.context.dry_run and not hook.dry_run:
            self._skip(phase, index, "dry run (the hook does not set dry_run: true)")
            return False
        return True

    def run(self) -> PlanResult:
        """Run the plan; return its result.  Raise RuntimeError if run twice."""
        if self._ran:
            raise RuntimeError("a Plan runs once")
        self._ran = True
        hooks, context = self.hooks, self.context
        ran_before: set[int] = set()
        error: BaseException | None = None
        interrupt: BaseException | None = None
        for index, hook in enumerate(hooks.before):
            if error is not None:
                self._skip("before", index, "interrupted" if interrupt else "an earlier before hook failed")
                continue
            if not self._runs("before", index, hook, True, ""):
                continue
            ran_before.add(index)
            try:
                result = self._hook("before", index, hook, context)
            except BaseException as exc:  # noqa: BLE001 - cleanup hooks run, then it propagates
                error = interrupt = exc
                continue
            if not result.ok and hook.err_is_fatal:
                error = HookFailed(f"fatal before hook failed: {result.summary()}")

        outcome = ActivityResult()
        activity = self._steps[("activity", None)]
        activity_ran = error is None
        if not activity_ran:
            self._skip("activity", None, "interrupted" if interrupt else "a fatal before hook failed")
        else:
            self._set(activity, "running", started=time.time())
            try:
                outcome = self.activity(context) or ActivityResult()
                self._set(activity, "ok", outcome.status if outcome.status != "ok" else "",
                          duration=time.time() - (activity.started or 0))
            except Exception as exc:  # noqa: BLE001 - the unit fails; the caller reads the result
                error = exc
            except BaseException as exc:  # noqa: BLE001 - cleanup hooks run, then it propagates
                error = interrupt = exc
            if error is not None:
                self._set(activity, "failed", str(error) or type(error).__name__,
                          duration=time.time() - (activity.started or 0))

        def finished() -> RunContext:
            status = "failed" if error is not None else outcome.status
            return context.finished(status, outcome.stored_filename, outcome.size, error)

        for phase in ("after", "on_error", "finally"):
            items = list(enumerate(hooks.phase(phase)))
            for index, hook in (items if phase == "on_error" else reversed(items)):
                if phase == "on_error":
                    gate, why = error is not None, "the unit did not fail"
                elif index < len(hooks.before):
                    gate, why = index in ran_before, f"before[{index}] did not run"
                else:
                    gate, why = (activity_ran or phase == "finally"), "the work did not run"
                if not self._runs(phase, index, hook, gate, why):
                    continue
                result = self._hook(phase, index, hook, finished())
                if not result.ok and hook.err_is_fatal and phase != "on_error" and error is None:
                    error = HookFailed(f"fatal {phase} hook failed: {result.summary()}")
        if interrupt is not None:
            raise interrupt
        final = finished()
        return PlanResult(final.status or "ok", final, outcome.value, error, tuple(self.report()))


def format_report(steps: Iterable[Step]) -> str:
    """Given steps (from :meth:`Plan.report`), return one aligned line per step."""
    lines = []
    for step in steps:
        where = step.phase if step.index is None else f"{step.phase}[{step.index}]"
        took = "" if step.duration is None else f" ({step.duration:.2f} s)"
        why = f": {step.reason}" if step.reason else ""
        lines.append(f"{step.state:<8} {where:<12} {step.label}{took}{why}")
    return "\n".join(lines)
