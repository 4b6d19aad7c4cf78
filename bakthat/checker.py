"""``check``: compare the catalog with the store and, optionally, read the archives.

(The module is ``checker``, not ``check``: a submodule named ``check`` would replace the
public ``bakthat.check`` function as an attribute of the package once imported.)

Without reading data, :func:`check` lists the store once and, for each live backup
selected, checks that its archive is there with the size the catalog records, that its
manifest is there, reads (within its size cap) and agrees with the row (stored name,
date, size, SHA-256, compression, encryption, level, base), that its index object is
there with its recorded size, and that its chain is whole (every link live, and none
damaged).  Checking the whole destination also lists the orphans (objects no row or
manifest accounts for, see :func:`bakthat.sync.find_orphans`).

With ``read_data`` (or ``read_data_subset``, a percentage of the selected backups picked
at random), each archive is read end to end: the stored bytes against the recorded
SHA-256, decryption (with the profile's password sources) and its authentication,
decompression and its checksum, and the tar structure, member by member, as a restore
checks it, with nothing written; its index is read and checked too.  An archive in a
cold storage class (Glacier) that is not readable is skipped and listed, unless
``wait`` restores it for reading first.

Each backup's outcome is recorded in the catalog (``checked_at``, ``check_result``),
which ``show`` and ``info`` print.  The result is a :class:`CheckResult`; the ``bakthat
check`` command exits 6 (IntegrityError's code) naming every damaged backup.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bakthat import manifest, models, passwords
from bakthat.errors import (
    BakthatError,
    ConfigError,
    IntegrityError,
    NotFoundError,
    RetrievalPendingError,
    UnsafeArchiveError,
    WrongPasswordError,
)
from bakthat.utils import strict_keywords

log = logging.getLogger("bakthat")

#: How many archives ``--read-data`` reads at once.
READ_THREADS = 2
#: Row fields a manifest must agree with.
COMPARED = ("stored_filename", "backup_date", "size", "sha256", "compression", "encryption", "level", "base")


@dataclass
class BackupCheck:
    """The outcome for one backup: ``status`` is ``ok``, ``damaged``, ``unreadable`` (no
    or a wrong password: the data could not be read) or ``skipped`` (cold storage);
    ``problems`` says what is wrong, each naming the object."""

    name: str
    stored_filename: str
    status: str = "ok"
    problems: list[str] = field(default_factory=list)
    data_read: bool = False

    def damage(self, problem: str) -> None:
        self.status = "damaged"
        self.problems.append(problem)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class CheckResult:
    """What :func:`check` found: one :class:`BackupCheck` per backup checked, the
    orphans of the store (when the whole destination was checked) and whether data
    was read."""

    backups: list[BackupCheck]
    orphans: list[Any]
    read_data: bool
    dry_run: bool = False

    @property
    def damaged(self) -> list[BackupCheck]:
        """The backups found damaged or unreadable."""
        return [backup for backup in self.backups if backup.status in ("damaged", "unreadable")]

    @property
    def skipped(self) -> list[BackupCheck]:
        return [backup for backup in self.backups if backup.status == "skipped"]

    @property
    def problem_orphans(self) -> list[Any]:
        """The orphans old enough not to belong to a running backup."""
        return [orphan for orphan in self.orphans if orphan.removable]

    @property
    def ok(self) -> bool:
        return not self.damaged and not self.problem_orphans

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "read_data": self.read_data,
            "backups": [backup.to_dict() for backup in self.backups],
            "damaged": [backup.stored_filename for backup in self.damaged],
            "skipped": [backup.stored_filename for backup in self.skipped],
            "orphans": [orphan.to_dict() for orphan in self.orphans],
        }


def parse_subset(value: Any) -> float:
    """Given ``10%``, ``10`` or ``2.5%``, return the percentage (0 < p <= 100).  Raise
    ConfigError otherwise."""
    text = str(value).strip()
    number = text[:-1] if text.endswith("%") else text
    try:
        percent = float(number)
    except ValueError:
        raise ConfigError(f"--read-data-subset takes a percentage such as 10%, not {value!r}") from None
    if not 0 < percent <= 100:
        raise ConfigError(f"--read-data-subset must be more than 0% and at most 100%, not {value!r}")
    return percent


@strict_keywords()
def check(
    names: Sequence[str] | str = (),
    destination: str | None = None,
    profile: str = "default",
    config: str | None = None,
    conf: Mapping[str, Any] | None = None,
    read_data: bool = False,
    read_data_subset: Any = None,
    password: str | None = None,
    prompt: str | bool = "no",
    wait: bool = False,
) -> CheckResult:
    """Check the backups named in ``names`` (backup names or stored filenames; all live
    backups of the destination when empty) against the store; return a CheckResult.

    ``read_data`` reads every selected archive end to end, ``read_data_subset`` (``10%``)
    a random share of them (see the module docstring); ``wait`` waits for cold-storage
    retrievals instead of skipping.  Fires ``before_check`` and ``on_check``.  Raise
    NotFoundError if a name matches no live backup, ConfigError for a bad subset.
    Damage is reported in the result, never raised.
    """
    from bakthat.actions import backups_of, resolve
    from bakthat.eventing import session
    from bakthat.sync import _safe_objects, find_orphans

    wanted = [names] if isinstance(names, str) else list(names)
    subset = None if read_data_subset is None else parse_subset(read_data_subset)
    with session("check") as current:
        ctx = resolve(destination, profile, config, conf)
        Backups = models.Backups
        live = list(backups_of(ctx))
        selected = _select(live, wanted, ctx.destination)
        skipped_keys: list[tuple[str, str]] = []
        objects = _safe_objects(ctx.backend, skipped_keys)
        results = {row.stored_filename: _check_objects(ctx, row, objects) for row in selected}
        reading: list[Any] = []
        if read_data or subset is not None:
            reading = selected if subset is None else _sample(selected, subset)
        _read_all(ctx, reading, results, password, prompt, wait)
        _check_chains(ctx, objects, live, selected, results)
        orphans = []
        if not wanted:
            known = {row.stored_filename for row in Backups.select(Backups.stored_filename)}
            orphans = find_orphans(ctx, objects, known)
        now = int(time.time())
        for row in selected:
            outcome = results[row.stored_filename]
            row.checked_at = now
            row.check_result = _summary(outcome)
            row.save()
            if outcome.status != "ok":
                log.warning("%s is %s: %s", row.stored_filename, outcome.status, "; ".join(outcome.problems))
        result = CheckResult([results[row.stored_filename] for row in selected], orphans, bool(reading))
        return current.finish(result)


def _select(live: list[Any], wanted: list[str], destination: str) -> list[Any]:
    if not wanted:
        return sorted(live, key=lambda row: (row.filename, row.backup_date))
    chosen: dict[str, Any] = {}
    for name in wanted:
        matches = [row for row in live if row.filename == name or row.stored_filename == name]
        if not matches:
            raise NotFoundError(f"no live backup named or stored as {name!r} in destination {destination}")
        for row in matches:
            chosen[row.stored_filename] = row
    return sorted(chosen.values(), key=lambda row: (row.filename, row.backup_date))


def _sample(rows: list[Any], percent: float) -> list[Any]:
    count = max(1, round(len(rows) * percent / 100)) if rows else 0
    chosen = set(id(row) for row in random.SystemRandom().sample(rows, count))
    return [row for row in rows if id(row) in chosen]


def _summary(outcome: BackupCheck) -> str:
    if outcome.status == "ok":
        return "ok: objects and data" if outcome.data_read else "ok: objects"
    return f"{outcome.status}: {'; '.join(outcome.problems)}"[:2000]


def _check_objects(ctx: Any, row: Any, objects: Mapping[str, Any]) -> BackupCheck:
    """Check the objects of one backup as the store lists them (no data read)."""
    from bakthat.index_store import index_info

    outcome = BackupCheck(row.filename, row.stored_filename)
    info = objects.get(row.stored_filename)
    if info is None:
        outcome.damage(f"its archive {row.stored_filename} is missing from the store")
    elif info.size != row.size:
        outcome.damage(f"its archive {row.stored_filename} holds {info.size} bytes, the catalog says {row.size}")
    metadata = row.metadata or {}
    if metadata.get("manifest") or not (metadata.get("KeyValue") or metadata.get("adopted")):
        key = manifest.key_for(row.stored_filename)
        found = objects.get(key)
        if found is None:
            outcome.damage(f"its manifest {key} is missing from the store")
        else:
            try:
                fields = manifest.row_fields(manifest.read(ctx.backend, found))
            except (IntegrityError, NotFoundError, OSError) as exc:
                outcome.damage(f"its manifest {key} does not read ({exc})")
            else:
                for name in COMPARED:
                    mine = getattr(row, name, None) or (None if name != "level" else "full")
                    theirs = fields.get(name) or (None if name != "level" else "full")
                    if mine != theirs:
                        outcome.damage(f"its manifest {key} says {name} {theirs!r}, the catalog {mine!r}")
    index = index_info(row)
    if index is not None:
        found = objects.get(index["key"])
        if found is None:
            outcome.damage(f"its index {index['key']} is missing from the store")
        elif index.get("size") is not None and found.size != index["size"]:
            outcome.damage(f"its index {index['key']} holds {found.size} bytes, {index['size']} were recorded")
    return outcome


def _prepare_read(ctx: Any, row: Any, outcome: BackupCheck, password: str | None, prompt: Any, wait: bool) -> Any:
    """Make one archive readable (a cold-storage retrieval when ``wait``) and find its
    password, in the calling thread (a prompt may ask).  Return the DecryptingReader
    keywords (an empty dict for a plain archive), or None if its data is not to be read
    (missing, cold, no password: the outcome says why)."""
    if outcome.status == "damaged" and any("missing" in problem for problem in outcome.problems):
        return None  # nothing to read
    try:
        cold = None if wait else _cold_class(ctx.backend, row.stored_filename)
        if cold is not None:
            raise RetrievalPendingError(f"storage class {cold}, not restored for reading")
        ctx.backend.prepare_read(row.stored_filename, wait=wait)
    except RetrievalPendingError as exc:
        outcome.status = "skipped" if outcome.status == "ok" else outcome.status
        outcome.problems.append(f"its archive is in cold storage and was not read ({exc}); check --wait reads it")
        return None
    try:
        return passwords.for_restore(row, password, prompt, ctx.settings) if row.is_encrypted() else {}
    except WrongPasswordError as exc:
        outcome.status = "unreadable" if outcome.status == "ok" else outcome.status
        outcome.problems.append(f"its data was not read: {exc}")
        return None


@dataclass
class _Read:
    """What reading one object of a backup found: members read, and the error if any."""

    members: int = 0
    error: BakthatError | None = None


def _read_archive(ctx: Any, row: Any, secret: Mapping[str, Any], found: _Read) -> None:
    """Read one archive end to end, writing nothing; record members and damage in ``found``."""
    from bakthat import legacy, legacy_raw
    from bakthat.chain_read import ArchiveStream, read_through

    def counted() -> None:
        found.members += 1

    try:
        if legacy.is_raw(row):  # a file bakthat 0.6 stored with compress: false: no tar to walk
            legacy_raw.read_and_check(ctx.backend, row, secret.get("passphrase"))
            found.members = 1
        else:
            read_through(ArchiveStream(ctx.backend, row, secret or None), counted)
    except BakthatError as exc:
        found.error = exc


def _read_index(ctx: Any, row: Any, secret: Mapping[str, Any], found: _Read) -> None:
    """Read and check the index object of a backup; record damage in ``found``."""
    from bakthat.index_store import read_index

    try:
        read_index(ctx.backend, row, secret or None)
    except BakthatError as exc:
        found.error = exc


def _record(row: Any, outcome: BackupCheck, archive: _Read, index: _Read | None) -> None:
    """Record in ``outcome`` what reading the archive (and then the index) found."""
    error = archive.error or (index.error if index is not None else None)
    if isinstance(error, WrongPasswordError):
        outcome.status = "unreadable" if outcome.status == "ok" else outcome.status
        outcome.problems.append(f"its data could not be decrypted: {error}")
    elif error is not None:
        outcome.damage(f"reading its data failed after {archive.members} member(s): {error}")
    else:
        outcome.data_read = True
        log.info("Read %s: %d members, SHA-256 and decryption verified", row.stored_filename, archive.members)


def _read_all(ctx: Any, rows: Sequence[Any], results: Mapping[str, BackupCheck], password: str | None,
              prompt: Any, wait: bool) -> None:
    """Read the data of ``rows``: passwords and retrievals first, one by one, then the
    archives and their indexes, up to READ_THREADS objects at once (each archive itself
    is read, decompressed and parsed in a pipeline of threads, see
    :class:`bakthat.chain_read.ArchiveStream`)."""
    from bakthat.index_store import index_info

    tasks: list[tuple[Any, ...]] = []
    reads = []
    for row in rows:
        outcome = results[row.stored_filename]
        secret = _prepare_read(ctx, row, outcome, password, prompt, wait)
        if secret is None:
            continue
        archive, index = _Read(), (_Read() if index_info(row) is not None else None)
        reads.append((row, outcome, archive, index))
        tasks.append((_read_archive, ctx, row, secret, archive))
        if index is not None:
            tasks.append((_read_index, ctx, row, secret, index))
    if len(tasks) <= 1 or READ_THREADS <= 1:
        for function, *arguments in tasks:
            function(*arguments)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(READ_THREADS, len(tasks)), thread_name_prefix="bakthat-check") as pool:
            for future in [pool.submit(*task) for task in tasks]:
                future.result()  # damage is recorded in the _Read; anything else is raised
    for row, outcome, archive, index in reads:
        _record(row, outcome, archive, index)


def _cold_class(backend: Any, key: str) -> str | None:
    """Return the archive storage class of an object that cannot be read without a
    retrieval (asking the store, requesting nothing), or None."""
    head = getattr(backend, "head", None)
    if head is None:
        return None
    from bakthat.backends.s3 import ARCHIVE_CLASSES, restore_state

    info = head(key)
    storage_class = info.get("StorageClass") or "STANDARD"
    if storage_class in ARCHIVE_CLASSES and restore_state(info.get("Restore"))[0] != "ready":
        return storage_class
    return None


def _check_chains(
    ctx: Any, objects: Mapping[str, Any], live: list[Any], selected: list[Any], results: Mapping[str, BackupCheck]
) -> None:
    """Mark each selected backup whose chain is broken or holds a damaged backup (the
    objects of chain links not selected are checked too, without reading data)."""
    from bakthat.index_store import history
    from bakthat.levels import BrokenChainError

    by_name: dict[tuple[str, str], list[Any]] = {}
    for row in live:
        by_name.setdefault((row.filename, row.profile), []).append(row)
    extra: dict[str, BackupCheck] = {}
    for row in selected:
        if (row.level or "full") == "full":
            continue
        chain_history, rows, unusable = history(by_name[(row.filename, row.profile)])
        try:
            links = chain_history.chain(row.stored_filename, unusable)
        except BrokenChainError as exc:
            results[row.stored_filename].damage(f"its chain is broken: {exc}")
            continue
        damaged = {}
        for link in links[:-1]:
            outcome = results.get(link.stored_filename) or extra.get(link.stored_filename)
            if outcome is None:
                outcome = extra[link.stored_filename] = _check_objects(ctx, rows[link.stored_filename], objects)
            if outcome.status == "damaged":
                damaged[link.stored_filename] = "; ".join(outcome.problems)
        try:
            chain_history.chain(row.stored_filename, damaged)
        except BrokenChainError as exc:
            results[row.stored_filename].damage(f"its chain is broken: {exc}")
