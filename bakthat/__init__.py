"""bakthat: back up files, directories and databases; compressed, encrypted, catalogued.

The public API (the names and keywords of bakthat 0.6)::

    import bakthat
    row = bakthat.backup("/dir/to/back/up", tags="daily")
    bakthat.restore("up", target="/tmp/restore")
    bakthat.events.on_backup += handler

Importing this package reads no config, opens no database and creates no file; the
public names are loaded from their modules on first use, so ``bakthat --version`` and
``--help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "1.0.0.dev0"

#: public name -> (module, attribute).  ``ls`` is kept because 0.6's developer guide
#: calls ``bakthat.ls()``; it lists backups like ``show``.
_EXPORTS: dict[str, tuple[str, str]] = {
    "backup": ("bakthat.core", "backup"),
    "restore": ("bakthat.restore_action", "restore"),
    "delete": ("bakthat.core", "delete"),
    "search": ("bakthat.catalog", "search"),
    "show": ("bakthat.catalog", "show"),
    "check": ("bakthat.checker", "check"),
    "files": ("bakthat.browse", "files"),
    "find": ("bakthat.browse", "find"),
    "ls": ("bakthat.catalog", "show"),
    "delete_older_than": ("bakthat.rotation", "delete_older_than"),
    "rotate_backups": ("bakthat.rotation", "rotate_backups"),
    "run": ("bakthat.jobs_run", "run"),
    "current_context": ("bakthat.context", "current_context"),
    "events": ("bakthat.eventing", "events"),
    "BakthatError": ("bakthat.errors", "BakthatError"),
    "BakHelper": ("bakthat.helper", "BakHelper"),
    "KeyValue": ("bakthat.helper", "KeyValue"),
    "Plugin": ("bakthat.plugin", "Plugin"),
    "_interval_string_to_seconds": ("bakthat.utils", "_interval_string_to_seconds"),
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first access and cache it here."""
    try:
        module_name, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'bakthat' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module_name), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
