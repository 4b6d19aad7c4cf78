"""``bakthat sync``: add the store's backups the catalog does not know (from their manifests); find orphans."""

from __future__ import annotations

import argparse

from bakthat.commands._common import add_json, add_scope, print_json

NAME = "sync"
HELP = "add to the catalog the backups found in the store (rebuild a lost catalog, see other hosts' backups); find orphans"
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
first sync requests it and exits 11; run it again later, or add --wait.

Objects that cannot be trusted (an unsafe key, a manifest over 1 MiB, not JSON, or with
a wrong field) are skipped with a warning naming them.  Orphans (an archive with no
manifest and no catalog row, a manifest with no archive) are reported;
--remove-orphans removes those older than an hour (try it with --dry-run first)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_scope(parser)
    parser.add_argument("--dry-run", action="store_true", help="list what would be added (and removed); change nothing")
    parser.add_argument(
        "--write-manifests",
        action="store_true",
        help="also store a manifest beside each adopted bakthat 0.6 backup (reads each once to hash it)",
    )
    parser.add_argument("--wait", action="store_true", help="wait for a Glacier vault's inventory instead of returning")
    parser.add_argument(
        "--remove-orphans", action="store_true",
        help="delete orphans older than an hour from the store (archives without manifest or row, manifests without archive)",
    )
    add_json(parser, "the added (or would-be added) rows")


def run(args: argparse.Namespace) -> int:
    from bakthat.commands._common import print_table
    from bakthat.sync import sync
    from bakthat.utils import human_size

    result = sync(
        args.destination,
        args.profile,
        args.config,
        dry_run=args.dry_run,
        write_manifests=args.write_manifests,
        wait=args.wait,
        remove_orphans=args.remove_orphans,
    )
    if args.json:
        print_json(list(result))
        return 0
    verb = "would add" if args.dry_run else "added"
    print(f"{len(result)} backup(s) {verb}")
    if result.skipped:
        print(f"{len(result.skipped)} object(s) skipped (see the warnings)")
    if result.orphans:
        removed = set(result.removed)
        gone = "would remove" if args.dry_run else "removed"
        print(f"{len(result.orphans)} orphan(s):")
        print_table(
            [
                (gone if orphan.key in removed else "kept", orphan.kind, human_size(orphan.size), orphan.key, orphan.note)
                for orphan in result.orphans
            ],
            right=[2],
        )
        if not args.remove_orphans:
            print("remove them with: bakthat sync --remove-orphans (see first with --dry-run)")
    return 0
