"""Any program's stdout as a source: ``zfs send``, ``btrfs send``, a custom dump script.

Spec: ``{command: [argv...] or "a string split with shlex", name: NAME, extension, hooks}``.
``name`` is required (a command has no natural name); ``extension`` (default ``bin``)
names the stored file's type (``zfs``, ``sql``...).  The program runs without a shell,
in its own process group, with bakthat's environment plus the run context's
``BAKTHAT_*`` variables.  Its exit status is checked: a non-zero status or a signal is
a failed dump, whatever it printed.  There is no ``restore --into`` for a command:
restore the stored stream as a file and feed it to the matching tool (``zfs receive``).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bakthat.context import RunContext
from bakthat.errors import ConfigError
from bakthat.process import display_argv
from bakthat.sources.base import ProcessDump, Source, check_keys, check_name, environment

SCHEMES: tuple[str, ...] = ()
KEY = "command"
KEYS = ("command", "extension")
_EXTENSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,30}$")


@dataclass(frozen=True)
class CommandSource(Source):
    """A program whose stdout is the data."""

    argv: tuple[str, ...] = ()


def parse(spec: Mapping[str, Any], where: str) -> CommandSource:
    """Given ``{command: ..., name: ...}`` and its place in the configuration, return the
    source.  Raise ConfigError naming the key for a missing name, an empty or malformed
    command, or a bad extension."""
    check_keys(spec, KEYS, where)
    command = spec["command"]
    if isinstance(command, str):
        try:
            argv = tuple(shlex.split(command))
        except ValueError as exc:
            raise ConfigError(f"{where}.command: cannot split {command!r}: {exc}") from None
    elif isinstance(command, list) and all(isinstance(word, str) for word in command):
        argv = tuple(command)
    else:
        raise ConfigError(f"{where}.command: must be an argv list or a command string")
    if not argv:
        raise ConfigError(f"{where}.command: the command is empty")
    if "name" not in spec:
        raise ConfigError(f"{where}: a command source needs a name (name: pool)")
    extension = spec.get("extension", "bin")
    if not isinstance(extension, str) or not _EXTENSION.match(extension):
        raise ConfigError(f"{where}.extension: {extension!r} is not a file extension (letters, digits, . _ -)")
    return CommandSource(
        kind="command",
        name=check_name(spec["name"], where),
        display=display_argv(argv),
        extension=extension,
        hooks=spec.get("hooks"),
        argv=argv,
    )


def open_dump(source: CommandSource, settings: Mapping[str, Any], context: RunContext | None = None) -> ProcessDump:
    """Start the command and return its running dump.  Raise DumpError if it cannot start."""
    return ProcessDump(source.argv, environment(context), source.display)
