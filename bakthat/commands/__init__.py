"""The sub-commands of ``bakthat``, one module each, found by name.

A command module (any module here whose name does not start with ``_``) defines::

    NAME = "delete_older_than"          # 0.6's name, and the module's; a hyphenated alias is added
    HELP = "one line for bakthat --help"
    def add_arguments(parser): ...      # argparse options
    def run(args) -> int: ...           # the exit code

and has one line in :data:`COMMANDS` (its name, help and aliases), from which
``bakthat --help`` lists the commands without importing them: the ``bakthat`` command
imports only the module of the command it runs.  Adding a command touches one module,
one line here, one test module and one docs entry.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

#: Every command: name -> (its HELP, its ALIASES beside the hyphenated one).  The same as
#: each module's NAME, HELP and ALIASES (tests/test_cli.py checks), so that building the
#: parser needs no command module.
COMMANDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "backup": ("back up a file, a directory or a database", ()),
    "check": ("check backups against the store (missing objects, orphans, broken chains); --read-data reads them", ("verify",)),
    "cleanup_uploads": ("list and abort incomplete multipart uploads left by interrupted backups", ()),
    "completion": ("print a completion script for bash, zsh or tcsh, generated from the parser", ()),
    "configure": ("set profile settings, interactively or with flags; or show and check them", ()),
    "configure_backups_rotation": ("set the rotation policy used by rotate_backups, interactively or with flags", ()),
    "delete": ("delete the newest backup of a name", ()),
    "delete_older_than": ("delete the backups of a name older than an interval (the newest is always kept)", ()),
    "docs": ("list the documentation pages installed with bakthat, or print one", ()),
    "files": ("list the paths a backup holds, from its index, without reading the archive", ()),
    "find": ("list the backups holding paths that match a pattern, newest first (from the indexes)", ()),
    "info": ("show a backup's full record, or a summary per name (count, newest, total size)", ()),
    "ls": ("list the objects in the destination's store, marking which are in the catalog", ()),
    "manpage": ("print the bakthat(1) manual page (roff), generated from the parser", ()),
    "periodic_backups": ("show the heartbeat_url state and the backups of each -k key (successor of 0.6's BakManager)", ()),
    "plugins": ("list available plugins, where they come from, and which are enabled", ()),
    "restore": ("restore the newest backup of a name", ()),
    "retrievals": ("show pending retrievals of archived backups (Glacier classes and vaults)", ()),
    "rotate_backups": ("delete the backups of a name that the profile's rotation policy does not keep", ()),
    "run": ("run backup jobs (all of the profile's by default)", ()),
    "show": ("list backups in the catalog", ()),
    "status": ("show running and recently finished runs (backup, restore, job)", ()),
    "sync": ("add to the catalog the backups found in the store (rebuild a lost catalog, see other hosts' backups); find orphans", ()),
}


def command_module(name: str) -> ModuleType:
    """Given a name of :data:`COMMANDS`, return its module (imported now if it was not)."""
    if name not in COMMANDS:
        raise KeyError(name)
    return importlib.import_module(f"{__name__}.{name}")


def command_modules() -> list[ModuleType]:
    """Return the command modules of this package, sorted by command name."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "run"):
            found.append(module)
    return sorted(found, key=lambda module: module.NAME)
