"""Destination glacier: S3 archive storage classes by default, the vault API for existing vaults.

The vault-based Glacier service takes no new customers since December 2025, so
``destination: glacier`` stores archives in the profile's S3 bucket with the archive
storage class ``glacier_storage_class`` (GLACIER by default, or DEEP_ARCHIVE; GLACIER_IR
objects read at once).  Restoring an archived object is 0.6's two-step: the first
``restore`` requests a retrieval (tier ``retrieval_tier``: Expedited, Standard or Bulk)
and raises :class:`~bakthat.errors.RetrievalPendingError` saying so; a later ``restore``
downloads it once ready; ``wait=True`` (``--wait``) polls until it is.  Every retrieval
is recorded in the catalog table ``retrievals``; ``bakthat retrievals`` shows them.
The restore itself is the S3 backend's (:mod:`bakthat.backends.s3`), the bookkeeping
:mod:`bakthat.backends.retrieval`'s.

Small objects written with :meth:`Backend.put` (the manifests beside each archive) stay
in STANDARD, so the store's own description of each backup is readable without a
retrieval.

Existing vault users keep working: :meth:`Backend.from_settings` (the factory the
registry calls) returns a :class:`bakthat.backends.vault.VaultBackend` when the profile
has ``glacier_vault`` (and ``glacier_mode`` auto or vault).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from bakthat.backends import base, s3
from bakthat.backends._config import setting_value
from bakthat.backends.vault import VaultBackend
from bakthat import profile_keys
from bakthat.errors import ConfigError

GLACIER_CLASSES = profile_keys.GLACIER_CLASSES
MODES = profile_keys.GLACIER_MODES

#: The profile keys read here, declared in :mod:`bakthat.profile_keys` (read without importing this module).
SETTINGS = profile_keys.GLACIER


def use_vault(settings: Mapping[str, Any]) -> bool:
    """Return True if the profile selects the legacy vault API.  Raise ConfigError if
    glacier_mode is unknown, or is vault without glacier_vault."""
    mode = str(setting_value(settings, SETTINGS, "glacier_mode"))
    if mode not in MODES:
        raise ConfigError("glacier_mode must be auto, s3 or vault")
    if mode == "vault" and not settings.get("glacier_vault"):
        raise ConfigError("glacier_mode vault needs glacier_vault")
    return mode == "vault" or (mode == "auto" and bool(settings.get("glacier_vault")))


class Backend(s3.Backend):
    """Archives in an S3 bucket with an archive storage class (or, legacy, a Glacier vault)."""

    name = "glacier"

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> base.Backend:
        """Return the vault backend if the profile selects the vault API, else this one."""
        if use_vault(settings):
            return VaultBackend(settings)
        return cls(settings)

    def __init__(self, conf: Mapping[str, Any]):
        if use_vault(conf):
            raise ConfigError("this profile selects a Glacier vault: build destination glacier with Backend.from_settings")
        super().__init__(conf)
        archive_class = str(setting_value(conf, SETTINGS, "glacier_storage_class"))
        if archive_class not in GLACIER_CLASSES:
            raise ConfigError(f"glacier_storage_class must be one of {', '.join(GLACIER_CLASSES)}")
        self.archive_class = archive_class

    @property
    def legacy_backend_hash(self) -> str | None:
        """None: bakthat 0.6 wrote no glacier backup into an S3 bucket."""
        return None

    def storage_class_for(self, metadata: dict[str, str] | None) -> str | None:
        """Archives get the archive class; only an explicit STANDARD (put) is kept."""
        if (metadata or {}).get("storage_class") == "STANDARD":
            return "STANDARD"
        return self.archive_class

    def put(
        self,
        key: str,
        source: IO[bytes] | bytes,
        *,
        metadata: dict[str, str] | None = None,
        sha256: str | None = None,
        size: int | None = None,
    ) -> base.ObjectInfo:
        """Store a small side object (a manifest) in STANDARD so it reads without a retrieval."""
        metadata = {"storage_class": "STANDARD", **(metadata or {})}
        return super().put(key, source, metadata=metadata, sha256=sha256, size=size)
