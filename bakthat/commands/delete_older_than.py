"""``bakthat delete_older_than``: delete the backups of a name older than an interval."""

from __future__ import annotations

import argparse

from bakthat.commands.rotate_backups import add_retention_options, run_retention

NAME = "delete_older_than"
HELP = "delete the backups of a name older than an interval (the newest is always kept)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("filename", help="backup name (exact)")
    parser.add_argument("interval", help="age such as 30D, 3M2D8h or 1Y (s m h D W M=30 days Y=365 days)")
    add_retention_options(parser)


def run(args: argparse.Namespace) -> int:
    from bakthat.rotation import delete_older_than

    return run_retention(args, delete_older_than, args.filename, args.interval)
