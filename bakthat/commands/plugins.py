"""``bakthat plugins``: list the plugins that can be enabled, where each comes from, and which are."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import Any

from bakthat.commands._common import add_json, add_scope, print_table

NAME = "plugins"
HELP = "list available plugins, where they come from, and which are enabled"
DESCRIPTION = """\
List the plugins this profile can use and the ones it enables:

- classes deriving from Plugin in the files of plugins_dir (read, not run);
- entry points of the group bakthat.plugins declared by installed packages;
- every name of the profile's plugins list, in load order, with its status:
  active, failed (and why) or not loaded.

Enable a plugin by adding its name to the profile's plugins list (see docs/plugins.md)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_scope(parser, destination=False)
    add_json(parser, "the plugins directory and the list of plugins")


def run(args: argparse.Namespace) -> int:
    from bakthat import plugin
    from bakthat.conf import display_path, get_profile

    settings = get_profile(args.profile, args.config)
    try:
        plugin.load_plugins(settings)
    except plugin.PluginError:
        pass  # recorded: listed below as failed, with the reason
    directory = plugin.plugins_dir_of(settings)
    listed = available_plugins(settings)
    if args.json:
        import json

        json.dump({"plugins_dir": directory, "plugins": listed}, sys.stdout)
        sys.stdout.write("\n")
        return 0
    exists = "" if _isdir(directory) else " (does not exist)"
    print(f"plugins_dir: {display_path(directory)}{exists}", file=sys.stderr)
    if not listed:
        print("no plugins found; see docs/plugins.md to write one", file=sys.stderr)
        return 0
    rows = []
    for item in listed:
        enabled = str(item["enabled"]) if item["enabled"] else "-"
        status = f"failed: {item['error']}" if item["status"] == "failed" else item["status"]
        rows.append([item["name"], item["source"], enabled, status, display_path(item["location"])])
    print_table(rows, header=["NAME", "SOURCE", "ORDER", "STATUS", "LOCATION"])
    return 0


def _isdir(path: str) -> bool:
    import os

    return os.path.isdir(path)


def _plugin_classes_in(path: str) -> list[str]:
    """Return the names of the classes of a Python file that derive from a ``*Plugin`` class.

    The file is parsed, not run.
    """
    import ast

    try:
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return []
    names = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                label = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
                if label.endswith("Plugin"):
                    names.append(node.name)
                    break
    return names


def available_plugins(settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Given resolved settings, describe every plugin that could be enabled and every enabled one.

    Return dicts with ``name`` (what to write in ``plugins``), ``source`` (``entry
    point``, ``plugins_dir`` or ``import path``), ``location``, ``enabled`` (its
    position in ``plugins``, from 1, or None) and ``status``: ``active``, ``failed``
    (with ``error``), ``not loaded`` (enabled but not loaded in this process) or
    ``available``.  Plugin files are read, not run.
    """
    from bakthat import plugin
    from bakthat.plugin import record_of

    enabled = [str(spec) for spec in (settings.get("plugins") or [])]
    found: dict[str, dict[str, Any]] = {}
    for entry in plugin.entry_points():
        found.setdefault(entry.name, {
            "name": entry.name, "source": "entry point", "location": f"{entry.value}{plugin.distribution_of(entry)}",
        })
    directory = plugin.plugins_dir_of(settings)
    if os.path.isdir(directory):
        for filename in sorted(os.listdir(directory)):
            path = os.path.join(directory, filename)
            if filename.endswith(".py") and not filename.startswith("_"):
                module = filename[:-3]
            elif os.path.isfile(os.path.join(path, "__init__.py")):
                module, path = filename, os.path.join(path, "__init__.py")
            else:
                continue
            for name in _plugin_classes_in(path):
                found.setdefault(f"{module}.{name}", {"name": f"{module}.{name}", "source": "plugins_dir", "location": path})
    for spec in enabled:
        if spec not in found:
            found[spec] = {"name": spec, "source": "import path", "location": _locate(spec)}
    active = {record_of(loaded).spec: loaded for loaded in plugin.loaded_plugins()}
    failed = plugin.failures()
    result = []
    for name, item in found.items():
        position = enabled.index(name) + 1 if name in enabled else None
        if name in active:
            status = "active"
            item["location"] = record_of(active[name]).origin
        elif name in failed:
            status = "failed"
        elif position is not None:
            status = "not loaded"
        else:
            status = "available"
        result.append({**item, "enabled": position, "status": status, "error": failed.get(name)})
    result.sort(key=lambda item: (item["enabled"] is None, item["enabled"] or 0, item["name"]))
    return result


def _locate(spec: str) -> str:
    """Find where a dotted plugin path's module is, without importing it (when possible)."""
    import importlib.util

    module_name = spec.partition(":")[0] if ":" in spec else spec.rpartition(".")[0]
    if not module_name:
        return "not found"
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        found = None
    if found is None:
        return "not found"
    return found.origin or module_name
