"""Small helpers shared by the API and the CLI: intervals, sizes, dates."""

from __future__ import annotations

import re
from datetime import datetime, timezone

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
    """Given a Unix time, return local wall-clock time with the zone shown."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
