"""``bakthat periodic_backups``: the heartbeat state (0.6's BakManager command, modernised)."""

from __future__ import annotations

import argparse

from bakthat.commands._common import add_json, add_scope

NAME = "periodic_backups"
HELP = "show the heartbeat_url state and the backups of each -k key (successor of 0.6's BakManager)"
DESCRIPTION = """\
bakthat 0.6 reported periodic backups to BakManager.io, a web service that no longer
exists; its bakmanager_token and bakmanager_api keys are accepted and ignored.

The successor is the heartbeat_url profile key: `bakthat backup` requests that URL when
a backup succeeds, and the URL with /fail appended when it fails or is partial, so any
healthchecks.io-style monitor (healthchecks.io, Uptime Kuma push monitors, Cronitor,
...) alerts you when backups stop.  `{status}` in the URL is replaced by success or
fail instead; `{key}` is replaced by the backup's -k key (and backups without a key
then send no ping).  A failed ping is a warning, never a failed backup.

  bakthat configure --heartbeat-url https://hc-ping.com/<your-check-uuid>

This command shows whether heartbeat_url is set (its host only: the path is the check's
secret), the last ping bakthat sent, and, like 0.6, each -k key's backups: count,
newest date and total size."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_scope(parser)
    add_json(parser, "the heartbeat state and the keys")


def state(args: argparse.Namespace) -> dict:
    """Return the heartbeat URL (host only), the last recorded ping, and the -k keys' backups."""
    import bakthat
    from bakthat import heartbeat, models
    from bakthat.conf import get_profile

    settings = get_profile(args.profile, args.config)
    url = settings.get("heartbeat_url")
    models.bind_settings(settings)
    last = models.Config.get_key("heartbeat_last_ping")
    keys: dict[str, dict] = {}
    for row in bakthat.search(destination=args.destination, profile=args.profile, config=args.config):
        key = (row.metadata or {}).get("key")
        if not key:
            continue
        entry = keys.setdefault(key, {"key": key, "count": 0, "newest": row.backup_date, "total_size": 0})
        entry["count"] += 1
        entry["newest"] = max(entry["newest"], row.backup_date)
        entry["total_size"] += row.size or 0
    return {
        "heartbeat_url": heartbeat.redact(url) if url else None,
        "last_ping": last,
        "keys": sorted(keys.values(), key=lambda entry: entry["key"]),
    }


def run(args: argparse.Namespace) -> int:
    from bakthat.commands._common import print_json, print_table
    from bakthat.utils import human_size, local_time

    result = state(args)
    if args.json:
        print_json(result)
        return 0
    if result["heartbeat_url"]:
        print(f"heartbeat_url: {result['heartbeat_url']} (pinged after each bakthat backup)")
    else:
        print("heartbeat_url: not set (bakthat configure --heartbeat-url URL sets it)")
    last = result["last_ping"]
    if last:
        outcome = "delivered" if last.get("delivered") else "NOT delivered"
        print(f"last ping: {last.get('status')} at {local_time(int(last.get('time', 0)))}, {outcome}")
    else:
        print("last ping: none yet")
    if result["keys"]:
        print()
        print_table(
            [(e["key"], str(e["count"]), local_time(e["newest"]), human_size(e["total_size"])) for e in result["keys"]],
            right=[1, 3],
            header=("KEY", "BACKUPS", "NEWEST", "TOTAL SIZE"),
        )
    return 0
