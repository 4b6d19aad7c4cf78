"""``bakthat manpage``: print the bakthat(1) manual page, generated from the parser."""

from __future__ import annotations

import argparse

NAME = "manpage"
HELP = "print the bakthat(1) manual page (roff), generated from the parser"
DESCRIPTION = """\
Print the manual page of the bakthat command in roff on standard output, generated
from the argument parser, so it always matches the installed version:

    bakthat manpage > /usr/local/share/man/man1/bakthat.1
    bakthat manpage | man -l -"""

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command takes no argument of its own."""


def run(args: argparse.Namespace) -> int:
    from argparse_manpage.manpage import Manpage

    from bakthat import __version__
    from bakthat.cli import build_parser

    parser = build_parser()
    page = Manpage(
        parser,
        _data={
            "project_name": "bakthat",
            "version": __version__,
            "description": parser.description,
            "manual_section": 1,
            "manual_title": "bakthat manual",
        },
    )
    print(str(page))
    return 0
