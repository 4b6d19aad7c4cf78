"""``bakthat status``: the running and recently finished backups, restores and jobs."""

from __future__ import annotations

import argparse
import time

from bakthat.commands._common import add_json, print_json

NAME = "status"
HELP = "show running and recently finished runs (backup, restore, job)"
DESCRIPTION = """\
List the runs of this user on this machine: those running (job, source, phase, files
and bytes done, rate, ETA, pid, elapsed time) and the last finished ones with how they
ended.  A backup's ETA comes from the last backup of the same name and level (a job's,
from its sources'); the line under a run says where from, or why there is none.  A
run whose process died without finishing is shown as crashed, never as running.  Runs
publish their state in $XDG_RUNTIME_DIR/bakthat (/run/bakthat for root;
$BAKTHAT_STATUS_DIR overrides)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--watch", nargs="?", const=2.0, type=float, metavar="SECONDS",
                        help="redraw every SECONDS (default 2) until interrupted")
    parser.add_argument("--running", action="store_true", help="only the runs still running")
    add_json(parser, "the runs as a list")


def _runs(args: argparse.Namespace) -> list:
    from bakthat.status import RUNNING, list_runs

    runs = list_runs()
    return [run for run in runs if run.state == RUNNING] if args.running else runs


def run(args: argparse.Namespace) -> int:
    from bakthat.status import format_runs

    if args.watch is not None:
        if args.watch <= 0:
            from bakthat.errors import ConfigError

            raise ConfigError("--watch needs a positive number of seconds")
        while True:
            print("\x1b[H\x1b[2J" + format_runs(_runs(args)), flush=True)
            time.sleep(args.watch)
    runs = _runs(args)
    if args.json:
        print_json([run.as_dict() for run in runs])
    elif runs:
        print(format_runs(runs))
    else:
        print("no runs")
    return 0
