"""What the S3 and Glacier vault backends share: AWS credentials, sessions, clients, errors.

:class:`AwsConfig` is built once from the profile (the keys declared in :data:`SETTINGS`
plus the core's ``region_name``); :func:`aws_session` and :func:`aws_client` turn it
into boto3 objects; :func:`translate_error` turns a boto3/botocore failure into the
bakthat error (and exit code) to raise.  Every secret resolved is registered with the
log redaction filter.  boto3 is imported only when a session is first built.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bakthat.backends import _redact
from bakthat.backends._config import positive_int, setting_value
from bakthat.backends._retry import error_code, http_status
from bakthat import profile_keys
from bakthat.errors import (
    AlreadyExistsError,
    ConfigError,
    IntegrityError,
    NotFoundError,
    RetrievalPendingError,
    StorageError,
)

log = logging.getLogger("bakthat.backends")

#: The profile keys read here, declared in :mod:`bakthat.profile_keys` (read without importing this module).
SETTINGS = profile_keys.AWS


def explicit_region(settings: Mapping[str, Any]) -> str | None:
    """Return the profile's region_name if the user set it; None lets boto3 find one.

    Resolved settings carry the core default (us-east-1) for every profile, so the raw
    profile (the ``raw`` attribute of a resolved Settings object, or its older ``_raw``
    key) tells whether the user wrote the key; a plain dict given to a backend directly
    has neither: a region_name in it is the user's.
    """
    raw = getattr(settings, "raw", None)
    if raw is None:
        raw = settings.get("_raw")
    region = settings.get("region_name")
    if region and (raw is None or "region_name" in raw):
        return str(region)
    return None


@dataclass(frozen=True)
class AwsConfig:
    """The AWS side of a profile: credentials, region, retries and TLS verification."""

    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    profile: str | None = None
    #: The region the user set, or None (boto3's own, else us-east-1).
    region: str | None = None
    retry_mode: str = "standard"
    max_attempts: int = 5
    verify: bool | str = True

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> AwsConfig:
        """Given profile settings, return their AWS config.  Raise ConfigError if only one
        of access_key and secret_key is set, or s3_max_attempts is below 1."""

        def value(name: str) -> Any:
            return setting_value(settings, SETTINGS, name)

        access_key, secret_key = value("access_key"), value("secret_key")
        if bool(access_key) != bool(secret_key):
            raise ConfigError("set both access_key and secret_key, or neither (to use the AWS credential chain)")
        return cls(
            access_key=access_key,
            secret_key=secret_key,
            session_token=value("session_token"),
            profile=value("aws_profile"),
            region=explicit_region(settings),
            retry_mode=str(value("s3_retry_mode")),
            max_attempts=positive_int("s3_max_attempts", value("s3_max_attempts")),
            verify=value("s3_verify"),
        )


def aws_session(config: AwsConfig) -> Any:
    """Given an AWS config, return a boto3 Session.

    The config's access_key/secret_key (and session_token) when set, else the AWS
    credential chain: environment, ``aws_profile`` or the default shared files, SSO,
    container and instance roles.  The region is the config's when set, else boto3's
    (AWS_DEFAULT_REGION, ~/.aws/config), else us-east-1.  Raise ConfigError if the
    named AWS profile does not exist.
    """
    import boto3

    _redact.protect(config.access_key, config.secret_key, config.session_token)
    arguments = {
        "aws_access_key_id": config.access_key,
        "aws_secret_access_key": config.secret_key,
        "aws_session_token": config.session_token,
        "profile_name": config.profile,
    }
    try:
        session = boto3.session.Session(region_name=config.region, **arguments)
        if session.region_name is None:
            session = boto3.session.Session(region_name="us-east-1", **arguments)
    except Exception as exc:
        if type(exc).__name__ == "ProfileNotFound":
            raise ConfigError(f"AWS profile {config.profile!r} not found in ~/.aws/config or ~/.aws/credentials") from None
        raise
    try:
        credentials = session.get_credentials()
        if credentials is not None:
            frozen = credentials.get_frozen_credentials()
            _redact.protect(frozen.access_key, frozen.secret_key, frozen.token)
    except Exception as exc:  # noqa: BLE001 - reported when a request needs them
        log.debug("AWS credentials not resolved yet (%s)", type(exc).__name__)
    return session


def aws_client(
    config: AwsConfig,
    service: str,
    *,
    endpoint_url: str | None = None,
    checksum_mode: str = "when_supported",
    addressing_style: str | None = None,
    pool: int = 10,
) -> Any:
    """Return a boto3 client for ``service`` with the config's credentials, retries and checksums.

    ``endpoint_url`` None lets botocore use AWS or ``$AWS_ENDPOINT_URL[_<SERVICE>]``;
    ``addressing_style`` None means path-style with an endpoint_url, else auto.
    """
    from botocore.config import Config

    session = aws_session(config)
    style = addressing_style or ("path" if endpoint_url else "auto")
    client_config = Config(
        retries={"mode": config.retry_mode, "max_attempts": config.max_attempts},
        request_checksum_calculation=checksum_mode,
        response_checksum_validation=checksum_mode,
        max_pool_connections=max(10, pool),
        connect_timeout=20,
        read_timeout=120,
        s3={"addressing_style": style},
        user_agent_extra="bakthat",
    )
    verify = None if config.verify is True else config.verify
    client = session.client(service, endpoint_url=endpoint_url, config=client_config, verify=verify)
    _redact.protect()  # attach the filter to loggers botocore created meanwhile
    return client


def translate_error(exc: BaseException, action: str, what: str) -> BaseException:
    """Given a boto3/botocore exception, return the bakthat error to raise instead.

    Messages name the action, the bucket/key and the service's error code; never a
    credential.
    """
    if isinstance(exc, (StorageError, NotFoundError, ConfigError, IntegrityError, RetrievalPendingError)):
        return exc
    code = error_code(exc)
    status = http_status(exc)
    name = type(exc).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"):
        return ConfigError(
            f"{action} {what}: no usable AWS credentials; set access_key and secret_key in the profile, "
            "or configure the AWS credential chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws/credentials, "
            "an instance or container role)"
        )
    if code in ("NoSuchKey", "NotFound", "404", "NoSuchBucket", "ResourceNotFoundException") or status == 404:
        return NotFoundError(f"{action} {what}: not found ({code or status})")
    if code == "InvalidObjectState":
        return RetrievalPendingError(
            f"{what} is in an archive storage class and has not been restored; "
            "`bakthat restore` requests the retrieval (see `bakthat retrievals`)"
        )
    if code in ("PreconditionFailed", "ConditionalRequestConflict") or status == 412:
        return AlreadyExistsError(f"{action} {what}: the object exists or changed meanwhile ({code or status})")
    if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled") or status == 403:
        return StorageError(f"{action} {what}: access denied ({code or status}); check the credentials and the bucket policy")
    if name == "FlexibleChecksumError" or code in ("BadDigest", "InvalidDigest"):
        return IntegrityError(f"{action} {what}: checksum mismatch ({code or name}); the data was damaged in transit")
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError", "ReadTimeoutError"):
        return StorageError(f"{action} {what}: cannot reach the store ({name})")
    detail = code or name
    return StorageError(f"{action} {what} failed ({detail})")


def to_epoch(value: Any) -> float | None:
    """Given a datetime from a boto3 response (or None), return its epoch seconds."""
    return value.timestamp() if hasattr(value, "timestamp") else None
