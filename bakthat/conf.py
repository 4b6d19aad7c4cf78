"""Configuration: ``~/.bakthat.yml`` profiles, a ``conf=`` dict, environment overrides.

Nothing here runs at import: every path is expanded when a function is called, so a test
(or a user) that sets ``HOME`` or ``BAKTHAT_CONFIG`` later is honoured.

Precedence, lowest first: built-in defaults, the profile read from the YAML file, the
``conf=`` dict given from Python (which replaces the file's profile entirely, as the
developer guide shows), then ``BAKTHAT_*`` environment variables (see
:func:`env_overrides`).  Function arguments and command-line options (``destination=``,
``password=``, ``--compression``) win over all.

Every profile key is declared once, as a :class:`~bakthat.settings.Setting`: the core
keys here, those of backends, sources, retention, jobs, hooks and levels in
:mod:`bakthat.profile_keys` (a light module, so that reading a profile imports none of
them; each exposes its dict as ``SETTINGS``), a third-party backend's in its module's
``SETTINGS``.  A profile is validated against all of them when it is loaded: an unknown key, a value of the wrong
type or a missing required value is a :class:`~bakthat.errors.ConfigError` naming the
file, the profile and the key.

This module is longer than most (about 730 lines) because it holds the three steps a
profile goes through in one place: the schema (declaring and checking keys, coercing
text from the environment), the file (reading, checking, writing atomically) and the
resolution into :class:`bakthat.settings.Settings`; each step's messages name the file,
the profile and the key the same way.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import logging
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from bakthat.errors import ConfigError
from bakthat.settings import Setting
from bakthat.utils import display_path

if TYPE_CHECKING:
    from bakthat.settings import Settings

log = logging.getLogger("bakthat")

CONFIG_FILE = "~/.bakthat.yml"
PLUGINS_DIR = "~/.bakthat_plugins"
DATABASE = "~/.bakthat.sqlite"
LOCAL_STORE = "~/.bakthat_store"
DEFAULT_LOCATION = "us-east-1"
DEFAULT_DESTINATION = "local"
#: Pattern files read from the top of a backed-up directory (``.gitignore`` only with
#: ``exclude_gitignore: true``).
EXCLUDE_FILES = [".bakthatexclude"]
GITIGNORE = ".gitignore"


def _within(low: int, high: int, meaning: str = "") -> Callable[[Any], str | None]:
    """Return a check that an integer lies in [low, high]."""

    def check(value: Any) -> str | None:
        if low <= value <= high:
            return None
        return f"must be from {low} to {high}{meaning}, not {value}"

    return check


#: URL schemes a ``database_url`` may use (SQLite and PostgreSQL), and the database each names.
DATABASE_SCHEMES = {"sqlite": "sqlite", "postgresql": "postgresql", "postgres": "postgresql"}


def redact_url(url: str) -> str:
    """Given a database URL, return it with its password replaced by ``***``."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        user = parts.username or ""
        return urlunsplit((parts.scheme, f"{user}:***@{host}{port}", parts.path, parts.query, parts.fragment))
    except ValueError:
        return "<invalid database URL>"


