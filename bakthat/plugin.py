"""Plugins: classes that extend bakthat, loaded from the profile's ``plugins`` list.

A plugin subclasses :class:`Plugin` and implements :meth:`Plugin.activate` (and, if it
needs a clean-up, :meth:`Plugin.deactivate`).  It is enabled by naming it in the
profile's ``plugins`` list, either as a dotted ``module.Class`` path (the module is
looked for in ``plugins_dir``, default ``~/.bakthat_plugins``, and on the import path)
or as the name of an entry point of the group ``bakthat.plugins`` declared by an
installed package.

Loading (:func:`load_plugins`) happens once per process, before the first action that
uses the profile (and, for the ``bakthat`` command, before the command line is parsed,
so plugin commands exist).  Plugins are activated in list order; each one is activated
at most once per process; deactivation runs at exit in the reverse order.  A plugin that
cannot be imported, is not a :class:`Plugin`, or raises in ``activate()`` stops the
loading with a :class:`PluginError` that names it and says why: a plugin is never
skipped silently.

What a plugin can do from ``activate()`` (see ``docs/plugins.md``):

- subscribe to events: ``self.on_backup += callback`` (the names of
  :data:`bakthat.eventing.EVENT_NAMES`; another name is an AttributeError);
- replace what bakthat uses: ``self.patch(bakthat.models, "Backups", MyBackups)`` or
  ``self.patch(bakthat.backends.registry, "local", MyBackend)``, undone at unload;
- add commands to ``bakthat``: ``self.register_command("name", func, params=[Param(...)])``;
- offer named hooks to other plugins: ``self.register_hook("name", func)``, called by
  :func:`call_hook`.

The process's plugin state (active plugins, their commands and hooks, the plugins
directories added to the import path) lives in one :class:`PluginManager`
(:func:`manager`); :func:`unload_plugins` undoes what its plugins changed and replaces
it with a fresh one.

This module is longer than most (about 760 lines) because loading, registering and
undoing are one contract: everything a plugin registers or patches is recorded when it
is registered, so that unloading can undo exactly that.  The argparse side of plugin
commands is in :mod:`bakthat.cli`, discovery for ``bakthat plugins`` in that command.
"""

from __future__ import annotations

import abc
import atexit
import importlib
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bakthat import eventing
from bakthat.errors import BakthatError, ConfigError, VetoedError
from bakthat.settings import Settings

log = logging.getLogger("bakthat.plugins")

#: The entry-point group installed packages declare their plugins in.
ENTRY_POINT_GROUP = "bakthat.plugins"

_COMMAND_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
#: Names a plugin command's parameter cannot take: the shared options and argparse's own.
_RESERVED_PARAMS = frozenset({"profile", "config", "destination", "verbose", "quiet", "debug", "help", "func", "command"})
_MISSING = object()


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


@dataclass
class _Record:
    """What one loaded plugin changed, so that unloading can undo it."""

    spec: str
    origin: str
    subscriptions: list[tuple[str, Callable[..., Any]]] = field(default_factory=list)
    patches: list[tuple[Any, str, Any, bool]] = field(default_factory=list)
    deactivated: bool = False


def record_of(plugin: Any) -> _Record:
    """Return a plugin's record, creating it for a subclass whose __init__ skipped the base's."""
    record = plugin.__dict__.get("_bakthat_record")
    if record is None:
        record = _Record(spec=type(plugin).__name__, origin="created directly")
        object.__setattr__(plugin, "_bakthat_record", record)
    return record


class _PluginEvent:
    """``self.<event>`` on a plugin: the global event slot, remembering subscriptions.

    ``self.on_backup += f`` subscribes ``f`` to ``bakthat.events.on_backup`` (its
    signature is checked there) and records it, so unloading the plugin unsubscribes it.
    """

    def __init__(self, plugin: Plugin, name: str) -> None:
        self._plugin = plugin
        self._name = name

    @property
    def _slot(self) -> Any:
        return getattr(eventing.events, self._name)

    def __iadd__(self, handler: Callable[..., Any]) -> _PluginEvent:
        slot = self._slot
        slot += handler
        record_of(self._plugin).subscriptions.append((self._name, handler))
        return self

    def __isub__(self, handler: Callable[..., Any]) -> _PluginEvent:
        slot = self._slot
        slot -= handler
        record = record_of(self._plugin)
        record.subscriptions = [(n, h) for n, h in record.subscriptions if not (n == self._name and h == handler)]
        return self

    def __call__(self, *args: Any) -> None:
        self._slot(*args)

    def __len__(self) -> int:
        return len(self._slot)

    def __iter__(self) -> Any:
        return iter(self._slot)

    def __repr__(self) -> str:
        return f"event {self._name!r} (via plugin {type(self._plugin).__name__})"


