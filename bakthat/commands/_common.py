"""Options and output helpers shared by command modules (not a command itself).

Only the standard library is imported here at the top: ``bakthat --help`` loads every
command module, so anything heavy (tqdm, the catalog) is imported inside functions.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any


#: The shared options and their defaults.  They are accepted before the command name
#: as well as after it (``bakthat -p work backup`` and ``bakthat backup -p work``), so
#: the parsers leave them unset and :func:`apply_scope_defaults` fills them in.
SCOPE_DEFAULTS = {"destination": None, "profile": "default", "config": None}


def add_scope(parser: argparse.ArgumentParser, destination: bool = True) -> None:
    """Add ``-d/--destination`` (optional), ``-p/--profile`` and ``-c/--config``."""
    unset = argparse.SUPPRESS
    if destination:
        parser.add_argument(
            "-d", "--destination", default=unset,
            help="where backups are stored (default: the profile's default_destination, else local)",
        )
    parser.add_argument("-p", "--profile", default=unset, help="profile of the config file (default: default)")
    parser.add_argument("-c", "--config", default=unset, help="config file (default: $BAKTHAT_CONFIG or ~/.bakthat.yml)")


def apply_scope_defaults(args: argparse.Namespace) -> str | None:
    """Fill in the shared options not given; return an error message if one does not apply.

    ``-d`` given before a command that has no destination is refused (it would
    silently do nothing).
    """
    if getattr(args, "destination", None) is not None and not getattr(args, "_takes_destination", True):
        return f"{args.command} does not take -d/--destination"
    for name, default in SCOPE_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    return None


def add_json(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def add_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar (default: when stderr is a terminal and not --quiet)",
    )


#: ``--prompt``'s help where the password is asked for only if an archive needs one.
PROMPT_WHEN_NEEDED = "ask for the password when needed (default: yes)"


def add_prompt(parser: argparse.ArgumentParser, help: str = PROMPT_WHEN_NEEDED, default: str = "yes") -> None:
    """Add ``--prompt yes|no``: whether a missing password is asked for on the terminal."""
    parser.add_argument("--prompt", choices=["yes", "no"], default=default, help=help)


def add_progress_and_json(parser: argparse.ArgumentParser, what: str) -> None:
    """Add ``--progress/--no-progress`` then ``--json`` (the last options of backup and restore)."""
    add_progress(parser)
    add_json(parser, what)


def add_index_options(parser: argparse.ArgumentParser, what: str) -> None:
    """Add the options of the commands that read backup indexes (files, find): ``--prompt``
    (default yes), the scope options and ``--json`` printing ``what``."""
    add_prompt(parser)
    add_scope(parser)
    add_json(parser, what)


def shown(path: str) -> str:
    """Return a path (surrogateescape text) printable on any terminal: bytes that are not
    UTF-8 as backslash escapes."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def print_items(items: Sequence[Any], as_json: bool, lines: Callable[[Any], Iterable[str]]) -> None:
    """Given objects with ``to_dict`` (files' entries, find's matches), print them as one
    JSON list, or each as the text lines ``lines(item)`` returns."""
    if as_json:
        print_json([item.to_dict() for item in items])
        return
    for item in items:
        for line in lines(item):
            print(line)


def print_plan(plan: Any, as_json: bool) -> None:
    """Print a dry run's plan (backup, restore): as JSON, or its ``describe()`` text."""
    if as_json:
        print_json(plan)
    else:
        print(plan.describe())


def plain(item: Any) -> Any:
    """Return a catalog row as a dict; anything else unchanged."""
    return item.to_dict() if hasattr(item, "to_dict") else item


def print_json(value: Any) -> None:
    """Print a row, a list of rows or plain data as JSON on stdout (one line)."""
    import json

    data = [plain(item) for item in value] if isinstance(value, list) else plain(value)
    json.dump(data, sys.stdout, default=str)
    sys.stdout.write("\n")


def print_table(rows: Sequence[Sequence[str]], right: Sequence[int] = (), header: Sequence[str] | None = None) -> None:
    """Print rows as aligned columns (two spaces apart); columns in ``right`` align right."""
    lines = [list(header)] if header else []
    lines += [list(row) for row in rows]
    if not lines:
        return
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    for line in lines:
        cells = [cell.rjust(width) if i in right else cell.ljust(width) for i, (cell, width) in enumerate(zip(line, widths))]
        print("  ".join(cells).rstrip())


def want_progress(args: argparse.Namespace) -> bool:
    """Return True if a progress bar should be drawn on stderr."""
    if getattr(args, "progress", None) is not None:
        return bool(args.progress)
    return not getattr(args, "quiet", False) and sys.stderr is not None and sys.stderr.isatty()


@contextmanager
def progress_for(
    args: argparse.Namespace, total: Callable[[], int | None], description: str
) -> Iterator[Callable[[int], None] | None]:
    """Yield the progress callback of a transfer (backup, restore), or None when no bar is
    wanted (:func:`want_progress`).  ``total()`` (the bytes expected, or None if unknown)
    is called only when a bar is drawn, so a command without a bar never pays for it."""
    show = want_progress(args)
    with progress_bar(show, total() if show else None, description) as progress:
        yield progress


@contextmanager
def progress_bar(enabled: bool, total: int | None, description: str) -> Iterator[Callable[[int], None] | None]:
    """Yield a callback taking byte counts that draws a bar (bytes, rate, ETA) on stderr.

    Yield None when ``enabled`` is false.  The bar is drawn at the first byte, not
    before: questions asked before any data flows (the password) are never split by
    it.  While the bar is shown, messages of the ``bakthat`` logger are printed above
    it instead of breaking it.
    """
    if not enabled:
        yield None
        return
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    import logging

    try:
        size = os.get_terminal_size(sys.stderr.fileno())
        sized = size.columns > 0 and size.lines > 0
    except (OSError, ValueError):
        sized = False
    bars: list[Any] = []

    def update(count: int) -> None:
        if not bars:
            # A terminal that reports no size (some containers) would hide the bar: assume 80x24.
            bars.append(tqdm(
                total=total, desc=description, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                dynamic_ncols=sized, ncols=None if sized else 80, nrows=None if sized else 24, leave=True,
                mininterval=0.2,
            ))
        bars[0].update(count)

    try:
        with logging_redirect_tqdm(loggers=[logging.getLogger("bakthat")]):
            yield update
    finally:
        for bar in bars:
            bar.close()


def source_size(path: str, budget: float = 1.0) -> int | None:
    """Return the bytes of regular files under ``path`` (hard links counted once).

    Return None if ``path`` is missing or the scan takes longer than ``budget``
    seconds (a huge tree): the bar then shows bytes and rate without an ETA.
    """
    deadline = time.monotonic() + budget
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode):
        return info.st_size
    total = 0
    seen: set[tuple[int, int]] = set()
    for directory, _, names in os.walk(path):
        for name in names:
            try:
                entry = os.lstat(os.path.join(directory, name))
            except OSError:
                continue
            if not stat.S_ISREG(entry.st_mode):
                continue
            if entry.st_nlink > 1:
                if (entry.st_dev, entry.st_ino) in seen:
                    continue
                seen.add((entry.st_dev, entry.st_ino))
            total += entry.st_size
        if time.monotonic() > deadline:
            return None
    return total
