"""``bakthat backup``: back up a file or directory."""

from __future__ import annotations

import argparse
import sys

from bakthat.commands._common import add_json, add_scope, print_json

NAME = "backup"
HELP = "back up a file or directory"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("filename", nargs="?", help="file or directory (default: the current directory)")
    add_scope(parser)
    parser.add_argument("--prompt", choices=["yes", "no"], default="yes", help="ask for a password when none is given (default: yes)")
    parser.add_argument("-t", "--tags", default="", help='space-separated tags, for example "daily db"')
    parser.add_argument("-k", "--key", help="a key recorded with the backup (0.6's BakManager key)")
    parser.add_argument("--exclude-file", help="file of gitignore-style patterns to leave out")
    parser.add_argument("--s3-reduced-redundancy", action="store_true", help="store with the REDUCED_REDUNDANCY class (S3)")
    parser.add_argument("--compression", choices=["zstd", "gzip", "none"], help="override the profile's compression")
    add_json(parser, "the new catalog row")


def run(args: argparse.Namespace) -> int:
    import bakthat
    from bakthat.errors import PartialFailure

    row = bakthat.backup(
        args.filename,
        destination=args.destination,
        profile=args.profile,
        config=args.config,
        prompt=args.prompt,
        tags=args.tags,
        key=args.key,
        exclude_file=args.exclude_file,
        s3_reduced_redundancy=args.s3_reduced_redundancy,
        compression=args.compression,
    )
    if args.json:
        print_json(row)
    skipped = (row.metadata or {}).get("skipped") or []
    if skipped:
        print(f"bakthat: warning: {len(skipped)} entries could not be read and are not in {row.stored_filename}", file=sys.stderr)
        return PartialFailure.exit_code
    return 0
