"""The profile keys of backends, sources, retention, jobs, hooks and levels, declared in one light module.

Reading a profile validates it against every declared key (:func:`bakthat.conf.collect_settings`),
so the declarations must be readable without importing what uses the keys: the S3,
Glacier and Swift backends, the database sources, jobs and hooks would bring in their
dependencies (peewee, subprocess, thread pools; boto3 is imported later still) for a
``bakthat show``.  So the declarations live here, importing nothing but
:class:`bakthat.settings.Setting`, and each module that reads the keys exposes its
dict as ``SETTINGS`` (``bakthat.backends.s3.SETTINGS is profile_keys.S3``).  The core
keys stay in :data:`bakthat.conf.SETTINGS`; a third-party backend declares its keys in
its own module's ``SETTINGS``.

A check or display function that needs its module's code is named here
(:func:`_deferred`) and imported when a value is checked or shown, never when the
declarations are read.  Adding a key: declare it here, in the dict of the module that
reads it, and document it in docs/configuration.md (tests/commands/test_docs.py checks).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from bakthat.settings import Setting


def _deferred(module: str, name: str, convert: Callable[[Any], Any] | None = None) -> Callable[[Any], Any]:
    """Given a module, a function of it and an optional conversion of the argument,
    return a function that imports the module when first called and calls the function."""

    def call(value: Any) -> Any:
        function = getattr(importlib.import_module(module), name)
        return function(value if convert is None else convert(value))

    call.__qualname__ = call.__name__ = f"{module}.{name}"
    return call


#: S3 storage classes (``storage_class``; the archive classes are :data:`GLACIER_CLASSES`).
STORAGE_CLASSES = (
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "GLACIER_IR",
    "DEEP_ARCHIVE",
    "EXPRESS_ONEZONE",
)
CHECKSUM_ALGORITHMS = ("CRC32", "SHA256", "SHA1", "MD5", "none")
GLACIER_CLASSES = ("GLACIER", "DEEP_ARCHIVE", "GLACIER_IR")
GLACIER_MODES = ("auto", "s3", "vault")
RETRIEVAL_TIERS = ("Expedited", "Standard", "Bulk")
#: Default timeout (seconds) and kept output (KiB) of a command hook.
HOOK_TIMEOUT = 300.0
HOOK_OUTPUT_KIB = 64
#: What ``level:`` (and ``--level``) accepts: auto and :data:`bakthat.index_records.LEVELS`.
LEVEL_REQUESTS: tuple[str, ...] = ("auto", "full", "diff", "incr")

# -- backends (bakthat.backends.*) ------------------------------------------------------

#: The keys of :mod:`bakthat.backends.aws`.
AWS: dict[str, Setting] = {
    "access_key": Setting(str, None, "AWS access key id; leave unset to use the AWS credential chain (env, ~/.aws, instance role)"),
    "secret_key": Setting(str, None, "AWS secret access key (only with access_key)"),
    "session_token": Setting(str, None, "AWS session token for temporary credentials"),
    "aws_profile": Setting(str, None, "named profile of ~/.aws/config and ~/.aws/credentials to use"),
    "s3_retry_mode": Setting(str, "standard", "botocore retry mode", ("standard", "adaptive", "legacy")),
    "s3_max_attempts": Setting(int, 5, "attempts per request (botocore) and per part (bakthat)"),
    "s3_verify": Setting((bool, str), True, "verify TLS certificates: true, false, or a CA bundle path"),
}

#: The keys of :mod:`bakthat.backends.glacier`.
GLACIER: dict[str, Setting] = {
    "glacier_mode": Setting(str, "auto", "auto (vault API if glacier_vault is set, else S3), s3 or vault", GLACIER_MODES),
    "glacier_storage_class": Setting(str, "GLACIER", "S3 archive class of destination glacier", GLACIER_CLASSES),
}

#: The keys of :mod:`bakthat.backends.retrieval`.
RETRIEVAL: dict[str, Setting] = {
    "retrieval_tier": Setting(str, "Standard", "speed (and price) of archive retrievals", RETRIEVAL_TIERS),
    "retrieval_days": Setting(int, 3, "days a restored copy of an S3 archive stays readable"),
    "retrieval_wait": Setting(bool, False, "restore waits for retrievals (as --wait) instead of returning"),
    "retrieval_poll_interval": Setting((int, float), 300, "seconds between checks while waiting for a retrieval"),
    "retrieval_wait_timeout": Setting((int, float), 172800, "give up waiting for a retrieval after this many seconds"),
}

#: The keys of :mod:`bakthat.backends.s3`.
S3: dict[str, Setting] = {
    "s3_bucket": Setting(str, None, "S3 bucket holding the backups (created on first upload if missing)"),
    "s3_prefix": Setting(str, "", "key prefix ('folder') inside the bucket, e.g. backups/host1"),
    "endpoint_url": Setting(str, None, "S3-compatible endpoint (https://minio.example:9000); default: AWS, or $AWS_ENDPOINT_URL"),
    "storage_class": Setting(str, None, "S3 storage class of archives (default: the bucket's, STANDARD)", STORAGE_CLASSES),
    "part_size": Setting((int, str), "5MiB", "multipart part size (bytes, or 8MiB, 64MB...; 5 MiB to 5 GiB)"),
    "concurrency": Setting(int, 4, "parts uploaded at once; memory is about (concurrency + 1) * part_size"),
    "checksum_mode": Setting(
        str,
        "when_supported",
        "when botocore adds/validates CRC checksums: when_supported (AWS) or when_required (stores that reject the new headers)",
        ("when_supported", "when_required"),
    ),
    "checksum_algorithm": Setting(
        str, None, "per-part checksum S3 verifies (default CRC32, or MD5 with checksum_mode when_required)", CHECKSUM_ALGORITHMS
    ),
    "sse": Setting(str, None, "server-side encryption", ("AES256", "aws:kms", "aws:kms:dsse")),
    "sse_kms_key_id": Setting(str, None, "KMS key id or ARN for sse aws:kms"),
    "s3_create_bucket": Setting(bool, True, "create the bucket on first upload if it does not exist"),
    "s3_abort_incomplete_days": Setting(
        int, 7, "on a bucket bakthat creates, a lifecycle rule aborting incomplete multipart uploads after N days (0: none)"
    ),
    "s3_addressing_style": Setting(str, None, "bucket addressing: path, virtual or auto (default path with endpoint_url)", ("auto", "path", "virtual")),
    "s3_conditional_writes": Setting(
        bool, True, "use If-None-Match/If-Match so nothing is ever overwritten by accident; off for stores that reject them"
    ),
    "s3_tagging": Setting(bool, True, "record a multipart object's SHA-256 as an object tag (off for stores without tagging)"),
}

#: The keys of :mod:`bakthat.backends.swift`.
SWIFT: dict[str, Setting] = {
    "auth_url": Setting(str, None, "Swift authentication URL (0.6 key): .../auth/v1.0, or a Keystone .../v2.0 or .../v3", required_for=("swift",)),
    "auth_version": Setting((str, int), "1", "Swift authentication version (0.6 key): 1, 2 or 3"),
    "swift_container": Setting(str, None, "Swift container of the backups (default: s3_bucket, as 0.6); created if missing"),
    "swift_segment_container": Setting(str, None, "container of large objects' segments (default: <container>_segments)"),
    "swift_segment_size": Setting((int, str), "32MiB", "Swift segment size (1 MiB to 5 GiB); memory is at most about (swift_concurrency + 2) * this"),
    "swift_concurrency": Setting(int, 2, "Swift segments uploaded at once"),
    "swift_retries": Setting(int, 5, "attempts per Swift request (connection errors, timeouts, 5xx)"),
    "swift_timeout": Setting((int, float), 60, "seconds without an answer before a Swift request is retried"),
    "swift_insecure": Setting(bool, False, "do not verify Swift's TLS certificate (0.6 never did; avoid)"),
    "swift_cacert": Setting(str, None, "CA bundle verifying Swift's and Keystone's TLS certificates"),
    "swift_tenant_name": Setting(str, None, "Keystone v2 tenant (default: the part of access_key before ':')"),
    "swift_project_name": Setting(str, None, "Keystone v3 project name (default: the part of access_key before ':')"),
    "swift_project_id": Setting(str, None, "Keystone v3 project id"),
    "swift_project_domain_name": Setting(str, None, "Keystone v3 project domain name (e.g. Default)"),
    "swift_project_domain_id": Setting(str, None, "Keystone v3 project domain id"),
    "swift_user_domain_name": Setting(str, None, "Keystone v3 user domain name (e.g. Default)"),
    "swift_user_domain_id": Setting(str, None, "Keystone v3 user domain id"),
    "swift_region_name": Setting(str, None, "Keystone region of the object-store endpoint"),
    "swift_endpoint_type": Setting(str, None, "Keystone endpoint interface", ("publicURL", "internalURL", "adminURL", "public", "internal", "admin")),
    "swift_temp_url_key": Setting(str, None, "the account's temp URL key: url() then gives signed, expiring URLs", secret=True),
}

#: The keys of :mod:`bakthat.backends.vault`.
VAULT: dict[str, Setting] = {
    "glacier_vault": Setting(str, None, "legacy Glacier vault name: when set, destination glacier uses the vault API"),
    "glacier_endpoint_url": Setting(str, None, "Glacier vault API endpoint (default AWS, or $AWS_ENDPOINT_URL)"),
    "vault_part_size": Setting((int, str), "16MiB", "vault multipart part size: a power of two from 1 MiB to 4 GiB"),
    "vault_chunk_size": Setting((int, str), "4MiB", "vault download range size (a multiple of 1 MiB)"),
}

# -- the rest ----------------------------------------------------------------------------

#: The keys of :mod:`bakthat.rotation`.
ROTATION: dict[str, Setting] = {
    "rotation": Setting(
        dict,
        None,
        "retention policy of rotate_backups: days, weeks, months, years, hours, minutes, seconds, "
        "first_week_day (0=Monday..6=Sunday, default 5), keep (newest|oldest), keep_last, pin_tag",
    ),
}

#: The keys of :mod:`bakthat.heartbeat`.
HEARTBEAT: dict[str, Setting] = {
    "heartbeat_url": Setting(
        str, None,
        "URL requested after each bakthat backup; /fail is appended on failure ({status} and {key} are replaced)",
        display=_deferred("bakthat.heartbeat", "redact", str),
    ),
}

#: The keys of :mod:`bakthat.passwords`.
PASSWORDS: dict[str, Setting] = {
    "password_file": Setting(str, None, "file holding the password for backup, restore and KeyValue (its final newline is dropped)"),
    "password_command": Setting(
        (str, list), None,
        "command printing the password on stdout: an argv list, or a string split as a shell would (run without a shell)",
    ),
    "require_encryption": Setting(
        bool, None,
        "true: refuse to store a backup that would not be encrypted; false: store unencrypted backups without a warning",
    ),
}

#: The keys of :mod:`bakthat.jobs`.
JOBS: dict[str, Setting] = {
    "jobs": Setting(dict, {}, "backup jobs run by `bakthat run`: sources, destination, tags, rotation, hooks "
                    "(see docs/jobs.md)", check=_deferred("bakthat.jobs", "_jobs_problem"),
                    display=_deferred("bakthat.jobs", "_masked")),
    "hooks": Setting(dict, {}, "command hooks around every plain `bakthat backup` of this profile "
                     "(before, after, on_error, finally; see docs/jobs.md)", check=_deferred("bakthat.jobs", "_hooks_problem")),
}

#: The keys of :mod:`bakthat.hooks.command`.
HOOKS: dict[str, Setting] = {
    "hook_timeout": Setting((int, float), HOOK_TIMEOUT, "default timeout of a command hook, in seconds"),
    "hook_output_kib": Setting(int, HOOK_OUTPUT_KIB, "KiB of a hook's output kept: the first and the last half"),
}

#: The keys of :mod:`bakthat.sources.postgresql`.
POSTGRESQL: dict[str, Setting] = {
    "postgresql_password": Setting(str, None, "password of PostgreSQL sources that give none themselves", secret=True),
}

#: The keys of :mod:`bakthat.sources.mysql`.
MYSQL: dict[str, Setting] = {
    "mysql_password": Setting(str, None, "password of MySQL/MariaDB sources that give none themselves", secret=True),
}

#: The keys of :mod:`bakthat.sources.sqlite`.
SQLITE: dict[str, Setting] = {
    "sqlite_temp_dir": Setting(str, None, "directory for the consistent copy of SQLite sources (default: temp dir)"),
}

#: The keys of :mod:`bakthat.levels`.
LEVELS: dict[str, Setting] = {
    "level": Setting(str, "full", "level of backups: full, diff, incr or auto (see docs/cli.md, backup)", LEVEL_REQUESTS),
    "full_every": Setting(
        (str, int), None, "level auto: a new full backup when the last full is this old (7D, 1M...)",
        check=_deferred("bakthat.levels", "_full_every_problem"),
    ),
    "max_chain": Setting(int, None, "level auto: a new full backup after this many backups on top of a full",
                         check=_deferred("bakthat.levels", "_max_chain_problem")),
}

#: Module that reads the keys -> its declarations, in the order :func:`bakthat.conf.settings_by_module`
#: collects them (a key declared twice takes the later declaration).
BY_MODULE: dict[str, dict[str, Setting]] = {
    "bakthat.backends.aws": AWS,
    "bakthat.backends.glacier": GLACIER,
    "bakthat.backends.retrieval": RETRIEVAL,
    "bakthat.backends.s3": S3,
    "bakthat.backends.swift": SWIFT,
    "bakthat.backends.vault": VAULT,
    "bakthat.rotation": ROTATION,
    "bakthat.heartbeat": HEARTBEAT,
    "bakthat.passwords": PASSWORDS,
    "bakthat.jobs": JOBS,
    "bakthat.hooks.command": HOOKS,
    "bakthat.sources.postgresql": POSTGRESQL,
    "bakthat.sources.mysql": MYSQL,
    "bakthat.sources.sqlite": SQLITE,
    "bakthat.levels": LEVELS,
}
