"""Small helpers shared by the API and the CLI: intervals, sizes, dates, strict keywords."""

from __future__ import annotations

import difflib
import functools
import logging
import os
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar

_Function = TypeVar("_Function", bound=Callable[..., Any])

_INTERVAL_UNITS = {"s": 1, "m": 60, "h": 3600, "D": 86400, "W": 7 * 86400, "M": 30 * 86400, "Y": 365 * 86400}
_INTERVAL_TOKEN = re.compile(r"(\d+)([smhDWMY])")


def _interval_string_to_seconds(interval_string: str) -> int:
    """Given an interval such as ``3M2D8h20m5s``, return its length in seconds.

    Units (case-sensitive, as bakthat 0.6): s, m, h, D, W (7 days), M (30 days), Y (365
    days).  An empty string is 0.  Raise ValueError naming the string if any part is not
    a positive ``<int><unit>`` token.
    """
    position = 0
    total = 0
    for match in _INTERVAL_TOKEN.finditer(interval_string):
        if match.start() != position or int(match.group(1)) == 0:
            break
        total += int(match.group(1)) * _INTERVAL_UNITS[match.group(2)]
        position = match.end()
    if position != len(interval_string):
        raise ValueError(
            f"Bad interval format for {interval_string!r}: use <number><unit> tokens, "
            "units s m h D W M Y (for example 3M2D8h)"
        )
    return total


def human_size(size: int | None) -> str:
    """Given a byte count, return it in binary units (``1.5 MiB``); None gives ``-``."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def utc_stamp(epoch: int) -> str:
    """Given a Unix time, return the ``YYYYmmddHHMMSS`` UTC stamp used in stored names."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y%m%d%H%M%S")


def local_time(epoch: int) -> str:
    """Given a Unix time, return local wall-clock time with the zone shown.

    A time no calendar can show (a damaged or hostile row: year 30000) is returned as
    the number, so one bad row never stops a listing.
    """
    try:
        return datetime.fromtimestamp(epoch, tz=timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    except (OverflowError, OSError, ValueError, TypeError):
        return str(epoch)


def strict_keywords(ignored: Mapping[str, str] | None = None) -> Callable[[_Function], _Function]:
    """Return a decorator that refuses unknown keyword arguments, naming the closest valid one.

    The decorated function's own parameters are the valid keywords.  ``ignored`` maps
    keywords of bakthat 0.6 that are accepted but have no effect to the reason, which
    is logged as a warning when one is passed (docs/api.md lists them).  An unknown
    keyword raises TypeError before the function runs, so nothing is done:
    ``backup() got an unexpected keyword argument 'passwrod' (did you mean 'password'?)``.
    """
    legacy = dict(ignored or {})

    def decorate(function: _Function) -> _Function:
        valid = _keyword_names(function)
        name = function.__name__

        @functools.wraps(function)
        def checked(*args: Any, **kwargs: Any) -> Any:
            unknown = [key for key in kwargs if key not in valid]
            dropped = sorted(key for key in unknown if key in legacy)
            for key in unknown:
                if key not in legacy:
                    raise TypeError(unexpected_keyword(name, key, [*valid, *legacy]))
            if dropped:
                reasons = "; ".join(dict.fromkeys(legacy[key] for key in dropped))
                logging.getLogger("bakthat").warning(
                    "%s ignores %s= (as bakthat 0.6 did): %s", name, "=, ".join(dropped), reasons
                )
                for key in dropped:
                    del kwargs[key]
            return function(*args, **kwargs)

        checked.__bakthat_ignored__ = dict(legacy)  # type: ignore[attr-defined]
        return checked  # type: ignore[return-value]

    return decorate


def _keyword_names(function: Callable[..., Any]) -> list[str]:
    """Return the names of a function's parameters, without ``*args`` and ``**kwargs``.

    Read from the code object (following ``__wrapped__``), as :func:`inspect.signature`
    would give them: importing :mod:`inspect` costs every command several milliseconds.
    """
    while hasattr(function, "__wrapped__"):
        function = function.__wrapped__
    code = function.__code__
    return list(code.co_varnames[: code.co_argcount + code.co_kwonlyargcount])


def unexpected_keyword(function: str, keyword: str, valid: list[str]) -> str:
    """Return the TypeError message for an unknown keyword, with the closest valid name."""
    candidates = [name for name in valid if name not in ("self", "cls")]
    match = difflib.get_close_matches(keyword, candidates, n=1, cutoff=0.6)
    hint = f" (did you mean {match[0]!r}?)" if match else ""
    return f"{function}() got an unexpected keyword argument {keyword!r}{hint}"


def display_path(path: str | os.PathLike[str]) -> str:
    """Return a path for messages: under the home directory it is shown as ``~/...``."""
    text = os.fspath(path)
    home = os.path.expanduser("~").rstrip("/")
    if home and home != "~" and (text == home or text.startswith(home + "/")):
        return "~" + text[len(home):]
    return text
