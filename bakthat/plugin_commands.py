"""Commands a plugin adds to ``bakthat``: their parameters, and checking one before it is registered.

:meth:`bakthat.plugin.Plugin.register_command` calls :func:`add_command`, which
refuses (PluginError) a malformed name, a parameter name the shared options or
argparse use, a built-in command's name or another plugin's, and records the
:class:`Command` in the current manager (:mod:`bakthat.plugin_state`).  The argparse
side of plugin commands is in :mod:`bakthat.cli`.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bakthat.plugin_state import PluginError, manager, record_of

if TYPE_CHECKING:
    from bakthat.plugin_base import Plugin


_COMMAND_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


#: Names a plugin command's parameter cannot take: the shared options and argparse's own.
_RESERVED_PARAMS = frozenset({"profile", "config", "destination", "verbose", "quiet", "debug", "help", "func", "command"})


@dataclass(frozen=True)
class Param:
    """One parameter of a plugin command.

    By default a parameter is a required option ``--name VALUE`` (underscores become
    hyphens on the command line; the value is found under ``name`` in the parameters).
    ``required=False`` makes it optional (its value is then ``default``),
    ``positional=True`` makes it a positional argument, ``flag=True`` an option without
    value (True when given).  ``type`` converts the text (``int``, ``float``, any
    callable); ``choices`` restricts it.  A missing required parameter is a usage error
    (exit code 2) and the command does not run.
    """

    name: str
    help: str = ""
    required: bool = True
    default: Any = None
    type: Callable[[str], Any] = str
    choices: Sequence[Any] | None = None
    positional: bool = False
    flag: bool = False


@dataclass
class Command:
    """A command declared by a plugin with :meth:`Plugin.register_command`."""

    name: str
    func: Callable[[dict[str, Any]], Any]
    params: list[Param]
    help: str
    plugin: Plugin

    def run(self, values: Mapping[str, Any]) -> int:
        """Call the command's function with the parameter dict; return the exit code."""
        result = self.func(dict(values))
        return result if isinstance(result, int) and not isinstance(result, bool) else 0


def builtin_command_names() -> set[str]:
    """Return the built-in command names and their hyphenated aliases.

    They are the module names of ``bakthat/commands`` (a command module's ``NAME`` is
    its module name: tests/commands/test_every_command.py checks it), read from the
    directory without importing the command layer, which sits above this module.
    """
    import pkgutil

    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "commands")
    names = set()
    for info in pkgutil.iter_modules([folder]):
        if not info.name.startswith("_"):
            names.update({info.name, info.name.replace("_", "-")})
    return names


def check_takes_one_argument(spec: str, what: str, func: Any) -> None:
    """Raise PluginError (naming the plugin ``spec`` and ``what``) unless ``func`` is a
    callable that can be called with one positional argument, the parameter dict.

    A callable whose signature Python cannot read (some built-ins) is accepted.
    """
    if not callable(func):
        raise PluginError(spec, f"{what}: {func!r} is not callable")
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return
    try:
        signature.bind({})
    except TypeError:
        label = getattr(func, "__qualname__", None) or repr(func)
        raise PluginError(
            spec, f"{what}: {label}{signature} cannot be called with the parameter dict (one argument)"
        ) from None


def add_command(
    plugin: Plugin, name: str, func: Callable[..., Any], params: Iterable[Param | str], help: str
) -> Command:
    """Check a command ``plugin`` declares and record it in the current manager; return it.

    Raise PluginError (naming the plugin and the command) for a malformed name, a
    function that cannot take the parameter dict, a parameter that is not a
    :class:`Param` (or a name), a parameter name that is reserved, repeated or not an
    identifier, a ``type`` that is not callable, ``choices`` given as one string, or a
    name taken by a built-in command or by another plugin.
    """
    spec = record_of(plugin).spec
    if not isinstance(name, str) or not _COMMAND_NAME.match(name):
        raise PluginError(spec, f"command name {name!r} must be lower-case letters, digits, '-' or '_'")
    check_takes_one_argument(spec, f"command {name!r}", func)
    declared = [Param(item) if isinstance(item, str) else item for item in params]
    seen = set()
    for param in declared:
        if not isinstance(param, Param):
            raise PluginError(spec, f"command {name!r}: parameters are Param objects or names, not {param!r}")
        if not callable(param.type):
            raise PluginError(
                spec, f"command {name!r}: parameter {param.name!r} has type {param.type!r}, which is not callable"
            )
        if isinstance(param.choices, (str, bytes)):
            raise PluginError(
                spec, f"command {name!r}: the choices of parameter {param.name!r} are one string, not a list"
            )
        valid = isinstance(param.name, str) and param.name.isidentifier()
        if not valid or param.name in _RESERVED_PARAMS or param.name in seen:
            raise PluginError(
                spec,
                f"command {name!r}: invalid or repeated parameter name {param.name!r} "
                f"(reserved: {', '.join(sorted(_RESERVED_PARAMS))})",
            )
        seen.add(param.name)
    aliases = {name, name.replace("_", "-")}
    taken = aliases & builtin_command_names()
    if taken:
        raise PluginError(spec, f"command {name!r} is a built-in bakthat command")
    with manager().lock:
        for other in manager().commands.values():
            if aliases & {other.name, other.name.replace("_", "-")}:
                raise PluginError(spec, f"command {name!r} is already declared by plugin {record_of(other.plugin).spec!r}")
        command = Command(name=name, func=func, params=declared, help=help or "", plugin=plugin)
        manager().commands[name] = command
    return command
