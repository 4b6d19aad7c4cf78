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


def build_parser(complete: bool = True) -> argparse.ArgumentParser:
    """Return the argument parser of the ``bakthat`` command, one sub-parser per command.

    Each command is reachable under its 0.6 name (``delete_older_than``) and, where that
    has underscores, under a hyphenated alias (``delete-older-than``).  With ``complete``
    false, the sub-parsers are listed from :data:`bakthat.commands.COMMANDS` and a
    command's module is imported, and its options added, only when the command line
    names it: ``bakthat show`` imports one command module, ``bakthat --help`` none.
    """
    from bakthat import __version__
    from bakthat.commands import COMMANDS

    parser = argparse.ArgumentParser(
        prog="bakthat",
        description="Compressed, encrypted, catalogued backups.",
        epilog="Documentation: bakthat docs (installed with bakthat). Exit codes and every option: bakthat docs cli. Settings: bakthat docs configuration.",
        parents=[_common_options(True)],
    )
    parser.add_argument("--version", action="version", version=f"bakthat {__version__}")
    from bakthat.commands._common import add_scope

    add_scope(parser)  # before the command as well as after it, as the AWS CLI does
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", action=_Commands)
    commands.required = True
    sub_options = _common_options(False)
    for name, (summary, extra_aliases) in COMMANDS.items():
        hyphenated = name.replace("_", "-")
        aliases = [hyphenated] if hyphenated != name else []
        aliases += list(extra_aliases)  # such as check's "verify"
        sub = commands.add_parser(
            name, aliases=aliases, help=summary, description=summary, parents=[sub_options],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        commands._unfilled[sub] = name
        if complete:
            commands._fill(sub)
    _add_plugin_commands(commands, sub_options)
    return parser


class _Commands(argparse._SubParsersAction):
    """The sub-parsers of the commands, each completed from its module when it is used.

    ``_unfilled`` maps a sub-parser not filled yet to its command's name (underscored names:
    shtab reads an action's ``complete`` attribute).
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._unfilled: dict[argparse.ArgumentParser, str] = {}

    def _fill(self, sub: argparse.ArgumentParser) -> None:
        """Import the command module of ``sub`` and add its description, options and runner."""
        name = self._unfilled.pop(sub, None)
        if name is None:
            return
        from bakthat.commands import command_module

        module = command_module(name)
        sub.description = getattr(module, "DESCRIPTION", module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(func=module.run, _takes_destination=_takes_destination(sub))

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object, option_string: str | None = None) -> None:
        chosen = self._name_parser_map.get(values[0])  # type: ignore[index]
        if chosen is not None:
            self._fill(chosen)
        super().__call__(parser, namespace, values, option_string)


def _takes_destination(parser: argparse.ArgumentParser) -> bool:
    return any(action.dest == "destination" for action in parser._actions)


def _add_plugin_commands(commands: argparse._SubParsersAction, sub_options: argparse.ArgumentParser) -> None:
    """Add the commands declared by the active plugins (none unless plugins are loaded)."""
    plugin = sys.modules.get("bakthat.plugin")
    if plugin is None:
        return
    from bakthat.commands._common import add_scope

    for command in plugin.commands().values():
        hyphenated = command.name.replace("_", "-")
        origin = f"[plugin {command.plugin._bakthat_record.spec}]"
        sub = commands.add_parser(
            command.name,
            aliases=[hyphenated] if hyphenated != command.name else [],
            help=f"{command.help} {origin}".strip(),
            description=f"{command.help}\n\n{origin}".strip(),
            parents=[sub_options],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_command_arguments(sub, command)
        add_scope(sub)
        sub.set_defaults(func=_plugin_runner(command))


def add_command_arguments(parser: argparse.ArgumentParser, command: object) -> None:
    """Add a plugin command's parameters to its argparse sub-parser."""
    for param in command.params:  # type: ignore[attr-defined]
        if param.flag:
            parser.add_argument(f"--{param.name.replace('_', '-')}", dest=param.name, action="store_true", help=param.help)
        elif param.positional:
            parser.add_argument(
                param.name, nargs=None if param.required else "?", default=param.default,
                type=param.type, choices=param.choices, help=param.help,
            )
        else:
            parser.add_argument(
                f"--{param.name.replace('_', '-')}", dest=param.name, required=param.required,
                default=param.default, type=param.type, choices=param.choices, help=param.help,
                metavar=param.name.upper(),
            )


def _plugin_runner(command: object) -> object:
    """Return the ``func`` of a plugin command's sub-parser: it calls the plugin with a dict."""

    def run(args: argparse.Namespace) -> int:
        values = {param.name: getattr(args, param.name) for param in command.params}  # type: ignore[attr-defined]
        values.update(profile=args.profile, config=args.config, destination=args.destination)
        return command.run(values)  # type: ignore[attr-defined]

    return run


def _preparse(argv: Sequence[str]) -> argparse.Namespace:
    """Read -p/--profile, -c/--config, -v and -q from the command line, ignoring the rest.

    They are needed before the real parse: the profile's plugins may declare commands,
    and their activation may log.  A malformed command line gives the defaults here;
    the real parser reports it.
    """
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("-p", "--profile", default="default")
    early.add_argument("-c", "--config")
    early.add_argument("-v", "--verbose", action="store_true")
    early.add_argument("-q", "--quiet", action="store_true")
    try:
        known, _ = early.parse_known_args(list(argv))
    except SystemExit:
        known = argparse.Namespace(profile="default", config=None, verbose=False, quiet=False)
    return known


def _may_have_plugins(config: str | None) -> bool:
    """Return False when the config file (or the environment) surely enables no plugin.

    A cheap textual check, so that a command line without plugins reads no YAML first.
    """
    import os

    if os.environ.get("BAKTHAT_PLUGINS"):
        return True
    from bakthat.conf import config_path

    try:
        return b"plugins" in config_path(config).read_bytes()
    except OSError:
        return False


def _load_plugins(early: argparse.Namespace) -> BakthatError | None:
    """Activate the plugins of the profile named on the command line.

    Return the PluginError if one could not be loaded (reported later, or only warned
    about for the commands that must work anyway).  A config that cannot be read is
    left for the command to report.
    """
    if not _may_have_plugins(early.config):
        return None
    from bakthat.conf import get_profile

    try:
        settings = get_profile(early.profile, early.config)
    except BakthatError as exc:
        log.debug("plugins not loaded: %s", exc)
        return None
    if not settings.get("plugins"):
        return None
    from bakthat import plugin

    try:
        plugin.load_plugins(settings)
    except plugin.PluginError as exc:
        return exc
    return None


#: Commands that run even when a plugin fails to load (with a warning): they show or
#: fix the configuration.
PLUGIN_PROOF_COMMANDS = ("plugins", "configure")


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
    """Run the command line; return the process exit code (see ``EXIT_CODES``).

    Two phases: the profile named by ``-p``/``-c`` is read first and its plugins are
    activated, then the full parser (with the plugins' commands) parses the line.
    """
    from bakthat.commands._common import apply_scope_defaults
    from bakthat.drivers import defer_postgresql_driver

    defer_postgresql_driver()  # peewee loads psycopg2 only for a PostgreSQL catalog
    argv = list(sys.argv[1:] if argv is None else argv)
    early = _preparse(argv)
    saved_logging = _configure_logging(early.verbose, early.quiet)
    try:
        plugin_error = None if "--version" in argv else _load_plugins(early)
        parser = build_parser(complete=False)
        try:
            args = parser.parse_args(argv)
            misplaced = apply_scope_defaults(args)
            if misplaced:
                parser.error(misplaced)
        except SystemExit:
            if plugin_error is not None:
                print(f"bakthat: warning: {plugin_error}", file=sys.stderr)
            raise
        if (args.verbose, args.quiet) != (early.verbose, early.quiet):
            log.setLevel(logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO)
        log.debug("bakthat %s on Python %s, command %s", _version(), sys.version.split()[0], args.command)
        if plugin_error is not None:
            if args.command not in PLUGIN_PROOF_COMMANDS:
                for line in str(plugin_error).splitlines():
                    print(f"bakthat: error: {line}", file=sys.stderr)
                return plugin_error.exit_code
            print(f"bakthat: warning: {plugin_error}", file=sys.stderr)
        return _run(args)
    finally:
        _restore_logging(saved_logging)


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command with bakthat's error handling; return the exit code."""
    plugin = sys.modules.get("bakthat.plugin")
    if plugin is not None:
        plugin.set_cli_command(args.command)
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
        plugin = sys.modules.get("bakthat.plugin")
        if plugin is not None:
            plugin.set_cli_command(None)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
