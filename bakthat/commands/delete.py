"""``bakthat delete``: delete the newest backup of a name."""

from __future__ import annotations

import argparse

from bakthat.commands._common import add_json, add_scope, print_json

NAME = "delete"
HELP = "delete the newest backup of a name"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("filename", help="backup name, or an exact stored filename")
    add_scope(parser)
    add_json(parser, "the deleted row")


def run(args: argparse.Namespace) -> int:
    import bakthat

    row = bakthat.delete(args.filename, destination=args.destination, profile=args.profile, config=args.config)
    if args.json:
        print_json(row)
    return 0
