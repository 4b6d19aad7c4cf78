"""``bakthat ls``: list the objects stored in a destination, marking what the catalog knows."""

from __future__ import annotations

import argparse

from bakthat.commands._common import add_json, add_scope

NAME = "ls"
HELP = "list the objects in the destination's store, marking which are in the catalog"
DESCRIPTION = """\
List what is really stored in the destination (not what the catalog says), one object
per line: date, size, catalog state and key.  The state is `catalog` for an archive the
catalog lists, `deleting` or `deleted` for one it marked deleted, and `unknown` for an
object the catalog does not know (another host's backup, a KeyValue entry, a lost
catalog).  Catalogued backups whose object is gone are listed too, as `missing`.
Manifests (.manifest.json) and file indexes (.index.jsonl.zst) are left out unless --all
is given."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prefix", nargs="?", default="", help="only keys starting with this")
    add_scope(parser)
    parser.add_argument("--all", action="store_true", help="also list the manifests and indexes beside the archives")
    add_json(parser, "the objects as a list")


def listing(args: argparse.Namespace) -> list[dict]:
    """Return one entry per stored object (and per catalogued object that is missing)."""
    from bakthat import backends, manifest, models
    from bakthat.conf import get_profile
    from bakthat.index_store import archive_of_index

    settings = get_profile(args.profile, args.config)
    destination = args.destination or settings.destination
    backend = backends.get_backend(destination, settings)
    models.bind_settings(settings)
    Backups = models.Backups
    rows = {
        row.stored_filename: row
        for row in Backups.select().where(
            (Backups.backend == destination) & (Backups.backend_hash == backend.backend_hash)
        )
    }
    entries = []
    present = set()
    for info in backend.list(args.prefix):
        present.add(info.key)
        indexed = archive_of_index(info.key)
        is_manifest = manifest.is_manifest(info.key) or indexed is not None
        if is_manifest and not args.all:
            continue
        row = rows.get(indexed or manifest.archive_of(info.key))
        entries.append({
            "key": info.key,
            "size": info.size,
            "modified": info.modified,
            "in_store": True,
            "in_catalog": row is not None,
            "state": None if row is None else ("catalog" if row.state == "ok" and not row.is_deleted else row.state),
            "name": None if row is None else row.filename,
            "manifest": is_manifest,
        })
    for key, row in sorted(rows.items()):
        if key.startswith(args.prefix) and key not in present and not row.is_deleted:
            entries.append({
                "key": key, "size": row.size, "modified": None, "in_store": False, "in_catalog": True,
                "state": "missing", "name": row.filename, "manifest": False,
            })
    return entries


def run(args: argparse.Namespace) -> int:
    from bakthat.commands._common import print_json, print_table
    from bakthat.utils import human_size, local_time

    entries = listing(args)
    if args.json:
        print_json(entries)
        return 0
    print_table(
        [
            (
                "-" if e["modified"] is None else local_time(int(e["modified"])),
                human_size(e["size"]),
                e["state"] or "unknown",
                e["key"],
            )
            for e in entries
        ],
        right=[1],
    )
    return 0
