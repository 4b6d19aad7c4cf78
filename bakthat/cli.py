"""The ``bakthat`` command.

Sub-commands keep their bakthat 0.6 names (``delete_older_than`` style) and accept a
hyphenated alias.  Expected errors print ``bakthat: error: <message>`` to stderr and
exit with the code of their class (see :data:`bakthat.errors.EXIT_CODES`); no traceback
unless ``--debug``.  Ctrl-C and SIGTERM exit 130.

Start-up is kept short: this module and the command modules import only ``argparse``
and ``logging`` at the top; each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

from bakthat.errors import BakthatError

log = logging.getLogger("bakthat")

#: Loggers of libraries that may log secrets (argv, request headers) at debug level;
#: they stay at WARNING whatever -v says.
QUIET_LOGGERS = ("sh", "botocore", "boto3", "s3transfer", "urllib3")


def _common_options(top_level: bool) -> argparse.ArgumentParser:
    """Return a parent parser with -v, -q and --debug.

    On sub-commands the defaults are suppressed, so ``bakthat -v show`` and
    ``bakthat show -v`` mean the same.
    """
    default = {} if top_level else {"default": argparse.SUPPRESS}
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_mutually_exclusive_group()
    group.add_argument("-v", "--verbose", action="store_true", help="show debug messages", **default)
    group.add_argument("-q", "--quiet", action="store_true", help="show only warnings and errors", **default)
    parent.add_argument("--debug", action="store_true", help="show a traceback on errors", **default)
    return parent


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``bakthat`` command, one sub-parser per command module.

    Each command is reachable under its 0.6 name (``delete_older_than``) and, where that
    has underscores, under a hyphenated alias (``delete-older-than``).
    """
    from bakthat import __version__
    from bakthat.commands import command_modules

    parser = argparse.ArgumentParser(
        prog="bakthat",
        description="Compressed, encrypted, catalogued backups.",
        epilog="Exit codes and every option: docs/cli.md. Settings: docs/configuration.md.",
        parents=[_common_options(True)],
    )
    parser.add_argument("--version", action="version", version=f"bakthat {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    sub_options = _common_options(False)
    for module in command_modules():
        hyphenated = module.NAME.replace("_", "-")
        aliases = [hyphenated] if hyphenated != module.NAME else []
        sub = commands.add_parser(
            module.NAME,
            aliases=aliases,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            parents=[sub_options],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(func=module.run)
    return parser


class _Formatter(logging.Formatter):
    """Messages as they are; warnings and errors prefixed with their level."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        if record.levelno >= logging.ERROR:
            return f"error: {message}"
        if record.levelno >= logging.WARNING:
            return f"warning: {message}"
        return message


def _configure_logging(verbose: bool, quiet: bool) -> object:
    """Send the ``bakthat`` logger to stderr at INFO (DEBUG with -v, WARNING with -q).

    Return what :func:`_restore_logging` needs to undo it, so that calling :func:`main`
    in-process (tests, embedding) leaves logging as it found it.
    """
    touched = [log, *(logging.getLogger(name) for name in QUIET_LOGGERS)]
    saved = [(logger, list(logger.handlers), logger.level, logger.propagate) for logger in touched]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    log.propagate = False
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return saved


def _restore_logging(saved: object) -> None:
    for logger, handlers, level, propagate in saved:  # type: ignore[attr-defined]
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def _version() -> str:
    from bakthat import __version__

    return __version__


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code (see ``EXIT_CODES``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    saved_logging = _configure_logging(args.verbose, args.quiet)
    log.debug("bakthat %s on Python %s, command %s", _version(), sys.version.split()[0], args.command)
    try:
        previous = signal.signal(signal.SIGTERM, _interrupt)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("bakthat: interrupted", file=sys.stderr)
        return 130
    except BakthatError as exc:
        if args.debug:
            log.exception("error")
        for line in (str(exc) or type(exc).__name__).splitlines():
            print(f"bakthat: error: {line}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # The reader of our stdout went away (``bakthat show | head``): stop quietly.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:  # noqa: BLE001 - last resort: one line, generic code
        if args.debug:
            raise
        print(f"bakthat: unexpected error: {type(exc).__name__}: {exc} (run with --debug for details)", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        _restore_logging(saved_logging)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
