"""Options and output helpers shared by command modules (not a command itself)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_scope(parser: argparse.ArgumentParser, destination: bool = True) -> None:
    """Add ``-d/--destination`` (optional), ``-p/--profile`` and ``-c/--config``."""
    if destination:
        parser.add_argument("-d", "--destination", help="where backups are stored (default: the profile's default_destination, else local)")
    parser.add_argument("-p", "--profile", default="default", help="profile of the config file (default: default)")
    parser.add_argument("-c", "--config", help="config file (default: $BAKTHAT_CONFIG or ~/.bakthat.yml)")


def add_json(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def print_json(value: Any) -> None:
    """Print a row, a list of rows or plain data as JSON on stdout."""

    def plain(item: Any) -> Any:
        return item.to_dict() if hasattr(item, "to_dict") else item

    data = [plain(item) for item in value] if isinstance(value, list) else plain(value)
    json.dump(data, sys.stdout)
    sys.stdout.write("\n")
