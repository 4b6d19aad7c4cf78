"""The :class:`Plugin` base class: what a plugin can do from ``activate()``.

Subscribe to events (``self.on_backup += callback``, recorded so that unloading
unsubscribes it), replace what bakthat uses (:meth:`Plugin.patch`, recorded with the
original), add commands (:meth:`Plugin.register_command`, see
:mod:`bakthat.plugin_commands`), file filters and named hooks.  Everything is recorded
in the plugin's :class:`bakthat.plugin_state.Record`.  Plugins import it as
``bakthat.plugin.Plugin``.
"""

from __future__ import annotations

import abc
import importlib
import logging
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any

from bakthat import eventing
from bakthat.plugin_commands import Command, Param, add_command, check_takes_one_argument
from bakthat.plugin_state import MISSING, PluginError, Record, call_hook, manager, record_of


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
            object.__setattr__(self, "_bakthat_record", Record(spec=type(self).__name__, origin="created directly"))

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
        original = target.get(name, MISSING) if is_mapping else getattr(target, name, MISSING)
        keep_table(original, value, self.log)
        if is_mapping:
            target[name] = value
        else:
            setattr(target, name, value)
        record_of(self).patches.append((target, name, original, is_mapping))
        where = getattr(target, "__name__", None) or type(target).__name__
        self.log.debug("patched %s.%s", where, name)
        return None if original is MISSING else original

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
        return add_command(self, name, func, params, help)

    def register_file_filter(self, func: Callable[[str, Any], Any], name: str | None = None) -> None:
        """Register ``func(path, stat_result)`` to decide, entry by entry, what backups
        leave out: a true value (or a reason string) skips the entry.  Removed when the
        plugin is unloaded.  See :mod:`bakthat.file_filters`."""
        from bakthat import file_filters

        if not callable(func):
            raise PluginError(record_of(self).spec, f"file filter {func!r} is not callable")
        name = name or f"{type(self).__name__}.{getattr(func, '__name__', 'filter')}"
        if name in file_filters.REGISTRY:
            raise PluginError(record_of(self).spec, f"a file filter named {name!r} is already registered")
        self.patch(file_filters.REGISTRY, name, func)

    def register_hook(self, name: str, func: Callable[[dict[str, Any]], Any]) -> None:
        """Register ``func`` for the named hook; :func:`call_hook` calls it with a parameter dict.

        Raise PluginError (naming the plugin and the hook) if ``name`` is not a non-empty
        string or ``func`` cannot be called with one argument.
        """
        if not isinstance(name, str) or not name:
            raise PluginError(record_of(self).spec, f"hook name must be a non-empty string, not {name!r}")
        check_takes_one_argument(record_of(self).spec, f"hook {name!r}", func)
        with manager().lock:
            manager().hooks.setdefault(name, []).append((self, func))

    def call_hook(self, name: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """Same as the module function :func:`call_hook`."""
        return call_hook(name, params)


def is_model(value: Any) -> bool:
    import peewee

    return isinstance(value, type) and issubclass(value, peewee.Model)


def keep_table(original: Any, replacement: Any, logger: logging.Logger) -> None:
    """Point a replacement peewee model at the original model's table."""
    if original is MISSING or not (is_model(original) and is_model(replacement)):
        return
    table = original._meta.table_name
    if replacement._meta.table_name != table:
        logger.debug("%s now uses table %r (the table of %s)", replacement.__name__, table, original.__name__)
        replacement._meta.set_table_name(table)
