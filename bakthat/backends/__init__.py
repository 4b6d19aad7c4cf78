"""Storage backends, found by name in one registry.

:data:`registry` maps a destination name to its :class:`~bakthat.backends.base.Backend`
class.  The built-in destinations (:data:`BUILTIN`: local, s3, glacier, swift, and
memory from :mod:`bakthat.testing.memory`) are loaded on first use, so importing
bakthat imports no backend; a third-party package adds one under the entry-point group
``bakthat.backends``, or calls :func:`register`.  Every class is checked when it is
registered (a Backend subclass implementing the primitives, under a valid name), and
every instance is built by its class's factory
:meth:`~bakthat.backends.base.Backend.from_settings` (``glacier`` returns the vault
backend for a profile with a vault).  Lookup happens at call time, so a plugin that
replaces a class in :data:`registry` (``self.patch(registry, "local", Mine)``) changes
what later actions use.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from bakthat.backends.base import Backend
from bakthat.errors import ConfigError

#: The built-in destinations: name -> "module:class", imported when first looked up.
BUILTIN: dict[str, str] = {
    "local": "bakthat.backends.local:Backend",
    "s3": "bakthat.backends.s3:Backend",
    "glacier": "bakthat.backends.glacier:Backend",
    "swift": "bakthat.backends.swift:Backend",
    "memory": "bakthat.testing.memory:MemoryBackend",
}
#: What every backend implements (the primitives of :class:`Backend`).
PRIMITIVES = ("open_upload", "open_read", "stat", "list", "delete")
_NAME = re.compile(r"[a-z][a-z0-9_]*")


def check_backend(name: str, cls: Any) -> type[Backend]:
    """Given a destination name and a class, return the class if it can serve as a backend.

    Raise ConfigError naming both if the name is not lowercase letters, digits and
    underscores, the class is not a Backend subclass, or it leaves a primitive
    (:data:`PRIMITIVES`) or ``container`` to the base class.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"backend name {name!r} must be lowercase letters, digits and underscores")
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise ConfigError(f"backend {name!r}: {cls!r} is not a subclass of bakthat.backends.base.Backend")
    missing = [method for method in (*PRIMITIVES, "container") if getattr(cls, method) is getattr(Backend, method)]
    if missing:
        raise ConfigError(f"backend {name!r}: {cls.__qualname__} does not implement {', '.join(missing)}")
    return cls


class Registry(MutableMapping[str, type[Backend]]):
    """Destination name -> Backend class; every class set is checked (:func:`check_backend`).

    Reading a name not set yet loads it from :data:`BUILTIN` or the ``bakthat.backends``
    entry points; KeyError if neither has it.  Iterating lists the classes set or loaded.
    """

    def __init__(self) -> None:
        self._classes: dict[str, type[Backend]] = {}

    def __getitem__(self, name: str) -> type[Backend]:
        if name not in self._classes:
            cls = _load(name)
            if cls is None:
                raise KeyError(name)
            self._classes[name] = check_backend(name, cls)
        return self._classes[name]

    def __setitem__(self, name: str, cls: type[Backend]) -> None:
        self._classes[name] = check_backend(name, cls)

    def __delitem__(self, name: str) -> None:
        del self._classes[name]

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def __iter__(self) -> Iterator[str]:
        return iter(dict(self._classes))

    def __len__(self) -> int:
        return len(self._classes)


def _entry_points() -> Any:
    from importlib.metadata import entry_points

    return entry_points(group="bakthat.backends")


def _load(name: str) -> Any:
    """Return the class BUILTIN or an entry point gives ``name``, or None."""
    if name in BUILTIN:
        module_name, _, attribute = BUILTIN[name].partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise ConfigError(f"destination {name!r} needs a missing module: {exc.name}") from None
        return getattr(module, attribute)
    for entry in _entry_points():
        if entry.name == name:
            return entry.load()
    return None


#: name -> Backend class; filled lazily, and writable by plugins (checked).
registry = Registry()


def register(name: str, cls: type[Backend], *, replace: bool = False) -> type[Backend]:
    """Register ``cls`` as destination ``name`` and return it (usable as a decorator's body).

    Raise ConfigError if the class fails :func:`check_backend`, or if ``name`` is
    already a destination (built-in, entry point or registered) and not ``replace``.
    """
    check_backend(name, cls)
    if not replace and name in known_destinations():
        raise ConfigError(f"destination {name!r} is already registered; pass replace=True to replace it")
    registry[name] = cls
    return cls


def known_destinations() -> list[str]:
    """Return every destination name: built-in, registered and from entry points, sorted."""
    return sorted({*BUILTIN, *registry, *(entry.name for entry in _entry_points())})


def get_backend_class(name: str) -> type[Backend]:
    """Given a destination name, return its Backend class.

    Raise ConfigError naming the known destinations if none provides it, or if the
    class found fails :func:`check_backend`.
    """
    try:
        return registry[name]
    except KeyError:
        raise ConfigError(f"unknown destination {name!r} (known: {', '.join(known_destinations())})") from None


def get_backend(name: str, conf: Mapping[str, Any]) -> Backend:
    """Given a destination name and profile settings, return a ready backend instance
    (built by its class's :meth:`~bakthat.backends.base.Backend.from_settings`)."""
    return get_backend_class(name).from_settings(conf)
