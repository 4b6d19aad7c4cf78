"""``bakthat configure``: write settings into a profile of the config file."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from bakthat.commands._common import add_json, add_scope

NAME = "configure"
HELP = "set profile settings, interactively or with flags; or show and check them"
DESCRIPTION = """\
Write settings into a profile of the config file (-c, else $BAKTHAT_CONFIG, else
~/.bakthat.yml).  Without flags, in a terminal, asks questions; with flags, changes only
what they name:

  bakthat configure --set local_path=/backups --set compression=gzip
  bakthat configure -p work --default-destination s3 --s3-bucket my-bucket
  echo "$AWS_SECRET" | bakthat configure --set-from-stdin secret_key

The file is validated, then replaced atomically with mode 0600; on any error it is left
as it was.  Comments in the file are not kept.  Secrets (secret_key, passwords, tokens)
are never accepted on the command line: use --set-from-stdin or the questions."""

log = logging.getLogger("bakthat")

#: Flags for the most used keys: option -> key.
KEY_FLAGS = {
    "--default-destination": "default_destination",
    "--local-path": "local_path",
    "--database": "database",
    "--compression": "compression",
    "--region-name": "region_name",
    "--s3-bucket": "s3_bucket",
    "--glacier-vault": "glacier_vault",
    "--access-key": "access_key",
    "--heartbeat-url": "heartbeat_url",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_scope(parser, destination=False)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="set a key (rotation.days=7 sets a sub-key); repeatable")
    parser.add_argument("--unset", action="append", default=[], metavar="KEY", help="remove a key from the profile; repeatable")
    parser.add_argument("--set-from-stdin", metavar="KEY", help="read KEY's value from the first line of stdin (for secrets)")
    for flag, key in KEY_FLAGS.items():
        parser.add_argument(flag, dest=f"key_{key}", metavar=key.upper(), help=f"set {key}")
    parser.add_argument("--interactive", action="store_true", help="ask questions even when stdin is not a terminal")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--show", action="store_true", help="print the profile's effective settings (secrets masked) and change nothing")
    what.add_argument("--check", action="store_true", help="validate every profile of the file and change nothing")
    what.add_argument("--list-keys", action="store_true", help="print every known key with its type, default and meaning")
    add_json(parser, "--show, --check or --list-keys output")


def run(args: argparse.Namespace) -> int:
    if args.list_keys:
        return _list_keys(args.json)
    if args.check:
        return _check(args)
    if args.show:
        return _show(args)
    changes = _changes_from_flags(args)
    if not changes and not args.unset:
        if not (args.interactive or sys.stdin.isatty()):
            from bakthat.errors import ConfigError

            raise ConfigError(
                "nothing to change: give --set KEY=VALUE (or another flag), or run bakthat configure in a terminal"
            )
        changes = _ask(args)
    return _write(args, changes, args.unset)


# -- changing ---------------------------------------------------------------------------


def _changes_from_flags(args: argparse.Namespace) -> dict[str, Any]:
    from bakthat.conf import holds_secret, collect_settings, config_path, display_path
    from bakthat.errors import ConfigError

    schema = collect_settings()
    where = f"{display_path(config_path(args.config))}: profile {args.profile!r}"
    texts: list[tuple[str, str]] = []
    for item in args.set:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {key or item!r}: write KEY=VALUE")
        texts.append((key.strip(), text))
    for key in KEY_FLAGS.values():
        value = getattr(args, f"key_{key}")
        if value is not None:
            texts.append((key, value))
    for key, text in texts:
        setting = schema.get(key.split(".", 1)[0])
        if setting is not None and setting.secret and holds_secret(text):
            raise ConfigError(
                f"{key} is a secret: give it with --set-from-stdin {key} (or answer the questions in a terminal) "
                "so that it stays out of the process list and the shell history"
            )
    if args.set_from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise ConfigError(f"--set-from-stdin {args.set_from_stdin}: stdin gave no value")
        texts.append((args.set_from_stdin, line))
    try:
        return {key: _parse(key, text) for key, text in texts}
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _parse(key: str, text: str) -> Any:
    """Given a key (``rotation.days`` for a sub-key) and its text, return the typed value."""
    from bakthat.conf import coerce_text, collect_settings
    from bakthat.errors import ConfigError

    if "." not in key:
        return coerce_text(key, text)
    parent, sub = key.split(".", 1)
    setting = collect_settings().get(parent)
    if setting is None or dict not in (setting.types if isinstance(setting.types, tuple) else (setting.types,)):
        raise ConfigError(f"--set {key}: {parent!r} is not a key holding a mapping")
    import yaml

    try:
        return yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        return text


def _write(args: argparse.Namespace, changes: dict[str, Any], unset: list[str]) -> int:
    from bakthat.conf import display_path, update_profile

    path, _ = update_profile(args.profile, changes, unset, args.config)
    done = []
    if changes:
        done.append("set " + ", ".join(sorted(changes)))
    if unset:
        done.append("removed " + ", ".join(sorted(unset)))
    log.info("Wrote %s (profile %r): %s", display_path(path), args.profile, "; ".join(done) or "no change")
    return 0


# -- questions ----------------------------------------------------------------------------


def _destinations() -> list[str]:
    import pkgutil
    from pathlib import Path

    import bakthat

    folder = Path(bakthat.__file__).parent / "backends"
    return sorted(i.name for i in pkgutil.iter_modules([str(folder)]) if not i.name.startswith("_") and i.name != "base")


def _read(prompt: str, secret: bool = False) -> str:
    """Ask on stderr and read one line (hidden for secrets in a terminal)."""
    if secret and sys.stdin.isatty():
        import getpass

        return getpass.getpass(prompt, stream=sys.stderr)
    sys.stderr.write(prompt)
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        raise KeyboardInterrupt  # end of input: cancel, write nothing
    return line.rstrip("\r\n")


def _ask_key(key: str, current: dict[str, Any], note: str = "", secret: bool = False) -> Any:
    """Ask for one key until the answer is valid; a blank answer keeps the current value."""
    from bakthat.conf import coerce_text, collect_settings
    from bakthat.errors import ConfigError

    setting = collect_settings()[key]
    value = current.get(key, setting.default)
    shown = ("set, blank keeps it" if value else "not set") if secret else ("" if value in (None, "") else str(value))
    choices = f" ({'/'.join(map(str, setting.choices))})" if setting.choices else ""
    while True:
        answer = _read(f"{key}{choices}{note} [{shown}]: ", secret=secret).strip()
        if not answer:
            return value
        try:
            return coerce_text(key, answer)
        except ConfigError as exc:
            sys.stderr.write(f"  {exc}\n")


def _ask(args: argparse.Namespace) -> dict[str, Any]:
    """Ask for the usual settings of a profile; return the answers that change something."""
    from bakthat.conf import load_config

    current = dict(load_config(args.config, create=True).get(args.profile) or {})
    known = _destinations()
    sys.stderr.write(f"Profile {args.profile!r}. Blank answers keep the value in brackets.\n")
    answers: dict[str, Any] = {}
    while True:
        destination = _ask_key("default_destination", current, f" ({'/'.join(known)})")
        if destination in known:
            break
        sys.stderr.write(f"  unknown destination {destination!r}: choose one of {', '.join(known)}\n")
    answers["default_destination"] = destination
    if destination == "local":
        answers["local_path"] = _ask_key("local_path", current)
    if destination in ("s3", "glacier"):
        container = "s3_bucket" if destination == "s3" else "glacier_vault"
        answers[container] = _ask_key(container, current)
        answers["region_name"] = _ask_key("region_name", current)
        answers["access_key"] = _ask_key("access_key", current, " (blank: the AWS credential chain)")
        if answers["access_key"]:
            answers["secret_key"] = _ask_key("secret_key", current, secret=True)
    if destination == "swift":  # 0.6 asked for these too
        answers["auth_url"] = _ask_key("auth_url", current)
        answers["auth_version"] = _ask_key("auth_version", current)
        answers["swift_container"] = _ask_key("swift_container", current, " (blank: s3_bucket)")
        answers["access_key"] = _ask_key("access_key", current, " (the user; ACCOUNT:USER for auth v1)")
        answers["secret_key"] = _ask_key("secret_key", current, secret=True)
    answers["compression"] = _ask_key("compression", current)
    answers["heartbeat_url"] = _ask_key("heartbeat_url", current, " (pinged after each backup)")
    return {key: value for key, value in answers.items() if value not in (None, "") and current.get(key) != value}


# -- reading ------------------------------------------------------------------------------


def _list_keys(as_json: bool) -> int:
    from bakthat.commands._common import print_json, print_table
    from bakthat.conf import collect_settings, env_overrides, settings_by_module

    owners = {key: module for module, declared in settings_by_module().items() for key in declared}
    variables = {key: variable for variable, key in env_overrides().items()}
    entries = []
    for key, setting in sorted(collect_settings().items()):
        kinds = setting.types if isinstance(setting.types, tuple) else (setting.types,)
        entries.append({
            "key": key,
            "type": " or ".join(kind.__name__ for kind in kinds),
            "default": setting.default,
            "choices": list(setting.choices) if setting.choices else None,
            "secret": setting.secret,
            "required_for": list(setting.required_for),
            "environment": variables.get(key),
            "module": owners[key],
            "help": setting.help,
        })
    if as_json:
        print_json(entries)
    else:
        print_table([(e["key"], e["type"], "" if e["default"] in (None, "", [], {}) else str(e["default"]), e["help"]) for e in entries],
                    header=("KEY", "TYPE", "DEFAULT", "MEANING"))
    return 0


def _check(args: argparse.Namespace) -> int:
    from bakthat.commands._common import print_json
    from bakthat.conf import check_config, config_path, display_path, load_config
    from bakthat.errors import ConfigError

    path = config_path(args.config)
    problems = check_config(args.config)
    if args.json:
        print_json({"file": str(path), "exists": path.exists(), "valid": not problems, "problems": problems})
    if problems:
        raise ConfigError("\n".join(problems))
    if not args.json:
        profiles = [name for name in load_config(args.config) if name != "sync"]
        state = f"{len(profiles)} profile(s) valid" if path.exists() else "does not exist (defaults apply)"
        print(f"{display_path(path)}: {state}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from bakthat.commands._common import print_json, print_table
    from bakthat.conf import get_profile, public_view

    settings = get_profile(args.profile, args.config)
    view = public_view(settings)
    if args.json:
        print_json(view)
        return 0
    print(f"# profile {args.profile!r} from {settings.source}, with defaults and environment")
    print_table([(key, "" if value is None else str(value)) for key, value in sorted(view.items())])
    return 0
