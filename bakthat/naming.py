"""Backup names: what a source is called, and one name for one source.

A backup's name is its history: rotation and ``restore NAME`` work on every backup of
a name.  It is ``custom_filename`` (``--name``) when given, else it comes from the
source's absolute path.  Two sources must never share one history silently, so a
path-derived name that an earlier backup on this host used for another source path is
reported (or refused, with the profile's ``name_conflict: error``).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bakthat import models
from bakthat.errors import ConfigError

log = logging.getLogger("bakthat")


def printable(text: str) -> str:
    """Return a file name or path as valid text: each byte that is not UTF-8 (held as a
    surrogate escape) is written ``%XX``."""
    return "".join(f"%{ord(char) - 0xDC00:02X}" if 0xDC80 <= ord(char) <= 0xDCFF else char for char in text)


def source_path(source: Path) -> str:
    """Return the absolute path of a source as recorded in rows and manifests."""
    return printable(os.path.abspath(source))


def backup_names(source: Path, custom_filename: str | None) -> tuple[str, str]:
    """Return ``(backup name, top-level archive entry)`` for a source.

    An explicit ``custom_filename`` is both.  Otherwise the name comes from the source's
    absolute path: its last component (``.`` is the current directory's name; a trailing
    slash or a symbolic link's target changes nothing), ``root`` for ``/``; bytes that
    are not UTF-8 are written ``%XX`` in the name, while the archive keeps them exactly.
    Raise ConfigError for a name that cannot be a file name.
    """
    if custom_filename is not None:
        name = entry = custom_filename
    else:
        entry = os.path.basename(os.path.abspath(source)) or "root"
        name = printable(entry)
    if not name or name in {".", ".."} or "/" in name or "\x00" in name:
        raise ConfigError(f"cannot use {name!r} as a backup name")
    return name, entry


def name_conflict(settings: Mapping[str, Any], name: str, path: str) -> str | None:
    """Given a path-derived backup name and its source path, return a warning if an
    earlier live backup of that name on this host came from another source path, else
    None.  Raise ConfigError instead when ``settings`` has ``name_conflict: error``."""
    Backups = models.Backups
    earlier = (
        Backups.select()
        .where((Backups.filename == name) & (Backups.host == socket.gethostname()) & (Backups.is_deleted == False))  # noqa: E712
        .order_by(Backups.backup_date.desc())
        .limit(50)
    )
    for row in earlier:
        if row.source_path and os.path.normpath(row.source_path) != path:
            message = (
                f"the backup name {name!r} was used on this host for {row.source_path} "
                f"({row.stored_filename}); backing up {path} under it would mix the two "
                "in one history and one rotation: give one of them its own name with --name NAME "
                "(custom_filename= from Python)"
            )
            if settings.get("name_conflict") == "error":
                raise ConfigError(message + " (the profile sets name_conflict: error)")
            log.warning("%s", message)
            return message
    return None
