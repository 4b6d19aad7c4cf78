"""A backup's stored filename, from its claim to its removal after a failure.

:func:`reserve` claims a free ``<name>.<UTC stamp>.<suffix>`` in the catalog before
any byte is uploaded (the first catalog write of a backup), :func:`wait_until` keeps a
row from being dated in the future, and :func:`unstore` removes what a backup that
failed after its upload left in the store.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

from bakthat import manifest, models
from bakthat.actions import Context
from bakthat.backup_plan import Plan
from bakthat.errors import AlreadyExistsError, NotFoundError
from bakthat.process import pid_alive

log = logging.getLogger("bakthat")


def candidates(ctx: Context, arcname: str, suffix: str, when: int) -> Any:
    """Yield ``(stored filename, stamp)`` from ``when`` on, skipping names taken in the catalog or store."""
    from bakthat.utils import utc_stamp

    for offset in range(3600):
        stamp = when + offset
        candidate = f"{arcname}.{utc_stamp(stamp)}.{suffix}"
        if models.Backups.select().where(models.Backups.stored_filename == candidate).exists():
            continue
        if ctx.backend.exists(candidate) or ctx.backend.exists(manifest.key_for(candidate)):
            continue
        yield candidate, stamp
    raise AlreadyExistsError(f"no free stored filename for {arcname} near {utc_stamp(when)}")


def reserve(ctx: Context, arcname: str, suffix: str, when: int, session_id: str) -> tuple[Any, int]:
    """Claim a free stored filename ``<name>.<stamp>.<suffix>``; return (reservation, stamp).

    The stamp is ``when`` or, if that name is taken in the catalog, the store or by a
    concurrent backup, the next free second (the backup then waits for that second
    before its row is written, so no row is ever dated in the future).  Reservations
    left by dead processes on this host are swept first.  This is the first write to
    the catalog: a catalog that cannot be written fails the backup here, before any
    byte is uploaded (CatalogError).
    """
    import peewee

    Reservations = models.Reservations
    host = socket.gethostname()
    for stale in Reservations.select().where(Reservations.host == host):
        if not pid_alive(stale.pid):
            stale.delete_instance()
    for candidate, stamp in candidates(ctx, arcname, suffix, when):
        try:
            reservation = Reservations.create(
                stored_filename=candidate, session_id=session_id, host=host, pid=os.getpid(), created=int(time.time())
            )
        except peewee.IntegrityError:
            continue
        return reservation, stamp
    raise AssertionError("unreachable: candidates raises when no name is free")


def unstore(ctx: Context, plan: Plan) -> str:
    """Remove what a backup that failed after its upload stored (manifest, archive); say what happened."""
    left = []
    from bakthat.index_store import index_key

    for key in (manifest.key_for(plan.stored_filename), index_key(plan.stored_filename), plan.stored_filename):
        try:
            ctx.backend.delete(key)
        except NotFoundError:
            continue
        except Exception as exc:  # noqa: BLE001 - report every key that stays
            log.debug("could not remove %s: %s", key, exc)
            left.append(key)
    if left:
        return f"{', '.join(left)} could not be removed from {ctx.destination}: bakthat sync reports it as an orphan"
    return f"{plan.stored_filename} was removed from {ctx.destination}"


def wait_until(stamp: int) -> None:
    """Sleep until the clock reaches ``stamp``: a row is never dated in the future."""
    delay = stamp - time.time()
    if delay > 0:
        time.sleep(delay)
