"""Running jobs: ``bakthat run`` and :func:`run`, each source a failure domain.

For each job, in order (see :mod:`bakthat.hooks.plan` for the hook order)::

    job before hooks
      for each source:   source before hooks, the backup, source after hooks...
      rotation of each source that succeeded (the job's ``rotation``, if any)
    job after / on_error / finally hooks

- A source that fails (its dump fails, a fatal source hook, a missing path) never stops
  the others; nothing of it is catalogued as a backup and it is not rotated.
- The job is ``ok`` when every source is, ``failed`` when none succeeded or a fatal
  job hook failed, ``partial`` otherwise (exit status 0, 1, 3; a ``partial`` tar, with
  unreadable entries, counts as partial too).
- Every job run, source run and hook run is recorded in the catalog (tables
  ``job_runs``, ``source_runs``, ``hook_runs``) and returned in a :class:`RunResult`.
- Progress is published (:mod:`bakthat.status`) under the job run's session id, so
  ``bakthat status`` shows the job, the current source and its phase.
- Each source's backup is a normal ``backup`` action: its ``before_backup`` and
  ``on_backup`` events fire with the source's session id, the one its hooks see as
  ``BAKTHAT_SESSION_ID``, and ``bakthat.current_context()`` returns its context.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bakthat.context import RunContext, using_context
from bakthat.errors import BakthatError, ConfigError, Interrupted, PartialFailure
from bakthat.hooks.command import DEFAULT_TIMEOUT, HookResult
from bakthat.hooks.plan import ActivityResult, Plan, PlanResult, parse_hooks
from bakthat.hooks.record import plan_options as _plan_options
from bakthat.hooks.record import record_hooks as _record_hooks
from bakthat.jobs import Job, parse_jobs
from bakthat.settings import source_of
from bakthat.sources import Source
from bakthat.utils import strict_keywords

log = logging.getLogger("bakthat")

#: Exit status of the ``bakthat`` command for each job status.
EXIT_CODES = {"ok": 0, "partial": PartialFailure.exit_code, "failed": 1}


class JobFailed(BakthatError):
    """Every source of a job failed (exit status 1)."""


@dataclass
class SourceRunResult:
    """How one source of a job went.  ``status`` is ok, partial, failed or skipped (a
    fatal job hook stopped the job before it); ``rotated`` the backups rotation deleted
    (None: not rotated)."""

    position: int
    name: str
    kind: str
    source: str
    session_id: str
    status: str = "skipped"
    stored_filename: str | None = None
    size: int | None = None
    source_size: int | None = None
    started: float = 0.0
    duration: float = 0.0
    error: str | None = None
    rotated: int | None = None
    hooks: list[HookResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["hooks"] = [_hook_dict(result) for result in self.hooks]
        return data


@dataclass
class JobResult:
    """How one job run went: its status (ok, partial, failed), each source, its own hooks."""

    job: str
    session_id: str
    status: str
    started: float
    duration: float
    dry_run: bool = False
    error: str | None = None
    sources: list[SourceRunResult] = field(default_factory=list)
    hooks: list[HookResult] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job, "session_id": self.session_id, "status": self.status, "exit_code": self.exit_code,
            "started": self.started, "duration": self.duration, "dry_run": self.dry_run, "error": self.error,
            "sources": [source.to_dict() for source in self.sources],
            "hooks": [_hook_dict(result) for result in self.hooks],
        }


@dataclass
class RunResult:
    """The jobs of one ``run`` call, in order; ``status`` is the worst of theirs."""

    jobs: list[JobResult]

    @property
    def status(self) -> str:
        states = {job.status for job in self.jobs}
        return "failed" if "failed" in states else "partial" if "partial" in states else "ok"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def __getitem__(self, name: str) -> JobResult:
        for job in self.jobs:
            if job.job == name:
                return job
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "exit_code": self.exit_code, "jobs": [job.to_dict() for job in self.jobs]}


def _hook_dict(result: HookResult) -> dict[str, Any]:
    return {**asdict(result), "ok": result.ok}


@strict_keywords()
def run(
    job: str | Sequence[str] | None = None,
    profile: str = "default",
    config: str | None = None,
    conf: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    password: str | None = None,
    prompt: str | bool = "no",
) -> RunResult:
    """Run the named job(s) of a profile (every job, in declaration order, when ``job`` is
    None) and return a :class:`RunResult` (``.status``, ``.exit_code``, ``.jobs``).

    A failing source or job is in the result, never raised.  ``password`` and ``prompt``
    are :func:`bakthat.backup`'s (asked at most once per job; default: no prompt, so
    an unattended run never waits).  With ``dry_run``, each source is planned but
    nothing is stored, and only hooks with ``dry_run: true`` run.

    Raise ConfigError if the profile has no jobs or a named job does not exist;
    Interrupted on Ctrl-C or SIGTERM (after the cleanup hooks ran and the run was
    recorded as interrupted).
    """
    from bakthat.conf import get_profile

    settings = get_profile(profile, config, conf)
    timeout = float(settings.get("hook_timeout") or DEFAULT_TIMEOUT)
    jobs = parse_jobs(settings.get("jobs"), timeout)
    shown = f"{source_of(settings)}: profile {profile!r}"
    if not jobs:
        raise ConfigError(f"{shown} has no jobs: add a jobs: mapping (see docs/jobs.md)")
    names = list(jobs) if job is None else [job] if isinstance(job, str) else list(job)
    for name in names:
        if name not in jobs:
            raise ConfigError(f"{shown}: no job {name!r} (jobs: {', '.join(jobs)})")
    results = []
    for name in names:
        results.append(_JobRunner(jobs[name], settings, profile, config, conf, bool(dry_run), password, prompt).run())
    return RunResult(results)


class _JobRunner:
    """One run of one job (see the module docstring)."""

    def __init__(self, job: Job, settings: Mapping[str, Any], profile: str, config: str | None,
                 conf: Mapping[str, Any] | None, dry_run: bool, password: str | None, prompt: str | bool):
        self.job = job
        self.settings = settings.replace(**job.overrides) if hasattr(settings, "replace") else {**settings, **job.overrides}
        self.profile, self.config, self.conf = profile, config, conf
        self.dry_run = dry_run
        self.password, self.prompt = password, prompt
        self.session_id = str(uuid.uuid4())
        self.destination = job.destination or settings.get("default_destination") or "local"
        self.results: list[SourceRunResult] = []
        self.publisher: Any = None

    # -- the job --------------------------------------------------------------------------

    def run(self) -> JobResult:
        from bakthat import models

        started = time.time()
        context = RunContext(self.session_id, "run", job=self.job.name, destination=self.destination,
                             dry_run=self.dry_run)
        self.results = [
            SourceRunResult(index, source.name, source.kind, source.display, str(uuid.uuid4()))
            for index, source in enumerate(self.job.sources)
        ]
        if not self.dry_run:
            models.bind_settings(self.settings)
            _mark_crashed_runs()
            models.JobRuns.create(session_id=self.session_id, job=self.job.name, profile=self.profile,
                                  host=socket.gethostname(), pid=os.getpid(), dry_run=False, started=started,
                                  status="running")
            self.publisher = _job_publisher(self.session_id, self.job.name)
            if self.publisher is not None:
                self.publisher.expect(self._estimates())
        log.info("Job %s: %d source(s)%s", self.job.name, len(self.job.sources), " (dry run)" if self.dry_run else "")
        plan = Plan(self.job.hooks, self._sources, context, activity_label=f"job {self.job.name}",
                    on_change=self._on_step, **_plan_options(self.settings))
        try:
            with using_context(context):
                outcome = plan.run()
        except BaseException as exc:
            self._finish(started, "failed", "interrupted" if isinstance(exc, KeyboardInterrupt) else exc,
                         _ran(plan), interrupted=True)
            if isinstance(exc, KeyboardInterrupt):
                raise Interrupted(f"job {self.job.name} interrupted; the cleanup hooks ran") from exc
            raise
        status = outcome.status if outcome.error is None else "failed"
        return self._finish(started, status, outcome.error, outcome.hook_results)

    def _finish(self, started: float, status: str, error: BaseException | str | None, hooks: list[HookResult],
                interrupted: bool = False) -> JobResult:
        from bakthat import models

        message = None if error is None else (str(error) or type(error).__name__)
        result = JobResult(self.job.name, self.session_id, status, started, time.time() - started, self.dry_run,
                           message, self.results, list(hooks))
        if not self.dry_run:
            _record_hooks(hooks, self.session_id, None)
            models.JobRuns.update(finished=time.time(), status="interrupted" if interrupted else status,
                                  error=message).where(models.JobRuns.session_id == self.session_id).execute()
        if self.publisher is not None:
            self.publisher.update(sources=self._source_states(), force=True)
            self.publisher.finish("interrupted" if interrupted else status, error)
        level = logging.INFO if status == "ok" else logging.WARNING
        log.log(level, "Job %s: %s (%s)", self.job.name, status,
                ", ".join(f"{source.name} {source.status}" for source in self.results))
        return result

    def _estimates(self) -> list[tuple[str, Any]]:
        """Return each source's name and estimate (its last backup at the level it will
        likely get: the profile's, or any level under ``auto``), for the job's ETA; each
        backup refines its own once its level is chosen."""
        from bakthat import estimates

        requested = self.settings.get("level") or "full"
        return [
            (source.name, estimates.previous(
                source.name, destination=self.destination, profile=self.profile, dump=source.kind != "path",
                level="full" if source.kind != "path" else None if requested == "auto" else requested,
            ))
            for source in self.job.sources
        ]

    def _on_step(self, step: Any) -> None:
        if self.publisher is not None and step.phase != "activity" and step.state == "running":
            self.publisher.update(phase=f"job {step.phase} hook", source=None, name=None)

    def _source_states(self) -> list[dict[str, Any]]:
        return [{"name": source.name, "source": source.source, "status": source.status,
                 "stored_filename": source.stored_filename, "error": source.error} for source in self.results]

    def _sources(self, context: RunContext) -> ActivityResult:
        """The job's work: every source in turn, then the rotation of those that succeeded."""
        secret = self._secret()
        for source, result in zip(self.job.sources, self.results):
            self._source(source, result, secret)
        self._rotate()
        states = [result.status for result in self.results]
        if all(state == "failed" for state in states):
            raise JobFailed(f"every source of job {self.job.name} failed")
        return ActivityResult("ok" if all(state == "ok" for state in states) else "partial")

    def _secret(self) -> dict[str, Any]:
        """Return the password arguments every backup of this job gets (asked once)."""
        from bakthat import passwords

        secret = passwords.for_backup(self.password, self.prompt, self.settings, ask=not self.dry_run)
        if secret.passphrase is not None:
            return {"password": secret.passphrase, "prompt": "no"}
        if not secret.recipients and self.password is None and self.settings.get("require_encryption") is None:
            # Not asking is run's default, not a choice of plaintext: say it once per job.
            passwords.warn_unencrypted(f"every backup of job {self.job.name}", dry_run=self.dry_run)
        return {"password": "" if secret.chosen else None, "prompt": "no"}

    # -- one source ---------------------------------------------------------------------

    def _source(self, source: Source, result: SourceRunResult, secret: Mapping[str, Any]) -> None:
        where = f"jobs.{self.job.name}.sources[{result.position}].hooks"
        hooks = parse_hooks(source.hooks, where, float(self.settings.get("hook_timeout") or DEFAULT_TIMEOUT))
        context = RunContext(result.session_id, "backup", job=self.job.name, source=source.display,
                             name=source.name, destination=self.destination, dry_run=self.dry_run)
        result.started = time.time()
        if self.publisher is not None:
            self.publisher.update(source=source.display, name=source.name, phase="source hooks",
                                  sources=self._source_states())
        log.info("Job %s: source %s (%s)", self.job.name, source.name, source.display)
        secrets = source.secrets()
        plan = Plan(hooks, lambda current: self._backup(source, current, secret), context,
                    activity_label=f"backup {source.name}", **_plan_options(self.settings, secrets))
        try:
            outcome: PlanResult = plan.run()
        except BaseException:  # interrupted: its cleanup hooks ran; record it, then stop the job
            result.duration = time.time() - result.started
            result.status, result.error, result.hooks = "failed", "interrupted", _ran(plan)
            if not self.dry_run:
                self._record_source(result)
                _record_hooks(result.hooks, self.session_id, result.session_id)
            raise
        result.duration = time.time() - result.started
        result.hooks = outcome.hook_results
        row = outcome.value
        if row is not None and not self.dry_run:
            result.stored_filename = row.stored_filename
            result.size = row.size
            result.source_size = row.source_size
        elif row is not None:
            result.stored_filename = row.stored_filename
        result.status = outcome.status if outcome.error is None else "failed"
        result.error = None if outcome.error is None else (str(outcome.error) or type(outcome.error).__name__)
        if result.error:
            log.warning("Job %s: source %s failed: %s", self.job.name, source.name, result.error)
        if not self.dry_run:
            self._record_source(result)
            _record_hooks(result.hooks, self.session_id, result.session_id)
        if self.publisher is not None:
            self.publisher.update(sources=self._source_states(), force=True)

    def _record_source(self, result: SourceRunResult) -> None:
        from bakthat import models

        models.SourceRuns.create(
            job_run=self.session_id, session_id=result.session_id, position=result.position, kind=result.kind,
            name=result.name, source=result.source, status=result.status,
            stored_filename=result.stored_filename, size=result.size, source_size=result.source_size,
            started=result.started, duration=result.duration, error=result.error,
        )

    def _backup(self, source: Source, context: RunContext, secret: Mapping[str, Any]) -> ActivityResult:
        from bakthat import core

        handoff = core.Handoff(context, self.publisher, self.job.overrides)
        target: Any = source.path if source.kind == "path" else source  # type: ignore[attr-defined]
        with core.handing_off(handoff):
            row = core.backup(
                target, destination=self.job.destination, profile=self.profile, config=self.config, conf=self.conf,
                tags=self.job.tags or None, custom_filename=source.name if source.kind == "path" else None,
                dry_run=self.dry_run, **secret,
            )
        partial = bool((getattr(row, "metadata", None) or {}).get("partial"))
        return ActivityResult("partial" if partial else "ok", row.stored_filename, getattr(row, "size", None), row)

    # -- rotation -------------------------------------------------------------------------

    def _rotate(self) -> None:
        """Rotate the names of the sources that succeeded, with the job's policy."""
        from bakthat.models import SourceRuns
        from bakthat.rotation import rotate_backups

        if self.job.rotation is None or self.dry_run:
            return
        for result in self.results:
            if result.status != "ok":
                continue
            if self.publisher is not None:
                self.publisher.update(source=result.source, name=result.name, phase="rotate")
            try:
                deleted = rotate_backups(result.name, destination=self.job.destination, profile=self.profile,
                                         config=self.config, conf=self.conf, rotation=self.job.rotation)
            except BakthatError as exc:
                result.status, result.error = "partial", f"stored, but its rotation failed: {exc}"
                log.warning("Job %s: source %s: %s", self.job.name, result.name, result.error)
            else:
                result.rotated = len(deleted)
            SourceRuns.update(status=result.status, error=result.error, rotated=result.rotated).where(
                SourceRuns.session_id == result.session_id).execute()