def url_problem(url: str) -> str | None:
    """Given a ``database_url``, return what is wrong with its scheme, or None."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in DATABASE_SCHEMES:
        return None
    known = "postgresql://user@host/database or sqlite:///path"
    if not scheme:
        return f"{redact_url(url)!r} is not a URL: use {known}"
    return f"unsupported scheme {scheme!r} in {redact_url(url)!r}: use {known} (or a SQLite path in 'database')"


def _database_url_problem(value: Any) -> str | None:
    return url_problem(str(value))


#: Compression levels each compression accepts (zstd's negative levels are its fast modes).
COMPRESSION_LEVELS = {"zstd": (-7, 22), "gzip": (0, 9)}
#: scrypt work factors (log2 of N) accepted when encrypting; bakthat.crypto enforces the same.
WORK_FACTORS = (10, 22)


SETTINGS: dict[str, Setting] = {
    "default_destination": Setting(str, DEFAULT_DESTINATION, "destination used when none is given"),
    "local_path": Setting(str, LOCAL_STORE, "directory of the local store"),
    "database": Setting(str, DATABASE, "SQLite catalog path"),
    "database_url": Setting(
        str, None, "database URL (postgresql://...) used instead of database", secret=True, check=_database_url_problem
    ),
    "compression": Setting(str, "zstd", "archive compression", ("zstd", "gzip", "none")),
    "compress": Setting(bool, True, "0.6 key: false means compression none"),
    "compression_level": Setting(
        int, None, "compression level (default 3 for zstd, 6 for gzip)",
        check=_within(-7, 22, " (zstd: -7 to 22, gzip: 0 to 9)"),
    ),
    "compression_threads": Setting(int, -1, "zstd worker threads (-1: one per core)"),
    "region_name": Setting(str, DEFAULT_LOCATION, "AWS region"),
    "plugins": Setting(list, [], "plugins to enable: dotted module.Class paths or entry-point names"),
    "plugins_dir": Setting(str, PLUGINS_DIR, "directory added to the import path for plugins"),
    "encryption_recipients": Setting((list, str), [], "age recipients (age1...) to encrypt to instead of a password"),
    "identity_file": Setting(str, None, "age identity file used to restore public-key encrypted backups"),
    "scrypt_work_factor": Setting(
        int, 18, "log2 of scrypt's N for password encryption",
        check=_within(*WORK_FACTORS, " (log2 of scrypt's N; 18 takes about 256 MiB and a second)"),
    ),
    "extra": Setting(dict, {}, "free-form mapping for plugins and your own scripts; never validated"),
    "exclude": Setting((list, str), [], "gitignore-style patterns left out of every backup (with --exclude)"),
    "exclude_gitignore": Setting(bool, False, "also leave out what the source's top-level .gitignore lists"),
    "name_conflict": Setting(
        str, "warn", "a path-derived backup name earlier used for another source on this host", ("warn", "error")
    ),
}

#: Keys of bakthat 0.6 profiles, declared here so that a 0.6 ``~/.bakthat.yml`` loads
#: unchanged whichever modules are installed.  A module that declares the same key
#: (the S3 and Glacier backends, rotation) replaces the declaration.
LEGACY_SETTINGS: dict[str, Setting] = {
    "access_key": Setting(str, None, "AWS access key id; leave unset to use the AWS credential chain"),
    "secret_key": Setting(str, None, "AWS secret access key; leave unset to use the AWS credential chain", secret=True),
    "s3_bucket": Setting(str, None, "S3 bucket of the s3 destination", required_for=("s3",)),
    "glacier_vault": Setting(str, None, "Glacier vault of the glacier destination"),
    "rotation": Setting(dict, None, "rotate_backups scheme (days, weeks, months, first_week_day, ...)"),
    "bakmanager_token": Setting(str, None, "0.6 BakManager token: accepted and ignored (see heartbeat_url)", secret=True),
    "bakmanager_api": Setting(str, None, "0.6 BakManager API URL: accepted and ignored (see heartbeat_url)"),
}

#: The top-level ``sync:`` mapping of 0.6 (bakthat-syncserver), accepted and checked.
SYNC_SETTINGS: dict[str, Setting] = {
    "url": Setting(str, None, "sync server URL"),
    "username": Setting(str, None, "sync server user"),
    "password": Setting(str, None, "sync server password", secret=True),
    "auto": Setting(bool, False, "sync after every backup"),
}

#: Further modules whose ``SETTINGS`` are collected when they can be imported (none
#: built in: bakthat's own keys are declared in :mod:`bakthat.profile_keys`).
SETTINGS_MODULES: list[str] = []

DEFAULTS: dict[str, Any] = {name: setting.default for name, setting in SETTINGS.items()}

#: Environment variables that are not named after their key.  Every other key with a
#: scalar or list value is overridden by ``BAKTHAT_<KEY IN UPPER CASE>``.
ENV_OVERRIDES: dict[str, str] = {
    "BAKTHAT_DESTINATION": "default_destination",
}
#: ``BAKTHAT_*`` variables that are not profile keys.
ENV_RESERVED = ("BAKTHAT_CONFIG", "BAKTHAT_PASSWORD")

_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", list: "a list", dict: "a mapping", float: "a number"}
_BOOLEAN_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}
_SECRET_WORDS = ("secret", "password", "token")
#: Key names that say where a secret is, not the secret (``password_file``).
_REFERENCE_SUFFIXES = ("_file", "_command")
_collected: dict[str, dict[str, Setting]] = {}
_warned: set[str] = set()


# -- the schema ---------------------------------------------------------------------


def settings_by_module() -> dict[str, dict[str, Setting]]:
    """Return ``{module name: its SETTINGS}``: the core, the 0.6 keys, the modules of
    :data:`bakthat.profile_keys.BY_MODULE` and those of :data:`SETTINGS_MODULES`.

    Imports no backend, source or job module: their declarations are read from
    :mod:`bakthat.profile_keys`.  A module of :data:`SETTINGS_MODULES` that cannot be
    imported is skipped with a debug message.  Cached.
    """
    if _collected:
        return dict(_collected)
    from bakthat.profile_keys import BY_MODULE

    found: dict[str, dict[str, Setting]] = {"bakthat.conf": SETTINGS, "bakthat.conf (0.6 keys)": LEGACY_SETTINGS}
    found.update((name, dict(declared)) for name, declared in BY_MODULE.items())
    for name in SETTINGS_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            log.debug("settings of %s not collected: %s", name, exc)
            continue
        declared = getattr(module, "SETTINGS", None)
        if isinstance(declared, Mapping):
            found[name] = dict(declared)
    _collected.update(found)
    return dict(found)


def collect_settings() -> dict[str, Setting]:
    """Return every known profile key, name -> Setting.

    A key declared twice (a 0.6 key that a backend also declares) takes the later
    module's declaration, but the safety flags add up: the key is secret if any
    declaration (or its name: ``*secret*``, ``*password*``, ``*token*``) says so, and
    ``required_for`` is the union of the declarations'.
    """
    merged: dict[str, Setting] = {}
    for declared in settings_by_module().values():
        for name, setting in declared.items():
            earlier = merged.get(name)
            secret = setting.secret or (
                any(word in name for word in _SECRET_WORDS) and not name.endswith(_REFERENCE_SUFFIXES)
            )
            required = setting.required_for
            if earlier is not None:
                secret = secret or earlier.secret
                required = tuple(dict.fromkeys(earlier.required_for + setting.required_for))
                if setting.keys is None and earlier.keys is not None:
                    setting = setting.replace(keys=earlier.keys)
            if secret != setting.secret or required != setting.required_for:
                setting = setting.replace(secret=secret, required_for=required)
            merged[name] = setting
    return merged


def reset_settings_cache() -> None:
    """Forget the collected settings (for tests and for plugins that add modules)."""
    _collected.clear()


def env_overrides(schema: Mapping[str, Setting] | None = None) -> dict[str, str]:
    """Return ``{environment variable: key}`` for every key that can be set from the environment.

    That is every key whose value is a string, integer, boolean or list, as
    ``BAKTHAT_<KEY>``, plus the aliases of :data:`ENV_OVERRIDES`.
    """
    schema = collect_settings() if schema is None else schema
    result = dict(ENV_OVERRIDES)
    for name, setting in schema.items():
        variable = "BAKTHAT_" + name.upper()
        if variable in ENV_RESERVED or name in ENV_OVERRIDES.values() or dict in _types(setting):
            continue
        result[variable] = name
    return result


# -- checking values ------------------------------------------------------------------


def _types(setting: Setting) -> tuple[type, ...]:
    return setting.types if isinstance(setting.types, tuple) else (setting.types,)


def _type_name(value: Any) -> str:
    for kind in (bool, int, float, str, list, dict):
        if isinstance(value, kind):
            return _TYPE_NAMES[kind]
    return type(value).__name__


def _has_type(value: Any, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in kinds
    if isinstance(value, int) and float in kinds:
        return True
    return isinstance(value, kinds)


def _suggest(word: str, known: Iterable[str], prefix: str = "") -> str:
    match = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean {prefix + match[0]!r}?)" if match else ""


def check_value(name: str, setting: Setting, value: Any) -> str | None:
    """Given a key, its Setting and a value, return what is wrong with it, or None.

    The message never contains the value of a secret key.
    """
    kinds = _types(setting)
    if value is None:
        if setting.default is None or list in kinds or dict in kinds:
            return None
        return f"key {name!r} needs a value"
    if not _has_type(value, kinds):
        wanted = " or ".join(_TYPE_NAMES.get(kind, kind.__name__) for kind in kinds)
        return f"key {name!r} must be {wanted}, not {_type_name(value)}"
    if setting.choices is not None and value not in setting.choices:
        choices = ", ".join(str(choice) for choice in setting.choices)
        shown = "" if setting.secret else f", not {value!r}"
        hint = "" if setting.secret else _suggest(str(value), [str(choice) for choice in setting.choices])
        return f"key {name!r} must be one of {choices}{shown}{hint}"
    if setting.keys is not None and isinstance(value, Mapping):
        for sub in value:
            if sub not in setting.keys:
                return f"unknown key {f'{name}.{sub}'!r}{_suggest(str(sub), setting.keys, name + '.')}"
    if setting.check is not None:
        problem = setting.check(value)
        if problem:
            return f"key {name!r} {problem}"
    return None


def combination_problems(settings: Mapping[str, Any]) -> list[str]:
    """Given effective settings, return what is wrong with keys that depend on each other."""
    problems = []
    level = settings.get("compression_level")
    compression = settings.get("compression") or "zstd"
    if isinstance(level, int) and not isinstance(level, bool) and compression in COMPRESSION_LEVELS:
        low, high = COMPRESSION_LEVELS[compression]
        if not low <= level <= high:
            problems.append(
                f"key 'compression_level' must be from {low} to {high} with compression {compression}, not {level}"
            )
    return problems


def _unknown(key: Any, schema: Mapping[str, Setting]) -> str:
    hint = _suggest(str(key), schema)
    return f"unknown key {key!r}" + (hint or " (bakthat configure --list-keys lists the known keys)")


def profile_problems(raw: Mapping[Any, Any], schema: Mapping[str, Setting] | None = None) -> list[str]:
    """Given a profile mapping, return one message per unknown key or bad value."""
    schema = collect_settings() if schema is None else schema
    problems = []
    unknown = [key for key in raw if key not in schema]
    if unknown:
        schema = {**schema, **_entry_point_settings()}
    for key, value in raw.items():
        setting = schema.get(key) if isinstance(key, str) else None
        if setting is None:
            problems.append(_unknown(key, schema))
            continue
        problem = check_value(key, setting, value)
        if problem:
            problems.append(problem)
    return problems


def _entry_point_settings() -> dict[str, Setting]:
    """Return the SETTINGS of third-party backends: those of the entry points
    ``bakthat.backends`` and those registered in this process
    (:func:`bakthat.backends.register`).

    Only looked at when a profile has a key the built-in modules do not declare, so the
    common case loads no third-party code.
    """
    import sys
    from importlib.metadata import entry_points

    from bakthat.backends import registry

    classes: list[Any] = list(registry.values())
    for entry in entry_points(group="bakthat.backends"):
        try:
            classes.append(entry.load())
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not hide the real error
            log.debug("backend entry point %s not loaded: %s", entry.name, exc)
    found: dict[str, Setting] = {}
    for loaded in classes:
        module = sys.modules.get(getattr(loaded, "__module__", ""), None)
        declared = getattr(module, "SETTINGS", None)
        if isinstance(declared, Mapping):
            found.update(declared)
    return found


def coerce_text(name: str, text: str, schema: Mapping[str, Setting] | None = None) -> Any:
    """Given a key and a value written as text (environment, ``--set``), return the value.

    Booleans (true/false, yes/no, on/off, 1/0) and integers are parsed when the key
    accepts them; otherwise strings stay strings; a list is split on commas and spaces; a mapping is read as YAML.  Raise
    ConfigError for an unknown key or a value that does not fit (never echoing a secret).
    """
    schema = collect_settings() if schema is None else schema
    setting = schema.get(name)
    if setting is None:
        raise ConfigError(_unknown(name, schema))
    kinds = _types(setting)
    value: Any = text
    word = text.strip().lower()
    if bool in kinds and word in _BOOLEAN_WORDS:
        value = _BOOLEAN_WORDS[word]
    elif int in kinds and word.lstrip("+-").isdigit():
        value = int(word)
    elif str in kinds:
        value = text
    elif int in kinds:
        raise ConfigError(f"key {name!r} must be an integer")
    elif bool in kinds:
        raise ConfigError(f"key {name!r} must be true or false")
    elif list in kinds:
        value = [word for word in text.replace(",", " ").split() if word]
    elif dict in kinds:
        import yaml

        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"key {name!r} must be a YAML mapping") from None
    problem = check_value(name, setting, value)
    if problem:
        raise ConfigError(problem)
    return value


# -- files ----------------------------------------------------------------------------


def config_path(config: str | os.PathLike[str] | None = None) -> Path:
    """Given an explicit path or None, return the config file path to read.

    ``None`` means ``$BAKTHAT_CONFIG`` if set, else ``~/.bakthat.yml``.
    """
    if config is None:
        config = os.environ.get("BAKTHAT_CONFIG") or CONFIG_FILE
    return Path(os.path.expanduser(os.fspath(config)))


def load_config(config: str | os.PathLike[str] | None = None, *, create: bool = False) -> dict[str, Any]:
    """Given a config path (or None for the default), return the parsed YAML mapping.

    Return ``{}`` if the default file (``~/.bakthat.yml``) does not exist, or any file
    when ``create`` is true (it is about to be written).  Raise ConfigError if a file
    named by ``config`` or ``$BAKTHAT_CONFIG`` does not exist (a mistyped path must not
    mean the embedded defaults), or if it is not valid
    YAML, uses a Python object tag (only safe loading is done), is not a mapping, has a
    top-level value that is not a profile, or has a malformed ``sync:`` mapping.  Warn
    (once per process) if the file holds secrets and others can read it.
    """
    import yaml

    path = config_path(config)
    shown = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if create or (config is None and not os.environ.get("BAKTHAT_CONFIG")):
            return {}
        raise ConfigError(f"{shown}: config file not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{shown}: invalid config: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot read config: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{shown}: invalid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{shown}: the top level must be a mapping of profile names")
    data = dict(data)
    schema = collect_settings()
    for key, value in data.items():
        if key == "sync":
            _check_sync(shown, value)
        elif value is not None and not isinstance(value, Mapping):
            hint = f" ({key!r} is a setting)" if key in schema else ""
            raise ConfigError(
                f"{shown}: top-level key {key!r} is not a profile{hint}: "
                "put settings under a profile name such as 'default:'"
            )
    _warn_if_exposed(path, shown, data, schema)
    return data


def _check_sync(shown: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise ConfigError(f"{shown}: 'sync' must be a mapping (url, username, password, auto)")
    for key, item in value.items():
        setting = SYNC_SETTINGS.get(key) if isinstance(key, str) else None
        problem = _unknown(key, SYNC_SETTINGS) if setting is None else check_value(key, setting, item)
        if problem:
            raise ConfigError(f"{shown}: sync: {problem}")


def holds_secret(value: Any) -> bool:
    """Return True if a secret key's value really holds a secret (a URL only with a password)."""
    if not value:
        return False
    if isinstance(value, str) and "://" in value:
        try:
            return bool(urlsplit(value).password)
        except ValueError:
            return True
    return True


