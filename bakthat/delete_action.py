"""The delete action: one backup, under its name's lock, in the safe order.

:func:`delete_row` is that order (mark the row, delete the objects, mark it deleted);
:mod:`bakthat.rotation` deletes each backup it retires with it.  The public names
stay :func:`bakthat.delete` and ``bakthat.core.delete``/``delete_row``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from bakthat import manifest
from bakthat.actions import Context, find_row, resolve
from bakthat.errors import NotFoundError
from bakthat.eventing import session
from bakthat.utils import strict_keywords

log = logging.getLogger("bakthat")


@strict_keywords()
def delete(
    filename: str,
    destination: str | None = None,
    profile: str = "default",
    config: str | None = None,
    conf: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    lock_timeout: float = 60.0,
) -> Any:
    """Delete the newest backup named ``filename`` (or stored as ``filename``); return its row.

    The deletion holds the lock of the backup's name (as rotation does, see
    :mod:`bakthat.locks`), so it never overlaps a rotation of that name on any host
    sharing the catalog.  The row is first marked deleted (``is_deleted``, state
    ``deleting``) so it can no longer be restored, then the archive and its manifest
    are deleted, then the state becomes ``deleted``.  An object already gone is a
    warning, not an error.  With ``dry_run``, return a
    :class:`bakthat.dryrun.DeletePlan` naming the backup and delete nothing.

    Raise NotFoundError if nothing matches; LockedError if another process holds the
    name's lock longer than ``lock_timeout`` seconds; StorageError (the row staying
    ``deleting`` for a retry) if the store fails.
    """
    from bakthat import dryrun
    from bakthat.locks import name_lock

    with session("delete", dry_run) as current:
        ctx = resolve(destination, profile, config, conf)
        row = find_row(ctx, filename)
        if dry_run:
            log.debug("Would delete %s; dry run: nothing was deleted", row.stored_filename)
            return current.finish(dryrun.DeletePlan(row))
        with name_lock(ctx.settings, ctx.backend.backend_hash, row.filename, lock_timeout):
            row = find_row(ctx, filename)  # again, under the lock: it may have changed meanwhile
            delete_row(ctx, row)
        return current.finish(row)


def delete_row(ctx: Context, row: Any) -> None:
    """Given a context and a live row, delete its backup in the safe order.

    Mark the row deleted (``is_deleted``, state ``deleting``) first, so it can never be
    restored again; then delete the archive and its manifest (an object already gone
    is a warning); then set state ``deleted``.  Raise StorageError, leaving the row in
    state ``deleting`` for a retry, if the store fails.
    """
    row.is_deleted = True
    row.state = "deleting"
    row.last_updated = int(time.time())
    row.save()
    keys = [row.stored_filename]
    metadata = row.metadata or {}
    # KeyValue entries have no manifest, nor do adopted 0.6 backups unless one was written.
    if metadata.get("manifest") or not (metadata.get("KeyValue") or metadata.get("adopted")):
        keys.append(manifest.key_for(row.stored_filename))
    if isinstance(metadata.get("index"), dict) and metadata["index"].get("key"):
        from bakthat.index_store import index_key

        keys.insert(1, index_key(row.stored_filename))
    for stored_key in keys:
        try:
            ctx.backend.delete(stored_key)
        except NotFoundError:
            log.warning("%s was already gone from %s", stored_key, ctx.destination)
    row.state = "deleted"
    row.save()
    log.info("Deleted %s", row.stored_filename)
