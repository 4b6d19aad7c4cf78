"""Configuration: ``~/.bakthat.yml`` profiles, a ``conf=`` dict, environment overrides.

Nothing here runs at import: every path is expanded when a function is called, so a test
(or a user) that sets ``HOME`` or ``BAKTHAT_CONFIG`` later is honoured.

Precedence, lowest first: built-in defaults, the profile read from the YAML file, the
``conf=`` dict given from Python (which replaces the file's profile entirely, as the
developer guide shows), then ``BAKTHAT_*`` environment variables listed in
:data:`ENV_OVERRIDES`.  Function arguments (``destination=``, ``password=``) win over all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bakthat.errors import ConfigError

CONFIG_FILE = "~/.bakthat.yml"
PLUGINS_DIR = "~/.bakthat_plugins"
DATABASE = "~/.bakthat.sqlite"
LOCAL_STORE = "~/.bakthat_store"
DEFAULT_LOCATION = "us-east-1"
DEFAULT_DESTINATION = "local"
EXCLUDE_FILES = [".bakthatexclude", ".gitignore"]

@dataclass(frozen=True)
class Setting:
    """One profile key: its accepted type(s), default and one line of documentation.

    Modules that read profile keys declare them in a module-level ``SETTINGS`` dict of
    name -> Setting (this module for the core, each backend module for its own keys),
    so that validation and the configuration reference know every key.
    """

    types: type | tuple[type, ...]
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None


SETTINGS: dict[str, Setting] = {
    "default_destination": Setting(str, DEFAULT_DESTINATION, "destination used when none is given"),
    "local_path": Setting(str, LOCAL_STORE, "directory of the local store"),
    "database": Setting(str, DATABASE, "SQLite catalog path"),
    "database_url": Setting(str, None, "database URL (postgresql://...) used instead of database"),
    "compression": Setting(str, "zstd", "archive compression", ("zstd", "gzip", "none")),
    "compress": Setting(bool, True, "0.6 key: false means compression none"),
    "compression_level": Setting(int, None, "compression level (default 3 for zstd, 6 for gzip)"),
    "compression_threads": Setting(int, -1, "zstd worker threads (-1: one per core)"),
    "region_name": Setting(str, DEFAULT_LOCATION, "AWS region"),
    "plugins": Setting(list, [], "plugins to enable: dotted module.Class paths or entry-point names"),
    "plugins_dir": Setting(str, PLUGINS_DIR, "directory added to the import path for plugins"),
    "encryption_recipients": Setting((list, str), [], "age recipients (age1...) to encrypt to instead of a password"),
    "identity_file": Setting(str, None, "age identity file used to restore public-key encrypted backups"),
    "scrypt_work_factor": Setting(int, 18, "log2 of scrypt's N for password encryption"),
}

DEFAULTS: dict[str, Any] = {name: setting.default for name, setting in SETTINGS.items()}

# Environment variable -> profile key.  Values are strings; see _coerce.
ENV_OVERRIDES: dict[str, str] = {
    "BAKTHAT_DESTINATION": "default_destination",
    "BAKTHAT_LOCAL_PATH": "local_path",
    "BAKTHAT_DATABASE": "database",
    "BAKTHAT_COMPRESSION": "compression",
    "BAKTHAT_IDENTITY_FILE": "identity_file",
}


def config_path(config: str | os.PathLike[str] | None = None) -> Path:
    """Given an explicit path or None, return the config file path to read.

    ``None`` means ``$BAKTHAT_CONFIG`` if set, else ``~/.bakthat.yml``.
    """
    if config is None:
        config = os.environ.get("BAKTHAT_CONFIG") or CONFIG_FILE
    return Path(os.path.expanduser(os.fspath(config)))


def load_config(config: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Given a config path (or None for the default), return the parsed YAML mapping.

    Return ``{}`` if the file does not exist. Raise ConfigError if it is not valid YAML,
    uses a Python object tag (only safe loading is done), or is not a mapping.
    """
    import yaml

    path = config_path(config)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: the top level must be a mapping of profile names")
    return dict(data)


def get_profile(
    profile: str = "default",
    config: str | os.PathLike[str] | None = None,
    conf: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Given a profile name, a config path and an optional ``conf`` dict, return settings.

    The result is :data:`DEFAULTS` updated with the profile (from ``conf`` when given,
    else from the file) and then with environment overrides.  ``conf`` may be a flat
    profile (the developer guide's form) or a mapping of profile names.  Raise
    ConfigError if a named (non-default) profile does not exist or is not a mapping.
    """
    if conf is not None:
        if not isinstance(conf, Mapping):
            raise ConfigError("conf= must be a dict of settings")
        nested = conf.get(profile)
        raw = dict(nested) if isinstance(nested, Mapping) else dict(conf)
        source = "conf="
    else:
        data = load_config(config)
        source = str(config_path(config))
        if profile in data:
            raw = data[profile]
            if raw is None:
                raw = {}
            if not isinstance(raw, Mapping):
                raise ConfigError(f"{source}: profile {profile!r} must be a mapping")
            raw = dict(raw)
        elif profile == "default":
            raw = {}
        else:
            known = ", ".join(sorted(k for k in data if k != "sync")) or "none"
            raise ConfigError(f"{source}: no profile {profile!r} (profiles: {known})")
    settings = {name: (list(value) if isinstance(value, list) else value) for name, value in DEFAULTS.items()}
    settings.update(raw)
    for variable, key in ENV_OVERRIDES.items():
        value = os.environ.get(variable)
        if value:
            settings[key] = value
    if settings.get("compress") is False and "compression" not in raw:
        settings["compression"] = "none"
    settings["_profile"] = profile
    settings["_source"] = source
    settings["_raw"] = raw
    return settings
