"""``bakthat find``: which backups hold paths matching a pattern, from their indexes."""

from __future__ import annotations

import argparse

from bakthat.commands._common import add_json, add_scope, print_json

NAME = "find"
HELP = "list the backups holding paths that match a pattern, newest first (from the indexes)"
DESCRIPTION = """\
List the backups (of --name, or of every name) whose state holds paths matching PATTERN,
a gitignore-style pattern matched below each backup's top-level entry (docs/*.md,
*.conf, etc/ssh/), newest first, with the matching paths.  Only index objects are read."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pattern", metavar="PATTERN", help="gitignore-style pattern")
    parser.add_argument("--name", help="only backups of this name")
    parser.add_argument("--prompt", choices=["yes", "no"], default="yes", help="ask for the password when needed (default: yes)")
    add_scope(parser)
    add_json(parser, "one object per backup: name, stored_filename, backup_date, level, paths")


def run(args: argparse.Namespace) -> int:
    import bakthat
    from bakthat.commands.files import shown
    from bakthat.utils import local_time

    found = bakthat.find(
        args.pattern, name=args.name, destination=args.destination, profile=args.profile, config=args.config,
        prompt=args.prompt,
    )
    if args.json:
        print_json([item.to_dict() for item in found])
        return 0
    for item in found:
        print(f"{local_time(item.backup_date)}  {item.stored_filename} ({item.level}): {len(item.paths)} path(s)")
        for path in item.paths:
            print(f"    {shown(path)}")
    if not found:
        print(f"no backup holds a path matching {args.pattern!r}")
    return 0
