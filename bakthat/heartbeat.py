"""Heartbeat pings: the successor of bakthat 0.6's BakManager periodic backups.

A profile's ``heartbeat_url`` (a healthchecks.io-style "ping URL", or any monitoring
service that watches for HTTP requests) is requested after each ``bakthat backup``:

- on success, the URL itself;
- on failure, the URL with ``/fail`` appended.

If the URL contains ``{status}``, it is replaced by ``success`` or ``fail`` instead of
appending anything (for services that take the status as a parameter).  If it contains
``{key}``, it is replaced by the backup's ``-k/--key``, and backups without a key send no
ping.  A ping never fails a backup: an error is a warning, and the URL's path and query
(which usually hold the check's secret token) never appear in messages.

The pings are sent by :class:`Subscriber`, a subscriber of the backup's events
(``on_backup``: success, or fail when the backup is partial; ``on_failure``: fail), which
the ``bakthat backup`` command subscribes for the time of the backup (:func:`subscribed`).
Python API users subscribe it the same way, use the heartbeat plugin, or call
:func:`ping` from their own ``on_backup`` / ``on_failure`` handlers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlsplit

from bakthat import profile_keys

log = logging.getLogger("bakthat")

#: The profile keys read here, declared in :mod:`bakthat.profile_keys` (read without importing this module).
SETTINGS = profile_keys.HEARTBEAT

STATUSES = ("success", "fail")


def redact(url: str) -> str:
    """Given a URL, return only its scheme and host, for messages (``https://hc-ping.com/…``)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    return f"{parts.scheme}://{host}{port}/…" if parts.scheme else "<invalid URL>"


def url_for(url: str, status: str, key: str | None = None) -> str | None:
    """Given a heartbeat URL template, a status and a backup key, return the URL to request.

    Return None when the template uses ``{key}`` and no key is given (no ping is due).
    """
    if status not in STATUSES:
        raise ValueError(f"unknown heartbeat status {status!r}: use one of {', '.join(STATUSES)}")
    if "{key}" in url:
        if not key:
            return None
        url = url.replace("{key}", quote(key, safe=""))
    if "{status}" in url:
        return url.replace("{status}", status)
    if status == "fail":
        parts = urlsplit(url)
        return parts._replace(path=parts.path.rstrip("/") + "/fail").geturl()
    return url


def ping(url: str, status: str, timeout: float = 10, key: str | None = None) -> bool:
    """Given a heartbeat URL, a status (``success`` or ``fail``) and a timeout, request it.

    Return True if the server answered with a 2xx status, False otherwise (after a
    warning that names only the URL's host).  Never raise for a network or HTTP error.
    """
    import urllib.error
    import urllib.request

    target = url_for(url, status, key)
    if target is None:
        log.debug("heartbeat_url needs a key and this backup has none: no ping")
        return False
    shown = redact(url)
    if urlsplit(target).scheme not in ("http", "https"):
        log.warning("heartbeat ping not sent: %s is not an http or https URL", shown)
        return False
    from bakthat import __version__

    request = urllib.request.Request(target, headers={"User-Agent": f"bakthat/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            code = response.status
    except urllib.error.HTTPError as exc:
        code = exc.code
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        log.warning("heartbeat ping (%s) to %s failed: %s", status, shown, _describe(reason))
        return False
    if not 200 <= code < 300:
        log.warning("heartbeat ping (%s) to %s failed: HTTP %d", status, shown, code)
        return False
    log.debug("heartbeat ping (%s) sent to %s", status, shown)
    return True


def _describe(reason: object) -> str:
    """Describe a network error without repeating a URL it may contain."""
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return type(reason).__name__ if "://" in str(reason) else str(reason)


class Subscriber:
    """The heartbeat as a subscriber of ``on_backup`` and ``on_failure``.

    Given resolved settings, the heartbeat URL and the backup's key, ping ``success``
    when a backup succeeds, ``fail`` when it is partial or fails (a failure of another
    action is not its business), and record the ping in the catalog
    (``heartbeat_last_ping``, shown by ``bakthat periodic_backups``).  A dry run sends
    nothing.  Never raise: a ping never fails a backup.
    """

    def __init__(self, settings: Mapping[str, Any], url: str, key: str | None) -> None:
        self.settings = settings
        self.url = url
        self.key = key
        #: The statuses pinged, in order (``success`` / ``fail``).
        self.sent: list[str] = []

    def on_backup(self, session_id: str, result: Any) -> None:
        if getattr(result, "dry_run", False):
            return
        partial = bool((getattr(result, "metadata", None) or {}).get("partial"))
        self.beat("fail" if partial else "success")

    def on_failure(self, session_id: str, action: str, exception: BaseException) -> None:
        from bakthat.eventing import current_session

        running = current_session()
        if action == "backup" and not (running is not None and running.dry_run):
            self.beat("fail")

    def beat(self, status: str) -> None:
        """Ping ``status`` and record the outcome in the catalog; never raise."""
        if url_for(self.url, status, self.key) is None:
            log.debug("heartbeat_url needs a key (-k) and this backup has none: no ping")
            return
        self.sent.append(status)
        delivered = ping(self.url, status, key=self.key)
        try:
            from bakthat import models
            from bakthat.settings import profile_of

            models.bind_settings(self.settings)
            models.Config.set_key(
                "heartbeat_last_ping",
                {"time": int(time.time()), "status": status, "delivered": delivered, "profile": profile_of(self.settings)},
            )
        except Exception as exc:  # noqa: BLE001 - recording the ping is a convenience
            log.debug("heartbeat ping not recorded in the catalog: %s", exc)


@contextmanager
def subscribed(settings: Mapping[str, Any], key: str | None = None, *, dry_run: bool = False) -> Iterator[Subscriber | None]:
    """Subscribe the heartbeat to ``bakthat.events`` for the ``with`` block; yield it.

    Yield None (nothing subscribed) when the settings have no ``heartbeat_url`` or for
    a dry run.  The subscription is undone when the block ends, however it ends.
    """
    url = settings.get("heartbeat_url")
    if not url or dry_run:
        yield None
        return
    from bakthat.eventing import events

    subscriber = Subscriber(settings, str(url), key)
    events.on_backup += subscriber.on_backup
    events.on_failure += subscriber.on_failure
    try:
        yield subscriber
    finally:
        events.on_backup -= subscriber.on_backup
        events.on_failure -= subscriber.on_failure
