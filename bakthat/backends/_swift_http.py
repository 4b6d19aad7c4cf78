"""Swift's HTTP side, shared by the backend and its upload half: statuses, retries, errors.

:mod:`bakthat.backends.swift` (the backend, its reads) and
:mod:`bakthat.backends._swift_upload` (segments, manifests) both import this module, and
neither imports the other's at run time, so there is no import cycle.
"""

from __future__ import annotations

from bakthat.backends._retry import is_transient
from bakthat.errors import AlreadyExistsError, ConfigError, IntegrityError, NotFoundError, StorageError

#: The object metadata header holding the SHA-256 bakthat computed while uploading.
SHA256_HEADER = "x-object-meta-bakthat-sha256"


def status_of(exc: BaseException) -> int:
    """Return the HTTP status of a swiftclient ClientException, else 0."""
    return int(getattr(exc, "http_status", 0) or 0)


def transient(exc: BaseException) -> bool:
    """Return True for a failure worth another attempt: a broken connection, a timeout,
    408/429/498, a 5xx, or 422 (the bytes were damaged in transit; we still hold them)."""
    status = status_of(exc)
    if status in (408, 422, 429, 498) or status >= 500:
        return True
    if type(exc).__name__ == "ClientException":
        return status == 0 and "timed out" in str(exc).lower()
    return is_transient(exc) or any(cls.__name__ in ("RequestException", "Timeout", "OSError") for cls in type(exc).__mro__)


class Cancelled(Exception):
    """A request skipped because its upload is being aborted (never retried)."""


def translate_error(exc: BaseException, action: str, what: str) -> BaseException:
    """Given a swiftclient (or connection) exception, return the bakthat error to raise.

    Messages name the action, the object and the HTTP status; never a credential.
    """
    if isinstance(exc, (StorageError, NotFoundError, ConfigError, IntegrityError)):
        return exc
    status = status_of(exc)
    if status == 404:
        return NotFoundError(f"{action} {what}: not found (404)")
    if status == 412:
        return AlreadyExistsError(f"{action} {what}: the object exists ({status}); nothing was replaced")
    if status in (401, 403):
        return StorageError(f"{action} {what}: access denied ({status}); check auth_url, access_key and secret_key")
    if status == 422:
        return IntegrityError(f"{action} {what}: Swift found the data damaged in transit (422), even after retries")
    text = str(exc)
    if "keystoneclient" in text:
        return ConfigError("auth_version 2 and 3 need python-keystoneclient: pip install python-keystoneclient")
    if status:
        return StorageError(f"{action} {what} failed (HTTP {status})")
    return StorageError(f"{action} {what} failed ({type(exc).__name__}); cannot reach Swift?")


def timestamp(head: dict[str, str]) -> float | None:
    try:
        return float(head["x-timestamp"])
    except (KeyError, ValueError):
        return None


def listing_time(text: str | None) -> float | None:
    """Given a container listing's ``last_modified`` (ISO, UTC, no zone), return Unix time."""
    if not text:
        return None
    from datetime import datetime, timezone

    try:
        return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None
