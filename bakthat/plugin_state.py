"""The plugin state of a process, as pluggy's manager: what is active, what it registered, how to undo it.

One :class:`PluginManager` is current (:func:`manager`): the active plugins in
activation order, the last loading failures, the commands and named hooks plugins
registered, the plugins directories added to ``sys.path``, and the ``bakthat`` command
running.  Each plugin carries a :class:`Record` of what it subscribed and patched;
:func:`undo` reverts exactly that, and :func:`unload_plugins` undoes every plugin and
replaces the manager with a fresh one, so nothing of an unloaded plugin lingers.

Other modules read the current manager through :func:`manager` at each use (never a
copy of it), since unloading replaces it.  The public names are re-exported by
:mod:`bakthat.plugin`.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bakthat import eventing
from bakthat.errors import BakthatError, ConfigError

if TYPE_CHECKING:
    from bakthat.plugin_base import Plugin
    from bakthat.plugin_commands import Command

log = logging.getLogger("bakthat.plugins")

#: What :meth:`bakthat.plugin.Plugin.patch` records for a name its target did not have.
MISSING = object()


class PluginError(ConfigError):
    """A plugin could not be loaded, activated or registered (exit code 2).

    The message names the plugin (as written in the profile's ``plugins`` list) and
    says why: not found, failed to import, not a Plugin subclass, no ``activate()``,
    ``activate()`` raised, or a command or hook it declares is invalid.
    """

    exit_code = 2

    def __init__(self, plugin: str, reason: str) -> None:
        super().__init__(f"plugin {plugin!r}: {reason}")
        self.plugin = plugin
        self.reason = reason


class HookError(BakthatError):
    """A function registered for a named hook raised (exit code 1).

    The message names the hook and the plugin; the original exception is chained.
    """

    exit_code = 1


@dataclass
class Record:
    """What one loaded plugin changed, so that unloading can undo it."""

    spec: str
    origin: str
    subscriptions: list[tuple[str, Callable[..., Any]]] = field(default_factory=list)
    patches: list[tuple[Any, str, Any, bool]] = field(default_factory=list)
    deactivated: bool = False


def record_of(plugin: Any) -> Record:
    """Return a plugin's record, creating it for a subclass whose __init__ skipped the base's."""
    record = plugin.__dict__.get("_bakthat_record")
    if record is None:
        record = Record(spec=type(plugin).__name__, origin="created directly")
        object.__setattr__(plugin, "_bakthat_record", record)
    return record


class PluginManager:
    """The plugin state of this process: the active plugins and what they registered.

    One manager is current (:func:`manager`); :func:`unload_plugins` undoes what its
    plugins changed and throws it away for a fresh one, so nothing of an unloaded
    plugin lingers.  Every registration (a command, a hook) is checked when it is made
    and recorded with its plugin, so that unloading undoes exactly it.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        #: spec -> plugin, in activation order.
        self.active: dict[str, Plugin] = {}
        #: spec -> why it failed, from the last attempt.
        self.failures: dict[str, str] = {}
        self.commands: dict[str, Command] = {}
        self.hooks: dict[str, list[tuple[Plugin, Callable[..., Any]]]] = {}
        #: plugins directories this manager added to ``sys.path``.
        self.added_paths: list[str] = []
        #: configured plugins directories that do not exist (named in errors).
        self.missing_dirs: list[str] = []
        #: the ``bakthat`` command running in this process (None: the Python API).
        self.cli_command: str | None = None


_manager = PluginManager()


def manager() -> PluginManager:
    """Return the current plugin manager of this process."""
    return _manager


def loaded_plugins() -> list[Plugin]:
    """Return the active plugins, in activation order."""
    with _manager.lock:
        return list(_manager.active.values())


def commands() -> dict[str, Command]:
    """Return the commands plugins have registered, name -> Command."""
    with _manager.lock:
        return dict(_manager.commands)


def failures() -> dict[str, str]:
    """Return ``{plugin: reason}`` for the plugins whose last loading attempt failed."""
    with _manager.lock:
        return dict(_manager.failures)


def set_cli_command(name: str | None) -> None:
    """Record the ``bakthat`` command running in this process (None: the Python API)."""
    _manager.cli_command = name


def cli_command() -> str | None:
    """Return the name of the ``bakthat`` command running in this process, or None.

    A plugin uses it to avoid doing what the command already does: the example
    heartbeat plugin stays quiet under ``bakthat backup``, which pings by itself.
    """
    return _manager.cli_command


def call_hook(name: str, params: Mapping[str, Any] | None = None) -> list[Any]:
    """Call every function registered for the named hook; return their results, in order.

    Each function receives its own shallow copy of ``params`` (a dict).  No function
    registered: an empty list.  Fail-fast: if a function raises, the later ones are not
    called and :class:`HookError` (naming the hook and the plugin) is raised from the
    original exception.
    """
    with _manager.lock:
        registered = list(_manager.hooks.get(name, ()))
    results = []
    for owner, func in registered:
        try:
            results.append(func(dict(params or {})))
        except Exception as exc:
            raise HookError(
                f"hook {name!r} of plugin {record_of(owner).spec!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
    return results


def undo(plugin: Plugin) -> None:
    """Unsubscribe a plugin's handlers, undo its patches, drop its commands and hooks."""
    record = record_of(plugin)
    for event, handler in reversed(record.subscriptions):
        slot = getattr(eventing.events, event)
        slot -= handler
    record.subscriptions.clear()
    for target, name, original, is_mapping in reversed(record.patches):
        if original is MISSING:
            if is_mapping:
                target.pop(name, None)
            else:
                try:
                    delattr(target, name)
                except AttributeError:
                    pass
        elif is_mapping:
            target[name] = original
        else:
            setattr(target, name, original)
    record.patches.clear()
    for name in [name for name, command in _manager.commands.items() if command.plugin is plugin]:
        del _manager.commands[name]
    for hook, registered in list(_manager.hooks.items()):
        kept = [(owner, func) for owner, func in registered if owner is not plugin]
        if kept:
            _manager.hooks[hook] = kept
        else:
            del _manager.hooks[hook]


def _deactivate(plugin: Plugin) -> None:
    record = record_of(plugin)
    if record.deactivated:
        return
    record.deactivated = True
    try:
        plugin.deactivate()
    except NotImplementedError:
        pass
    except Exception as exc:  # noqa: BLE001 - one plugin's clean-up must not stop the others'
        log.warning("plugin %s: deactivate() raised %s: %s", record.spec, type(exc).__name__, exc, exc_info=True)


def deactivate_all() -> None:
    """atexit: deactivate the active plugins in the reverse of their activation order."""
    with _manager.lock:
        active = list(_manager.active.values())
    for plugin in reversed(active):
        _deactivate(plugin)


def unload_plugins() -> None:
    """Deactivate every active plugin (reverse order) and undo everything they changed.

    Unsubscribes their event handlers, restores what they patched, drops their
    commands and hooks, removes the plugins directories added to ``sys.path`` and
    forgets the modules imported from them, so the next :func:`load_plugins` starts
    afresh.  Meant for tests (no leakage from one test to the next) and embedding.
    """
    global _manager
    old = _manager
    with old.lock:
        for plugin in reversed(list(old.active.values())):
            _deactivate(plugin)
            undo(plugin)
        for directory in old.added_paths:
            while directory in sys.path:
                sys.path.remove(directory)
            for module_name, module in list(sys.modules.items()):
                path = getattr(module, "__file__", None) or ""
                if path.startswith(directory + os.sep):
                    del sys.modules[module_name]
        importlib.invalidate_caches()
        _manager = PluginManager()
