"""``bakthat plugins``: list the plugins that can be enabled, where each comes from, and which are."""

from __future__ import annotations

import argparse
import json
import sys

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
    listed = plugin.available_plugins(settings)
    if args.json:
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