def secrets_in(data: Mapping[str, Any], schema: Mapping[str, Setting] | None = None) -> list[str]:
    """Given a parsed config file, return the names of the secrets it holds (``profile.key``)."""
    schema = collect_settings() if schema is None else schema
    found = []
    for profile, raw in data.items():
        if not isinstance(raw, Mapping):
            continue
        table = SYNC_SETTINGS if profile == "sync" else schema
        for key, value in raw.items():
            setting = table.get(key) if isinstance(key, str) else None
            if setting is not None and setting.secret and holds_secret(value):
                found.append(f"{profile}.{key}")
    return found


def _warn_if_exposed(path: Path, shown: str, data: Mapping[str, Any], schema: Mapping[str, Setting]) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    if not mode & 0o077 or str(path) in _warned:
        return
    secrets = secrets_in(data, schema)
    if secrets:
        _warned.add(str(path))
        log.warning(
            "%s holds secrets (%s) and other users can read it (mode %04o): run chmod 600 %s",
            shown, ", ".join(secrets), mode, shown,
        )


def write_config(data: Mapping[str, Any], config: str | os.PathLike[str] | None = None) -> Path:
    """Given the whole config mapping, write it as YAML; return the path written.

    The file is written atomically with mode 0600: a temp file in the same directory,
    fsynced, then renamed over the old one (a symlinked config is followed, so the link
    stays).  On any error the existing file is left untouched; raise ConfigError.
    Comments of the old file are not kept.
    """
    import yaml

    path = config_path(config)
    target = Path(os.path.realpath(path))
    body = yaml.safe_dump(dict(data), default_flow_style=False, sort_keys=False, allow_unicode=True)
    text = "# bakthat configuration (docs/configuration.md); written by bakthat configure\n" + body
    from bakthat.atomic import save_file

    try:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with save_file(target, prefix=f".{target.name}.", suffix=".tmp", mode=0o600) as handle:
            handle.write(text.encode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{display_path(path)}: cannot write config: {exc.strerror or exc}; the file was not changed") from None
    return target


def update_profile(
    profile: str,
    changes: Mapping[str, Any] | None = None,
    unset: Iterable[str] = (),
    config: str | os.PathLike[str] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Given a profile name, keys to set and keys to remove, rewrite the config file.

    ``changes`` maps keys (``rotation.days`` sets a sub-key of a mapping) to values;
    the profile is created if missing; other profiles and ``sync:`` are kept.  The new
    profile is validated before anything is written.  Return ``(path, new profile)``.
    Raise ConfigError (nothing written) if the file cannot be parsed or the result is
    invalid.
    """
    path = config_path(config)
    shown = display_path(path)
    if profile == "sync":
        raise ConfigError(f"{shown}: 'sync' is the sync server's section, not a profile")
    data = load_config(config, create=True)
    new = dict(data.get(profile) or {})
    for key, value in (changes or {}).items():
        if "." in key:
            parent, sub = key.split(".", 1)
            mapping = dict(new.get(parent) or {})
            mapping[sub] = value
            new[parent] = mapping
        else:
            new[key] = value
    for key in unset:
        if "." in key:
            parent, sub = key.split(".", 1)
            if isinstance(new.get(parent), Mapping):
                mapping = dict(new[parent])
                mapping.pop(sub, None)
                new[parent] = mapping
        else:
            new.pop(key, None)
    problems = profile_problems(new)
    if problems:
        raise ConfigError("\n".join(f"{shown}: profile {profile!r}: {problem}" for problem in problems))
    data[profile] = new
    return write_config(data, config), new


def check_config(config: str | os.PathLike[str] | None = None) -> list[str]:
    """Return one message per problem in every profile of the config file (empty: valid)."""
    path = config_path(config)
    shown = display_path(path)
    try:
        data = load_config(config)
    except ConfigError as exc:
        return [str(exc)]
    problems = []
    for name, raw in data.items():
        if name == "sync" or raw is None:
            continue
        problems += [f"{shown}: profile {name!r}: {problem}" for problem in profile_problems(raw)]
        effective = {**DEFAULTS, **raw}
        if raw.get("compress") is False and "compression" not in raw:
            effective["compression"] = "none"
        problems += [f"{shown}: profile {name!r}: {problem}" for problem in _required_problems(effective)]
        problems += [f"{shown}: profile {name!r}: {problem}" for problem in combination_problems(effective)]
    return problems


# -- profiles ---------------------------------------------------------------------------


def _required_problems(settings: Mapping[str, Any], schema: Mapping[str, Setting] | None = None) -> list[str]:
    schema = collect_settings() if schema is None else schema
    destination = settings.get("default_destination") or DEFAULT_DESTINATION
    return [
        f"key {name!r} is required when the destination is {destination}"
        for name, setting in schema.items()
        if destination in setting.required_for and settings.get(name) in (None, "")
    ]


def get_profile(
    profile: str = "default",
    config: str | os.PathLike[str] | None = None,
    conf: Mapping[str, Any] | None = None,
) -> Settings:
    """Given a profile name, a config path and an optional ``conf`` dict, return settings.

    The result (a read-only mapping, :class:`bakthat.settings.Settings`, that also
    knows its ``profile``, ``source``, ``raw`` profile and ``destination``) is the defaults of every declared key, updated with the profile (from
    ``conf`` when given, else from the file) and then with environment overrides.
    ``conf`` may be a flat profile (the developer guide's form) or a mapping of profile
    names.  Raise ConfigError naming the source, the profile and the key if a named
    (non-default) profile does not exist, or the profile or an environment variable
    has an unknown key, a wrong type or a missing required value.
    """
    schema = collect_settings()
    if conf is not None:
        if not isinstance(conf, Mapping):
            raise ConfigError("conf= must be a dict of settings")
        nested = conf.get(profile)
        raw = dict(nested) if isinstance(nested, Mapping) else dict(conf)
        source = "conf="
    else:
        data = load_config(config)
        source = display_path(config_path(config))
        if profile in data and profile != "sync":
            raw = dict(data[profile] or {})
        elif profile == "default":
            raw = {}
        else:
            known = ", ".join(sorted(str(k) for k in data if k != "sync")) or "none"
            raise ConfigError(f"{source}: no profile {profile!r} (profiles: {known})")
    problems = profile_problems(raw, schema)
    if problems:
        raise ConfigError("\n".join(f"{source}: profile {profile!r}: {problem}" for problem in problems))
    settings = {name: copy.deepcopy(setting.default) for name, setting in schema.items()}
    settings.update({key: value for key, value in raw.items() if value is not None})
    from_env = set()
    for variable, key in env_overrides(schema).items():
        text = os.environ.get(variable)
        if text:
            try:
                settings[key] = coerce_text(key, text, schema)
            except ConfigError as exc:
                raise ConfigError(f"environment variable {variable}: {exc}") from None
            from_env.add(key)
    if settings.get("compress") is False and "compression" not in raw and "compression" not in from_env:
        settings["compression"] = "none"
    problems = _required_problems(settings, schema) + combination_problems(settings)
    if problems:
        raise ConfigError("\n".join(f"{source}: profile {profile!r}: {problem}" for problem in problems))
    from bakthat.settings import Settings

    return Settings(settings, profile=profile, source=source, raw=raw)


def public_view(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Given resolved settings, return them for display: secrets masked."""
    schema = collect_settings()
    shown = {}
    for key, value in settings.items():
        setting = schema.get(key)
        if setting is not None and setting.secret and value:
            value = "********"
        elif setting is not None and setting.display is not None and value:
            value = setting.display(value)
        shown[key] = value
    return shown
