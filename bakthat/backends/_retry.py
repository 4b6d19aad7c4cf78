"""Retries with capped exponential backoff and full jitter, for calls to remote stores.

botocore already retries single HTTP requests (its ``standard`` or ``adaptive`` mode);
this layer sits above it, around whole operations whose input we still hold (a part
of a multipart upload, a ranged read), so a connection that breaks after botocore gave
up, or in the middle of a streamed body, is retried too.  Nothing here imports boto3:
error classification looks at class names and duck-typed ``response`` attributes.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger("bakthat.backends")

T = TypeVar("T")

#: S3/Glacier error codes worth another attempt.
TRANSIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "PriorRequestNotComplete",
        "BadDigest",  # the bytes were damaged in transit: sending them again is the fix
        "XAmzContentSHA256Mismatch",
    }
)

#: Exception class names (botocore, urllib3, the standard library) that mean the
#: connection failed rather than the request being refused.
TRANSIENT_CLASS_NAMES = frozenset(
    {
        "ConnectionError",
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
        "ResponseStreamingError",
        "IncompleteReadError",
        "ProtocolError",
        "ConnectionResetError",
        "BrokenPipeError",
        "TimeoutError",
        "IncompleteRead",
        "HTTPClientError",
        "TransientError",
    }
)


class TransientError(Exception):
    """Raised by our own layers (and by tests' fault injection) for a retryable failure."""


def error_code(exc: BaseException) -> str:
    """Return the service error code of a botocore ClientError, else ``""``."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def http_status(exc: BaseException) -> int:
    """Return the HTTP status of a botocore ClientError, else 0."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return 0


def is_transient(exc: BaseException) -> bool:
    """Return True if ``exc`` is worth retrying: a broken connection, a timeout, a 5xx or throttling."""
    if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
        return False
    if error_code(exc) in TRANSIENT_CODES or http_status(exc) >= 500:
        return True
    return any(cls.__name__ in TRANSIENT_CLASS_NAMES for cls in type(exc).__mro__)


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts an operation gets and how long to wait between them."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 20.0

    def delay(self, attempt: int) -> float:
        """Return the wait before attempt ``attempt + 1`` (full jitter, capped)."""
        return random.uniform(0, min(self.max_delay, self.base_delay * (2**attempt)))


def call_with_retries(
    operation: Callable[[], T],
    what: str,
    policy: RetryPolicy = RetryPolicy(),
    retryable: Callable[[BaseException], bool] = is_transient,
    sleep: Callable[[float], Any] = time.sleep,
    stop: Callable[[], bool] | None = None,
) -> T:
    """Call ``operation`` until it succeeds, a non-retryable error occurs or attempts run out.

    ``what`` names the operation in log lines (never a secret).  ``stop`` is polled
    before each retry: when it returns True (another part failed, the user interrupted)
    the last error is raised at once.
    """
    attempt = 0
    while True:
        try:
            return operation()
        except BaseException as exc:
            attempt += 1
            if attempt >= policy.attempts or not retryable(exc) or (stop is not None and stop()):
                raise
            wait = policy.delay(attempt)
            log.debug("%s failed (%s: %s); retry %d/%d in %.1fs", what, type(exc).__name__, error_code(exc) or "", attempt, policy.attempts - 1, wait)
            sleep(wait)
