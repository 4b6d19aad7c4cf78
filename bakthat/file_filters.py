"""Per-file decisions from plugins (Bareos' ``bRC_Skip``): filters that may skip an entry.

A plugin registers a filter with :meth:`bakthat.plugin.Plugin.register_file_filter`
(or :func:`register` from other code).  During every tar walk (backups and their dry
runs), each entry that passed the exclude patterns is given to every filter as
``filter(path, st)``: its absolute path (``str``) and its ``os.stat_result`` (not
followed for links).  A filter returns a false value to keep the entry, or ``True``
or a reason (``str``) to skip it; a skipped directory is not entered.  Skips are
counted and reported like excludes (``entries.excluded`` and ``excluded`` in the
manifest, ``--dry-run``), with the reason ``filter <name>: <reason>`` logged at debug.

A filter that raises stops the backup (nothing is stored): a plugin that cannot decide
must not silently drop or keep files.  With no filter registered, the walk does no
extra work at all (:func:`active` returns None and the walker checks nothing else).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, Union

log = logging.getLogger("bakthat")

FileFilter = Callable[[str, os.stat_result], Union[bool, str, None]]

#: name -> filter, in registration order.  Plugins register through ``Plugin.patch``
#: on this mapping, so unloading the plugin removes its filter.
REGISTRY: dict[str, FileFilter] = {}


def register(name: str, function: FileFilter) -> None:
    """Given a unique name and a filter, register it for every later walk.

    Raise ValueError if the name is taken, TypeError if ``function`` is not callable.
    """
    if not callable(function):
        raise TypeError(f"file filter {name!r}: {function!r} is not callable")
    if name in REGISTRY:
        raise ValueError(f"a file filter named {name!r} is already registered")
    REGISTRY[name] = function


def unregister(name: str) -> None:
    """Remove the filter registered as ``name`` (KeyError if there is none)."""
    del REGISTRY[name]


def active() -> Callable[[str, os.stat_result], str | None] | None:
    """Return one function applying every registered filter (the reason of the first
    that skips, or None to keep), or None when no filter is registered."""
    if not REGISTRY:
        return None
    filters = list(REGISTRY.items())

    def decide(path: str, st: os.stat_result) -> str | None:
        for name, function in filters:
            verdict: Any = function(path, st)
            if verdict:
                return f"filter {name}" + (f": {verdict}" if isinstance(verdict, str) else "")
        return None

    return decide
