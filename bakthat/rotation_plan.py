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

Bucket keys are integers (seconds, minutes, hours and days since the Unix epoch, weeks
since the epoch's week, months since year 0, the year), so windows of any length are
computed without date overflow.  A window of N units holds the bucket of ``now`` and
the N - 1 before it, exactly as the ``grandfatherson`` package that bakthat 0.6 used.

This module is longer than most (about 570 lines) because a plan explains itself: the
policy parsing, the buckets and the plan's text and JSON forms (``--dry-run``,
``--json``) are kept with the decision they describe, and all of it is pure.
"""

from __future__ import annotations


import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from bakthat.errors import ConfigError

#: The rotation units, largest first (the order of reasons in a plan).
UNITS: tuple[str, ...] = ("years", "months", "weeks", "days", "hours", "minutes", "seconds")
KEEP_MODES: tuple[str, ...] = ("newest", "oldest")
DEFAULT_FIRST_WEEK_DAY = 5  # Saturday, as bakthat 0.6 and grandfatherson
DEFAULT_PIN_TAG = "keep"
WEEKDAYS: tuple[str, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
POLICY_KEYS: tuple[str, ...] = (*UNITS, "first_week_day", "keep", "keep_last", "pin_tag")

_SECONDS_PER = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)


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


# -- policy -------------------------------------------------------------------------


def _count(value: Any, key: str, where: str) -> int:
    """Given a policy value, return it as an int >= 0 (0.6 cast values with int())."""
    if isinstance(value, bool) or value is None:
        raise ConfigError(f"{where}: {key} must be a whole number >= 0, not {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise ConfigError(f"{where}: {key} must be a whole number >= 0, not {value!r}")
    if number < 0:
        raise ConfigError(f"{where}: {key} must be a whole number >= 0, not {value!r}")
    return number


def week_day_named(text: str) -> int | None:
    """Given a day name or its first three letters or more (``saturday``, ``sat``), return
    0 (Monday) .. 6 (Sunday); None if ``text`` names no day."""
    word = text.strip().lower()
    if len(word) >= 3:
        for index, name in enumerate(WEEKDAYS):
            if name.startswith(word):
                return index
    return None


def _week_day(value: Any, where: str) -> int:
    """Given 0..6 or a day name (``saturday``), return 0 (Monday) .. 6 (Sunday)."""
    if isinstance(value, str) and value.strip().lower() in WEEKDAYS:
        return WEEKDAYS.index(value.strip().lower())
    number = _count(value, "first_week_day", where) if not isinstance(value, str) or value.strip().isdigit() else -1
    if not 0 <= number <= 6:
        raise ConfigError(f"{where}: first_week_day must be 0 (Monday) to 6 (Sunday) or a day name, not {value!r}")
    return number


def _pin_tag(block: Mapping[str, Any], where: str) -> str | None:
    """Return the block's ``pin_tag`` (default ``keep``; null, false or empty: no pinning)."""
    if "pin_tag" not in block:
        return DEFAULT_PIN_TAG
    raw = block["pin_tag"]
    if raw is None or raw is False or raw == "":
        return None
    if isinstance(raw, str) and len(raw.split()) == 1:
        return raw.strip()
    raise ConfigError(f"{where}: pin_tag must be one tag (a word without spaces), not {raw!r}")


@dataclass(frozen=True)
class Policy:
    """A retention policy: how many buckets of each unit to keep, and the keep rules.

    ``counts`` maps each unit of :data:`UNITS` to N (0: the unit keeps nothing).
    ``keep`` chooses the backup each bucket keeps: ``newest`` (default) or ``oldest``
    (bakthat 0.6 / grandfatherson).  ``keep_last`` keeps the N most recent backups on
    top of the buckets.  ``pin_tag`` is the tag that pins a backup (None: no pinning).
    """

    counts: tuple[tuple[str, int], ...] = tuple((unit, 0) for unit in UNITS)
    first_week_day: int = DEFAULT_FIRST_WEEK_DAY
    keep: str = "newest"
    keep_last: int = 0
    pin_tag: str | None = DEFAULT_PIN_TAG

    @classmethod
    def from_mapping(cls, block: Any, where: str = "rotation") -> Policy:
        """Given a profile's ``rotation`` mapping, return the Policy.

        Raise ConfigError (naming ``where``) for an unknown key, a negative or
        non-integer count, a bad ``first_week_day`` or ``keep``, or a policy whose
        rules keep nothing at all.
        """
        if not isinstance(block, Mapping):
            raise ConfigError(f"{where} must be a mapping such as {{days: 7, weeks: 4, months: 6}}, not {block!r}")
        unknown = sorted(str(key) for key in block if key not in POLICY_KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(POLICY_KEYS)})")
        counts = tuple((unit, _count(block[unit], unit, where) if unit in block else 0) for unit in UNITS)
        first_week_day = (
            DEFAULT_FIRST_WEEK_DAY if block.get("first_week_day") is None else _week_day(block["first_week_day"], where)
        )
        keep = str(block.get("keep", "newest")).strip().lower()
        if keep not in KEEP_MODES:
            raise ConfigError(f"{where}: keep must be 'newest' or 'oldest', not {block.get('keep')!r}")
        keep_last = _count(block.get("keep_last", 0), "keep_last", where)
        pin_tag = _pin_tag(block, where)
        policy = cls(counts, first_week_day, keep, keep_last, pin_tag)
        if not any(number for _, number in counts) and not keep_last:
            raise ConfigError(
                f"{where} keeps nothing: set at least one of {', '.join(UNITS)} or keep_last to a number above 0"
            )
        return policy

    def count(self, unit: str) -> int:
        return dict(self.counts)[unit]

    def to_dict(self) -> dict[str, Any]:
        """Return the policy as a JSON-serialisable dict with every key."""
        return {
            **dict(self.counts),
            "first_week_day": self.first_week_day,
            "keep": self.keep,
            "keep_last": self.keep_last,
            "pin_tag": self.pin_tag,
        }

    def describe(self) -> str:
        """Return one line such as ``days=7 weeks=4 (weeks start on Saturday) keep=newest``."""
        parts = [f"{unit}={number}" for unit, number in self.counts if number]
        if self.count("weeks"):
            parts.append(f"(weeks start on {WEEKDAYS[self.first_week_day].capitalize()})")
        if self.keep_last:
            parts.append(f"keep_last={self.keep_last}")
        parts.append(f"keep={self.keep}")
        parts.append(f"pin_tag={self.pin_tag}" if self.pin_tag else "no pin tag")
        return " ".join(parts)


