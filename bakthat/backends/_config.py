"""What every backend's typed config is built with: one reader of profile values, and sizes.

Each backend module declares its profile keys once, in its ``SETTINGS`` (name ->
:class:`bakthat.conf.Setting`, with the default), and builds a frozen dataclass from
them once, in the backend's constructor.  :func:`setting_value` is the only place a
default is applied, so no backend writes a default a second time where it reads a key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bakthat.conf import Setting
from bakthat.errors import ConfigError


def setting_value(settings: Mapping[str, Any], declared: Mapping[str, Setting], name: str) -> Any:
    """Given profile settings, a module's ``SETTINGS`` and a key it declares, return the value.

    The profile's value when it is set (not None, not ""), else the declared default.
    Raise KeyError if ``declared`` has no such key (a typo in a backend, not in a profile).
    """
    default = declared[name].default
    value = settings.get(name)
    return default if value is None or value == "" else value


def positive_int(name: str, value: Any, low: int = 1, high: int | None = None) -> int:
    """Given a key and its value, return it as an int.  Raise ConfigError naming the key
    if it is not an integer within [low, high]."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be an integer, not {value!r}") from None
    if isinstance(value, bool) or number < low or (high is not None and number > high):
        within = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{name} must be {within}, not {value!r}")
    return number


def parse_size(value: int | str | None, default: int) -> int:
    """Given ``16777216``, ``"16MiB"``, ``"16M"`` or ``"64MB"``, return a byte count.

    Both ``M`` and ``MB`` mean MiB here (part sizes are always binary); None or "" give
    ``default``.  Raise ConfigError for anything else.
    """
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ConfigError(f"invalid size {value!r}")
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)(i?[bB])?\s*", str(value))
    if not match:
        raise ConfigError(f"invalid size {value!r}: use a byte count or a number with K, M or G (e.g. 16MiB)")
    factor = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[match.group(2).lower()]
    return int(match.group(1)) * factor
