"""Retention planning: which backups of one name a policy keeps, and why (pure).

Given the live rows of one backup name, a policy and a time ``now``,
:func:`plan_rotation` (grandfather-father-son) and :func:`plan_age`
(``delete_older_than``) return a :class:`Plan` that says, for every backup, whether it
is kept or deleted and why.  Nothing here touches the catalog, the store or a lock:
:mod:`bakthat.rotation` reads the rows under the name's lock and carries out the plan.

Guarantees that hold for every policy, forced or not: the newest backup of a name
(dated at or before ``now``) is never deleted, and a backup dated after ``now`` is
never deleted.  A backup tagged with the policy's ``pin_tag`` (default ``keep``) is
never deleted unless ``force=True``.  Buckets are computed in UTC.

A window of N units holds the bucket of ``now`` and the N - 1 before it, exactly as the
``grandfatherson`` package that bakthat 0.6 used.  The policy, its units and buckets
and the intervals are in :mod:`bakthat.rotation_policy` (re-exported here); a plan
explains itself, so its text and JSON forms (``--dry-run``, ``--json``) are kept here
with the decisions they describe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bakthat.errors import ConfigError
from bakthat.rotation_policy import (  # noqa: F401 - re-exported: planning's names stay importable from here
    DEFAULT_FIRST_WEEK_DAY,
    DEFAULT_PIN_TAG,
    KEEP_MODES,
    POLICY_KEYS,
    UNITS,
    WEEKDAYS,
    Policy,
    _now,
    _pin_tag,
    bucket_key,
    bucket_label,
    parse_interval,
    utc_iso,
    week_day_named,
)


class RefusedError(ConfigError):
    """The policy's own rules would delete every backup of a name; nothing was deleted.

    A ConfigError (exit code 2): such a policy is almost always a mistake (a window
    too short for how often backups run, backups that stopped long ago, a typo in an
    interval).  ``force=True`` (``--force``) runs it anyway; the newest backup is still
    kept.  ``plan`` holds the plan that was refused.
    """

    def __init__(self, message: str, plan: Plan):
        super().__init__(message)
        self.plan = plan


# -- plans --------------------------------------------------------------------------


@dataclass
class Decision:
    """What a plan does with one backup: keep, delete or retry, and every reason."""

    row: Any
    action: str  # "keep" | "delete" | "retry"
    reasons: list[str] = field(default_factory=list)
    rules: list[dict[str, Any]] = field(default_factory=list)

    @property
    def keep(self) -> bool:
        return self.action == "keep"

    def to_dict(self) -> dict[str, Any]:
        row = self.row
        return {
            "stored_filename": row.stored_filename,
            "backup_date": row.backup_date,
            "backup_date_utc": utc_iso(row.backup_date),
            "tags": _tags(row),
            "decision": self.action,
            "reasons": list(self.reasons),
            "rules": [dict(rule) for rule in self.rules],
        }


@dataclass
class Plan:
    """The decision for every backup of one name: who is kept, who is deleted, and why.

    ``decisions`` are newest first.  ``refused`` is the reason the plan will not run
    (its rules keep nothing), or None.
    """

    action: str
    name: str
    now: int
    policy: dict[str, Any]
    decisions: list[Decision]
    destination: str | None = None
    profile: str | None = None
    force: bool = False
    dry_run: bool = False
    refused: str | None = None
    deleted: list[Any] = field(default_factory=list)
    failed: list[tuple[Any, str]] = field(default_factory=list)

    @property
    def to_keep(self) -> list[Any]:
        """The rows kept, newest first."""
        return [decision.row for decision in self.decisions if decision.action == "keep"]

    @property
    def to_delete(self) -> list[Any]:
        """The live rows to delete, oldest first (the order they are deleted in)."""
        return [decision.row for decision in reversed(self.decisions) if decision.action == "delete"]

    @property
    def to_retry(self) -> list[Any]:
        """Rows left ``deleting`` by an earlier failed deletion, deleted again, oldest first."""
        return [decision.row for decision in reversed(self.decisions) if decision.action == "retry"]

    def decision(self, row: Any) -> Decision:
        """Given a row of the plan, return its Decision."""
        for decision in self.decisions:
            if decision.row is row or (getattr(row, "id", None) is not None and decision.row.id == row.id):
                return decision
        raise KeyError(row)

    def to_dict(self) -> dict[str, Any]:
        """Return the plan as stable JSON-serialisable data (the CLI's ``--json``)."""
        data: dict[str, Any] = {
            "action": self.action,
            "name": self.name,
            "destination": self.destination,
            "profile": self.profile,
            "now": self.now,
            "now_utc": utc_iso(self.now),
            "dry_run": self.dry_run,
            "force": self.force,
            "policy": dict(self.policy),
            "refused": self.refused,
            "backups": [decision.to_dict() for decision in self.decisions],
            "summary": {
                "keep": len(self.to_keep),
                "delete": len(self.to_delete),
                "retry": len(self.to_retry),
            },
        }
        if not self.dry_run:
            data["deleted"] = [row.stored_filename for row in self.deleted]
            data["failed"] = [{"stored_filename": row.stored_filename, "error": error} for row, error in self.failed]
        return data

    def explain(self) -> str:
        """Return the plan as human-readable lines (the CLI's output)."""
        where = ", ".join(part for part in (
            f"destination {self.destination}" if self.destination else "",
            f"profile {self.profile}" if self.profile else "",
        ) if part)
        lines = [f"{self.action} {self.name}" + (f" ({where})" if where else "") + f" as of {utc_iso(self.now)}"]
        lines.append("policy: " + _describe_policy(self.action, self.policy) + (" [forced]" if self.force else ""))
        if not self.decisions:
            lines.append(f"no live backup named {self.name!r}: nothing to do")
            return "\n".join(lines)
        width = max(len(decision.row.stored_filename) for decision in self.decisions)
        for decision in self.decisions:
            row = decision.row
            lines.append(
                f"  {decision.action:<6}  {row.stored_filename:<{width}}  {utc_iso(row.backup_date)}  "
                + "; ".join(decision.reasons)
            )
        counts = f"{len(self.to_keep)} kept, {len(self.to_delete)} to delete"
        if self.to_retry:
            counts += f", {len(self.to_retry)} unfinished deletion(s) to retry"
        if self.refused:
            lines.append(f"{counts}: REFUSED, nothing will be deleted: {self.refused}")
        elif self.dry_run:
            lines.append(f"{counts} (dry run: nothing was deleted)")
        else:
            done = f"{counts}; deleted {len(self.deleted)}"
            if self.failed:
                done += f", {len(self.failed)} failed (left marked 'deleting' for a retry)"
            lines.append(done)
        return "\n".join(lines)


def _describe_policy(action: str, policy: Mapping[str, Any]) -> str:
    if action == "delete_older_than":
        pin = f" pin_tag={policy['pin_tag']}" if policy.get("pin_tag") else " no pin tag"
        return f"older than {policy['interval']} ({policy['seconds']} s){pin}"
    try:
        return Policy.from_mapping(policy).describe()
    except ConfigError:
        return str(dict(policy))


def _tags(row: Any) -> list[str]:
    return str(getattr(row, "tags", "") or "").split()


def _order(row: Any) -> tuple[int, int]:
    return (int(row.backup_date), int(getattr(row, "id", 0) or 0))


def _pinned(row: Any, pin_tag: str | None) -> bool:
    return bool(pin_tag) and pin_tag in _tags(row)


def _finish_plan(
    action: str,
    name: str,
    now: int,
    policy: dict[str, Any],
    live: list[Any],
    keep_reasons: dict[int, list[tuple[str, dict[str, Any]]]],
    delete_reason: str,
    pin_tag: str | None,
    force: bool,
    pending: list[Any],
    delete_reasons: Mapping[int, str] | None = None,
) -> Plan:
    """Add the guarantees (future, pinned, newest), decide every row, detect refusal.

    ``live`` is oldest first; ``keep_reasons`` maps an index of ``live`` to the policy
    rules that keep it; ``delete_reasons`` an index to why it is deleted, when that is
    more precise than ``delete_reason`` (a backup in a window that kept another one).
    """
    policy_keeps = any(keep_reasons.get(index) for index in range(len(live)))
    past = [index for index, row in enumerate(live) if row.backup_date <= now]
    decisions = []
    for index, row in enumerate(live):
        reasons = list(keep_reasons.get(index, []))
        if row.backup_date > now:
            reasons.append((f"kept: dated in the future ({utc_iso(row.backup_date)} is after now)", {"rule": "future"}))
        if _pinned(row, pin_tag) and not force:
            reasons.append((f"pinned (tag {pin_tag!r})", {"rule": "pinned", "tag": pin_tag}))
            policy_keeps = True
        if past and index == past[-1]:
            reasons.append(("kept as newest", {"rule": "newest"}))
        if reasons:
            decision = Decision(row, "keep", [text for text, _ in reasons], [rule for _, rule in reasons])
        else:
            texts = [(delete_reasons or {}).get(index, delete_reason)]
            if _pinned(row, pin_tag):
                texts.append(f"pin tag {pin_tag!r} overridden by force")
            decision = Decision(row, "delete", texts, [{"rule": "delete"}])
        decisions.append(decision)
    for row in pending:
        decisions.append(
            Decision(row, "retry", ["deleting again: an earlier deletion did not finish"], [{"rule": "retry"}])
        )
    decisions.sort(key=lambda decision: _order(decision.row), reverse=True)
    refused = None
    if live and not policy_keeps and not force and any(d.action == "delete" for d in decisions):
        if action == "rotate_backups":
            refused = (
                f"no backup of {name!r} falls in any window of the policy ({_describe_policy(action, policy)}), "
                f"so it would delete all {len(live)} backups but the newest; check the policy, "
                "or pass force=True (--force) to keep only the newest"
            )
        else:
            refused = (
                f"every backup of {name!r} is older than {policy['interval']}, so it would delete all "
                f"{len(live)} backups but the newest; check the interval, or pass force=True (--force) "
                "to keep only the newest"
            )
    return Plan(action, name, now, policy, decisions, force=force, refused=refused)


def plan_rotation(
    rows: list[Any], policy: Policy, now: Any = None, *, name: str = "", force: bool = False, pending: list[Any] = ()
) -> Plan:
    """Given the live rows of one name, a Policy and ``now``, return the rotation Plan.

    For each unit with N > 0, the buckets from ``key(now) - N + 1`` to ``key(now)``
    each keep one backup dated in the bucket and at or before ``now``: the newest
    (``keep: newest``) or the oldest (``keep: oldest``, grandfatherson's choice).
    ``keep_last`` keeps the N most recent backups dated at or before ``now``.  Then
    the guarantees: future backups, pinned backups (unless ``force``) and the newest
    backup are kept.  Rows are objects with ``backup_date``, ``tags``,
    ``stored_filename`` and ``id``.  ``pending`` rows (left ``deleting``) are listed
    for a retry.
    """
    when = _now(now)
    live = sorted(rows, key=_order)
    past = [index for index, row in enumerate(live) if row.backup_date <= when]
    keep_reasons: dict[int, list[tuple[str, dict[str, Any]]]] = {}
    passed_over: dict[int, list[str]] = {}
    for unit, number in policy.counts:
        if not number:
            continue
        last = bucket_key(unit, when, policy.first_week_day)
        first = last - number + 1
        chosen: dict[int, int] = {}
        in_window: dict[int, int] = {}
        for index in past:
            key = bucket_key(unit, live[index].backup_date, policy.first_week_day)
            if first <= key <= last:
                in_window[index] = key
                if policy.keep == "newest" or key not in chosen:
                    chosen[key] = index
        for key, index in chosen.items():
            label = bucket_label(unit, key, policy.first_week_day)
            keep_reasons.setdefault(index, []).append(
                (f"kept by {unit} bucket {label}", {"rule": unit, "bucket": label})
            )
        for index, key in in_window.items():
            if chosen[key] != index:
                label = bucket_label(unit, key, policy.first_week_day)
                passed_over.setdefault(index, []).append(f"not the {policy.keep} of {unit[:-1]} bucket {label}")
    if policy.keep_last:
        for rank, index in enumerate(reversed(past[-policy.keep_last:]), start=1):
            keep_reasons.setdefault(index, []).append(
                (f"kept as #{rank} of the last {policy.keep_last} (keep_last)", {"rule": "keep_last", "rank": rank})
            )
    delete_reasons = {index: "deleted: " + "; ".join(reasons) for index, reasons in passed_over.items()}
    return _finish_plan(
        "rotate_backups", name, when, policy.to_dict(), live, keep_reasons,
        "deleted: outside every window", policy.pin_tag, force, list(pending), delete_reasons,
    )


def plan_age(
    rows: list[Any],
    interval: Any,
    now: Any = None,
    *,
    name: str = "",
    pin_tag: str | None = DEFAULT_PIN_TAG,
    force: bool = False,
    pending: list[Any] = (),
) -> Plan:
    """Given the live rows of one name and an interval, return the delete_older_than Plan.

    A backup dated before ``now - interval`` is deleted (0.6's rule), unless it is
    pinned (and not ``force``) or it is the newest backup.
    """
    seconds = parse_interval(interval)
    when = _now(now)
    cutoff = when - seconds
    live = sorted(rows, key=_order)
    keep_reasons: dict[int, list[tuple[str, dict[str, Any]]]] = {}
    for index, row in enumerate(live):
        if cutoff <= row.backup_date <= when:
            keep_reasons[index] = [
                (f"kept: newer than {interval} (after {utc_iso(cutoff)})", {"rule": "age", "cutoff": cutoff})
            ]
    policy = {"interval": str(interval), "seconds": seconds, "cutoff": cutoff, "pin_tag": pin_tag}
    return _finish_plan(
        "delete_older_than", name, when, policy, live, keep_reasons,
        f"deleted: older than {interval} (before {utc_iso(cutoff)})", pin_tag, force, list(pending),
    )
