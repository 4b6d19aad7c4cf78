"""Adopt the backups bakthat 0.6 left in a store: find them, describe them, catalogue them.

0.6 wrote no manifest: all that describes one of its backups is the object's name
(``<name>.<UTC stamp>.tgz[.enc]``, or ``<name>.<UTC stamp>[.enc]`` for a file uploaded
with ``compress: false``; see :mod:`bakthat.legacy`) and its size.  :func:`adopt`
(called by :func:`bakthat.sync.sync`) gives every such object the store holds and the
catalog lacks a row with what can be known: name, date, size, compression (``gzip``,
or ``raw`` for an uncompressed file), encryption (``beefish`` for ``.enc``, else
none), destination, the profile, ``metadata.adopted = "0.6"``, and the store's ETag
when it is an MD5 (S3 and Swift; restore of a raw file checks it).  There is no
SHA-256 (0.6 recorded none); restore relies on the format's own checks (gzip CRC-32
and length, tar structure), on the size and ETag, and on the store's.  Adopted rows
then show, restore, rotate and delete like any other.  An object shaped like a 0.6
name whose name part is not a single file name (``..``, a ``/``) is not adopted and
is named in a warning.

Nothing is written to the store unless asked: with ``write_manifests`` each adopted
object is read once, hashed, and gets a manifest beside it (as bakthat writes for its
own backups), so other hosts' ``sync`` find it with its SHA-256.  A legacy Glacier vault
has no listing: its objects come from a vault inventory job (hours on AWS), recorded in
the ``retrievals`` table as 0.6 did with its own inventory; ``wait`` polls for it.
"""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Iterable, Mapping
from typing import Any

import peewee

from bakthat import legacy, manifest, models
from bakthat.backends.base import ObjectInfo
from bakthat.pipeline import HashingReader
from bakthat.settings import profile_of

log = logging.getLogger("bakthat")

#: ``metadata.adopted`` of an adopted row: the bakthat version that wrote the object.
ADOPTED = legacy.ADOPTED
#: ``format_version`` of an adopted row (bakthat's own archives are 1).
LEGACY_FORMAT_VERSION = 0
_MD5 = re.compile(r"[0-9a-f]{32}")

__all__ = ["ADOPTED", "adopt", "candidates", "legacy_row"]


def candidates(objects: Iterable[ObjectInfo], known: set[str], manifest_suffix: str) -> list[tuple[legacy.LegacyName, ObjectInfo]]:
    """Return the 0.6-named objects the catalog does not know and no manifest describes.

    An object with a manifest beside it is bakthat's own (or already adopted with
    ``write_manifests``): the manifest path of sync handles it.
    """
    listed = {info.key: info for info in objects}
    found = []
    for key in sorted(listed):
        if key in known or key + manifest_suffix in listed:
            continue
        parsed = legacy.parse_name(key)
        if parsed is not None:
            found.append((parsed, listed[key]))
    return found


def legacy_row(ctx: Any, parsed: legacy.LegacyName, size: int, etag: str | None = None) -> Any:
    """Given core's Context, a parsed 0.6 name, the object's size and the ETag the
    store listed (kept when it is an MD5), return an unsaved row."""
    metadata: dict[str, Any] = {"adopted": ADOPTED, "is_enc": parsed.encrypted, "is_gzipped": not parsed.raw}
    md5 = str(etag or "").strip('"').lower()
    if _MD5.fullmatch(md5):
        metadata["etag"] = md5
    return models.Backups(
        backend=ctx.destination,
        backend_hash=ctx.backend.backend_hash,
        backup_date=parsed.backup_date,
        filename=parsed.name,
        is_deleted=False,
        last_updated=int(time.time()),
        metadata=metadata,
        size=size,
        stored_filename=parsed.stored_filename,
        tags="",
        compression=parsed.compression,
        encryption=legacy.ENCRYPTION if parsed.encrypted else "none",
        profile=profile_of(ctx.settings),
        format_version=LEGACY_FORMAT_VERSION,
    )


def _write_manifest(ctx: Any, row: Any, manifest_suffix: str) -> None:
    """Read the adopted object once, record its SHA-256, and store a manifest beside it."""
    reader = HashingReader(ctx.backend.open_read(row.stored_filename))
    try:
        reader.drain()
    finally:
        reader.close()
    if reader.size != row.size:
        from bakthat.errors import IntegrityError

        raise IntegrityError(f"{row.stored_filename}: read {reader.size} bytes, the store listed {row.size}")
    row.sha256 = reader.hexdigest()
    manifest_key = row.stored_filename + manifest_suffix
    described = manifest.build_adopted(row, ADOPTED, socket.gethostname(), LEGACY_FORMAT_VERSION)
    ctx.backend.put(manifest_key, manifest.encode(described))
    row.metadata = {**row.metadata, "manifest": manifest_key}


def adopt(
    ctx: Any,
    objects: Iterable[ObjectInfo],
    known: set[str],
    manifest_suffix: str,
    *,
    dry_run: bool = False,
    write_manifests: bool = False,
    wait: bool = False,
) -> list[Any]:
    """Catalogue the 0.6 backups of ``ctx``'s store that the catalog lacks; return their rows.

    ``objects`` is the store's listing (ignored for a legacy Glacier vault, whose
    inventory is fetched instead); ``known`` the stored filenames the catalog has.
    With ``dry_run`` nothing is saved or written (a vault inventory job may still be
    requested: it changes no data).  Raise RetrievalPendingError when a vault inventory
    is not ready yet (and ``wait`` is false), StorageError if the store fails.
    """
    backend = ctx.backend
    archives: Mapping[str, Any] = {}
    if backend.vault_inventory:
        archives = {entry.key: entry for entry in backend.inventory(wait=wait)}
        objects = [ObjectInfo(key, entry.size, entry.created) for key, entry in archives.items()]
    objects = list(objects)
    rows = []
    for parsed, info in candidates(objects, known, manifest_suffix):
        row = legacy_row(ctx, parsed, info.size, (info.metadata or {}).get("etag"))
        rows.append(row)
        if dry_run:
            log.info("Would adopt %s (bakthat 0.6%s)", parsed.stored_filename, _kind(parsed))
            continue
        if parsed.stored_filename in archives:
            backend.adopt_archive(archives[parsed.stored_filename])
        if write_manifests:
            if backend.vault_inventory:
                log.warning("%s: no manifest written (reading a vault archive needs a retrieval job)", parsed.stored_filename)
            else:
                _write_manifest(ctx, row, manifest_suffix)
        try:
            row.save(force_insert=True)
        except peewee.IntegrityError:
            log.warning("Skipping %s: the catalog got it meanwhile", parsed.stored_filename)
            rows.pop()
            continue
        log.info("Adopted %s (bakthat 0.6%s)", parsed.stored_filename, _kind(parsed))
    for info in objects:
        key = info.key
        if key in known or key + manifest_suffix in known or legacy.parse_name(key) is not None:
            continue
        if legacy.looks_like_06(key) and not key.endswith(manifest_suffix):
            log.warning(
                "Not adopted: %r looks like a bakthat 0.6 backup, but its name part is not a single file "
                "name (restoring it could write outside the target); bakthat ls lists it", key
            )
    return rows


def _kind(parsed: legacy.LegacyName) -> str:
    """Return what the adoption log line says about a 0.6 object beyond its name."""
    kind = ", a file stored without compression" if parsed.raw else ""
    return kind + (", encrypted" if parsed.encrypted else "")
