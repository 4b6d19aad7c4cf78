"""The ``bakthat`` command.

Sub-commands keep their bakthat 0.6 names (``delete_older_than`` style) and accept a
hyphenated alias.  Expected errors print one line to stderr and exit with the code of
their class (see :data:`bakthat.errors.EXIT_CODES`); no traceback unless ``--debug``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from bakthat.errors import BakthatError

log = logging.getLogger("bakthat")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``bakthat`` command, one sub-parser per command module.

    Each command is reachable under its 0.6 name (``delete_older_than``) and, where that
    has underscores, under a hyphenated alias (``delete-older-than``).
    """
    from bakthat import __version__
    from bakthat.commands import command_modules

    parser = argparse.ArgumentParser(prog="bakthat", description="Compressed, encrypted, catalogued backups.")
    parser.add_argument("--version", action="version", version=f"bakthat {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug messages")
    parser.add_argument("-q", "--quiet", action="store_true", help="show only warnings and errors")
    parser.add_argument("--debug", action="store_true", help="show a traceback on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for module in command_modules():
        hyphenated = module.NAME.replace("_", "-")
        aliases = [hyphenated] if hyphenated != module.NAME else []
        sub = commands.add_parser(module.NAME, aliases=aliases, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(func=module.run)
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

