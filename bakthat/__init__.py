"""bakthat: back up files, directories and databases; compressed, encrypted, catalogued.

The public API (the names and keywords of bakthat 0.6)::

    import bakthat
    row = bakthat.backup("/dir/to/back/up", tags="daily")
    bakthat.restore("up", target="/tmp/restore")
    bakthat.events.on_backup += handler

Importing this package reads no config, opens no database and creates no file.
"""

from __future__ import annotations

from bakthat.core import backup, delete, restore, search, show
from bakthat.errors import BakthatError
from bakthat.eventing import events
from bakthat.rotation import delete_older_than, rotate_backups
from bakthat.utils import _interval_string_to_seconds

__version__ = "1.0.0.dev0"

#: 0.6's developer guide calls ``bakthat.ls()``; it lists backups like ``show``.
ls = show

__all__ = [
    "BakthatError",
    "__version__",
    "_interval_string_to_seconds",
    "backup",
    "delete",
    "delete_older_than",
    "events",
    "ls",
    "restore",
    "rotate_backups",
    "search",
    "show",
]
