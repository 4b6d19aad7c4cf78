"""``bakthat delete``: delete the newest backup of a name."""

from __future__ import annotations

import argparse

from bakthat.commands._common import add_json, add_scope, print_json

NAME = "delete"
HELP = "delete the newest backup of a name"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("filename", help="backup name, or an exact stored filename")
    add_scope(parser)
    parser.add_argument("--dry-run", action="store_true", help="say which backup would be deleted; delete nothing")
    parser.add_argument(
        "--lock-timeout", type=float, default=60.0, metavar="SECONDS",
        help="wait this long for a rotation or deletion of the same name (default: 60)",
    )
    add_json(parser, "the deleted row (with --dry-run: the row that would be deleted, with \"dry_run\": true)")


def run(args: argparse.Namespace) -> int:
    import bakthat

    row = bakthat.delete(
        args.filename, destination=args.destination, profile=args.profile, config=args.config,
        dry_run=args.dry_run, lock_timeout=args.lock_timeout,
    )
    if args.json:
        print_json(row)
    elif args.dry_run:
        print(row.describe())
    return 0
