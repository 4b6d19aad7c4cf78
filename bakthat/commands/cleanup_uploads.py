"""``bakthat cleanup_uploads``: list and abort stale incomplete multipart uploads."""

from __future__ import annotations

import argparse
from typing import Any

from bakthat.commands._common import add_json, add_scope

NAME = "cleanup_uploads"
HELP = "list and abort incomplete multipart uploads left by interrupted backups"
DESCRIPTION = """\
A backup killed mid-upload (kill -9, a power cut) leaves an incomplete multipart upload
whose parts the store keeps, and bills, until it is aborted.  This lists those under the
destination's bucket prefix started longer ago than --older-than, and aborts them unless
--dry-run is given.  Keep --older-than above the duration of your longest backup so an
upload in progress is never aborted."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--older-than",
        default="1D",
        help="only uploads started longer ago than this interval (s m h D W M Y, e.g. 12h, 2D; default 1D)",
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would be aborted; change nothing")
    add_scope(parser)
    add_json(parser, "the uploads as a list")


def abort_stale_uploads(backend: Any, older_than: float, dry_run: bool = False) -> list[Any]:
    """Given a backend, abort (unless ``dry_run``) its incomplete uploads started over
    ``older_than`` seconds ago, and return them.  Raise ConfigError if the backend keeps
    no such uploads (it does not declare ``lists_stale_uploads``)."""
    import logging
    import time

    from bakthat.errors import ConfigError

    log = logging.getLogger("bakthat.backends")
    if not backend.lists_stale_uploads:
        raise ConfigError(f"destination {backend.name} has no multipart uploads to clean")
    stale = backend.stale_uploads(older_than)
    for upload in stale:
        if dry_run:
            started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(upload.initiated))
            log.info("Would abort incomplete upload of %s (started %s)", upload.key, started)
        else:
            backend.abort_upload(upload)
            log.info("Aborted incomplete upload of %s", upload.key)
    return list(stale)


def run(args: argparse.Namespace) -> int:
    import time

    from bakthat import backends
    from bakthat.commands._common import print_json, print_table
    from bakthat.conf import get_profile
    from bakthat.errors import ConfigError
    from bakthat.rotation import parse_interval

    try:
        older_than = parse_interval(args.older_than)
    except ConfigError as exc:
        raise ConfigError(f"--older-than: {exc}") from None
    settings = get_profile(args.profile, args.config)
    destination = args.destination or settings.destination
    backend = backends.get_backend(destination, settings)
    uploads = abort_stale_uploads(backend, older_than, dry_run=args.dry_run)
    if args.json:
        print_json(
            [
                {"key": u.key, "upload_id": u.upload_id, "initiated": int(u.initiated), "aborted": not args.dry_run}
                for u in uploads
            ]
        )
        return 0
    verb = "would abort" if args.dry_run else "aborted"
    print_table(
        [(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(u.initiated)), verb, u.key) for u in uploads],
    )
    if not uploads:
        print(f"no incomplete uploads older than {args.older_than} in {destination}")
    return 0
