"""Retention: ``rotate_backups`` (grandfather-father-son) and ``delete_older_than``.

The decision is :mod:`bakthat.rotation_plan`'s pure planning (a :class:`Plan` from the
live rows of one name, a policy and ``now``).  This module carries a plan out:

1. resolve the settings and the destination, read the policy (ConfigError if absent
   or malformed);
2. take an exclusive lock for (destination, name), so two runs never plan from the
   same rows at once;
3. read the rows from the catalog *after* taking the lock, decide, and refuse when
   the policy's own rules would keep nothing;
4. delete what the plan says, each backup in the safe order of
   :func:`bakthat.core.delete_row`, continuing past failures and raising
   PartialFailure at the end if some failed.

The planning names (:class:`Policy`, :func:`plan_rotation`, :func:`plan_age`,
:func:`parse_interval`, ...) are re-exported here: ``bakthat.rotation.plan_rotation``
is the documented way to plan without deleting (docs/retention.md).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from bakthat import profile_keys
from bakthat.errors import ConfigError, PartialFailure
from bakthat.locks import DEFAULT_LOCK_TIMEOUT, lock_directory, name_lock  # noqa: F401 - re-exported
from bakthat.rotation_plan import (  # noqa: F401 - re-exported: the documented planning API
    DEFAULT_FIRST_WEEK_DAY,
    DEFAULT_PIN_TAG,
    KEEP_MODES,
    POLICY_KEYS,
    UNITS,
    WEEKDAYS,
    Decision,
    Plan,
    Policy,
    RefusedError,
    _pin_tag,
    bucket_key,
    bucket_label,
    parse_interval,
    plan_age,
    plan_rotation,
    utc_iso,
)
from bakthat.settings import profile_of, source_of
from bakthat.utils import strict_keywords

log = logging.getLogger("bakthat")

#: The profile keys read here, declared in :mod:`bakthat.profile_keys` (read without importing this module).
SETTINGS = profile_keys.ROTATION


class DeletedBackups(list):  # type: ignore[type-arg]
    """The list of rows a retention action deleted (or, in a dry run, would delete).

    It is a plain list, as bakthat 0.6 returned, with the :class:`Plan` attached as
    ``plan`` for callers that want the reasons.
    """

    plan: Plan

    def __init__(self, rows: list[Any], plan: Plan):
        super().__init__(rows)
        self.plan = plan

    @property
    def dry_run(self) -> bool:
        """True for the result of a dry run (nothing was deleted)."""
        return self.plan.dry_run


# -- actions ------------------------------------------------------------------------


def _scope(ctx: Any, name: str, profile: str) -> tuple[list[Any], list[Any]]:
    """Return (live rows, rows left 'deleting') of ``name`` in this destination and profile."""
    from bakthat import models
    from bakthat.actions import backups_of

    live = backups_of(ctx, name, profile=profile)
    pending = backups_of(ctx, name, profile=profile, include_deleted=True).where(models.Backups.state == "deleting")
    return list(live), list(pending)


def _execute(ctx: Any, plan: Plan) -> DeletedBackups:
    """Delete the plan's rows oldest first in the safe order; collect failures."""
    from bakthat import core, models

    deleted: list[Any] = []
    for row in [*plan.to_retry, *plan.to_delete]:
        fresh = models.Backups.get_or_none(models.Backups.id == row.id) if getattr(row, "id", None) else row
        if fresh is None or (fresh.state == "deleted"):
            log.info("%s was deleted meanwhile; skipped", row.stored_filename)
            continue
        try:
            core.delete_row(ctx, fresh)
        except Exception as exc:  # noqa: BLE001 - one failure must not stop the others
            log.error("Could not delete %s: %s (the row stays marked 'deleting' for a retry)", row.stored_filename, exc)
            plan.failed.append((fresh, str(exc)))
        else:
            deleted.append(fresh)
    plan.deleted = deleted
    return DeletedBackups(deleted, plan)


def _raise_partial(plan: Plan) -> None:
    names = "; ".join(f"{row.stored_filename}: {error}" for row, error in plan.failed)
    error = PartialFailure(
        f"{plan.action} {plan.name!r}: {len(plan.failed)} backup(s) could not be deleted and stay marked "
        f"'deleting' for a retry ({names}); {len(plan.deleted)} deleted"
    )
    error.plan = plan  # type: ignore[attr-defined]
    error.deleted = list(plan.deleted)  # type: ignore[attr-defined]
    error.failed = list(plan.failed)  # type: ignore[attr-defined]
    raise error