class Plugin(abc.ABC):
    """Base class of bakthat plugins.

    Attributes available in every method:

    - ``self.conf``: the profile's raw configuration (the mapping from the config file
      or the ``conf=`` dict), as bakthat 0.6;
    - ``self.settings``: the resolved settings (defaults, file or ``conf=``, environment);
    - ``self.log``: a logger named ``bakthat.plugins.<ClassName>``;
    - ``self.events``: ``bakthat.events``; and every declared event as an attribute:
      ``self.before_backup += callback``.  Any other unknown attribute is an
      AttributeError that lists the event names.
    """

    def __init__(self, conf: Mapping[str, Any] | None = None, settings: Mapping[str, Any] | None = None) -> None:
        self.conf = dict(conf or {})
        if settings is not None or "settings" not in self.__dict__:
            self.settings = dict(settings if settings is not None else self.conf)
        self.log = logging.getLogger(f"bakthat.plugins.{type(self).__name__}")
        self.events = eventing.events
        if "_bakthat_record" not in self.__dict__:
            object.__setattr__(self, "_bakthat_record", _Record(spec=type(self).__name__, origin="created directly"))

    @abc.abstractmethod
    def activate(self) -> None:
        """Called once, when the plugin is loaded: subscribe, patch, register here."""

    def deactivate(self) -> None:
        """Called once, at exit (or by :func:`unload_plugins`); optional clean-up."""

    # -- events --------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        if name in eventing.EVENT_NAMES:
            return _PluginEvent(self, name)
        if name.startswith("__") or name == "_bakthat_record":
            raise AttributeError(name)
        raise AttributeError(
            f"{type(self).__name__!r} plugin has no attribute {name!r}; the events reachable on a plugin "
            f"are: {', '.join(eventing.EVENT_NAMES)}"
        )

    def __setattr__(self, name: str, value: Any) -> None:
        if name in eventing.EVENT_NAMES:
            if isinstance(value, _PluginEvent) and value._plugin is self and value._name == name:
                return  # the write-back of ``self.on_backup += handler``
            raise AttributeError(f"{name} is an event: subscribe with self.{name} += handler")
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        return f"<Plugin bakthat: {type(self).__name__}>"

    # -- replacing things ----------------------------------------------------------

    def patch(self, target: Any, name: str, value: Any) -> Any:
        """Replace ``name`` of ``target`` by ``value`` until the plugin is unloaded; return the original.

        ``target`` is a module, a class, any object, a mapping (such as
        ``bakthat.backends.registry``) or a module's dotted name.  When a peewee model
        is replaced by a model with another table (a subclass does not inherit
        ``Meta.table_name``), the replacement is pointed at the original's table, so
        rows stay in the same table.
        """
        if isinstance(target, str):
            target = importlib.import_module(target)
        is_mapping = isinstance(target, MutableMapping)
        original = target.get(name, _MISSING) if is_mapping else getattr(target, name, _MISSING)
        _keep_table(original, value, self.log)
        if is_mapping:
            target[name] = value
        else:
            setattr(target, name, value)
        record_of(self).patches.append((target, name, original, is_mapping))
        where = getattr(target, "__name__", None) or type(target).__name__
        self.log.debug("patched %s.%s", where, name)
        return None if original is _MISSING else original

    # -- commands and hooks -----------------------------------------------------------

    def register_command(
        self,
        name: str,
        func: Callable[[dict[str, Any]], Any],
        params: Iterable[Param | str] = (),
        help: str = "",
    ) -> Command:
        """Add the command ``bakthat <name>``; ``func(params)`` runs it.

        ``params`` declares its parameters (:class:`Param`, or a name for a required
        ``--name VALUE`` option).  ``func`` receives a dict with every declared
        parameter plus ``profile``, ``config`` and ``destination`` (the shared
        options) and returns an exit code (None means 0).  A name already taken by a
        built-in command or another plugin is a PluginError.
        """
        return _register_command(self, name, func, params, help)

    def register_file_filter(self, func: Callable[[str, Any], Any], name: str | None = None) -> None:
        """Register ``func(path, stat_result)`` to decide, entry by entry, what backups
        leave out: a true value (or a reason string) skips the entry.  Removed when the
        plugin is unloaded.  See :mod:`bakthat.file_filters`."""
        from bakthat import file_filters

        if not callable(func):
            raise PluginError(_record_of(self).spec, f"file filter {func!r} is not callable")
        name = name or f"{type(self).__name__}.{getattr(func, '__name__', 'filter')}"
        if name in file_filters.REGISTRY:
            raise PluginError(_record_of(self).spec, f"a file filter named {name!r} is already registered")
        self.patch(file_filters.REGISTRY, name, func)

    def register_hook(self, name: str, func: Callable[[dict[str, Any]], Any]) -> None:
        """Register ``func`` for the named hook; :func:`call_hook` calls it with a parameter dict."""
        if not isinstance(name, str) or not name:
            raise PluginError(record_of(self).spec, f"hook name must be a non-empty string, not {name!r}")
        if not callable(func):
            raise PluginError(record_of(self).spec, f"hook {name!r}: {func!r} is not callable")
        with _manager.lock:
            _manager.hooks.setdefault(name, []).append((self, func))

    def call_hook(self, name: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Same as the module function :func:`call_hook`."""
        return call_hook(name, params)


# -- process-wide state ---------------------------------------------------------------

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
_atexit_registered = False


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


# -- loading ----------------------------------------------------------------------------


def load_plugins(settings: Mapping[str, Any], session: Any = None) -> list[Plugin]:
    """Given resolved profile settings, activate the plugins of its ``plugins`` list.

    Plugins already active in this process are skipped, so calling this before every
    action is cheap.  Return the plugins activated by this call.  Raise PluginError
    (naming the plugin) at the first that cannot be loaded; the ones before it stay
    active.

    ``session`` is the :class:`bakthat.eventing.Session` of the action being started,
    if any: its ``before_`` event has already fired, so the ``before_`` handlers the new
    plugins subscribed are called now (a raising one vetoes the action, as usual).
    """
    global _atexit_registered
    specs = settings.get("plugins") or []
    if isinstance(specs, str):
        specs = specs.replace(",", " ").split()
    if not specs or all(isinstance(spec, str) and spec in _manager.active for spec in specs):
        return []
    new: list[Plugin] = []
    catching_up = isinstance(session, eventing.Session)
    before_event = f"before_{session.action}" if catching_up else ""
    fired = list(getattr(eventing.events, before_event)) if catching_up else []
    with _manager.lock:
        _add_plugins_dir(settings.get("plugins_dir"))
        for spec in specs:
            if isinstance(spec, str) and spec in _manager.active:
                continue
            try:
                new.append(_load_one(spec, settings))
            except PluginError as exc:
                _manager.failures[str(spec)] = exc.reason
                raise
            _manager.failures.pop(spec, None)
        if new and not _atexit_registered:
            atexit.register(_deactivate_all)
            _atexit_registered = True
    if new and catching_up:
        missed = [handler for handler in getattr(eventing.events, before_event) if not _contains(fired, handler)]
        _catch_up(missed, session)
    return new


def _contains(handlers: list[Callable[..., Any]], handler: Callable[..., Any]) -> bool:
    return any(existing is handler or existing == handler for existing in handlers)


def plugins_dir_of(settings: Mapping[str, Any]) -> str:
    """Return the absolute plugins directory of resolved settings (``~`` expanded)."""
    from bakthat.conf import PLUGINS_DIR

    return os.path.abspath(os.path.expanduser(str(settings.get("plugins_dir") or PLUGINS_DIR)))


def _add_plugins_dir(configured: Any) -> None:
    directory = plugins_dir_of({"plugins_dir": configured})
    if not os.path.isdir(directory):
        if configured and directory not in _manager.missing_dirs:
            _manager.missing_dirs.append(directory)
    elif directory not in sys.path:
        sys.path.append(directory)
        _manager.added_paths.append(directory)
    importlib.invalidate_caches()


def _load_one(spec: Any, settings: Mapping[str, Any]) -> Plugin:
    """Resolve, instantiate and activate one plugin; return it, registered as active."""
    if not isinstance(spec, str) or not spec.strip():
        raise PluginError(str(spec), "a plugin is named by a 'module.Class' path or an entry-point name (a string)")
    cls, origin = _resolve(spec)
    if not (isinstance(cls, type) and issubclass(cls, Plugin)):
        raise PluginError(spec, f"{cls!r} is not a subclass of bakthat.plugin.Plugin")
    if getattr(cls, "__abstractmethods__", None):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise PluginError(spec, f"class {cls.__name__} does not implement {missing}() (required)")
    raw = dict(settings.raw) if isinstance(settings, Settings) else dict(settings)
    record = _Record(spec=spec, origin=origin)
    try:
        # As 0.6: the class is called with the raw profile; the record and the resolved
        # settings are there first, so a subclass __init__ may already subscribe.
        plugin = cls.__new__(cls)
        object.__setattr__(plugin, "_bakthat_record", record)
        object.__setattr__(plugin, "settings", dict(settings))
        plugin.__init__(raw)  # type: ignore[misc]
    except Exception as exc:
        raise PluginError(spec, f"creating {cls.__name__} failed: {type(exc).__name__}: {exc}") from exc
    _complete(plugin, raw)
    try:
        plugin.activate()
        _adopt_module_rebindings(plugin)
    except BaseException as exc:
        _undo(plugin)
        if isinstance(exc, PluginError) or not isinstance(exc, Exception):
            raise
        raise PluginError(spec, f"activate() raised {type(exc).__name__}: {exc}") from exc
    _manager.active[spec] = plugin
    log.debug("plugin %s activated (%s)", spec, origin)
    return plugin


def _complete(plugin: Plugin, raw: dict[str, Any]) -> None:
    """Set the base attributes a subclass __init__ that skipped super().__init__ left out."""
    defaults = {"conf": raw, "events": eventing.events}
    for name, value in defaults.items():
        if name not in plugin.__dict__:
            object.__setattr__(plugin, name, value)
    if "log" not in plugin.__dict__:
        object.__setattr__(plugin, "log", logging.getLogger(f"bakthat.plugins.{type(plugin).__name__}"))


def _resolve(spec: str) -> tuple[Any, str]:
    """Return ``(object named by spec, where it comes from)``; raise PluginError."""
    if ":" not in spec and "." not in spec:
        return _from_entry_point(spec)
    if ":" in spec:
        module_name, _, attribute = spec.partition(":")
    else:
        module_name, _, attribute = spec.rpartition(".")
    if not module_name or not attribute:
        raise PluginError(spec, "expected 'module.Class' (or an entry-point name)")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            if _manager.missing_dirs and not _manager.added_paths:
                raise PluginError(
                    spec,
                    f"no module named {exc.name!r}: the directory of key 'plugins_dir', {_manager.missing_dirs[-1]}, "
                    "does not exist (create it and put the plugin there, or fix plugins_dir)",
                ) from exc
            where = ", ".join(_manager.added_paths) or "no plugins_dir"
            raise PluginError(
                spec,
                f"no module named {exc.name!r} (looked in the plugins directory: {where}; and on the import path)",
            ) from exc
        raise PluginError(spec, f"importing {module_name} failed: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # a syntax error, a failing import inside the module...
        raise PluginError(spec, f"importing {module_name} failed: {type(exc).__name__}: {exc}") from exc
    try:
        found = getattr(module, attribute)
    except AttributeError:
        raise PluginError(spec, f"module {module_name} has no {attribute!r}") from None
    return found, _origin_of(module)


def _origin_of(module: Any) -> str:
    path = getattr(module, "__file__", None) or ""
    for directory in _manager.added_paths:
        if path.startswith(directory + os.sep):
            return f"plugins_dir file {path}"
    return f"module {module.__name__} ({path or 'built-in'})"


def entry_points() -> list[Any]:
    """Return the installed entry points of the group :data:`ENTRY_POINT_GROUP`."""
    from importlib.metadata import entry_points as installed

    return list(installed(group=ENTRY_POINT_GROUP))


def distribution_of(entry: Any) -> str:
    """Return `` (package NAME VERSION)`` for an entry point's distribution, or ``""``."""
    dist = getattr(entry, "dist", None)
    if dist is None:
        return ""
    return f" (package {dist.metadata['Name']} {dist.version})"


def _from_entry_point(spec: str) -> tuple[Any, str]:
    found = [entry for entry in entry_points() if entry.name == spec]
    if not found:
        installed = ", ".join(sorted({entry.name for entry in entry_points()})) or "none"
        raise PluginError(
            spec,
            f"no installed package declares it (entry points of group {ENTRY_POINT_GROUP}: {installed}); "
            "a plugin file in plugins_dir is enabled as 'module.Class'",
        )
    entry = found[0]
    try:
        loaded = entry.load()
    except Exception as exc:
        raise PluginError(spec, f"loading entry point {entry.value} failed: {type(exc).__name__}: {exc}") from exc
    return loaded, f"entry point {entry.name} = {entry.value}{distribution_of(entry)}"


def _catch_up(handlers: list[Callable[..., Any]], session: Any) -> None:
    """Call the ``before_<action>`` handlers subscribed after that event fired (veto semantics)."""
    name = f"before_{session.action}"
    for handler in handlers:
        try:
            handler(session.session_id)
        except Exception as exc:
            label = getattr(handler, "__qualname__", None) or repr(handler)
            raise VetoedError(f"{session.action} refused by {name} handler {label}: {exc}") from exc


# -- model replacement ------------------------------------------------------------------


def _is_model(value: Any) -> bool:
    import peewee

    return isinstance(value, type) and issubclass(value, peewee.Model)


def _keep_table(original: Any, replacement: Any, logger: logging.Logger) -> None:
    """Point a replacement peewee model at the original model's table."""
    if original is _MISSING or not (_is_model(original) and _is_model(replacement)):
        return
    table = original._meta.table_name
    if replacement._meta.table_name != table:
        logger.debug("%s now uses table %r (the table of %s)", replacement.__name__, table, original.__name__)
        replacement._meta.set_table_name(table)


def _adopt_module_rebindings(plugin: Plugin) -> None:
    """Apply the developer guide's ``global Backups; Backups = MyBackups`` to bakthat.models.

    After ``activate()``, a global of the plugin's module that has the name of a model
    of :mod:`bakthat.models` and binds a subclass of that model replaces it there, as if
    :meth:`Plugin.patch` had been called.
    """
    module = sys.modules.get(type(plugin).__module__)
    models = sys.modules.get("bakthat.models")
    if module is None or models is None:
        return
    for name, current in list(vars(models).items()):
        if not _is_model(current) or current is models.BaseModel:
            continue
        bound = vars(module).get(name)
        if bound is None or bound is current or not _is_model(bound):
            continue
        if issubclass(bound, current):
            plugin.log.info(
                "%s rebinds %s: bakthat.models.%s is now %s (as with self.patch)",
                plugin._bakthat_record.spec, name, name, bound.__name__,
            )
            plugin.patch(models, name, bound)
        elif issubclass(bound, models.BaseModel):
            plugin.log.warning(
                "%s binds %s to %s, which is not a subclass of bakthat.models.%s (%s): not applied",
                plugin._bakthat_record.spec, name, bound.__name__, name, current.__name__,
            )


# -- commands ---------------------------------------------------------------------------


def _builtin_command_names() -> set[str]:
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


def _register_command(
    plugin: Plugin, name: str, func: Callable[..., Any], params: Iterable[Param | str], help: str
) -> Command:
    spec = record_of(plugin).spec
    if not isinstance(name, str) or not _COMMAND_NAME.match(name):
        raise PluginError(spec, f"command name {name!r} must be lower-case letters, digits, '-' or '_'")
    if not callable(func):
        raise PluginError(spec, f"command {name!r}: {func!r} is not callable")
    declared = [Param(item) if isinstance(item, str) else item for item in params]
    seen = set()
    for param in declared:
        if not isinstance(param, Param):
            raise PluginError(spec, f"command {name!r}: parameters are Param objects or names, not {param!r}")
        if not param.name.isidentifier() or param.name in _RESERVED_PARAMS or param.name in seen:
            raise PluginError(
                spec,
                f"command {name!r}: invalid or repeated parameter name {param.name!r} "
                f"(reserved: {', '.join(sorted(_RESERVED_PARAMS))})",
            )
        seen.add(param.name)
    aliases = {name, name.replace("_", "-")}
    taken = aliases & _builtin_command_names()
    if taken:
        raise PluginError(spec, f"command {name!r} is a built-in bakthat command")
    with _manager.lock:
        for other in _manager.commands.values():
            if aliases & {other.name, other.name.replace("_", "-")}:
                raise PluginError(spec, f"command {name!r} is already declared by plugin {record_of(other.plugin).spec!r}")
        command = Command(name=name, func=func, params=declared, help=help or "", plugin=plugin)
        _manager.commands[name] = command
    return command


# -- unloading --------------------------------------------------------------------------


def _undo(plugin: Plugin) -> None:
    """Unsubscribe a plugin's handlers, undo its patches, drop its commands and hooks."""
    record = record_of(plugin)
    for event, handler in reversed(record.subscriptions):
        slot = getattr(eventing.events, event)
        slot -= handler
    record.subscriptions.clear()
    for target, name, original, is_mapping in reversed(record.patches):
        if original is _MISSING:
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


def _deactivate_all() -> None:
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
            _undo(plugin)
        for directory in old.added_paths:
            while directory in sys.path:
                sys.path.remove(directory)
            for module_name, module in list(sys.modules.items()):
                path = getattr(module, "__file__", None) or ""
                if path.startswith(directory + os.sep):
                    del sys.modules[module_name]
        importlib.invalidate_caches()
        _manager = PluginManager()
