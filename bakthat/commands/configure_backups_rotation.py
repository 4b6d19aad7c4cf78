"""``bakthat configure_backups_rotation``: write the profile's ``rotation`` policy."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from bakthat.commands._common import add_json, add_scope

NAME = "configure_backups_rotation"
HELP = "set the rotation policy used by rotate_backups, interactively or with flags"
DESCRIPTION = """\
Write the profile's rotation policy (the `rotation:` block) into the config file (-c,
else $BAKTHAT_CONFIG, else ~/.bakthat.yml).  Without flags, in a terminal, asks for
the days, weeks and months to keep and the first day of the week, as bakthat 0.6 did;
with flags, changes only what they name and keeps the rest of the block:

  bakthat configure_backups_rotation --days 7 --weeks 4 --months 6 --first-week-day saturday

The policy is checked before anything is written; the file is replaced atomically."""

log = logging.getLogger("bakthat")

#: The options in the order they are listed and written: 0.6's three first, then the others.
_OPTION_ORDER = ("days", "weeks", "months")


def _units() -> tuple[str, ...]:
    """Return rotation's units (:data:`bakthat.rotation_plan.UNITS`) in option order."""
    from bakthat.rotation_plan import UNITS

    return (*_OPTION_ORDER, *(unit for unit in UNITS if unit not in _OPTION_ORDER))


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is below 0")
    return value


def week_day(text: str) -> int:
    """Given ``saturday`` (or ``sat``) or ``0``..``6`` (Monday is 0), return 0..6."""
    from bakthat.rotation_plan import week_day_named

    word = text.strip().lower()
    if word.isdigit() and 0 <= int(word) <= 6:
        return int(word)
    named = week_day_named(word)
    if named is not None:
        return named
    raise argparse.ArgumentTypeError(f"{text!r} is not a day: give monday..sunday or 0 (Monday) to 6 (Sunday)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_scope(parser, destination=False)
    for unit in _units():
        parser.add_argument(f"--{unit}", type=_count, metavar="N", help=f"keep one backup for each of the last N {unit}")
    parser.add_argument("--first-week-day", type=week_day, metavar="DAY", help="day weeks start on: monday..sunday or 0-6 (default saturday)")
    parser.add_argument("--keep", choices=["newest", "oldest"], help="which backup each period keeps (default newest)")
    parser.add_argument("--keep-last", type=_count, metavar="N", help="also keep the N most recent backups")
    parser.add_argument("--pin-tag", metavar="TAG", help="backups with this tag are never rotated away (default keep)")
    parser.add_argument("--replace", action="store_true", help="start from an empty policy instead of changing the current one")
    parser.add_argument("--interactive", action="store_true", help="ask questions even when stdin is not a terminal")
    add_json(parser, "the policy written")


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    from bakthat.rotation_plan import POLICY_KEYS, UNITS

    names = (*_units(), *(key for key in POLICY_KEYS if key not in UNITS))
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _ask(current: dict[str, Any]) -> dict[str, Any]:
    """Ask for days, weeks, months and the first week day (0.6's questions)."""
    from bakthat.commands.configure import _read

    answers: dict[str, Any] = {}
    sys.stderr.write("Rotation policy. Blank answers keep the value in brackets.\n")
    from bakthat.rotation_plan import DEFAULT_FIRST_WEEK_DAY, WEEKDAYS

    for unit in _OPTION_ORDER:
        while True:
            text = _read(f"Number of {unit} to keep [{current.get(unit, 0)}]: ").strip()
            if not text:
                break
            try:
                answers[unit] = _count(text)
                break
            except argparse.ArgumentTypeError as exc:
                sys.stderr.write(f"  {exc}\n")
    day = current.get("first_week_day", DEFAULT_FIRST_WEEK_DAY)
    shown = WEEKDAYS[day] if isinstance(day, int) and 0 <= day <= 6 else day
    while True:
        text = _read(f"First week day [{shown}]: ").strip()
        if not text:
            break
        try:
            answers["first_week_day"] = week_day(text)
            break
        except argparse.ArgumentTypeError as exc:
            sys.stderr.write(f"  {exc}\n")
    return answers


def run(args: argparse.Namespace) -> int:
    from bakthat.commands._common import print_json
    from bakthat.conf import display_path, load_config, update_profile
    from bakthat.errors import ConfigError

    current = {} if args.replace else dict((load_config(args.config, create=True).get(args.profile) or {}).get("rotation") or {})
    changes = _flags(args)
    if not changes:
        if not (args.interactive or sys.stdin.isatty()):
            raise ConfigError("nothing to change: give --days, --weeks, --months... or run the command in a terminal")
        changes = _ask(current)
    block = {**current, **changes}
    from bakthat.rotation_plan import Policy

    Policy.from_mapping(block, where=f"profile {args.profile!r}: rotation")
    path, _ = update_profile(args.profile, {"rotation": block}, config=args.config)
    if args.json:
        print_json(block)
    log.info("Wrote %s (profile %r): rotation %s", display_path(path), args.profile, block)
    return 0
