"""``bakthat info``: one backup's full record, or a summary per backup name."""

from __future__ import annotations

import argparse

from bakthat.commands._common import add_json, add_scope

NAME = "info"
HELP = "show a backup's full record, or a summary per name (count, newest, total size)"
DESCRIPTION = """\
With NAME (a backup name, or an exact stored filename): the full catalog record of the
newest backup of that name (or of that stored file), and how many versions exist.
Without NAME: one line per backup name with the number of backups, the newest date and
the total stored size."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="backup name or exact stored filename (default: summary of all names)")
    parser.add_argument("-t", "--tags", default="", help="summary: only backups with all these tags")
    add_scope(parser)
    add_json(parser, "the record or the summary")


def run(args: argparse.Namespace) -> int:
    import bakthat

    if args.name is None:
        rows = bakthat.search(destination=args.destination, tags=args.tags, profile=args.profile, config=args.config)
        return _summary(rows, args.json)
    from bakthat import models
    from bakthat.conf import get_profile

    models.bind_settings(get_profile(args.profile, args.config))
    row = models.find_backup(args.name, destination=args.destination, deleted_by_stored_name=True)
    # All live versions of the name: in the destination asked for (all when none was),
    # or, for a backup found by its stored filename, in that backup's destination.
    scope = args.destination if row.filename == args.name else row.backend
    versions = bakthat.search(name=row.filename, destination=scope, profile=args.profile, config=args.config)
    return _record(row, versions, args.json)


def summarise(rows: list) -> list[dict]:
    """Given catalog rows (newest first), return one dict per (name, destination): count,
    newest, oldest, total size, and the source paths (newest first)."""
    groups: dict[tuple[str, str], dict] = {}
    for row in rows:
        entry = groups.setdefault(
            (row.filename, row.backend),
            {"name": row.filename, "destination": row.backend, "count": 0, "newest": row.backup_date,
             "oldest": row.backup_date, "total_size": 0, "sources": []},
        )
        entry["count"] += 1
        if row.source_path and row.source_path not in entry["sources"]:
            entry["sources"].append(row.source_path)
        entry["newest"] = max(entry["newest"], row.backup_date)
        entry["oldest"] = min(entry["oldest"], row.backup_date)
        entry["total_size"] += row.size or 0
    return sorted(groups.values(), key=lambda entry: (entry["name"], entry["destination"]))


def _summary(rows: list, as_json: bool) -> int:
    from bakthat.commands._common import print_json, print_table
    from bakthat.utils import human_size, local_time

    entries = summarise(rows)
    if as_json:
        print_json(entries)
        return 0
    print_table(
        [(e["name"], e["destination"], str(e["count"]), local_time(e["newest"]), human_size(e["total_size"]), _sources(e["sources"]))
         for e in entries],
        right=[2, 4],
        header=("NAME", "DESTINATION", "BACKUPS", "NEWEST", "TOTAL SIZE", "SOURCE") if entries else None,
    )
    return 0


def _sources(paths: list[str]) -> str:
    if not paths:
        return "-"
    return paths[0] + (f" (+{len(paths) - 1} other source{'s' if len(paths) > 2 else ''})" if len(paths) > 1 else "")


def _record(row, versions: list, as_json: bool) -> int:
    from bakthat.commands._common import print_json, print_table
    from bakthat.utils import human_size, local_time

    if as_json:
        print_json({"backup": row.to_dict(), "versions": len(versions)})
        return 0
    metadata = dict(row.metadata or {})
    skipped = metadata.pop("skipped", None) or []
    changed = metadata.pop("changed", None) or []
    lines = [
        ("name", row.filename),
        ("stored filename", row.stored_filename),
        ("destination", row.backend),
        ("date", local_time(row.backup_date)),
        ("state", row.state + (" (deleted)" if row.is_deleted and row.state == "ok" else "")),
        ("size", f"{human_size(row.size)} ({row.size} bytes)"),
        ("source", row.source_path or "-"),
        ("source size", "-" if row.source_size is None else f"{human_size(row.source_size)} in {row.file_count} files"),
        ("compression", row.compression or "-"),
        ("encryption", row.encryption),
        ("sha256", row.sha256 or "-"),
        ("tags", row.tags or "-"),
        ("host", row.host or "-"),
        ("profile", row.profile),
        ("session", row.session_id or "-"),
        ("versions", f"{len(versions)} live backup(s) of {row.filename}"),
        ("level", (row.level or "full") + (f" on {row.base}" if row.base else "")),
        ("last check", "never" if not row.checked_at else f"{local_time(row.checked_at)}: {row.check_result}"),
    ]
    if skipped:
        lines.append(("skipped", f"{len(skipped)} entries could not be read"))
    if changed:
        lines.append(("changed", f"{len(changed)} files changed while being read"))
    lines += [(f"metadata.{key}", _plain(value)) for key, value in sorted(metadata.items())]
    print_table(lines)
    return 0


def _plain(value: object) -> str:
    """Return ``value`` as a person reads it: a mapping as ``key value, ...``, a list
    comma-separated, anything else as ``str``."""
    if isinstance(value, dict):
        return ", ".join(f"{key} {_plain(item)}" for key, item in value.items()) or "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(item) for item in value) or "-"
    return str(value)
