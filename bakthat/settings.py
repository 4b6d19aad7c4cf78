"""The resolved settings of one profile: a read-only mapping that knows where it came from.

:func:`bakthat.conf.get_profile` returns a :class:`Settings`: every declared key with
its value (defaults, then the profile, then ``BAKTHAT_*`` variables), readable as a
mapping (``settings["compression"]``, ``settings.get("s3_bucket")``, ``dict(settings)``)
as plugins and backends always read it, plus what used to travel as hidden keys:
:attr:`~Settings.profile` (the profile's name), :attr:`~Settings.source` (the config
file as shown in messages, or ``conf=``), :attr:`~Settings.raw` (the profile as
written, before defaults and environment) and :attr:`~Settings.destination` (the
destination used when none is given).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["Settings", "profile_of", "source_of"]

#: The destination used when neither the caller nor the profile names one.
DEFAULT_DESTINATION = "local"


class Settings(Mapping[str, Any]):
    """Given the resolved values and where they came from, a read-only mapping of them.

    Its ``repr`` names the profile and the source, never a value (values may be secrets).
    """

    __slots__ = ("_values", "profile", "source", "raw")

    def __init__(self, values: Mapping[str, Any], *, profile: str = "default", source: str = "conf=", raw: Mapping[str, Any] | None = None):
        self._values = dict(values)
        #: The profile's name (``default`` unless one was asked for).
        self.profile = profile
        #: Where the profile was read: the config file as shown in messages, or ``conf=``.
        self.source = source
        #: The profile as written (file or ``conf=``), without defaults or environment.
        self.raw: dict[str, Any] = dict(raw if raw is not None else values)

    @property
    def destination(self) -> str:
        """The destination used when none is given: ``default_destination``, else ``local``."""
        return str(self._values.get("default_destination") or DEFAULT_DESTINATION)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"<Settings of profile {self.profile!r} from {self.source}: {len(self._values)} keys>"

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with ``changes`` applied to the values (profile, source and raw kept)."""
        return Settings({**self._values, **changes}, profile=self.profile, source=self.source, raw=self.raw)


def profile_of(settings: Mapping[str, Any], default: str = "default") -> str:
    """Return the profile name of resolved settings (``default`` for a plain mapping)."""
    return settings.profile if isinstance(settings, Settings) else default


def source_of(settings: Mapping[str, Any], default: str = "the config file") -> str:
    """Return where resolved settings were read (``default`` for a plain mapping)."""
    return settings.source if isinstance(settings, Settings) else default
