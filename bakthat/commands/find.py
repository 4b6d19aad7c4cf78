"""``bakthat find``: which backups hold paths matching a pattern, from their indexes."""

from __future__ import annotations

import argparse

from bakthat.commands._common import add_index_options, print_items, shown

NAME = "find"
HELP = "list the backups holding paths that match a pattern, newest first (from the indexes)"
DESCRIPTION = """\
List the backups (of --name, or of every name) whose state holds paths matching PATTERN,
a gitignore-style pattern matched below each backup's top-level entry (docs/*.md,
*.conf, etc/ssh/), newest first, with the matching paths.  Only index objects are read."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", metavar="PATTERN", help="gitignore-style pattern")
    parser.add_argument("--name", help="only backups of this name")
    add_index_options(parser, "one object per backup: name, stored_filename, backup_date, level, paths")


def run(args: argparse.Namespace) -> int:
    import bakthat
    from bakthat.utils import local_time

    found = bakthat.find(
        args.pattern, name=args.name, destination=args.destination, profile=args.profile, config=args.config,
        prompt=args.prompt,
    )

    def lines(item):
        yield f"{local_time(item.backup_date)}  {item.stored_filename} ({item.level}): {len(item.paths)} path(s)"
        for path in item.paths:
            yield f"    {shown(path)}"

    print_items(found, args.json, lines)
    if not found and not args.json:
        print(f"no backup holds a path matching {args.pattern!r}")
    return 0
