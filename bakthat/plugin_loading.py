"""Finding and loading plugins: the profile's ``plugins`` list, ``plugins_dir`` and entry points.

:func:`load_plugins` resolves each name (a ``module.Class`` path, looked for in
``plugins_dir`` and on the import path, or an entry point of the group
:data:`ENTRY_POINT_GROUP`), instantiates the class as bakthat 0.6 did, activates it,
and registers it in the current manager (:mod:`bakthat.plugin_state`); the first
that fails stops the loading with a PluginError naming it.  Plugins subscribed too
late for the running action's ``before_`` event are called now (:func:`_catch_up`),
and a module global rebinding a model is applied as a patch
(:func:`_adopt_module_rebindings`), as is a model of :mod:`bakthat.models` rebound by
plain assignment in ``activate()`` (:func:`_record_plain_assignments`), so unloading
restores both.  Discovery for ``bakthat plugins`` is in that
command.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from bakthat import eventing
from bakthat.errors import VetoedError
from bakthat.plugin_base import Plugin, is_model
from bakthat.plugin_state import PluginError, Record, deactivate_all, manager, undo
from bakthat.settings import Settings

log = logging.getLogger("bakthat.plugins")

#: The entry-point group installed packages declare their plugins in.
ENTRY_POINT_GROUP = "bakthat.plugins"


_atexit_registered = False


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
    if not specs or all(isinstance(spec, str) and spec in manager().active for spec in specs):
        return []
    new: list[Plugin] = []
    catching_up = isinstance(session, eventing.Session)
    before_event = f"before_{session.action}" if catching_up else ""
    fired = list(getattr(eventing.events, before_event)) if catching_up else []
    with manager().lock:
        _add_plugins_dir(settings.get("plugins_dir"))
        for spec in specs:
            if isinstance(spec, str) and spec in manager().active:
                continue
            try:
                new.append(_load_one(spec, settings))
            except PluginError as exc:
                manager().failures[str(spec)] = exc.reason
                raise
            manager().failures.pop(spec, None)
        if new and not _atexit_registered:
            atexit.register(deactivate_all)
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
        if configured and directory not in manager().missing_dirs:
            manager().missing_dirs.append(directory)
    elif directory not in sys.path:
        sys.path.append(directory)
        manager().added_paths.append(directory)
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
    record = Record(spec=spec, origin=origin)
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
    bound = _model_bindings()
    try:
        try:
            plugin.activate()
        finally:
            _record_plain_assignments(plugin, bound)
        _adopt_module_rebindings(plugin)
    except BaseException as exc:
        undo(plugin)
        if isinstance(exc, PluginError) or not isinstance(exc, Exception):
            raise
        raise PluginError(spec, f"activate() raised {type(exc).__name__}: {exc}") from exc
    manager().active[spec] = plugin
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
            if manager().missing_dirs and not manager().added_paths:
                raise PluginError(
                    spec,
                    f"no module named {exc.name!r}: the directory of key 'plugins_dir', {manager().missing_dirs[-1]}, "
                    "does not exist (create it and put the plugin there, or fix plugins_dir)",
                ) from exc
            where = ", ".join(manager().added_paths) or "no plugins_dir"
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
    for directory in manager().added_paths:
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


def _model_bindings() -> dict[str, Any]:
    """Return ``{name: model}`` for the models :mod:`bakthat.models` binds now ({} if not imported)."""
    models = sys.modules.get("bakthat.models")
    if models is None:
        return {}
    return {name: value for name, value in vars(models).items() if is_model(value)}


def _record_plain_assignments(plugin: Plugin, before: Mapping[str, Any]) -> None:
    """Record, as patches of ``plugin``, the models of :mod:`bakthat.models` that its
    ``activate()`` rebound by plain assignment (``bakthat.models.Backups = MyBackups``),
    so that unloading it restores them as it restores :meth:`Plugin.patch`."""
    models = sys.modules.get("bakthat.models")
    if models is None:
        return
    record = plugin._bakthat_record
    for name, original in before.items():
        if vars(models).get(name, original) is not original:
            # first in the record, so undoing (last to first) ends with the original
            record.patches.insert(0, (models, name, original, False))


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
        if not is_model(current) or current is models.BaseModel:
            continue
        bound = vars(module).get(name)
        if bound is None or bound is current or not is_model(bound):
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