# -- buckets ------------------------------------------------------------------------


def bucket_key(unit: str, timestamp: int, first_week_day: int = DEFAULT_FIRST_WEEK_DAY) -> int:
    """Given a unit, a Unix time and the first week day, return the UTC bucket as an int.

    Consecutive buckets have consecutive keys, so a window of N buckets ending with the
    bucket of ``now`` is ``key(now) - N + 1 <= key <= key(now)``.
    """
    if unit in _SECONDS_PER:
        return timestamp // _SECONDS_PER[unit]
    if unit == "weeks":
        return (timestamp // 86400 + _EPOCH_WEEKDAY - first_week_day) // 7
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    if unit == "months":
        return moment.year * 12 + moment.month - 1
    if unit == "years":
        return moment.year
    raise ValueError(f"unknown rotation unit {unit!r}")


def bucket_label(unit: str, key: int, first_week_day: int = DEFAULT_FIRST_WEEK_DAY) -> str:
    """Given a unit and a bucket key, return the bucket's start in UTC (``2026-11-20``).

    A week is labelled by its first day.
    """
    try:
        if unit == "years":
            return f"{key:04d}"
        if unit == "months":
            return f"{key // 12:04d}-{key % 12 + 1:02d}"
        if unit == "weeks":
            start = (7 * key - _EPOCH_WEEKDAY + first_week_day) * 86400
            return datetime.fromtimestamp(start, tz=timezone.utc).strftime("%Y-%m-%d")
        moment = datetime.fromtimestamp(key * _SECONDS_PER[unit], tz=timezone.utc)
        pattern = {"days": "%Y-%m-%d", "hours": "%Y-%m-%dT%H:00Z", "minutes": "%Y-%m-%dT%H:%MZ", "seconds": "%Y-%m-%dT%H:%M:%SZ"}
        return moment.strftime(pattern[unit])
    except (OverflowError, OSError, ValueError):
        return f"#{key}"


def utc_iso(timestamp: int) -> str:
    """Given a Unix time, return ``2026-11-20T13:45:12Z`` (or the number if out of range)."""
    try:
        return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return str(timestamp)


def _now(now: Any) -> int:
    """Given None, a Unix time or a timezone-aware datetime, return Unix seconds (floor)."""
    if now is None:
        return int(time.time())
    if isinstance(now, datetime):
        if now.tzinfo is None or now.utcoffset() is None:
            raise ConfigError("now= must be a timezone-aware datetime (for example datetime.now(timezone.utc))")
        return int(now.timestamp() // 1)
    if isinstance(now, bool) or not isinstance(now, (int, float)):
        raise ConfigError(f"now= must be a Unix time or an aware datetime, not {now!r}")
    return int(now // 1)


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


def parse_interval(interval: Any) -> int:
    """Given a 0.6 interval string (``3M2D8h``) or a number of seconds, return seconds > 0.

    Raise ConfigError naming the interval if it is malformed, empty or zero.
    """
    from bakthat.utils import _interval_string_to_seconds

    if isinstance(interval, bool):
        raise ConfigError(f"bad interval {interval!r}")
    if isinstance(interval, (int, float)):
        seconds = int(interval)
    elif isinstance(interval, str):
        try:
            seconds = _interval_string_to_seconds(interval.strip())
        except ValueError:
            if re.fullmatch(r"(0+[smhDWMY])+", interval.strip()):
                raise ConfigError(f"bad interval {interval!r}: it must be longer than 0 seconds (for example 30D)") from None
            raise ConfigError(
                f"bad interval {interval!r}: use <number><unit> tokens with units s, m, h, D, W (7 days), "
                "M (30 days), Y (365 days), for example 3M2D8h"
            ) from None
    else:
        raise ConfigError(f"bad interval {interval!r}: give a string such as 30D")
    if seconds <= 0:
        raise ConfigError(f"bad interval {interval!r}: it must be longer than 0 seconds (for example 30D)")
    return seconds


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
