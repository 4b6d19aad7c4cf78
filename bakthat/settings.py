"""Profile keys: :class:`Setting` declares one, :class:`Settings` holds a profile's resolved values.

A :class:`Setting` is a key's declaration (type, default, one line of help); the
declarations of bakthat's own keys are in :mod:`bakthat.conf` (the core) and
:mod:`bakthat.profile_keys` (everything else).  This module imports nothing heavy, so
that reading them costs nothing at start-up.

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

from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = ["Setting", "Settings", "profile_of", "source_of"]

#: The destination used when neither the caller nor the profile names one.
DEFAULT_DESTINATION = "local"


class Setting:
    """One profile key: its accepted type(s), default and one line of documentation.

    Profile keys are declared in dicts of name -> Setting: :data:`bakthat.conf.SETTINGS`
    for the core, :mod:`bakthat.profile_keys` for the keys of backends, sources,
    retention, jobs and the rest (each module that reads them exposes its dict as
    ``SETTINGS``), a third-party backend's module's ``SETTINGS``; validation and the
    configuration reference know every key from them.  Importable as
    ``bakthat.conf.Setting`` as well.

    ``choices`` restricts the value; ``secret`` marks a credential (never displayed,
    never accepted on a command line, and a config file holding one must not be
    readable by others); ``required_for`` names the destinations that cannot work
    without the key; ``keys`` lists the sub-keys a mapping value may hold; ``check``
    is called with a value of the right type and returns what is wrong with it (or
    None); ``display`` returns how ``configure --show`` prints a value that is not
    secret but should not be shown whole (a URL whose path is a token).

    Read-only, compared by value; :meth:`replace` returns a changed copy.  A plain class
    rather than a dataclass: :mod:`dataclasses` imports :mod:`inspect`, about 8 ms that
    every ``bakthat`` command would pay before reading its profile.
    """

    __slots__ = ("types", "default", "help", "choices", "secret", "required_for", "keys", "check", "display")

    types: type | tuple[type, ...]
    default: Any
    help: str
    choices: tuple[Any, ...] | None
    secret: bool
    required_for: tuple[str, ...]
    keys: tuple[str, ...] | None
    check: Callable[[Any], str | None] | None
    display: Callable[[Any], Any] | None

    def __init__(
        self,
        types: type | tuple[type, ...],
        default: Any,
        help: str,
        choices: tuple[Any, ...] | None = None,
        secret: bool = False,
        required_for: tuple[str, ...] = (),
        keys: tuple[str, ...] | None = None,
        check: Callable[[Any], str | None] | None = None,
        display: Callable[[Any], Any] | None = None,
    ) -> None:
        values = (types, default, help, choices, secret, required_for, keys, check, display)
        for name, value in zip(self.__slots__, values):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a Setting is read-only (cannot set {name!r}); use replace()")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"a Setting is read-only (cannot delete {name!r})")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return self._values() == other._values() if type(other) is Setting else NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"Setting({fields})"

    def replace(self, **changes: Any) -> Setting:
        """Return a copy with ``changes`` (field name -> value) applied.  Raise TypeError
        naming an unknown field."""
        unknown = sorted(set(changes) - set(self.__slots__))
        if unknown:
            raise TypeError(f"Setting has no field {', '.join(unknown)}")
        return Setting(**{name: changes.get(name, getattr(self, name)) for name in self.__slots__})


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
