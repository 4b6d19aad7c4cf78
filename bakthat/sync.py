"""Rebuild or refresh the catalog from the store's manifests, and find orphans.

The store is the source of truth: every archive has ``<stored name>.manifest.json``
beside it.  :func:`sync` adds a catalog row for each manifest the catalog does not know,
which recovers a lost catalog (bakthat 0.6 issue #76) and shows one host the backups
other hosts wrote to the same store (what 0.6's ``sync`` server did).

Everything read from the store is untrusted input: a key that could name a path
outside the store (``..``, ``//``, a leading ``/`` or ``./``), a manifest larger than
:data:`MANIFEST_CAP` (it is never read whole), one that is not JSON, or one with a
missing field, a wrong type or an out-of-range value is skipped with a warning naming
it; the rest of the store is still synced.

Backups bakthat 0.6 left (no manifest) are adopted through :mod:`bakthat.adopt`.  An
*orphan* is what is left unaccounted for: an archive named as bakthat writes them with
neither a manifest nor a catalog row (a backup killed between storing its archive and
its manifest, or whose manifest hit a full disk), or a manifest whose archive is gone
and that no row refers to.  :func:`sync` reports them;
with ``remove_orphans`` it removes those older than :data:`ORPHAN_GRACE` (a younger one
may belong to a backup still running); a dry run only lists them.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import peewee

from bakthat import manifest, models
from bakthat.actions import resolve
from bakthat.errors import BakthatError, ConfigError, IntegrityError, NotFoundError

log = logging.getLogger("bakthat")

#: The largest manifest read: :data:`bakthat.manifest.CAP`.
MANIFEST_CAP = manifest.CAP
#: An orphan younger than this (seconds) may belong to a backup still writing its manifest.
ORPHAN_GRACE = 3600
#: Stored names bakthat 1.x writes: ``<name>.<UTC stamp>.<tar.zst|tgz|tar>[.age]``.
STORED_NAME = re.compile(r"^(?P<name>[^/]+)\.(?P<stamp>\d{14})\.(?P<extension>tar\.zst|tgz|tar)(?P<age>\.age)?$")


@dataclass
class Orphan:
    """An object of the store that neither a manifest nor a catalog row accounts for."""

    key: str
    size: int
    modified: float | None
    kind: str  # "archive" | "manifest" | "index"
    removable: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class SyncResult(list):  # type: ignore[type-arg]
    """The rows sync added (a plain list, as before), with ``orphans``, ``removed`` and ``skipped``."""

    def __init__(self, rows: list[Any], orphans: list[Orphan], removed: list[str], skipped: list[tuple[str, str]]):
        super().__init__(rows)
        self.orphans = orphans
        self.removed = removed
        self.skipped = skipped


# -- checking what the store says ------------------------------------------------------


def _row_from_manifest(data: Mapping[str, Any], ctx: Any) -> Any:
    """Given a parsed manifest, return an unsaved catalog row of ``ctx``'s destination.

    Raise IntegrityError naming the first field that is missing, of the wrong type or
    out of range (see :func:`bakthat.manifest.row_fields`).
    """
    return models.Backups(
        backend=ctx.destination,
        backend_hash=ctx.backend.backend_hash,
        is_deleted=False,
        last_updated=int(time.time()),
        **manifest.row_fields(data),
    )


def _safe_objects(backend: Any, skipped: list[tuple[str, str]]) -> dict[str, Any]:
    """List the store; leave out (with a warning) keys that could name a path outside it."""
    objects = {}
    for info in backend.list():
        try:
            backend.check_key(info.key)
        except ConfigError:
            _skip(skipped, info.key, "its key is unsafe (absolute, '..', '.', '//' or a control character)")
            continue
        objects[info.key] = info
    return objects


def _skip(skipped: list[tuple[str, str]], key: str, why: str) -> None:
    log.warning("Skipping %r: %s", key, why)
    skipped.append((key, why))


# -- sync -----------------------------------------------------------------------------------


def sync(
    destination: str | None = None,
    profile: str = "default",
    config: str | None = None,
    conf: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    write_manifests: bool = False,
    wait: bool = False,
    remove_orphans: bool = False,
) -> SyncResult:
    """Add to the catalog every backup whose manifest is in the store but not in the catalog.

    Given the usual destination/profile/config/conf arguments, read each
    ``*.manifest.json`` of the destination whose archive the catalog does not list,
    check it (see the module docstring) and that the archive exists with the recorded
    size, and insert a row (unless ``dry_run``).  Then adopt the backups bakthat 0.6
    left there (see :mod:`bakthat.adopt`; ``write_manifests`` gives each a manifest,
    ``wait`` waits for a Glacier vault's inventory).  Then look for orphans and, with
    ``remove_orphans`` (and not ``dry_run``), remove those that are old enough.

    Return the new rows, oldest first, as a :class:`SyncResult` that also holds the
    orphans, the removed keys and the skipped objects.  One bad object is a warning
    naming it, never the end of the sync; rows already in the catalog (live or
    deleted) are left alone.
    """
    ctx = resolve(destination, profile, config, conf)
    Backups = models.Backups
    known = {row.stored_filename for row in Backups.select(Backups.stored_filename)}
    skipped: list[tuple[str, str]] = []
    objects = _safe_objects(ctx.backend, skipped)
    found = []
    for key in sorted(objects):
        if not manifest.is_manifest(key):
            continue
        stored = manifest.archive_of(key)
        if stored in known:
            continue
        try:
            row = _row_from_manifest(manifest.read(ctx.backend, objects[key]), ctx)
            if row.stored_filename != stored:
                raise IntegrityError(f"it describes {row.stored_filename!r}")
            archive = objects.get(stored)
            if archive is None:
                raise NotFoundError("its archive is missing")
            if archive.size != row.size:
                raise IntegrityError(f"its archive holds {archive.size} bytes, the manifest says {row.size}")
            index = (row.metadata or {}).get("index")
            if index is not None and (objects.get(index["key"]) is None or objects[index["key"]].size != index["size"]):
                log.warning("%s: its index %s is missing or of the wrong size; its chain cannot be restored "
                            "(bakthat check reports it)", stored, index["key"])
        except (BakthatError, OSError) as exc:
            _skip(skipped, key, str(exc))
            continue
        found.append(row)
    found.sort(key=lambda row: (row.backup_date, row.stored_filename))
    if not dry_run:
        for row in found:
            try:
                row.save(force_insert=True)
            except peewee.IntegrityError:
                log.warning("Skipping %s: the catalog got it meanwhile", row.stored_filename)
    for row in found:
        log.info("%s %s", "Would add" if dry_run else "Added", row.stored_filename)
    # -- bakthat 0.6's backups (no manifest): see bakthat.adopt ------------------------
    from bakthat import adopt

    known |= {row.stored_filename for row in found}
    adopted = adopt.adopt(
        ctx, objects.values(), known, manifest.SUFFIX, dry_run=dry_run, write_manifests=write_manifests, wait=wait
    )
    # -- orphans: what neither a manifest, a row nor an adoption accounts for ------------
    orphans = find_orphans(ctx, objects, known | {row.stored_filename for row in adopted})
    removed = _remove_orphans(ctx, orphans, dry_run) if remove_orphans else []
    rows = sorted(found + adopted, key=lambda row: (row.backup_date, row.stored_filename))
    return SyncResult(rows, orphans, removed, skipped)


def find_orphans(ctx: Any, objects: Mapping[str, Any], catalogued: set[str]) -> list[Orphan]:
    """Return the orphans among ``objects`` (see the module docstring), by key."""
    from bakthat.index_store import archive_of_index

    reserved = {row.stored_filename for row in models.Reservations.select(models.Reservations.stored_filename)}
    accounted = catalogued | reserved
    now = time.time()
    orphans = []
    for key in sorted(objects):
        info = objects[key]
        indexed = archive_of_index(key)
        if manifest.is_manifest(key):
            stored = manifest.archive_of(key)
            if stored in objects or stored in accounted:
                continue
            kind = "manifest"
        elif indexed is not None:
            if indexed in objects or indexed in accounted:
                continue
            kind = "index"
        else:
            if manifest.key_for(key) in objects or key in accounted or not STORED_NAME.match(key):
                continue  # described, catalogued, in progress, or not a name bakthat writes
            kind = "archive"
        recent = info.modified is not None and now - info.modified < ORPHAN_GRACE
        note = "written less than an hour ago: a backup may still be running" if recent else ""
        orphans.append(Orphan(key, info.size, info.modified, kind, not recent, note))
        log.warning(
            "Orphan %s %s (%d bytes): no %s and no catalog row%s",
            kind, key, info.size, "manifest" if kind == "archive" else "archive", f"; {note}" if note else "",
        )
    return orphans


def _remove_orphans(ctx: Any, orphans: list[Orphan], dry_run: bool) -> list[str]:
    """Delete the removable orphans (or, in a dry run, say which would be); return their keys."""
    removed = []
    for orphan in orphans:
        if not orphan.removable:
            continue
        if dry_run:
            log.info("Would remove orphan %s", orphan.key)
            removed.append(orphan.key)
            continue
        try:
            ctx.backend.delete(orphan.key)
        except NotFoundError:
            log.info("Orphan %s was already gone", orphan.key)
            continue
        except BakthatError as exc:
            log.error("Could not remove orphan %s: %s", orphan.key, exc)
            continue
        log.info("Removed orphan %s", orphan.key)
        removed.append(orphan.key)
    return removed
