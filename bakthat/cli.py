"""The ``bakthat`` command.

Sub-commands keep their bakthat 0.6 names (``delete_older_than`` style) and accept a
hyphenated alias.  Expected errors print one line to stderr and exit with the code of
their class (see :data:`bakthat.errors.EXIT_CODES`); no traceback unless ``--debug``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from bakthat.errors import BakthatError, PartialFailure

log = logging.getLogger("bakthat")


def _common(parser: argparse.ArgumentParser, destination: bool = True) -> None:
    if destination:
        parser.add_argument("-d", "--destination", help="where backups are stored (default: the profile's default_destination, else local)")
    parser.add_argument("-p", "--profile", default="default", help="profile of the config file (default: default)")
    parser.add_argument("-c", "--config", help="config file (default: $BAKTHAT_CONFIG or ~/.bakthat.yml)")


def _row_dict(row: Any) -> dict[str, Any]:
    return row.to_dict()


def _cmd_backup(args: argparse.Namespace) -> int:
    import bakthat

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
        print(json.dumps(_row_dict(row)))
    skipped = (row.metadata or {}).get("skipped") or []
    if skipped:
        print(f"bakthat: warning: {len(skipped)} entries could not be read and are not in {row.stored_filename}", file=sys.stderr)
        return PartialFailure.exit_code
    return 0


def _cmd_restore(args: argparse.Namespace) -> int:
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
        print(json.dumps(_row_dict(row)))
    else:
        log.info("Restored %s", row.stored_filename)
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    import bakthat

    row = bakthat.delete(args.filename, destination=args.destination, profile=args.profile, config=args.config)
    if args.json:
        print(json.dumps(_row_dict(row)))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    import bakthat
    from bakthat.utils import human_size, local_time

    rows = bakthat.search(args.query or "", destination=args.destination, tags=args.tags, profile=args.profile, config=args.config)
    if args.json:
        print(json.dumps([_row_dict(row) for row in rows]))
        return 0
    table = [(local_time(r.backup_date), r.backend, human_size(r.size), r.stored_filename, r.tags) for r in rows]
    widths = [max((len(line[i]) for line in table), default=0) for i in range(4)]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + (f"  ({line[4]})" if line[4] else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``bakthat`` command."""
    from bakthat import __version__

    parser = argparse.ArgumentParser(prog="bakthat", description="Compressed, encrypted, catalogued backups.")
    parser.add_argument("--version", action="version", version=f"bakthat {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug messages")
    parser.add_argument("-q", "--quiet", action="store_true", help="show only warnings and errors")
    parser.add_argument("--debug", action="store_true", help="show a traceback on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    backup = commands.add_parser("backup", help="back up a file or directory")
    backup.add_argument("filename", nargs="?", help="file or directory (default: the current directory)")
    _common(backup)
    backup.add_argument("--prompt", choices=["yes", "no"], default="yes", help="ask for a password when none is given (default: yes)")
    backup.add_argument("-t", "--tags", default="", help='space-separated tags, for example "daily db"')
    backup.add_argument("-k", "--key", help="a key recorded with the backup (0.6's BakManager key)")
    backup.add_argument("--exclude-file", help="file of gitignore-style patterns to leave out")
    backup.add_argument("--s3-reduced-redundancy", action="store_true", help="store with the REDUCED_REDUNDANCY class (S3)")
    backup.add_argument("--compression", choices=["zstd", "gzip", "none"], help="override the profile's compression")
    backup.add_argument("--json", action="store_true", help="print the new catalog row as JSON")
    backup.set_defaults(func=_cmd_backup)

    restore = commands.add_parser("restore", help="restore the newest backup of a name")
    restore.add_argument("filename", help="backup name, or an exact stored filename")
    _common(restore)
    restore.add_argument("--target", help="directory to restore into (default: the current directory)")
    restore.add_argument("--overwrite", action="store_true", help="replace existing files")
    restore.add_argument("--prompt", choices=["yes", "no"], default="yes", help="ask for the password when needed (default: yes)")
    restore.add_argument("--json", action="store_true", help="print the restored backup's row as JSON")
    restore.set_defaults(func=_cmd_restore)

    show = commands.add_parser("show", help="list backups in the catalog")
    show.add_argument("query", nargs="?", help="substring of the name or stored filename")
    show.add_argument("-t", "--tags", default="", help="only backups with all these tags")
    _common(show)
    show.add_argument("--json", action="store_true", help="print rows as a JSON list")
    show.set_defaults(func=_cmd_show)

    delete = commands.add_parser("delete", help="delete the newest backup of a name")
    delete.add_argument("filename", help="backup name, or an exact stored filename")
    _common(delete)
    delete.add_argument("--json", action="store_true", help="print the deleted row as JSON")
    delete.set_defaults(func=_cmd_delete)
    return parser


def _configure_logging(verbose: bool, quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    log.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code (see ``EXIT_CODES``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose, args.quiet)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("bakthat: interrupted", file=sys.stderr)
        return 130
    except BakthatError as exc:
        if args.debug:
            log.exception("error")
        print(f"bakthat: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - last resort: one line, generic code
        if args.debug:
            raise
        print(f"bakthat: unexpected error: {type(exc).__name__}: {exc} (run with --debug for details)", file=sys.stderr)
        return 1


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())

