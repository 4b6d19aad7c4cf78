"""``bakthat check`` (alias ``verify``): compare the catalog with the store, and read archives."""

from __future__ import annotations

import argparse
import sys

from bakthat.commands._common import add_json, add_scope, print_json

NAME = "check"
ALIASES = ("verify",)
HELP = "check backups against the store (missing objects, orphans, broken chains); --read-data reads them"
DESCRIPTION = """\
Check the named backups (names or stored filenames; every live backup of the
destination when none is named) against the store: the archive, its manifest and its
index are there with the recorded sizes, the manifest agrees with the catalog, the
chain of a differential or incremental is whole.  Checking the whole destination also
lists orphans (objects no backup accounts for).

--read-data reads each archive end to end (SHA-256, decryption with the profile's
password sources, decompression, the tar structure and the index), writing no file;
--read-data-subset 10% reads a random tenth.  Archives in a cold storage class are
skipped and listed unless --wait restores them for reading.

The outcome of each backup is recorded in the catalog (show and info print it).  Exits
6 naming every damaged backup (or orphan), 0 when all is well."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="backup names or stored filenames (default: all)")
    add_scope(parser)
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--read-data", action="store_true", help="read every archive end to end")
    data.add_argument("--read-data-subset", metavar="N%", help="read this share of the archives, picked at random")
    parser.add_argument("--wait", action="store_true", help="cold storage: wait for retrievals instead of skipping")
    parser.add_argument("--prompt", choices=["yes", "no"], default="no", help="ask for a password when needed (default: no)")
    add_json(parser, "the result: each backup's status and problems, the orphans")


def run(args: argparse.Namespace) -> int:
    from bakthat.checker import check
    from bakthat.errors import IntegrityError

    result = check(
        args.names,
        destination=args.destination,
        profile=args.profile,
        config=args.config,
        read_data=args.read_data,
        read_data_subset=args.read_data_subset,
        prompt=args.prompt,
        wait=args.wait,
    )
    if args.json:
        print_json(result.to_dict())
    else:
        for backup in result.backups:
            line = f"{backup.status:<10} {backup.stored_filename}"
            print(line + (f": {'; '.join(backup.problems)}" if backup.problems else ""))
        for orphan in result.orphans:
            note = "" if orphan.removable else f" ({orphan.note})"
            print(f"orphan     {orphan.kind} {orphan.key}{note}")
        checked = "objects and data" if result.read_data else "objects"
        print(f"{len(result.backups)} backup(s) checked ({checked}): {len(result.damaged)} damaged, "
              f"{len(result.skipped)} skipped, {len(result.problem_orphans)} orphan(s)")
    if result.ok:
        return 0
    named = [backup.stored_filename for backup in result.damaged] + [orphan.key for orphan in result.problem_orphans]
    print(f"bakthat: error: damaged: {', '.join(named)}", file=sys.stderr)
    return IntegrityError.exit_code
