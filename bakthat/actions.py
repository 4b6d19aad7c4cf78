"""What every action shares: its Context, resolving it, finding its row, publishing its status.

:mod:`bakthat.core` (backup), :mod:`bakthat.restore_action`, :mod:`bakthat.delete_action`
and the modules that work on a destination (:mod:`bakthat.sync`, :mod:`bakthat.browse`,
:mod:`bakthat.checker`, :mod:`bakthat.rotation`) start from :func:`resolve`, and read
the backups of that destination with :func:`backups_of`.  Models and backends are
looked up at call time through their modules, so plugins that replace them are
honoured.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bakthat import backends, models
from bakthat.backends.base import Backend
from bakthat.errors import BakthatError
from bakthat.eventing import current_session

log = logging.getLogger("bakthat")


@dataclass
class Context:
    """Everything an action needs: settings, the backend, and the destination's name."""

    settings: Mapping[str, Any]
    destination: str
    backend: Backend



def resolve(
    destination: str | None, profile: str, config: str | None, conf: Mapping[str, Any] | None
) -> Context:
    """Given the common action arguments, return the resolved Context and bind the catalog."""
    from bakthat.conf import get_profile

    settings = get_profile(profile, config, conf)
    if settings.get("plugins"):
        from bakthat import plugin

        # Activate the profile's plugins (once per process; a no-op when they are active)
        # before the backend and the models are looked up, so their patches apply to this
        # action.  Its before_ event has already fired: passing the running session lets
        # the new plugins' before_ handlers run now.
        plugin.load_plugins(settings, session=current_session())
    name = destination or settings.get("default_destination") or "local"
    backend = backends.get_backend(name, settings)
    models.bind_settings(settings)
    if backend.legacy_backend_hash:
        models.adopt_legacy_rows(name, backend.legacy_backend_hash, backend.backend_hash)
    return Context(settings, name, backend)


def find_row(ctx: Context, filename: str) -> Any:
    """Return the newest live row named ``filename``, or the row stored as ``filename``.

    Raise NotFoundError (naming close matches) if neither exists in this destination.
    """
    return models.find_backup(filename, destination=ctx.destination, backend_hash=ctx.backend.backend_hash)



def backups_of(ctx: Context, name: str | None = None, *, profile: str | None = None, include_deleted: bool = False) -> Any:
    """Given a context, return the query of the backups in its destination (this store,
    by backend hash), newest first: of ``name`` and ``profile`` when given, live ones
    only unless ``include_deleted`` (see :meth:`bakthat.models.Backups.search`)."""
    Backups = models.Backups
    query = Backups.search(
        name=name, destination=ctx.destination, backend_hash=ctx.backend.backend_hash, include_deleted=include_deleted
    )
    if profile is not None:
        query = query.where(Backups.profile == profile)
    return query

def status_publisher(session_id: str, action: str, source: str | None, name: str | None) -> Any:
    """Return a started-later StatusPublisher for a run, or None (logged) if the status
    directory is unusable: progress reporting never stops a backup."""
    from bakthat.status import StatusPublisher

    try:
        return StatusPublisher(session_id, action, source=source, name=name)
    except (OSError, BakthatError, ValueError) as exc:
        log.warning("progress of this %s is not published: %s", action, exc)
        return None


def advancing(publisher: Any, progress: Callable[[int], None] | None) -> Callable[[int], None]:
    """Return a progress callback feeding ``publisher`` and then ``progress``."""

    def advance(count: int) -> None:
        publisher.advance(count)
        if progress is not None:
            progress(count)

    return advance
