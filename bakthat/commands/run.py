"""``bakthat run``: run the profile's backup jobs."""

from __future__ import annotations

import argparse
import logging

from bakthat.commands._common import add_json, add_scope, print_json

NAME = "run"
HELP = "run backup jobs (all of the profile's by default)"
DESCRIPTION = """\
Run the named jobs of the profile's jobs: mapping, in order (every job when none is
named).  Each source of a job is backed up between the job's and the source's command
hooks; a source that fails never stops the others, and only the sources that succeeded
are rotated (with the job's rotation policy).  Every job, source and hook run is
recorded in the catalog; `bakthat status` shows a job while it runs.

Exit status: 0 every job ok, 3 partial (some sources failed), 1 a job failed (a fatal
hook, or every source failed), 2 a configuration error (nothing ran).  With --dry-run,
sources are planned and nothing is stored; only hooks with dry_run: true run.  The
password comes from the profile (password_file, password_command, BAKTHAT_PASSWORD):
run never prompts unless --prompt yes.  If the profile has a heartbeat_url, it is
requested after the run: /fail appended unless every job was ok."""

log = logging.getLogger("bakthat")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("jobs", nargs="*", metavar="JOB", help="jobs to run (default: every job of the profile)")
    add_scope(parser, destination=False)
    parser.add_argument("--dry-run", action="store_true",
                        help="plan every source, store nothing; run only the hooks marked dry_run: true")
    parser.add_argument("--prompt", choices=["yes", "no"], default="no",
                        help="ask for the password once per job when none is configured (default: no)")
    add_json(parser, "every job's result (status, each source and hook)")


def describe(result) -> str:
    """Return the human-readable report of a RunResult, one block per job."""
    from bakthat.utils import human_size

    lines = []
    for job in result.jobs:
        lines.append(f"job {job.job}: {job.status}{' (dry run)' if job.dry_run else ''} in {job.duration:.1f} s"
                     + (f": {job.error}" if job.error else ""))
        for source in job.sources:
            size = f"{human_size(source.size)}" if source.size is not None else "-"
            stored = source.stored_filename or "-"
            rotated = f", rotation deleted {source.rotated}" if source.rotated else ""
            lines.append(f"  {source.status:<8} {source.name:<20} {size:>10}  {stored}{rotated}")
            if source.error:
                lines.append(f"           {source.error.splitlines()[0] if source.error else ''}")
        failed = [hook for hook in [*job.hooks, *(h for s in job.sources for h in s.hooks)] if not hook.ok]
        for hook in failed:
            lines.append(f"  hook {hook.summary()}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import bakthat
    from bakthat.conf import get_profile

    settings = get_profile(args.profile, args.config)
    result = bakthat.run(args.jobs or None, profile=args.profile, config=args.config, dry_run=args.dry_run,
                         prompt=args.prompt)
    if args.json:
        print_json(result.to_dict())
    else:
        print(describe(result))
    heartbeat_url = settings.get("heartbeat_url")
    if heartbeat_url and not args.dry_run:  # one ping for the whole run, not one per source
        from bakthat.heartbeat import Subscriber

        Subscriber(settings, str(heartbeat_url), None).beat("success" if result.status == "ok" else "fail")
    return result.exit_code
