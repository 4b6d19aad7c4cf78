"""A file or directory, archived by the tar walk of :mod:`bakthat.archive` (not a dump).

Spec: a path string without a URL scheme (``/etc``, ``~/www``), or ``{path: ..., name,
hooks}``.  This module only validates the spec, so a job's whole source list is checked
at load; the backup itself is the existing file pipeline (``bakthat.backup``).  The
default name is the last path component (``root`` for ``/``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bakthat.errors import ConfigError
from bakthat.sources.base import Source, check_keys, check_name

SCHEMES: tuple[str, ...] = ()
KEY = "path"
KEYS = ("path",)


@dataclass(frozen=True)
class PathSource(Source):
    """A file or directory to tar."""

    path: str = ""


def parse(spec: Mapping[str, Any], where: str) -> PathSource:
    """Given ``{path: ..., ...}`` and its place in the configuration, return the source
    (the path expanded and made absolute).  Raise ConfigError for an empty path."""
    check_keys(spec, KEYS, where)
    path = spec["path"]
    if not isinstance(path, str) or not path.strip():
        raise ConfigError(f"{where}.path: must be a non-empty path")
    path = os.path.abspath(os.path.expanduser(path))
    return PathSource(
        kind="path",
        name=check_name(spec.get("name", os.path.basename(path) or "root"), where),
        display=path,
        extension="tar",
        hooks=spec.get("hooks"),
        path=path,
    )
