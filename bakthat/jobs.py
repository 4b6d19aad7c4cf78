"""Jobs as configured: the profile's ``jobs:`` and ``hooks:`` keys, validated when a profile loads.

A profile may declare::

    jobs:
      nightly:
        sources: [/etc, postgresql://postgres@127.0.0.1:5432/app, {command: [...], name: pool}]
        destination: s3          # optional: the profile's default_destination otherwise
        tags: nightly            # optional: a string or a list
        rotation: {days: 7, weeks: 4}   # optional: rotate each source that succeeded
        hooks: {before: [...], after: [...], on_error: [...], finally: [...]}
        encryption: {recipients: [age1...], password_file: ..., password_command: ...}
        require_encryption: true
    hooks:                       # around every plain `bakthat backup` of this profile
      before: [...]

:func:`parse_jobs` turns the mapping into :class:`Job` objects (sources through
:func:`bakthat.sources.parse`, hooks through :func:`bakthat.hooks.plan.parse_hooks`,
the rotation through :class:`bakthat.rotation.Policy`), raising ConfigError naming the
job and the key (``jobs.nightly.sources[2].url: ...``); the config loader prefixes the
file and the profile.  :mod:`bakthat.jobs_run` runs them.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bakthat import profile_keys
from bakthat.errors import ConfigError
from bakthat.hooks.plan import HookSet, parse_hooks
from bakthat.sources import Source

JOB_KEYS = ("sources", "destination", "tags", "rotation", "hooks", "encryption", "require_encryption")
#: ``encryption:`` keys of a job -> the profile key each one replaces for that job.
ENCRYPTION_KEYS = {
    "recipients": "encryption_recipients",
    "password_file": "password_file",
    "password_command": "password_command",
}


@dataclass(frozen=True)
class Job:
    """One validated job.  ``overrides`` are the profile keys the job replaces
    (``encryption_recipients``, ``password_file``, ``require_encryption``...)."""

    name: str
    sources: tuple[Source, ...]
    destination: str | None = None
    tags: str = ""
    rotation: Mapping[str, Any] | None = None
    hooks: HookSet = field(default_factory=HookSet)
    overrides: Mapping[str, Any] = field(default_factory=dict)


def _unknown(key: Any, known: tuple[str, ...], where: str) -> ConfigError:
    match = difflib.get_close_matches(str(key), known, n=1)
    hint = f" (did you mean {match[0]!r}?)" if match else f" (known keys: {', '.join(known)})"
    return ConfigError(f"{where}: unknown key {key!r}{hint}")


def _tags(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return " ".join(word for item in value for word in item.split())
    raise ConfigError(f"{where}: must be a string or a list of strings")


def _overrides(spec: Mapping[str, Any], where: str, default_timeout: float) -> dict[str, Any]:
    from bakthat.conf import check_value, collect_settings

    schema = collect_settings()
    overrides: dict[str, Any] = {}
    encryption = spec.get("encryption")
    if encryption is not None:
        if not isinstance(encryption, Mapping):
            raise ConfigError(f"{where}.encryption: must be a mapping of {', '.join(ENCRYPTION_KEYS)}")
        for key, value in encryption.items():
            if key not in ENCRYPTION_KEYS:
                raise _unknown(key, tuple(ENCRYPTION_KEYS), f"{where}.encryption")
            overrides[ENCRYPTION_KEYS[key]] = value
    if "require_encryption" in spec:
        overrides["require_encryption"] = spec["require_encryption"]
    for name, value in overrides.items():
        setting = schema.get(name)
        problem = None if setting is None else check_value(name, setting, value)
        if problem:
            shown = next((f"encryption.{key}" for key, target in ENCRYPTION_KEYS.items() if target == name), name)
            raise ConfigError(f"{where}.{shown}: {problem}")
    return overrides


def parse_job(name: str, spec: Any, where: str, default_timeout: float = 300.0) -> Job:
    """Given a job's name, its mapping as written and its place (``jobs.nightly``),
    return the Job.  Raise ConfigError naming the key for anything malformed: an unknown
    key, no sources, a bad source, hook or rotation, two sources with one backup name."""
    from bakthat import sources
    from bakthat.rotation import Policy

    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: a job is a mapping with sources (and destination, tags, rotation, hooks...)")
    for key in spec:
        if key not in JOB_KEYS:
            raise _unknown(key, JOB_KEYS, where)
    items = spec.get("sources")
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{where}.sources: give a list of one or more sources")
    parsed = tuple(sources.parse(item, f"{where}.sources[{index}]") for index, item in enumerate(items))
    for index, source in enumerate(parsed):
        parse_hooks(source.hooks, f"{where}.sources[{index}].hooks", default_timeout)
        earlier = next((i for i, other in enumerate(parsed[:index]) if other.name == source.name), None)
        if earlier is not None:
            raise ConfigError(
                f"{where}.sources[{index}]: backup name {source.name!r} is already used by sources[{earlier}]; "
                "give one of them a name:"
            )
    destination = spec.get("destination")
    if destination is not None and (not isinstance(destination, str) or not destination):
        raise ConfigError(f"{where}.destination: must be a destination name")
    rotation = spec.get("rotation")
    if rotation is not None:
        if not isinstance(rotation, Mapping):
            raise ConfigError(f"{where}.rotation: must be a mapping (days, weeks, months...)")
        try:
            Policy.from_mapping(rotation, f"{where}.rotation")
        except ConfigError as exc:
            raise ConfigError(str(exc)) from None
    return Job(
        name=name,
        sources=parsed,
        destination=destination,
        tags=_tags(spec.get("tags"), f"{where}.tags"),
        rotation=dict(rotation) if rotation is not None else None,
        hooks=parse_hooks(spec.get("hooks"), f"{where}.hooks", default_timeout),
        overrides=_overrides(spec, where, default_timeout),
    )


def parse_jobs(spec: Any, default_timeout: float = 300.0) -> dict[str, Job]:
    """Given a profile's ``jobs:`` mapping (or None), return ``{name: Job}`` in declaration order.

    Raise ConfigError naming the job and key (see :func:`parse_job`).
    """
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        raise ConfigError("jobs: must be a mapping of job names")
    jobs = {}
    for name, job in spec.items():
        if not isinstance(name, str) or not name or "/" in name:
            raise ConfigError(f"jobs: {name!r} cannot be a job name")
        jobs[name] = parse_job(name, job, f"jobs.{name}", default_timeout)
    return jobs


def _jobs_problem(value: Any) -> str | None:
    try:
        parse_jobs(value)
    except ConfigError as exc:
        return f"is invalid: {exc}"
    return None


def _hooks_problem(value: Any) -> str | None:
    try:
        parse_hooks(value, "hooks")
    except ConfigError as exc:
        return f"is invalid: {exc}"
    return None


def _masked(value: Any) -> Any:
    """Return ``jobs:`` as ``configure --show`` prints it: passwords of sources masked."""
    from bakthat.process import redact

    if isinstance(value, Mapping):
        return {key: ("********" if key == "password" and item else _masked(item)) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item) for item in value]
    if isinstance(value, str):
        return redact(value)
    return value


#: The profile keys read here, declared in :mod:`bakthat.profile_keys` (read without importing this module).
SETTINGS = profile_keys.JOBS
