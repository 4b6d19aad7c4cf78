"""``bakthat rotate_backups``: delete the backups of a name that the rotation policy does not keep."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bakthat.commands._common import add_scope

if TYPE_CHECKING:
    from datetime import datetime

NAME = "rotate_backups"
HELP = "delete the backups of a name that the profile's rotation policy does not keep"


def add_retention_options(parser: argparse.ArgumentParser) -> None:
    """Add the options shared by rotate_backups and delete_older_than."""
    add_scope(parser)
    parser.add_argument("--dry-run", action="store_true", help="print the plan and delete nothing")
    parser.add_argument("--json", action="store_true", help="print the plan, with every decision and its reasons, as JSON")
    parser.add_argument("--force", action="store_true", help="also delete pinned backups, and run a policy that keeps none of them (the newest is still kept)")
    parser.add_argument("--lock-timeout", type=float, default=60.0, metavar="SECONDS", help="wait this long for another run on the same name (default: 60)")
    parser.add_argument("--now", help="with --dry-run: plan as of this time (ISO 8601, UTC unless an offset is given, or Unix seconds)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("filename", help="backup name (exact)")
    add_retention_options(parser)


def parse_now(value: str | None) -> datetime | None:
    """Given ``--now`` (ISO 8601 or Unix seconds), return an aware datetime or None."""
    from datetime import datetime, timezone

    from bakthat.errors import ConfigError

    if value is None:
        return None
    try:
        if value.strip().lstrip("-").isdigit():
            return datetime.fromtimestamp(int(value), tz=timezone.utc)
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise ConfigError(f"--now {value!r}: give an ISO 8601 time such as 2026-11-20T12:00:00Z or Unix seconds") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def run_retention(args: argparse.Namespace, action: Callable[..., Any], *positional: Any) -> int:
    """Call a retention action with the parsed options and print its plan; return 0.

    The plan is printed also when the action is refused or partly fails; the error
    then reaches the command line, which prints it and exits with its code.  A name
    with no backup at all is NotFoundError (exit 4), as for the other commands.
    """
    from bakthat.errors import ConfigError

    if args.now is not None and not args.dry_run:
        raise ConfigError("--now is only allowed with --dry-run")
    options = {
        "destination": args.destination,
        "profile": args.profile,
        "config": args.config,
        "dry_run": args.dry_run,
        "force": args.force,
        "lock_timeout": args.lock_timeout,
    }
    now = parse_now(args.now)
    if now is not None:
        options["now"] = now
    try:
        result = action(*positional, **options)
    except Exception as exc:
        plan = getattr(exc, "plan", None)
        if plan is not None:
            show_plan(plan, args.json)
        raise
    show_plan(result.plan, args.json)
    if not result.plan.decisions:
        from bakthat.errors import NotFoundError

        raise NotFoundError(f"no backup named {positional[0]!r} in destination {result.plan.destination}")
    return 0


def show_plan(plan: Any, as_json: bool) -> None:
    """Print the plan: its explanation, or one JSON document on one line."""
    if as_json:
        import json

        json.dump(plan.to_dict(), sys.stdout)
        sys.stdout.write("\n")
    else:
        print(plan.explain())
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    from bakthat.rotation import rotate_backups

    return run_retention(args, rotate_backups, args.filename)
