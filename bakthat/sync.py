"""Rebuild or refresh the catalog from the store's manifests.

The store is the source of truth: every archive has ``<stored name>.manifest.json``
beside it.  :func:`sync` adds a catalog row for each manifest the catalog does not know,
which recovers a lost catalog (bakthat 0.6 issue #76) and shows one host the backups
other hosts wrote to the same store (what 0.6's ``sync`` server did).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import peewee

from bakthat import models
from bakthat.core import MANIFEST_SUFFIX, _context
from bakthat.errors import IntegrityError, NotFoundError

log = logging.getLogger("bakthat")


def _row_from_manifest(manifest: Mapping[str, Any], ctx: Any) -> Any:
    """Given a parsed manifest, return an unsaved catalog row.  Raise IntegrityError if malformed."""
    try:
        tags = manifest.get("tags") or []
        return models.Backups(
            backend=ctx.destination,
            backend_hash=ctx.backend.backend_hash,
            backup_date=int(manifest["backup_date"]),
            filename=str(manifest["name"]),
            is_deleted=False,
            last_updated=int(time.time()),
            metadata={
                "is_enc": manifest["encryption"] != "none",
                "is_gzipped": manifest["compression"] == "gzip",
                "client": manifest.get("host"),
                "manifest": manifest["stored_filename"] + MANIFEST_SUFFIX,
                **{key: manifest[key] for key in ("header_sha256", "skipped", "key") if manifest.get(key)},
            },
            size=int(manifest["size"]),
            stored_filename=str(manifest["stored_filename"]),
            tags=" ".join(tags) if isinstance(tags, list) else str(tags),
            session_id=manifest.get("session_id"),
            sha256=str(manifest["sha256"]),
            compression=str(manifest["compression"]),
            encryption=str(manifest["encryption"]),
            host=manifest.get("host"),
            profile=str(manifest.get("profile") or "default"),
            source_path=manifest.get("source_path"),
            source_size=manifest.get("source_size"),
            file_count=manifest.get("file_count"),
            format_version=int(manifest.get("format_version") or 1),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"malformed manifest ({exc})") from None


def sync(
    destination: str | None = None,
    profile: str = "default",
    config: str | None = None,
    conf: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    write_manifests: bool = False,
    wait: bool = False,
) -> list[Any]:
    """Add to the catalog every backup whose manifest is in the store but not in the catalog.

    Given the usual destination/profile/config/conf arguments, read each
    ``*.manifest.json`` of the destination whose archive the catalog does not list for
    this store, check that the archive exists with the recorded size, and insert a row
    (unless ``dry_run``).  Then adopt the backups bakthat 0.6 left there (see
    :mod:`bakthat.adopt`; ``write_manifests`` gives each a manifest, ``wait`` waits for
    a Glacier vault's inventory).  Return the new rows, oldest first.  A manifest that is
    unreadable or malformed, or whose archive is missing or of another size, is skipped
    with a warning; rows already in the catalog (live or deleted) are left alone.
    """
    ctx = _context(destination, profile, config, conf)
    Backups = models.Backups
    known = {row.stored_filename for row in Backups.select(Backups.stored_filename)}
    objects = {info.key: info for info in ctx.backend.list()}
    found = []
    for key in sorted(objects):
        if not key.endswith(MANIFEST_SUFFIX):
            continue
        stored = key[: -len(MANIFEST_SUFFIX)]
        if stored in known:
            continue
        try:
            with ctx.backend.open_read(key) as handle:
                manifest = json.loads(handle.read())
            if not isinstance(manifest, dict) or manifest.get("format") != "bakthat-manifest":
                raise IntegrityError("not a bakthat manifest")
            row = _row_from_manifest(manifest, ctx)
            if row.stored_filename != stored:
                raise IntegrityError(f"it describes {row.stored_filename!r}")
            archive = objects.get(stored)
            if archive is None:
                raise NotFoundError("its archive is missing")
            if archive.size != row.size:
                raise IntegrityError(f"its archive holds {archive.size} bytes, the manifest says {row.size}")
        except (IntegrityError, NotFoundError, ValueError) as exc:
            log.warning("Skipping %s: %s", key, exc)
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
        ctx, objects.values(), known, MANIFEST_SUFFIX, dry_run=dry_run, write_manifests=write_manifests, wait=wait
    )
    return sorted(found + adopted, key=lambda row: (row.backup_date, row.stored_filename))
