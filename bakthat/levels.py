"""Backup levels and chains: pure logic over the catalog rows of one backup name.

A **full** backup stores every entry; a **differential** (``diff``) what changed since
the last full; an **incremental** (``incr``) what changed since the last backup of any
level.  Each backup records its level and its *base* (the stored filename of the
backup it is relative to), so the **chain** of a backup, the backups a restore must
read in order, is found by following bases down to a full:

    full <- incr <- incr            chain of the second incremental: full, incr, incr
    full <- diff <- incr            a differential's base is always a full

:class:`History` holds the live backups of one name (in one destination and profile)
as :class:`Link` values and answers every question the backup, restore and retention
code ask about chains: which level ``level: auto`` gives (:meth:`History.choose_level`),
the chain of a backup or of a date (:meth:`History.chain`, :meth:`History.at`), and
what retention must keep so that every kept backup stays restorable
(:meth:`History.protect`, :func:`keep_bases`).  Merging the indexes along a chain is in
:mod:`bakthat.chain_state`.  Nothing here reads the catalog or the store.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone, tzinfo
from typing import Any

from bakthat import profile_keys
from bakthat.errors import ConfigError, IntegrityError, NotFoundError
from bakthat.index_records import LEVEL_NAMES, LEVELS

#: What ``level:`` (and ``--level``) accepts.
REQUESTS: tuple[str, ...] = ("auto", *LEVELS)


def _full_every_problem(value: Any) -> str | None:
    try:
        _interval(value)
    except ConfigError as exc:
        return str(exc)
    return None


def _max_chain_problem(value: Any) -> str | None:
    return None if not isinstance(value, bool) and value >= 0 else f"must be a whole number >= 0, not {value!r}"


#: The profile keys read here, declared in :mod:`bakthat.profile_keys` (read without importing this module).
SETTINGS = profile_keys.LEVELS
#: A chain longer than this is refused as damaged (no real schedule gets near it).
MAX_CHAIN_LENGTH = 10_000


class BrokenChainError(IntegrityError):
    """A backup's chain has a missing or damaged link (exit code 6).

    ``backup`` is the stored filename asked for, ``missing`` the stored filename of the
    link that is missing or damaged.  Nothing has reached the restore target when it is
    raised (a missing link is found before any archive is read, damage as it streams).
    """

    def __init__(self, message: str, backup: str, missing: str):
        super().__init__(message)
        self.backup = backup
        self.missing = missing


@dataclass(frozen=True)
class Link:
    """One backup as far as chains are concerned: its stored filename, date, level, base.

    Rows written before levels existed have no level: they are full backups.
    """

    stored_filename: str
    backup_date: int
    level: str = "full"
    base: str | None = None

    @classmethod
    def of(cls, row: Any) -> Link:
        """Given a catalog row (or any object with ``stored_filename`` and ``backup_date``,
        and ``level``/``base`` as attributes or in ``metadata``), return its Link."""
        if isinstance(row, Link):
            return row
        metadata = getattr(row, "metadata", None) or {}
        level = getattr(row, "level", None) or metadata.get("level") or "full"
        base = getattr(row, "base", None) or metadata.get("base")
        return cls(str(row.stored_filename), int(row.backup_date), str(level), base)

    def describe(self) -> str:
        """Return ``incremental www.20261120020000.tar.zst of 2026-11-20T02:00:00Z``."""
        return f"{LEVEL_NAMES.get(self.level, self.level)} {self.stored_filename} of {utc_iso(self.backup_date)}"


@dataclass(frozen=True)
class LevelChoice:
    """The level a new backup gets, its base (None for a full), and why."""

    level: str
    base: Link | None
    reason: str


@dataclass
class Protection:
    """What retention must keep beyond its own rules so kept backups stay restorable.

    ``reasons`` maps the stored filename of each backup a kept backup depends on to
    ``(text, rule)`` pairs in the form of :class:`bakthat.rotation.Decision` (``text``
    such as ``kept: base of incremental of 2026-11-20T02:00:00Z``, ``rule`` such as
    ``{"rule": "base", "of": <stored filename>}``).  ``broken`` maps the stored filename
    of each kept backup whose chain is already broken to the reason.
    """

    reasons: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)

    def keeps(self, stored_filename: str) -> bool:
        return stored_filename in self.reasons


def utc_iso(timestamp: int) -> str:
    """Given a Unix time, return ``2026-11-20T02:00:00Z``."""
    from bakthat.rotation_policy import utc_iso as plan_utc_iso

    return plan_utc_iso(timestamp)


class History:
    """The live backups of one name, in one destination and profile, as Links.

    Given catalog rows (or Links), sorted here oldest first by ``(backup_date,
    stored_filename)``.  Raise ValueError if two rows share a stored filename.
    """

    def __init__(self, rows: Iterable[Any]):
        links = sorted((Link.of(row) for row in rows), key=lambda link: (link.backup_date, link.stored_filename))
        self.links: list[Link] = links
        self.by_name: dict[str, Link] = {}
        for link in links:
            if self.by_name.setdefault(link.stored_filename, link) is not link:
                raise ValueError(f"{link.stored_filename} appears twice")

    def __len__(self) -> int:
        return len(self.links)

    def get(self, backup: str | Link) -> Link:
        """Return the Link of a stored filename.  Raise NotFoundError if it is not live."""
        name = backup.stored_filename if isinstance(backup, Link) else backup
        try:
            return self.by_name[name]
        except KeyError:
            raise NotFoundError(f"no live backup stored as {name!r}") from None

    def newest(self) -> Link | None:
        """Return the newest backup, or None."""
        return self.links[-1] if self.links else None

    def last_full(self) -> Link | None:
        """Return the newest full backup, or None."""
        return next((link for link in reversed(self.links) if link.level == "full"), None)

    # -- chains -------------------------------------------------------------------------

    def chain(self, backup: str | Link, damaged: Mapping[str, str] | None = None) -> list[Link]:
        """Given a backup, return its chain: the full it starts from, then each backup
        it depends on, oldest first, ending with the backup itself.

        ``damaged`` maps stored filenames known to be damaged (a failed check, an index
        that does not read) to the reason.  Raise BrokenChainError naming the first link
        that is missing (its base is not a live backup), damaged, of the wrong kind (a
        differential based on anything but a full), not older than the backup based on
        it, or part of a loop.  Raise NotFoundError if ``backup`` itself is not live.
        """
        target = self.get(backup)
        damaged = damaged or {}
        links: list[Link] = []
        seen: set[str] = set()
        current = target

        def broken(why: str, missing: str) -> BrokenChainError:
            return BrokenChainError(
                f"cannot use {target.describe()}: {why}; nothing was read or written", target.stored_filename, missing
            )

        while True:
            if current.stored_filename in damaged:
                raise broken(
                    f"its chain holds {current.describe()}, which is damaged ({damaged[current.stored_filename]})",
                    current.stored_filename,
                )
            if current.level not in LEVELS:
                raise broken(
                    f"{current.stored_filename} has an unknown level {current.level!r}", current.stored_filename
                )
            links.append(current)
            seen.add(current.stored_filename)
            if current.level == "full":
                return links[::-1]
            if not current.base:
                raise broken(f"{current.describe()} records no base", current.stored_filename)
            if current.base in seen or len(links) >= MAX_CHAIN_LENGTH:
                raise broken(f"the bases of {current.stored_filename} form a loop", current.base)
            base = self.by_name.get(current.base)
            if base is None:
                raise broken(
                    f"its chain needs {current.base} (the base of {current.describe()}), which is missing",
                    current.base,
                )
            if current.level == "diff" and base.level != "full":
                raise broken(
                    f"the base of {current.describe()} is {base.describe()}, not a full backup", base.stored_filename
                )
            if base.backup_date > current.backup_date:
                raise broken(
                    f"its base {base.describe()} is newer than {current.describe()}", base.stored_filename
                )
            current = base

    def at(self, when: Any, *, tz: tzinfo = timezone.utc) -> Link:
        """Given a date (see :func:`parse_at`), return the newest backup at or before it.

        Raise NotFoundError naming the oldest backup if none is that old, ConfigError
        for a malformed date.
        """
        moment = parse_at(when, tz=tz)
        candidates = [link for link in self.links if link.backup_date <= moment]
        if not candidates:
            oldest = f"the oldest is of {utc_iso(self.links[0].backup_date)}" if self.links else "there is none"
            raise NotFoundError(f"no backup at or before {utc_iso(moment)} ({oldest})")
        return candidates[-1]

    # -- levels -------------------------------------------------------------------------

    def choose_level(
        self,
        requested: str = "auto",
        *,
        now: int,
        full_every: Any = None,
        max_chain: Any = None,
        damaged: Mapping[str, str] | None = None,
    ) -> LevelChoice:
        """Given the level asked for (``auto``, ``full``, ``diff``, ``incr``), the time of
        the new backup and, for ``auto``, ``full_every`` (an interval such as ``7D``, or
        seconds; None: no limit) and ``max_chain`` (how many backups may follow a full in
        one chain; None: no limit, 0: always full), return the level, base and reason.

        ``auto`` gives a full when there is none yet, when the last full is
        ``full_every`` old or older, when the newest backup's chain is broken or already
        ``max_chain`` long beyond its full; an incremental on the newest backup
        otherwise.  A differential or incremental asked for without a usable base
        becomes a full (never something weaker), with the reason saying so.  Raise
        ConfigError for an unknown level or a bad ``full_every``/``max_chain``.
        """
        if requested not in REQUESTS:
            raise ConfigError(f"level must be one of {', '.join(REQUESTS)}, not {requested!r}")
        every = _interval(full_every)
        limit = _max_chain(max_chain)
        if requested == "full":
            return LevelChoice("full", None, "a full backup was asked for")
        full = self.last_full()
        asked = "" if requested == "auto" else f"a {LEVEL_NAMES[requested]} backup was asked for, but "
        if full is None:
            return LevelChoice("full", None, f"{asked}there is no full backup of this name yet")
        if requested == "diff":
            return self._based("diff", full, asked, damaged)[0]
        if requested == "auto" and every is not None and now - full.backup_date >= every:
            return LevelChoice(
                "full", None, f"the last full backup, of {utc_iso(full.backup_date)}, is {full_every} old or older"
            )
        newest = self.newest()
        assert newest is not None
        choice, chain = self._based("incr", newest, asked, damaged)
        if requested == "auto" and choice.level == "incr" and limit is not None:
            length = len(chain) - 1
            if length >= limit:
                return LevelChoice(
                    "full", None, f"the chain of {newest.stored_filename} already has {length} backup(s) after its "
                    f"full (max_chain: {limit})"
                )
        return choice

    def _based(
        self, level: str, base: Link, asked: str, damaged: Mapping[str, str] | None
    ) -> tuple[LevelChoice, list[Link]]:
        """Return the choice of ``level`` on ``base`` (a full if base's chain is broken)
        and base's chain."""
        try:
            chain = self.chain(base, damaged)
        except BrokenChainError as exc:
            return LevelChoice("full", None, f"{asked}the chain of {base.stored_filename} is broken ({exc})"), []
        reason = f"{LEVEL_NAMES[level]} on top of {base.describe()} (chain of {len(chain) + 1})"
        return LevelChoice(level, base, reason), chain

    # -- retention ----------------------------------------------------------------------

    def dependents(self, backup: str | Link) -> list[Link]:
        """Return the live backups whose chain holds ``backup`` (itself excluded),
        oldest first: what deleting it would make unrestorable."""
        name = self.get(backup).stored_filename
        found = []
        for link in self.links:
            if link.stored_filename == name:
                continue
            try:
                chain = self.chain(link)
            except BrokenChainError:
                continue
            if any(other.stored_filename == name for other in chain):
                found.append(link)
        return found

    def protect(self, keep: Iterable[str]) -> Protection:
        """Given the stored filenames retention keeps by its own rules, return the
        Protection: every backup a kept one depends on, with the reason.

        Each backup in the chain of a kept backup (the kept backup itself excluded) is
        protected, with the reason naming the newest kept backup based directly on it
        (or, if none is, the newest kept backup whose chain holds it), and the
        rule ``{"rule": "base", "of": <that backup>, "dependents": <how many kept
        backups need it>}``.  The set of kept and protected backups is closed: the chain
        of each of them lies inside it.  A kept backup whose chain is already broken is
        listed in ``broken`` (nothing can make it restorable again).
        """
        protection = Protection()
        needed_by: dict[str, list[Link]] = {}
        kept = {name for name in keep if name in self.by_name}
        for name in kept:
            link = self.by_name[name]
            try:
                chain = self.chain(link)
            except BrokenChainError as exc:
                protection.broken[name] = str(exc)
                continue
            for base in chain[:-1]:
                if base.stored_filename not in kept:
                    needed_by.setdefault(base.stored_filename, []).append(link)
        for name, dependents in needed_by.items():
            # Name the newest kept backup based directly on it, else the newest that needs it.
            dependents.sort(key=lambda link: (link.base == name, link.backup_date, link.stored_filename))
            named = dependents[-1]
            relation = "base" if named.base == name else "in the chain"
            text = f"kept: {relation} of {LEVEL_NAMES[named.level]} of {utc_iso(named.backup_date)}"
            if len(dependents) > 1:
                text += f" (and {len(dependents) - 1} more kept backup(s))"
            rule = {"rule": "base", "of": named.stored_filename, "dependents": len(dependents)}
            protection.reasons[name] = [(text, rule)]
        return protection


# -- dates ------------------------------------------------------------------------------

_DIGITS = re.compile(r"\d+")


def parse_at(value: Any, *, tz: tzinfo = timezone.utc) -> int:
    """Given a point in time, return it as Unix seconds (rounded down).

    Accepted: an int (Unix seconds, what ``show --json`` prints as ``backup_date``) or
    its decimal string; a timezone-aware datetime; an ISO 8601 date and time string
    (``2026-11-20T13:45:12Z``, ``2026-11-20 13:45+01:00``, ``2026-11-20T13:45:12.5``),
    read in ``tz`` (UTC by default, as stored names and retention plans show dates)
    when it has no offset; an ISO 8601 date alone (``2026-11-20``), meaning the end of
    that day (23:59:59 in ``tz``), so "at or before 2026-11-20" includes the backups
    taken that day.  Raise ConfigError naming the value otherwise, and for a string of
    8 or 14 digits that reads as a date (``20261120``) or a stored-name stamp
    (``20261120134512``), which would otherwise silently mean a Unix time in 1970.
    """
    if isinstance(value, bool):
        raise ConfigError(f"bad date {value!r}: give an ISO 8601 date or time, or Unix seconds")
    if isinstance(value, (int, float)):
        return int(value // 1)
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ConfigError(f"bad date {value!r}: a datetime must be timezone-aware")
        return int(value.timestamp() // 1)
    if not isinstance(value, str):
        raise ConfigError(f"bad date {value!r}: give an ISO 8601 date or time, or Unix seconds")
    text = value.strip()
    if _DIGITS.fullmatch(text):
        if len(text) in (8, 14) and _reads_as_stamp(text):
            raise ConfigError(
                f"ambiguous date {value!r}: write it as ISO 8601 ({text[:4]}-{text[4:6]}-{text[6:8]}"
                f"{'T' + text[8:10] + ':' + text[10:12] + ':' + text[12:14] + 'Z' if len(text) == 14 else ''}) "
                "or give Unix seconds"
            )
        return int(text)
    try:
        day = date.fromisoformat(text)  # a date alone (a time makes it fail)
    except ValueError:
        pass
    else:
        return int(datetime.combine(day, time(23, 59, 59), tzinfo=tz).timestamp())
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"bad date {value!r}: use ISO 8601 (2026-11-20, 2026-11-20T13:45:12Z, 2026-11-20 13:45+01:00) "
            "or Unix seconds (the backup_date of show --json)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return int(moment.timestamp() // 1)


def _reads_as_stamp(text: str) -> bool:
    try:
        datetime.strptime(text, "%Y%m%d%H%M%S" if len(text) == 14 else "%Y%m%d")
    except ValueError:
        return False
    return True


def _interval(value: Any) -> int | None:
    if value is None:
        return None
    from bakthat.rotation_policy import parse_interval

    try:
        return parse_interval(value)
    except ConfigError as exc:
        raise ConfigError(f"full_every: {exc}") from None


def _max_chain(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"max_chain must be a whole number >= 0, not {value!r}")
    return value


# -- retention --------------------------------------------------------------------------


def keep_bases(plan: Any) -> Protection:
    """Given a retention plan (:class:`bakthat.rotation.Plan`), keep what kept backups
    depend on: every ``delete`` decision for a backup in the chain of a kept backup
    becomes ``keep``, with the reason (``kept: base of incremental of ...``) and the
    rule ``{"rule": "base", ...}``.  Return the Protection (its ``broken`` lists kept
    backups whose chain is already broken, for a warning).

    Rows being deleted by an unfinished earlier run (``retry``) are not live: a chain
    through one of them is broken.
    """
    live = [decision for decision in plan.decisions if decision.action in ("keep", "delete")]
    history = History(decision.row for decision in live)
    protection = history.protect(decision.row.stored_filename for decision in live if decision.action == "keep")
    for decision in live:
        reasons = protection.reasons.get(decision.row.stored_filename)
        if decision.action == "delete" and reasons:
            decision.action = "keep"
            decision.reasons = [text for text, _ in reasons]
            decision.rules = [dict(rule) for _, rule in reasons]
    return protection