def _run(
    action: str,
    filename: str,
    destination: str | None,
    profile: str,
    config: str | None,
    conf: Mapping[str, Any] | None,
    dry_run: bool,
    force: bool,
    lock_timeout: float,
    decide: Any,
) -> DeletedBackups:
    """The body shared by both actions: ``decide(settings, live, pending)`` returns the Plan."""
    from bakthat import core
    from bakthat.levels import keep_bases

    if not isinstance(filename, str) or not filename:
        raise ConfigError(f"{action} needs a backup name, not {filename!r}")

    def plan_for(ctx: Any) -> Plan:
        live, pending = _scope(ctx, filename, profile)
        plan = decide(ctx.settings, live, pending)
        plan.destination, plan.profile, plan.dry_run = ctx.destination, profile, dry_run
        # A kept backup's chain stays whole: its bases are kept too (bakthat.levels).
        protection = keep_bases(plan)
        for kept, why in protection.broken.items():
            log.warning("%s is kept but cannot be restored: %s", kept, why)
        if plan.refused and not any(decision.action == "delete" for decision in plan.decisions):
            plan.refused = None  # what it would have deleted, the chains of kept backups need
        if plan.refused:
            raise RefusedError(f"{action} refused: {plan.refused}; nothing was deleted", plan)
        return plan

    from bakthat.eventing import session

    with session(action, dry_run) as current:
        ctx = core._context(destination, profile, config, conf)
        if dry_run:
            # A dry run reads only (no lock); its handlers see the session's dry_run flag.
            # Its result is what a real run would delete: unfinished deletions, then the plan's.
            plan = plan_for(ctx)
            return current.finish(DeletedBackups([*plan.to_retry, *plan.to_delete], plan))
        decide(ctx.settings, [], [])  # validate the policy before waiting for the lock
        with name_lock(ctx.settings, ctx.backend.backend_hash, filename, lock_timeout):
            plan = plan_for(ctx)
            result = _execute(ctx, plan)
        log.info(
            "%s %s: %d kept, %d deleted%s",
            action, filename, len(plan.to_keep), len(plan.deleted),
            f", {len(plan.failed)} failed" if plan.failed else "",
        )
        if plan.failed:
            _raise_partial(plan)
        return current.finish(result)


def _policy_of(settings: Mapping[str, Any], rotation: Any) -> Policy:
    profile = profile_of(settings)
    source = source_of(settings)
    block = rotation if rotation is not None else settings.get("rotation")
    if block is None:
        raise ConfigError(
            f"no rotation policy in profile {profile!r} ({source}): add a 'rotation:' block to the "
            "profile, for example rotation: {days: 7, weeks: 4, months: 6} (see docs/retention.md)"
        )
    return Policy.from_mapping(block, f"rotation policy of profile {profile!r}")


_ROTATION_KEYWORDS = "set them in the profile's rotation block or pass rotation={...}"


@strict_keywords(ignored={unit: _ROTATION_KEYWORDS for unit in ("days", "weeks", "months", "first_week_day")})
def rotate_backups(
    filename: str,
    destination: str | None = None,
    profile: str = "default",
    config: str | None = None,
    conf: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    force: bool = False,
    rotation: Mapping[str, Any] | None = None,
    now: Any = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> DeletedBackups:
    """Delete the backups of ``filename`` that the profile's ``rotation`` policy does not keep.

    Grandfather-father-son over UTC calendar buckets (see :func:`plan_rotation` and
    ``docs/retention.md``): the newest backup and future-dated backups are never
    deleted, backups tagged with ``pin_tag`` only with ``force``.  Only backups whose
    name is exactly ``filename``, in this destination and profile, are considered.
    Return the list of deleted rows (the would-be deleted rows when ``dry_run``), with
    the Plan as its ``plan`` attribute.

    ``rotation`` is a policy mapping replacing the profile's, ``now`` a Unix time or
    aware datetime (default the current time), ``lock_timeout`` the seconds to wait
    for another run on the same name.  bakthat 0.6's ``days``, ``weeks``, ``months``
    and ``first_week_day`` keywords are accepted and ignored, as 0.6 did (with a
    warning).  Raise TypeError for any other keyword, ConfigError without a valid
    policy, RefusedError (a ConfigError) if the policy keeps none of the backups
    (unless ``force``), LockedError if another run holds the name's lock past the
    timeout, PartialFailure if some deletions failed (the others are done).
    """

    def decide(settings: Mapping[str, Any], live: list[Any], pending: list[Any]) -> Plan:
        policy = _policy_of(settings, rotation)
        return plan_rotation(live, policy, now, name=filename, force=force, pending=pending)

    return _run("rotate_backups", filename, destination, profile, config, conf, dry_run, force, float(lock_timeout), decide)


@strict_keywords()
def delete_older_than(
    filename: str,
    interval: str,
    destination: str | None = None,
    profile: str = "default",
    config: str | None = None,
    conf: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    force: bool = False,
    rotation: Mapping[str, Any] | None = None,
    now: Any = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> DeletedBackups:
    """Delete the backups of ``filename`` dated before now minus ``interval``.

    ``interval`` is a bakthat 0.6 interval string (``s``, ``m``, ``h``, ``D``, ``W`` =
    7 days, ``M`` = 30 days, ``Y`` = 365 days, combined as ``3M2D8h``).  The newest
    backup is never deleted, nor (unless ``force``) one tagged with the profile's
    rotation ``pin_tag`` (default ``keep``).  Return the list of deleted rows (would-be
    deleted when ``dry_run``) with the Plan as ``plan``.

    ``rotation`` (whose ``pin_tag`` is used), ``now`` and ``lock_timeout`` as
    :func:`rotate_backups`.  Raise TypeError for an unknown keyword, ConfigError for a
    malformed interval, RefusedError if every backup is older than the interval
    (unless ``force``), LockedError, PartialFailure.
    """

    def decide(settings: Mapping[str, Any], live: list[Any], pending: list[Any]) -> Plan:
        block = rotation if rotation is not None else settings.get("rotation")
        where = f"rotation policy of profile {profile_of(settings, profile)!r}"
        pin_tag = _pin_tag(block, where) if isinstance(block, Mapping) else DEFAULT_PIN_TAG
        return plan_age(live, interval, now, name=filename, pin_tag=pin_tag, force=force, pending=pending)

    return _run("delete_older_than", filename, destination, profile, config, conf, dry_run, force, float(lock_timeout), decide)
