"""Reading the catalog: :func:`search` and :func:`show` (``bakthat.search``, ``bakthat show``).

Kept apart from :mod:`bakthat.core` so that listing backups loads only the profile and
the catalog (peewee and SQLite): none of the archive, store and backup machinery the
actions need.  :mod:`bakthat.core` re-exports both, as 0.6 had them there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bakthat import models
from bakthat.utils import strict_keywords

log = logging.getLogger("bakthat")


def _epoch(value: int | float | datetime | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return int(value.timestamp())
    return int(value)


@strict_keywords()
def search(
    query: str = "",
    destination: str | None = None,
    tags: str | list[str] | None = None,
    profile: str = "default",
    config: str | None = None,
    conf: Mapping[str, Any] | None = None,
    name: str | None = None,
    since: int | float | datetime | None = None,
    until: int | float | datetime | None = None,
    include_deleted: bool = False,
) -> list[Any]:
    """Return catalog rows, newest first, matching every filter given.

    ``query`` is a substring of the name or stored filename, ``name`` an exact name,
    ``tags`` all required, ``destination`` restricts to one backend (default: all),
    ``since``/``until`` bound the backup date (datetimes or Unix seconds).
    """
    from bakthat.conf import get_profile

    settings = get_profile(profile, config, conf)
    models.bind_settings(settings)
    select = models.Backups.search(
        query,
        destination=destination,
        tags=tags,
        name=name,
        newer_than=None if since is None else _epoch(since) - 1,
        older_than=None if until is None else _epoch(until) + 1,
        include_deleted=include_deleted,
    )
    return list(select)


@strict_keywords()
def show(
    query: str = "",
    destination: str | None = None,
    tags: str | list[str] | None = None,
    profile: str = "default",
    config: str | None = None,
    conf: Mapping[str, Any] | None = None,
    name: str | None = None,
    since: int | float | datetime | None = None,
    until: int | float | datetime | None = None,
    include_deleted: bool = False,
) -> list[Any]:
    """Log one line per matching backup (as 0.6's ``show``) and return the rows.

    The arguments are :func:`search`'s.
    """
    from bakthat.utils import human_size, local_time

    rows = search(query, destination, tags, profile, config, conf, name, since, until, include_deleted)
    for row in rows:
        log.info(
            "%s\t%s\t%s\t%s\t%s\t(%s)",
            local_time(row.backup_date), row.backend, human_size(row.size), row.stored_filename, row.source_path or "-", row.tags,
        )
    return rows
