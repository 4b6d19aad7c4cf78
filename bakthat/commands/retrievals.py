"""``bakthat retrievals``: the status of archive retrievals (the successor of 0.6's job_check)."""

from __future__ import annotations

import argparse

from bakthat.commands._common import add_json, add_scope

NAME = "retrievals"
HELP = "show pending retrievals of archived backups (Glacier classes and vaults)"
DESCRIPTION = """\
Restoring a backup kept in an archive storage class (GLACIER, DEEP_ARCHIVE, or a legacy
Glacier vault) first requests a retrieval, which takes minutes to hours depending on
the tier.  This lists the retrievals recorded in the catalog, after asking the store
for their current status: pending, ready (restore it now), failed or expired."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_scope(parser)
    parser.add_argument("--all", action="store_true", help="also list ready, failed and expired retrievals")
    parser.add_argument("--no-refresh", action="store_true", help="show the catalog's view without asking the store")
    add_json(parser, "the retrievals as a list")


def run(args: argparse.Namespace) -> int:
    from bakthat import backends, models
    from bakthat.backends import retrieval
    from bakthat.commands._common import print_json, print_table
    from bakthat.conf import get_profile
    from bakthat.utils import local_time

    settings = get_profile(args.profile, args.config)
    models.bind_settings(settings)
    backend = None
    destination = args.destination or settings.destination
    if backends.get_backend_class(destination).archive_retrievals:
        backend = backends.get_backend(destination, settings)
    rows = retrieval.retrievals(backend, refresh=not args.no_refresh, include_done=args.all)
    if args.json:
        print_json(
            [
                {
                    "key": row.key,
                    "destination": row.backend,
                    "kind": row.kind,
                    "tier": row.tier,
                    "status": row.status,
                    "requested": row.requested,
                    "ready_until": row.ready_until,
                    "job_id": row.job_id,
                }
                for row in rows
            ]
        )
        return 0
    if not rows:
        print("no pending retrievals" if not args.all else "no retrievals recorded")
        return 0
    print_table(
        [
            (
                local_time(row.requested),
                row.backend,
                row.tier,
                row.status,
                row.key,
                f"(readable until {local_time(row.ready_until)})" if row.status == "ready" and row.ready_until else "",
            )
            for row in rows
        ],
        header=("requested", "destination", "tier", "status", "key", ""),
    )
    return 0
