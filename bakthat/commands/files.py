"""``bakthat files``: list what a backup holds, from its index (no archive is read)."""

from __future__ import annotations

import argparse
import stat

from bakthat.commands._common import add_index_options, print_items, shown

NAME = "files"
HELP = "list the paths a backup holds, from its index, without reading the archive"
DESCRIPTION = """\
List the paths of the newest backup of NAME (or of the backup stored as NAME; with --at,
the newest at or before that date): for a differential or incremental, the state at that
backup, with its whole chain merged.  Only the index objects are read, never an archive,
so a backup in a Glacier class lists without a retrieval."""

_LETTERS = {"f": "-", "d": "d", "l": "l", "p": "p", "c": "c", "b": "b", "s": "s"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="backup name, or an exact stored filename")
    parser.add_argument("--at", metavar="DATE", help="the newest backup at or before DATE (ISO 8601, or a backup_date)")
    add_index_options(parser, "one object per entry (path, type, size, mtime_ns, mode, owner, link, holder...)")


def run(args: argparse.Namespace) -> int:
    import bakthat
    from bakthat.utils import local_time

    entries = bakthat.files(
        args.name, destination=args.destination, profile=args.profile, config=args.config, at=args.at,
        prompt=args.prompt,
    )

    def lines(entry):
        mode = _LETTERS.get(entry.type, "?") + stat.filemode(entry.mode)[1:]
        owner = f"{entry.user or entry.uid}/{entry.group or entry.gid}"
        target = f" -> {entry.link}" if entry.link is not None else ""
        yield (f"{mode} {owner:>12} {entry.size:>12} {local_time(entry.mtime_ns // 10**9)} {shown(entry.path)}"
               f"{shown(target)}")

    print_items(entries, args.json, lines)
    return 0
