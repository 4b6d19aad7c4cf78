"""``bakthat backup``: back up a file or directory."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from bakthat.commands._common import add_progress_and_json, add_prompt, add_scope, print_json

NAME = "backup"
HELP = "back up a file, a directory or a database"
DESCRIPTION = """\
Back up a file or directory (default: the current directory) into the destination and
record it in the catalog.  A database URL is dumped and its dump stored, streamed
(postgresql://user@host:port/db with pg_dump, mysql://user@host:port/db with
mariadb-dump/mysqldump, sqlite:///path/app.db with SQLite's backup API), named after
the database unless --name is given; restore it with `bakthat restore NAME --into URL`.  A symbolic link given as the source is followed.  The backup
is named after the last component of the source's absolute path (root for /) unless
--name is given; a path-derived name earlier used on this host for another source is
warned about (an error with the profile's name_conflict: error).

With --level diff or incr (or level: auto in the profile), only what changed since the
base is stored (a file counts as changed when its type, size, mtime, ctime, inode, mode,
owner or link target differ), with the paths deleted since; restore gives the state at
that backup.  Every backup stores its file index beside the archive.

Entries matching --exclude, the profile's exclude, --exclude-file or the source's
.bakthatexclude are left out (the source's .gitignore too with exclude_gitignore: true).
The backup exits 3 (partial) if entries could not be read or changed while being read.

If the profile has a heartbeat_url, it is requested when the backup succeeds and with
/fail appended when it fails or is partial (see bakthat periodic_backups --help); the
pings are sent by the heartbeat's event subscriber (bakthat.heartbeat)."""

log = logging.getLogger("bakthat")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("filename", nargs="?",
                        help="file, directory or database URL (default: the current directory)")
    add_scope(parser)
    add_prompt(parser, help="ask for a password when none is given (default: yes)")
    parser.add_argument("-t", "--tags", default="", help='space-separated tags, for example "daily db"')
    parser.add_argument("-k", "--key", help="a key recorded with the backup (0.6's BakManager key; fills {key} in heartbeat_url)")
    parser.add_argument("--name", help="backup name (default: the last component of the source's absolute path, root for /)")
    parser.add_argument("--exclude", action="append", default=[], metavar="PATTERN", help="leave out what this gitignore-style pattern matches (repeatable)")
    parser.add_argument("--exclude-file", help="file of gitignore-style patterns to leave out")
    parser.add_argument("--s3-reduced-redundancy", action="store_true", help="store with the REDUCED_REDUNDANCY class (S3)")
    parser.add_argument("--compression", choices=["zstd", "gzip", "none"], help="override the profile's compression")
    parser.add_argument(
        "--level", choices=["full", "diff", "incr", "auto"],
        help="full: everything; diff: what changed since the last full; incr: since the last backup; "
        "auto: incr, or full per full_every/max_chain (default: the profile's level, full)",
    )
    parser.add_argument(
        "--dry-run", action="store_true",
        help="walk the source and report what would be stored (entries, bytes, excluded entries, stored name); store nothing",
    )
    add_progress_and_json(parser, "the new catalog row (with --dry-run: the plan)")


def run(args: argparse.Namespace) -> int:
    import bakthat
    from bakthat import heartbeat
    from bakthat.commands._common import print_plan, progress_for, source_size
    from bakthat.conf import get_profile
    from bakthat.errors import PartialFailure

    settings = get_profile(args.profile, args.config)
    source = os.getcwd() if args.filename is None else os.path.expanduser(args.filename)
    with heartbeat.subscribed(settings, args.key, dry_run=args.dry_run), \
            progress_for(args, lambda: source_size(source), os.path.basename(os.path.normpath(source))) as progress:
        row = bakthat.backup(
            args.filename,
            destination=args.destination,
            profile=args.profile,
            config=args.config,
            prompt=args.prompt,
            tags=args.tags,
            key=args.key,
            exclude_file=args.exclude_file,
            exclude=args.exclude,
            custom_filename=args.name,
            s3_reduced_redundancy=args.s3_reduced_redundancy,
            compression=args.compression,
            progress=progress,
            dry_run=args.dry_run,
            level=args.level,
        )
    if args.dry_run:
        print_plan(row, args.json)
        return PartialFailure.exit_code if row.skipped else 0
    if args.json:
        print_json(row)
    metadata = row.metadata or {}
    if metadata.get("partial"):
        counts = metadata.get("entries") or {}
        print(
            f"bakthat: warning: {row.stored_filename} is partial: {counts.get('skipped', 0)} entries could not be "
            f"read, {counts.get('changed', 0)} changed while being read (named above)",
            file=sys.stderr,
        )
        return PartialFailure.exit_code
    return 0