def _mark_crashed_runs() -> None:
    """Record as ``crashed`` the job runs of this host that the catalog still holds as
    ``running`` although their process is gone (killed, or the machine stopped), so the
    catalog does not report them running forever.  The catalog must be bound."""
    from bakthat import models
    from bakthat.process import pid_alive

    JobRuns = models.JobRuns
    stale = [
        run.session_id
        for run in JobRuns.select(JobRuns.session_id, JobRuns.pid).where(
            (JobRuns.status == "running") & (JobRuns.host == socket.gethostname())
        )
        if run.pid != os.getpid() and not pid_alive(run.pid)
    ]
    if stale:
        log.warning("%d earlier job run(s) ended without recording how; recorded as crashed", len(stale))
        JobRuns.update(status="crashed", error="the process ended without recording how the job ended").where(
            JobRuns.session_id.in_(stale)
        ).execute()


def _ran(plan: Plan) -> list[HookResult]:
    """Return the results of the hooks of an interrupted plan that ran, in order."""
    steps = [step for step in plan.report() if step.result is not None]
    return [step.result for step in sorted(steps, key=lambda step: step.started or 0.0)]


def _job_publisher(session_id: str, job: str) -> Any:
    from bakthat.status import StatusPublisher

    try:
        return StatusPublisher(session_id, "run", job=job).start()
    except (OSError, BakthatError, ValueError) as exc:
        log.warning("progress of job %s is not published: %s", job, exc)
        return None
