"""The ETA of a backup, a dump or a job, from what the last backup of the same name handled.

**The work ahead.**  A run is a list of parts (a backup is one; a job's sources are
its parts), each with an :class:`Estimate` of the files and bytes it will handle.  Work
is counted in bytes, each file counting :data:`FILE_COST` more (opening, reading the
metadata of and writing the header of a small file costs about what reading that much
data does: measured 5.5 KB in CPU and 21 KB in wall time on a warm cache, more on a cold
one; see docs/benchmarks.md, "Progress you can poll").  The share done is the work done over the work
expected, where a finished part counts what it did and a part not begun its
estimate; a part that never began (a job's source skipped by its hook) drops out.  The
ETA extrapolates the time since the first part began: ``elapsed * (1 - share) /
share``, given once :data:`MIN_SHARE` of the work is done.  There is no ETA, and the
reason is given, while a part still ahead has no estimate, or once the current part
has done more work than its estimate (never a negative or a stale certainty).

**The estimate.**  bakthat takes it from the
catalog, at no cost: the newest live backup of the same name, profile and destination
at the same level (``full``, ``diff`` or ``incr``: an incremental stores only what
changed, so a full's counts would say nothing about it) stored ``file_count`` files and
``source_size`` bytes (file data, or a dump's bytes).  There is none for the first
backup of a name (or of a level), nor for backups adopted from bakthat 0.6 (no counts):
then there is no ETA, and the status says why.  A pre-count (walking the tree twice) is
not offered: on the trees bakthat is meant for, it costs a second walk of every
directory for a figure the catalog already has from the night before.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bakthat.errors import BakthatError
from bakthat.utils import human_size

log = logging.getLogger("bakthat")

#: In an estimate, one file counts as this many bytes of work.
FILE_COST = 32 * 1024
#: No ETA before this share of the expected work is done (an extrapolation from less is noise).
MIN_SHARE = 0.01


@dataclass(frozen=True)
class Estimate:
    """What one part of a run (a backup, one source of a job) is expected to handle:
    ``files`` and ``bytes`` (file data, or a dump's bytes), and ``basis``, where the
    figures come from (``the last full backup of app (app.20261130020000.tar.zst: ...)``)."""

    files: int
    bytes: int
    basis: str

    @property
    def work(self) -> int:
        """Return the expected work in bytes (each file counting :data:`FILE_COST`)."""
        return self.bytes + FILE_COST * self.files


@dataclass(frozen=True)
class Guess:
    """An ETA as published: ``seconds`` (None: see ``note``), ``basis`` (where the
    estimate comes from), ``note`` (why there is no ETA, or None), and the files and
    bytes expected in all (None while a part has no estimate)."""

    seconds: float | None
    basis: str | None
    note: str | None
    files: int | None
    bytes: int | None


@dataclass
class _Part:
    name: str
    estimate: Estimate | str  # a str: there is no estimate, and why
    state: str = "pending"  # pending, current, done, skipped
    files_start: int = 0
    bytes_start: int = 0
    work: int = 0  # a done part: the work it did


class Parts:
    """The parts of one run and how far it went (not thread-safe: the publisher locks)."""

    def __init__(self) -> None:
        self._parts: list[_Part] = []
        self._started: float | None = None

    def __bool__(self) -> bool:
        return bool(self._parts)

    def expect(self, parts: Iterable[tuple[str, Estimate | str]]) -> None:
        """Given the parts in order, each with its estimate or why there is none, record them."""
        self._parts = [_Part(name, estimate) for name, estimate in parts]

    def begin(self, name: str, estimate: Estimate | str | None, files: int, bytes: int, now: float) -> None:
        """Mark the first pending part ``name`` (appended if none) as current from now,
        when the run had done ``files`` and ``bytes``, with a better ``estimate`` if
        given; pending parts before it are skipped.  Call :meth:`close` first."""
        found = next((part for part in self._parts if part.name == name and part.state == "pending"), None)
        if found is None:
            found = _Part(name, estimate if estimate is not None else "no estimate was made")
            self._parts.append(found)
        elif estimate is not None:
            found.estimate = estimate
        for part in self._parts[: self._parts.index(found)]:
            if part.state == "pending":
                part.state = "skipped"
        found.state, found.files_start, found.bytes_start = "current", files, bytes
        if self._started is None:
            self._started = now

    def close(self, files: int, bytes: int) -> None:
        """End the current part, if any, the run having done ``files`` and ``bytes``."""
        for part in self._parts:
            if part.state == "current":
                part.state = "done"
                part.work = _work(part, files, bytes)

    def guess(self, files: int, bytes: int, now: float) -> Guess:
        """Given what the run has done so far, return its ETA (see the module docstring)."""
        live = [part for part in self._parts if part.state != "skipped"]
        unknown = [part for part in live if part.state != "done" and isinstance(part.estimate, str)]
        known = [part.estimate for part in live if isinstance(part.estimate, Estimate)]
        if len(live) == 1 and known:
            basis: str | None = known[0].basis
        else:
            basis = f"the sum of {len(live)} parts' last backups" if known else None
        guessed = len(known) == len(live)  # else a part had no estimate, even if it is over
        expected_files = sum(item.files for item in known) if guessed else None
        expected_bytes = sum(item.bytes for item in known) if guessed else None

        def without(note: str) -> Guess:
            return Guess(None, basis, note, expected_files, expected_bytes)

        if unknown:
            return without("; ".join(f"no estimate for {part.name}: {part.estimate}" for part in unknown))
        done = total = 0
        for part in live:
            if part.state == "done":
                done, total = done + part.work, total + part.work
                continue
            estimate: Estimate = part.estimate  # type: ignore[assignment]
            total += estimate.work
            if part.state == "current":
                work = _work(part, files, bytes)
                if work > estimate.work:
                    return without(
                        f"past the estimate for {part.name}: {files - part.files_start} files and "
                        f"{human_size(bytes - part.bytes_start)} done, against {estimate.basis}"
                    )
                done += work
        if self._started is None or total <= 0 or done < MIN_SHARE * total:
            return without("estimating")
        share = done / total
        return Guess((now - self._started) * (1 - share) / share, basis, None, expected_files, expected_bytes)


def _work(part: _Part, files: int, bytes: int) -> int:
    return (bytes - part.bytes_start) + FILE_COST * (files - part.files_start)


def previous(
    name: str, *, destination: str, profile: str, level: str | None, dump: bool = False,
    backend_hash: str | None = None,
) -> Estimate | str:
    """Given a backup's name, destination, profile and level (None: any level, for a
    job's source whose level is chosen later), return the estimate from the newest live
    catalogued backup that matches, or a text saying why there is none.  The catalog
    must be bound (:func:`bakthat.models.bind_settings`); a catalog error is returned
    as the reason, never raised: an estimate never stops a backup."""
    import peewee

    from bakthat import models

    Backups = models.Backups
    try:
        query = Backups.search(name=name, destination=destination, backend_hash=backend_hash).where(
            (Backups.profile == profile) & (Backups.state == "ok") & Backups.file_count.is_null(False)
        )
        if level == "full":
            query = query.where((Backups.level == "full") | Backups.level.is_null())
        elif level is not None:
            query = query.where(Backups.level == level)
        row = query.first()
    except (peewee.PeeweeError, BakthatError, OSError) as exc:
        log.debug("no estimate for %s: %s", name, exc)
        return f"the catalog could not be read ({type(exc).__name__})"
    kind = "dump" if dump else f"{level} backup" if level else "backup"
    if row is None:
        return f"no earlier {kind} of {name}"
    files, size = int(row.file_count), int(row.source_size or 0)
    counted = human_size(size) if dump else f"{files} files, {human_size(size)}"
    return Estimate(files, size, f"the last {kind} of {name} ({row.stored_filename}: {counted})")


def begin(ctx: Any, plan: Any) -> Any:
    """Given a backup's context and plan (its level chosen), tell its status publisher
    (``plan.publisher``, if any) that its work starts, with its estimate; return the
    TarStats the walk is to fill so the publisher reads its files count live (None for
    a dump, or without a publisher)."""
    publisher = getattr(plan, "publisher", None)
    if publisher is None:
        return None
    from bakthat.tarwriter import TarStats

    dump = plan.dump is not None
    estimate = previous(
        plan.name, destination=ctx.destination, profile=plan.profile, level="full" if dump else plan.level or "full",
        dump=dump, backend_hash=ctx.backend.backend_hash,
    )
    counts = None if dump else TarStats()
    publisher.begin(plan.name, estimate, counts)
    return counts
