"""Retention policies and the calendar they count in (pure): units, buckets, intervals, time.

A :class:`Policy` is a profile's ``rotation`` block parsed and checked (how many
buckets of each unit of :data:`UNITS` to keep, ``keep``, ``keep_last``, ``pin_tag``,
``first_week_day``).  :func:`bucket_key` puts a time in its UTC bucket of a unit and
:func:`bucket_label` names a bucket.  Bucket keys are integers (seconds, minutes,
hours and days since the Unix epoch, weeks since the epoch's week, months since year
0, the year), so windows of any length are computed without date overflow.
:func:`parse_interval` reads ``delete_older_than``'s intervals.  :mod:`bakthat.rotation_plan`
decides with them; its names stay importable from there.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
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
