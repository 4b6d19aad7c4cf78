"""``bakthat restore``: restore the newest backup of a name."""

from __future__ import annotations

import argparse
import logging

from bakthat.commands._common import add_json, add_scope, print_json

NAME = "restore"
HELP = "restore the newest backup of a name"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("filename", help="backup name, or an exact stored filename")
    add_scope(parser)
    parser.add_argument("--target", help="directory to restore into (default: the current directory)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    parser.add_argument("--prompt", choices=["yes", "no"], default="yes", help="ask for the password when needed (default: yes)")
    add_json(parser, "the restored backup's row")


def run(args: argparse.Namespace) -> int:
    import bakthat

    row = bakthat.restore(
        args.filename,
        destination=args.destination,
        profile=args.profile,
        config=args.config,
        target=args.target,
        overwrite=args.overwrite,
        prompt=args.prompt,
    )
    if args.json:
        print_json(row)
    else:
        logging.getLogger("bakthat").info("Restored %s", row.stored_filename)
    return 0
