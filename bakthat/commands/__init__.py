"""The sub-commands of ``bakthat``, one module each, found by name.

A command module (any module here whose name does not start with ``_``) defines::

    NAME = "delete_older_than"          # 0.6's name; a hyphenated alias is added
    HELP = "one line for bakthat --help"
    def add_arguments(parser): ...      # argparse options
    def run(args) -> int: ...           # the exit code

Adding a command touches one module, one test module and one docs entry.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


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
