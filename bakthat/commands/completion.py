"""``bakthat completion SHELL``: print a shell completion script generated from the parser."""

from __future__ import annotations

import argparse

NAME = "completion"
HELP = "print a completion script for bash, zsh or tcsh, generated from the parser"
DESCRIPTION = """\
Print a completion script for SHELL on standard output, generated from bakthat's own
argument parser (every command, alias and option), for example:

    bakthat completion bash > /etc/bash_completion.d/bakthat
    bakthat completion zsh > "${fpath[1]}/_bakthat"

Commands added by the profile's plugins are included when the plugins load."""

SHELLS = ("bash", "zsh", "tcsh")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete for")


def run(args: argparse.Namespace) -> int:
    import shtab

    from bakthat.cli import build_parser

    print(shtab.complete(build_parser(), shell=args.shell))
    return 0
