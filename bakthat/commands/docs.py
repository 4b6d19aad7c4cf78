"""``bakthat docs [PAGE]``: list the documentation installed with bakthat, or print a page.

The pages of the repository's ``docs/`` directory are copied into the package when it is
built (see ``setup.py``), so they are on every machine where bakthat is installed; in a
source checkout they are read from ``docs/`` directly.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "docs"
HELP = "list the documentation pages installed with bakthat, or print one"
DESCRIPTION = """\
Without PAGE, list the documentation pages and where they are on disk.  With PAGE
(for example cli, configuration, restore-safety), print that page (markdown)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("page", nargs="?", help="the page to print, e.g. cli or configuration")


def docs_directory() -> Path:
    """Return the directory of the installed documentation pages.

    Raise NotFoundError if neither the package copy nor a source checkout's docs/ exists.
    """
    from bakthat.errors import NotFoundError

    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "docs", package.parent / "docs"):
        if (candidate / "cli.md").is_file():
            return candidate
    raise NotFoundError(f"no documentation pages next to {package}; reinstall bakthat")


def run(args: argparse.Namespace) -> int:
    from bakthat.errors import NotFoundError

    directory = docs_directory()
    pages = sorted(path.stem for path in directory.glob("*.md"))
    if args.page is None:
        print(f"Documentation pages in {directory} (bakthat docs PAGE prints one):")
        for page in pages:
            print(f"  {page}")
        return 0
    page = args.page.removesuffix(".md")
    if page not in pages:
        raise NotFoundError(f"no documentation page {args.page!r} (pages: {', '.join(pages)})")
    print((directory / f"{page}.md").read_text(encoding="utf-8"), end="")
    return 0
