"""``bakthat show``: list backups in the catalog."""

from __future__ import annotations

import argparse

from bakthat.commands._common import add_json, add_scope, print_json

NAME = "show"
HELP = "list backups in the catalog"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query", nargs="?", help="substring of the name or stored filename")
    parser.add_argument("-t", "--tags", default="", help="only backups with all these tags")
    add_scope(parser)
    add_json(parser, "rows as a list")


def run(args: argparse.Namespace) -> int:
    import bakthat
    from bakthat.commands._common import print_table
    from bakthat.utils import human_size, local_time

    rows = bakthat.search(args.query or "", destination=args.destination, tags=args.tags, profile=args.profile, config=args.config)
    if args.json:
        print_json(rows)
        return 0
    print_table(
        [
            (local_time(r.backup_date), r.backend, human_size(r.size), r.stored_filename, r.source_path or "-",
             f"({r.tags})" if r.tags else "", r.level or "full", _checked(r))
            for r in rows
        ],
        right=[2],
    )
    return 0


def _checked(row) -> str:
    """Return what the last check of a row found: ``checked ok 2026-11-20 ...`` or ``-``."""
    from bakthat.utils import local_time

    if not row.checked_at:
        return "-"
    result = (row.check_result or "").split(":")[0] or "?"
    return f"checked {result} {local_time(row.checked_at)}"
