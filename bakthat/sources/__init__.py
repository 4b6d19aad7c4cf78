"""Sources: what a job backs up.  One module per kind, found by URL scheme or mapping key.

A source is written as a string (``/etc``, ``postgresql://postgres@db/app``,
``sqlite:///var/lib/app/app.db``) or a mapping (``{url: ..., name: ...}``,
``{command: [...], name: ...}``, ``{path: ..., hooks: ...}``); every mapping may hold
``name`` (the backup name) and ``hooks`` (source-level command hooks).

A kind module (``bakthat/sources/<kind>.py``; no registry to edit) declares:

``SCHEMES``   URL schemes it handles (``("postgresql", "postgres")``), maybe none;
``KEY``       the mapping key that selects it (``"command"``, ``"path"``), or None;
``KEYS``      the keys its mapping may hold besides ``name`` and ``hooks``;
``SETTINGS``  (optional) the profile keys it reads, as :class:`bakthat.conf.Setting`;
``parse(spec, where) -> Source``  validate a mapping spec (``url`` holds the URL);
``open_dump(source, settings, context) -> Dump``  start streaming (not for ``path``);
``restore_into(source, stream, settings, *, overwrite) -> None``  (databases only).

The functions below dispatch to the right module.  :mod:`bakthat.sources.base` holds
what kinds share, :mod:`bakthat.sources.pipeline` how a dump is stored and restored.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from bakthat.context import RunContext
from bakthat.errors import ConfigError
from bakthat.sources.base import Dump, DumpError, DumpResult, RestoreIntoError, Source

__all__ = ["Dump", "DumpError", "DumpResult", "RestoreIntoError", "Source", "kinds", "module_for",
           "open_dump", "parse", "restore_into"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_kinds: dict[str, ModuleType] = {}


def kinds() -> dict[str, ModuleType]:
    """Return ``{scheme or key: module}`` for every source kind module of this package."""
    if not _kinds:
        directory = str(Path(__file__).resolve().parent)
        for info in sorted(pkgutil.iter_modules([directory]), key=lambda info: info.name):
            if info.name in ("base", "pipeline") or info.name.startswith("_"):
                continue
            module = importlib.import_module(f"{__name__}.{info.name}")
            for name in (*module.SCHEMES, *([module.KEY] if module.KEY else [])):
                _kinds[name] = module
    return dict(_kinds)


def parse(spec: Any, where: str = "source") -> Source:
    """Given a source as written in the configuration (or on the command line) and its
    place (``jobs.nightly.sources[2]``), return the validated Source.

    Raise ConfigError naming ``where`` for an unknown URL scheme, a mapping with none or
    several of ``url``/``command``/``path``, or anything the kind module refuses.
    """
    if isinstance(spec, str):
        spec = {"url": spec} if _SCHEME.match(spec) else {"path": spec}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: a source is a path, a URL or a mapping, not {type(spec).__name__}")
    selectors = [key for key in ("url", "command", "path") if key in spec]
    if len(selectors) != 1:
        raise ConfigError(f"{where}: give exactly one of url, command or path (found {', '.join(selectors) or 'none'})")
    known = kinds()
    if selectors[0] == "url":
        url = spec["url"]
        match = _SCHEME.match(url) if isinstance(url, str) else None
        if match is None:
            raise ConfigError(f"{where}.url: {url!r} is not a URL (scheme://...)")
        scheme = match.group(1).lower()
        module = known.get(scheme)
        if module is None or scheme not in module.SCHEMES:
            schemes = sorted(name for name, kind in known.items() if name in kind.SCHEMES)
            raise ConfigError(f"{where}.url: unknown source scheme {scheme!r} (known: {', '.join(schemes)})")
    else:
        module = known[selectors[0]]
    return module.parse(spec, where)


def module_for(source: Source) -> ModuleType:
    """Return the kind module of a parsed source."""
    return kinds()[source.kind]


def open_dump(source: Source, settings: Mapping[str, Any], context: RunContext | None = None) -> Dump:
    """Given a source, the profile's settings and the run context, start its dump.

    The caller reads the dump to its end, then calls ``finish()`` (see
    :mod:`bakthat.sources.base`).  Raise ConfigError for a ``path`` source (archived by
    the tar walk, not dumped); DumpError if the dump cannot start.
    """
    module = module_for(source)
    if not hasattr(module, "open_dump"):
        raise ConfigError(f"{source.display}: a {source.kind} source is archived, not dumped")
    return module.open_dump(source, settings, context)


def restore_into(source: Source, stream: Any, settings: Mapping[str, Any], *, overwrite: bool = False) -> None:
    """Given a target (a parsed database URL) and a readable dump, restore the dump into it.

    Raise ConfigError if the target's kind has no restore (``path``, ``command``);
    TargetExistsError if the target is not empty and ``overwrite`` is false;
    RestoreIntoError if the restore program fails.
    """
    module = module_for(source)
    if not hasattr(module, "restore_into"):
        raise ConfigError(
            f"{source.display}: cannot restore into a {source.kind} source; restore the backup as a file instead"
        )
    module.restore_into(source, stream, settings, overwrite=overwrite)
