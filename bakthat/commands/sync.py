"""``bakthat sync``: add the store's backups the catalog does not know (from their manifests)."""

from __future__ import annotations

import argparse

from bakthat.commands._common import add_json, add_scope, print_json

NAME = "sync"
HELP = "add to the catalog the backups found in the store (rebuild a lost catalog, see other hosts' backups)"
DESCRIPTION = """\
bakthat 0.6's sync talked to a separate sync server, which no longer exists.  Every
archive now has a manifest beside it in the store, so the store itself is the shared
source of truth: this command reads the manifests of the destination and adds a catalog
row for each backup the catalog does not list (a lost or new catalog, or backups other
hosts wrote to the same bucket or directory).  For a fleet that wants one live catalog,
point every host at the same PostgreSQL database with database_url instead.

Backups bakthat 0.6 left in the store (<name>.<stamp>.tgz[.enc], no manifest) are
adopted too: catalogued with their name, date, size and encryption, marked adopted.
No manifest is written beside them unless --write-manifests is given.  A legacy
Glacier vault is read through a vault inventory job, as 0.6 did (hours on AWS): the
first sync requests it and exits 11; run it again later, or add --wait."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_scope(parser)
    parser.add_argument("--dry-run", action="store_true", help="list what would be added; change nothing")
    parser.add_argument(
        "--write-manifests",
        action="store_true",
        help="also store a manifest beside each adopted bakthat 0.6 backup (reads each once to hash it)",
    )
    parser.add_argument("--wait", action="store_true", help="wait for a Glacier vault's inventory instead of returning")
    add_json(parser, "the added (or would-be added) rows")


def run(args: argparse.Namespace) -> int:
    from bakthat.sync import sync

    rows = sync(
        args.destination,
        args.profile,
        args.config,
        dry_run=args.dry_run,
        write_manifests=args.write_manifests,
        wait=args.wait,
    )
    if args.json:
        print_json(rows)
    else:
        verb = "would add" if args.dry_run else "added"
        print(f"{len(rows)} backup(s) {verb}")
    return 0
