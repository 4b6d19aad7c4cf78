"""Hooks and the catalog: recording hook runs, and the profile's hooks around a plain backup.

:func:`record_hooks` writes :class:`~bakthat.hooks.command.HookResult` rows to the
catalog's ``hook_runs`` table (see docs/jobs.md); :func:`around_backup` runs the
profile's ``hooks:`` around one ``bakthat backup`` (jobs run theirs in
:mod:`bakthat.jobs_run`).  Kept apart from the job runner so that :mod:`bakthat.core`
reaches it without an import cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bakthat.context import RunContext
from bakthat.hooks.command import DEFAULT_OUTPUT_KIB, DEFAULT_TIMEOUT, HookResult
from bakthat.hooks.plan import ActivityResult, Plan, parse_hooks


def record_hooks(results: Sequence[HookResult], job_run: str, source_run: str | None) -> None:
    """Given hook results, the run's session id and the source run's (None for a job or
    profile hook), write one ``hook_runs`` row each to the bound catalog."""
    from bakthat import models

    for result in results:
        models.HookRuns.create(
            job_run=job_run, source_run=source_run, hook=result.where, phase=result.phase, command=result.command,
            started=result.started, duration=result.duration, exit_status=result.exit_status,
            timed_out=result.timed_out, output=result.output, output_bytes=result.output_bytes, error=result.error,
        )


def plan_options(settings: Mapping[str, Any], secrets: Sequence[str] = ()) -> dict[str, Any]:
    """Return the :class:`~bakthat.hooks.plan.Plan` options the settings give (output
    bound, ``hook_output_kib``) with ``secrets`` to mask."""
    return {"output_kib": int(settings.get("hook_output_kib") or DEFAULT_OUTPUT_KIB), "secrets": list(secrets)}


def around_backup(settings: Mapping[str, Any], context: RunContext, work: Callable[[RunContext], Any]) -> Any:
    """Given the settings of a plain backup (with a ``hooks:`` key), its context and the
    work, run the profile's hooks around the work; record them; return the work's value.

    Raise what the work raised, or HookFailed if a fatal hook failed.
    """
    from bakthat import models

    timeout = float(settings.get("hook_timeout") or DEFAULT_TIMEOUT)
    hooks = parse_hooks(settings.get("hooks"), "hooks", timeout)

    def activity(current: RunContext) -> ActivityResult:
        value = work(current)
        partial = bool((getattr(value, "metadata", None) or {}).get("partial"))
        return ActivityResult("partial" if partial else "ok", getattr(value, "stored_filename", None),
                              getattr(value, "size", None), value)

    result = Plan(hooks, activity, context, activity_label="backup", **plan_options(settings)).run()
    if not context.dry_run:
        models.bind_settings(settings)
        record_hooks(result.hook_results, context.session_id, None)
    if result.error is not None:
        raise result.error
    return result.value
