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

Loading, registering and undoing are one contract: everything a plugin registers or
patches is recorded when it is registered, so that unloading can undo exactly that.
This module is where plugins import from; the code lives, along pluggy's lines, in
:mod:`bakthat.plugin_state` (the manager, records, hooks, undoing, unloading),
:mod:`bakthat.plugin_loading` (finding, instantiating and activating plugins),
:mod:`bakthat.plugin_base` (the :class:`Plugin` base class) and
:mod:`bakthat.plugin_commands` (:class:`Param`, :class:`Command`, checking a command).
The argparse side of plugin commands is in :mod:`bakthat.cli`, discovery for
``bakthat plugins`` in that command.
"""

from __future__ import annotations

from bakthat.plugin_base import Plugin
from bakthat.plugin_commands import Command, Param
from bakthat.plugin_commands import builtin_command_names as _builtin_command_names
from bakthat.plugin_loading import ENTRY_POINT_GROUP, distribution_of, entry_points, load_plugins, plugins_dir_of
from bakthat.plugin_state import (
    HookError,
    PluginError,
    PluginManager,
    call_hook,
    cli_command,
    commands,
    failures,
    loaded_plugins,
    manager,
    record_of,
    set_cli_command,
    unload_plugins,
)
from bakthat.plugin_state import undo as _undo

__all__ = [
    "ENTRY_POINT_GROUP",
    "Command",
    "HookError",
    "Param",
    "Plugin",
    "PluginError",
    "PluginManager",
    "call_hook",
    "cli_command",
    "commands",
    "distribution_of",
    "entry_points",
    "failures",
    "load_plugins",
    "loaded_plugins",
    "manager",
    "plugins_dir_of",
    "record_of",
    "set_cli_command",
    "unload_plugins",
]
# ``_undo`` and ``_builtin_command_names`` stay importable from here for the tests that use them.
