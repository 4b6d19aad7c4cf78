"""Keep credentials out of log records, including those of botocore and urllib3.

At DEBUG, botocore logs whole prepared requests (their ``Authorization`` header names
the access key id; a session token travels in ``X-Amz-Security-Token``) and presigned
URLs carry ``X-Amz-Credential``.  :func:`protect` registers the secrets of a client
being built and puts one :class:`RedactingFilter` on every logger of the libraries that
may see them; the filter rewrites each record's message before any handler formats it.

A logger's filters only see records logged on that very logger, not those of its
children, so the filter is attached to each existing logger under the watched
prefixes; :func:`protect` runs again at every client creation to catch new ones.
"""

from __future__ import annotations

import logging
import re
import threading

WATCHED_PREFIXES = ("botocore", "boto3", "s3transfer", "urllib3", "swiftclient", "bakthat")
MASK = "***"

_PATTERNS = [
    re.compile(r"(Credential=)[^/,\s'\"&]+", re.IGNORECASE),
    re.compile(r"(X-Amz-Credential=)[^/%&\s'\"]+", re.IGNORECASE),
    re.compile(r"(Signature=)[0-9a-f]{16,}", re.IGNORECASE),
    re.compile(r"(['\"]?X-Amz-Security-Token['\"]?\s*[:=]\s*b?['\"]?)[^'\"&\s,}]+", re.IGNORECASE),
    re.compile(r"(['\"]?Authorization['\"]?\s*:\s*b?['\"])[^'\"]+", re.IGNORECASE),
]


class RedactingFilter(logging.Filter):
    """Replace registered secrets and credential-bearing header values in log messages."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, *secrets: str | None) -> None:
        with self._lock:
            self._secrets.update(s for s in secrets if s and len(s) >= 4)

    def redact(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda match: match.group(1) + MASK, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is not ours to fix
            return True
        cleaned = self.redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


FILTER = RedactingFilter()


def protect(*secrets: str | None) -> None:
    """Register ``secrets`` and attach the filter to every watched logger that exists now."""
    FILTER.add(*secrets)
    manager = logging.Logger.manager
    names = [name for name in list(manager.loggerDict) if name.split(".")[0] in WATCHED_PREFIXES]
    for name in [*WATCHED_PREFIXES, *names]:
        logger = logging.getLogger(name)
        if FILTER not in logger.filters:
            logger.addFilter(FILTER)
