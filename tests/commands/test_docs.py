"""docs/cli.md and docs/configuration.md stay in step with the parser and the settings.

When one of these fails after adding a command, an option or a key, document it: the
message names what is missing and where.
"""

from __future__ import annotations

import argparse
import re

from bakthat.cli import build_parser
from bakthat.conf import collect_settings
from tests.conftest import ROOT

GLOBAL = {"-h", "--help", "-v", "--verbose", "-q", "--quiet", "--debug"}
NOT_COMMANDS = {"JSON output", "Exit codes"}
#: Shared options, described once at the top of cli.md: a section names them by their short form.
SHARED = {"--destination": "-d", "--profile": "-p", "--config": "-c"}


def sections(path) -> dict[str, str]:
    """Return {heading: text} for the ``## `` sections of a markdown file."""
    text = path.read_text(encoding="utf-8")
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    unique = {}
    for name, sub in action.choices.items():
        unique.setdefault(sub.prog.split()[-1], sub)
    return unique


def options(sub: argparse.ArgumentParser) -> set[str]:
    return {flag for action in sub._actions for flag in action.option_strings if flag.startswith("--")} - GLOBAL


def test_every_command_and_option_is_documented():
    docs = sections(ROOT / "docs" / "cli.md")
    missing = []
    for name, sub in subcommands().items():
        if name not in docs:
            missing.append(f"a '## {name}' section")
            continue
        if "_" in name and f"`{name.replace('_', '-')}`" not in docs[name]:
            missing.append(f"the alias `{name.replace('_', '-')}` in '## {name}'")
        for flag in sorted(options(sub)):
            spelled = [flag, SHARED[flag] + " "] if flag in SHARED else [flag]
            if not any(re.search(re.escape(form.strip()) + r"(?![\w-])", docs[name]) for form in spelled):
                missing.append(f"{flag} in '## {name}'")
    assert not missing, "docs/cli.md lacks: " + "; ".join(missing)


def test_every_documented_command_and_option_exists():
    commands = subcommands()
    wrong = []
    for heading, text in sections(ROOT / "docs" / "cli.md").items():
        if heading in NOT_COMMANDS:
            continue
        if heading not in commands:
            wrong.append(f"'## {heading}' is not a command")
            continue
        known = options(commands[heading]) | GLOBAL | {"--version"}
        for flag in set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text)):
            if flag not in known:
                wrong.append(f"{flag} in '## {heading}'")
    assert not wrong, "docs/cli.md documents what does not exist: " + "; ".join(wrong)


def test_every_setting_is_documented():
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z0-9_]+)` \|", text, flags=re.MULTILINE))
    missing = sorted(set(collect_settings()) - documented)
    assert not missing, "docs/configuration.md has no table row for: " + ", ".join(missing)
    stale = sorted(documented - set(collect_settings()))
    assert not stale, "docs/configuration.md documents unknown keys: " + ", ".join(stale)


def test_the_coming_from_06_page_covers_the_changes():
    page = ROOT / "docs" / "coming-from-0.6.md"
    assert page.exists()
    text = page.read_text(encoding="utf-8")
    for topic in ("BAKTHAT_PASSWORD", "conf=", "Exit codes", "local", "age", "configure", "heartbeat_url"):
        assert topic in text, topic
