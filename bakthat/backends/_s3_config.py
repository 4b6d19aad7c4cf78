"""The S3 backend's typed config: the profile keys it reads, checked once, with defaults.

:data:`SETTINGS` (declared in :mod:`bakthat.profile_keys`) holds every key of
destination ``s3`` (and ``glacier`` without a vault); :class:`S3Config` is built from
them once, in the backend's constructor, and names the key in every ConfigError.
:mod:`bakthat.backends.s3` re-exports both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bakthat.backends._config import parse_size, positive_int, setting_value
from bakthat.backends._s3_transfer import MAX_PART_SIZE, MIN_PART_SIZE
from bakthat.backends.aws import AwsConfig
from bakthat.backends.retrieval import RetrievalConfig
from bakthat import profile_keys
from bakthat.errors import ConfigError

MiB = 1 << 20

STORAGE_CLASSES = profile_keys.STORAGE_CLASSES
#: Storage classes whose objects must be restored before they can be read.
ARCHIVE_CLASSES = ("GLACIER", "DEEP_ARCHIVE")
CHECKSUM_ALGORITHMS = profile_keys.CHECKSUM_ALGORITHMS

#: The profile keys read here, declared in :mod:`bakthat.profile_keys` (read without importing this module).
SETTINGS = profile_keys.S3


@dataclass(frozen=True)
class S3Config:
    """Everything the S3 backend reads from a profile, checked, with the defaults applied."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    storage_class: str | None = None
    part_size: int = 5 * MiB
    concurrency: int = 4
    checksum_mode: str = "when_supported"
    checksum_algorithm: str = "CRC32"
    sse: str | None = None
    sse_kms_key_id: str | None = None
    create_bucket: bool = True
    abort_incomplete_days: int = 7
    addressing_style: str | None = None
    #: Send If-None-Match/If-Match (off for stores that reject them).
    conditional_writes: bool = True
    tagging: bool = True
    aws: AwsConfig = field(default_factory=AwsConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], destination: str = "s3") -> S3Config:
        """Given profile settings, return the S3 config.  Raise ConfigError naming the key
        (and ``destination``) if one is missing or out of range."""

        def value(name: str) -> Any:
            return setting_value(settings, SETTINGS, name)

        bucket = value("s3_bucket")
        if not bucket:
            raise ConfigError(f"destination {destination} needs s3_bucket in the profile")
        prefix = str(value("s3_prefix")).strip("/")
        part_size = parse_size(value("part_size"), 0)
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ConfigError(f"part_size must be between 5 MiB and 5 GiB, not {part_size} bytes")
        checksum_mode = str(value("checksum_mode"))
        if checksum_mode not in ("when_supported", "when_required"):
            raise ConfigError("checksum_mode must be when_supported or when_required")
        algorithm = str(value("checksum_algorithm") or ("CRC32" if checksum_mode == "when_supported" else "MD5"))
        if algorithm not in CHECKSUM_ALGORITHMS:
            raise ConfigError(f"checksum_algorithm must be one of {', '.join(CHECKSUM_ALGORITHMS)}")
        storage_class = value("storage_class")
        if storage_class is not None and storage_class not in STORAGE_CLASSES:
            raise ConfigError(f"unknown storage_class {storage_class!r} (known: {', '.join(STORAGE_CLASSES)})")
        return cls(
            bucket=str(bucket),
            prefix=prefix + "/" if prefix else "",
            endpoint_url=value("endpoint_url"),
            storage_class=storage_class,
            part_size=part_size,
            concurrency=positive_int("concurrency", value("concurrency"), 1, 64),
            checksum_mode=checksum_mode,
            checksum_algorithm=algorithm,
            sse=value("sse"),
            sse_kms_key_id=value("sse_kms_key_id"),
            create_bucket=bool(value("s3_create_bucket")),
            abort_incomplete_days=positive_int("s3_abort_incomplete_days", value("s3_abort_incomplete_days"), 0),
            addressing_style=value("s3_addressing_style"),
            conditional_writes=bool(value("s3_conditional_writes")),
            tagging=bool(value("s3_tagging")),
            aws=AwsConfig.from_settings(settings),
            retrieval=RetrievalConfig.from_settings(settings),
        )
