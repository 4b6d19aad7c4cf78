"""``bakthat restore``: restore the newest backup of a name."""

from __future__ import annotations

import argparse
import logging

from bakthat.commands._common import add_progress_and_json, add_prompt, add_scope, print_json

NAME = "restore"
HELP = "restore the newest backup of a name"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("filename", help="backup name, or an exact stored filename")
    add_scope(parser)
    parser.add_argument("--target", help="directory to restore into (default: the current directory)")
    parser.add_argument(
        "--into", metavar="URL",
        help="database dumps: stream the dump into this database (postgresql://.../newdb, mysql://.../newdb, "
             "sqlite:///path/new.db) instead of writing the dump file",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    parser.add_argument(
        "--at", metavar="DATE",
        help="restore the newest backup of the name at or before DATE (ISO 8601, or a backup_date of show --json)",
    )
    parser.add_argument(
        "--include", action="append", default=[], metavar="PATTERN",
        help="restore only the paths this gitignore-style pattern matches, below the backup's top entry (repeatable)",
    )
    add_prompt(parser)
    parser.add_argument("--wait", action="store_true", help="cold storage: wait for the retrieval instead of exiting 11")
    parser.add_argument(
        "--dry-run", action="store_true",
        help="read and verify the whole archive, list what would be written and what already exists; write nothing",
    )
    parser.add_argument(
        "--unverified", action="store_true",
        help="accept restoring a file bakthat 0.6 stored without compression and Blowfish-encrypted, "
        "which nothing can verify (a wrong password or damage may give garbage)",
    )
    add_progress_and_json(parser, "the restored backup's row (with --dry-run: the plan)")


def _stored_size(args: argparse.Namespace) -> int | None:
    """Return the size of the backup restore will read, or None if it cannot be told cheaply."""
    from bakthat import models
    from bakthat.conf import get_profile
    from bakthat.errors import NotFoundError

    settings = get_profile(args.profile, args.config)
    models.bind_settings(settings)
    try:
        row = models.find_backup(args.filename, destination=args.destination or settings.destination)
    except NotFoundError:
        return None
    return row.size


def run(args: argparse.Namespace) -> int:
    import bakthat
    from bakthat.commands._common import print_plan, progress_for

    with progress_for(args, lambda: _stored_size(args), args.filename) as progress:
        row = bakthat.restore(
            args.filename,
            destination=args.destination,
            profile=args.profile,
            config=args.config,
            target=args.target,
            overwrite=args.overwrite,
            prompt=args.prompt,
            wait=args.wait,
            progress=progress,
            dry_run=args.dry_run,
            into=args.into,
            unverified=args.unverified,
            at=args.at,
            include=args.include,
        )
    if args.dry_run:
        from bakthat.errors import TargetExistsError

        print_plan(row, args.json)
        return TargetExistsError.exit_code if row.refused else 0
    if args.json:
        print_json(row)
    else:
        logging.getLogger("bakthat").info("Restored %s", row.stored_filename)
    return 0
