"""Storage backends, found by name.

A backend is a module ``bakthat.backends.<name>`` exposing a ``Backend`` subclass of
:class:`bakthat.backends.base.Backend`, or a class registered by a third-party package
under the entry-point group ``bakthat.backends``.  Lookup happens at call time, so a
plugin that replaces a class in :data:`registry` changes what later actions use.
"""

from __future__ import annotations

import importlib
from typing import Any

from bakthat.backends.base import Backend
from bakthat.errors import ConfigError

#: name -> Backend class; filled lazily, and writable by plugins.
registry: dict[str, type[Backend]] = {}


def get_backend_class(name: str) -> type[Backend]:
    """Given a destination name, return its Backend class.

    Look in :data:`registry`, then the module ``bakthat.backends.<name>``, then the
    ``bakthat.backends`` entry points.  Raise ConfigError naming the known destinations
    if none provides it.
    """
    if name in registry:
        return registry[name]
    cls: Any = None
    if name.isidentifier() and name not in {"base"}:
        try:
            module = importlib.import_module(f"bakthat.backends.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"bakthat.backends.{name}":
                raise ConfigError(f"destination {name!r} needs a missing module: {exc.name}") from None
        else:
            cls = getattr(module, "Backend", None)
    if cls is None:
        from importlib.metadata import entry_points

        for entry in entry_points(group="bakthat.backends"):
            if entry.name == name:
                cls = entry.load()
                break
    if cls is None:
        known = sorted({"local", *registry, *(e.name for e in entry_points(group="bakthat.backends"))})
        raise ConfigError(f"unknown destination {name!r} (known: {', '.join(known)})")
    registry[name] = cls
    return cls


def get_backend(name: str, conf: dict[str, Any]) -> Backend:
    """Given a destination name and profile settings, return a ready backend instance."""
    return get_backend_class(name)(conf)
