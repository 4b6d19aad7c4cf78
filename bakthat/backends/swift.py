"""OpenStack Swift, as bakthat 0.6 could use it, through python-swiftclient.

Configured with 0.6's keys: ``auth_url``, ``auth_version`` (1, 2 or 3), ``access_key``
(the user: ``ACCOUNT:USER`` for v1, ``TENANT:USER`` or a plain user with
``swift_project_name`` for Keystone), ``secret_key``, and the container in
``swift_container`` or, as 0.6 did, ``s3_bucket``.  Keystone v3 takes the
``swift_*_domain_*``, ``swift_project_*``, ``swift_region_name`` and
``swift_endpoint_type`` keys.  TLS certificates are verified (0.6 turned that off).

Durability contract:

* **Nothing is visible until complete.**  An object smaller than ``swift_segment_size``
  is one PUT; a larger one a Static Large Object whose manifest is PUT last.  Both
  PUTs carry ``If-None-Match: *`` (an existing object is never replaced) and the
  object's SHA-256 as ``X-Object-Meta-Bakthat-Sha256``, and are then checked by a HEAD
  (size and SHA-256).
* **Per-segment checks.**  Segments go to the segments container
  (``<container>_segments``) as ``<key>/<upload id>/<n>``, each PUT with its MD5 as
  ETag, which Swift verifies (422 if the bytes it got differ; resent).  The manifest
  lists every segment's ETag and size, which Swift's SLO checks before it accepts it.
* **Bounded memory, no temp file.**  At most ``swift_concurrency`` segments are in
  flight plus the one filling (and, for a moment, its joined copy): at most about
  ``(swift_concurrency + 2) * swift_segment_size``.
  When a manifest would exceed the cluster's ``max_manifest_segments`` (from its
  ``/info``, 1000 by default), segments are grouped under sub-manifests (nested SLO),
  so the size of an archive is not limited by the segment size.
* **Failure, Ctrl-C:** the segments already stored are deleted; no object appears.  A
  killed process leaves its segments: ``bakthat cleanup_uploads -d swift`` finds the
  groups no manifest references and deletes them.
* **Verified reads.**  Every read counts the bytes and hashes them: length against the
  object's, SHA-256 against the recorded one, or, for an object bakthat did not write
  (0.6 uploaded plain objects), MD5 against its ETag; a mismatch is an IntegrityError.
  A stream that breaks is resumed with a ranged GET pinned to the object's ETag.
* **Delete** removes a large object's segments with its manifest
  (``multipart-manifest=delete``).

The upload half (segments, manifests, stale segment groups) is in
:mod:`bakthat.backends._swift_upload`, the verified read in
:mod:`bakthat.backends._swift_read`, statuses and errors in
:mod:`bakthat.backends._swift_http`; the profile is read once into
:class:`SwiftConfig`.  swiftclient is imported only when a connection
is first needed.  Requests are retried
here (``swift_retries`` attempts, backoff with jitter) on connection errors, timeouts
and 5xx answers; swiftclient's own retries are off, except its re-authentication on 401.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from bakthat.backends import _redact, base
from bakthat.backends._config import parse_size, positive_int, setting_value
from bakthat.backends._retry import RetryPolicy, call_with_retries
from bakthat.backends._swift_http import SHA256_HEADER, Cancelled, listing_time, status_of, timestamp, transient, translate_error
from bakthat.backends._swift_read import READ_CHUNK, SwiftReader
from bakthat.backends._swift_upload import SwiftUpload, stale_uploads
from bakthat import profile_keys
from bakthat.errors import AlreadyExistsError, ConfigError, IntegrityError, NotFoundError, StorageError

log = logging.getLogger("bakthat.backends")

MiB = 1 << 20
MIN_SEGMENT_SIZE = MiB
MAX_SEGMENT_SIZE = 5 * 1024 * MiB

#: The profile keys read here, declared in :mod:`bakthat.profile_keys` (read without importing this module).
SETTINGS = profile_keys.SWIFT

#: bakthat key -> swiftclient ``os_options`` key (Keystone).
_OS_OPTIONS = {
    "swift_tenant_name": "tenant_name",
    "swift_project_name": "project_name",
    "swift_project_id": "project_id",
    "swift_project_domain_name": "project_domain_name",
    "swift_project_domain_id": "project_domain_id",
    "swift_user_domain_name": "user_domain_name",
    "swift_user_domain_id": "user_domain_id",
    "swift_region_name": "region_name",
    "swift_endpoint_type": "endpoint_type",
}


@dataclass(frozen=True)
class SwiftConfig:
    """Everything the Swift backend reads from a profile, checked, with the defaults applied."""

    auth_url: str
    user: str
    key: str = field(repr=False)
    container: str
    auth_version: str = "1.0"
    segment_container: str = ""
    segment_size: int = 32 * MiB
    concurrency: int = 2
    retries: int = 5
    timeout: float = 60
    insecure: bool = False
    cacert: str | None = None
    os_options: dict[str, str] = field(default_factory=dict)
    temp_url_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> SwiftConfig:
        """Given profile settings, return the Swift config.  Raise ConfigError naming the
        key if one is missing or out of range."""

        def value(name: str) -> Any:
            return setting_value(settings, SETTINGS, name)

        auth_url = value("auth_url")
        if not auth_url:
            raise ConfigError("destination swift needs auth_url in the profile")
        version = str(value("auth_version")).strip()
        auth_version = {"1": "1.0", "1.0": "1.0", "2": "2.0", "2.0": "2.0", "3": "3", "3.0": "3"}.get(version)
        if auth_version is None:
            raise ConfigError(f"auth_version must be 1, 2 or 3, not {version!r}")
        # access_key, secret_key and s3_bucket are 0.6 keys (no default) shared with S3.
        user, key = str(settings.get("access_key") or ""), str(settings.get("secret_key") or "")
        if not user or not key:
            raise ConfigError("destination swift needs access_key (the user, ACCOUNT:USER for auth v1) and secret_key")
        container = value("swift_container") or settings.get("s3_bucket")
        if not container:
            raise ConfigError("destination swift needs swift_container (or s3_bucket, as 0.6) in the profile")
        segment_container = str(value("swift_segment_container") or f"{container}_segments")
        if "/" in str(container) or "/" in segment_container:
            raise ConfigError("Swift container names cannot contain '/'")
        timeout = float(value("swift_timeout"))
        if timeout <= 0:
            raise ConfigError(f"swift_timeout must be a positive number of seconds, not {timeout:g}")
        segment_size = parse_size(value("swift_segment_size"), 0)
        if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
            raise ConfigError(f"swift_segment_size must be between 1 MiB and 5 GiB, not {segment_size} bytes")
        return cls(
            auth_url=str(auth_url),
            user=user,
            key=key,
            container=str(container),
            auth_version=auth_version,
            segment_container=segment_container,
            segment_size=segment_size,
            concurrency=positive_int("swift_concurrency", value("swift_concurrency"), 1, 32),
            retries=positive_int("swift_retries", value("swift_retries")),
            timeout=timeout,
            insecure=bool(value("swift_insecure")),
            cacert=value("swift_cacert"),
            os_options={option: str(settings[key]) for key, option in _OS_OPTIONS.items() if settings.get(key)},
            temp_url_key=value("swift_temp_url_key"),
        )


class Backend(base.Backend):
    """Objects in a Swift container; large ones as Static Large Objects."""

    name = "swift"
    cheap_reads = False
    lists_stale_uploads = True

    def __init__(self, conf: Mapping[str, Any]):
        super().__init__(conf)
        self.config = SwiftConfig.from_settings(conf)
        _redact.protect(self.config.key, self.config.temp_url_key)
        self.auth_url = self.config.auth_url
        self.auth_version = self.config.auth_version
        self.user = self.config.user
        self.key = self.config.key
        self.container_name = self.config.container
        self.segment_container = self.config.segment_container
        self.segment_size = self.config.segment_size
        self.concurrency = self.config.concurrency
        self.retry_policy = RetryPolicy(attempts=self.config.retries)
        self.timeout = self.config.timeout
        self.os_options = dict(self.config.os_options)
        #: Called with the number of bytes each time a segment or a read chunk completes.
        self.progress: Callable[[int], None] | None = None
        self._max_segments: int | None = None
        self._local = threading.local()
        self._containers_ready = False

    # -- identity and naming -------------------------------------------------------
    @property
    def container(self) -> str:
        project = self.os_options.get("project_name") or self.os_options.get("tenant_name") or self.os_options.get("project_id") or ""
        return f"{self.auth_url.rstrip('/')}#{project}:{self.user}/{self.container_name}"

    @property
    def legacy_backend_hash(self) -> str | None:
        """bakthat 0.6's ``backend_hash`` of this container: SHA-512 of access_key + container."""
        return hashlib.sha512(f"{self.user}{self.container_name}".encode()).hexdigest()

    def describe(self, key: str) -> str:
        return f"swift://{self.container_name}/{key}"

    # -- connections -------------------------------------------------------------------
    def connection(self) -> Any:
        """Return this thread's swiftclient Connection (built on first use; not shared by threads)."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self.make_connection()
            self._local.connection = connection
        return connection

    def make_connection(self) -> Any:
        """Return a new swiftclient Connection from the profile (tests wrap this to inject faults)."""
        from swiftclient.client import Connection

        return Connection(
            authurl=self.auth_url,
            user=self.user,
            key=self.key,
            auth_version=self.auth_version,
            os_options=dict(self.os_options),
            retries=0,
            timeout=self.timeout,
            insecure=self.config.insecure,
            cacert=self.config.cacert,
        )

    def call(
        self,
        what: str,
        operation: Callable[[Any], Any],
        *,
        stop: Callable[[], bool] | None = None,
        translate: bool = True,
    ) -> Any:
        """Run ``operation(connection)`` with retries; translate its failure unless asked not to."""
        def attempt() -> Any:
            connection = self.connection()
            try:
                return operation(connection)
            except Exception as exc:
                if transient(exc):  # its HTTP connection may be broken: start afresh
                    self._local.connection = None
                raise
            finally:
                _redact.protect(getattr(connection, "token", None))

        try:
            return call_with_retries(
                attempt, what, self.retry_policy,
                retryable=lambda exc: not isinstance(exc, Cancelled) and transient(exc), stop=stop,
            )
        except Exception as exc:
            if not translate or isinstance(exc, Cancelled):
                raise
            raise translate_error(exc, what, "") from None

    @property
    def max_segments(self) -> int:
        """The most segments one manifest may list: the cluster's ``max_manifest_segments``."""
        if self._max_segments is None:
            try:
                info = self.call("reading the cluster's /info", lambda c: c.get_capabilities())
                self._max_segments = int(info.get("slo", {}).get("max_manifest_segments") or 1000)
            except (StorageError, NotFoundError, ValueError, TypeError):
                self._max_segments = 1000
        return self._max_segments

    @max_segments.setter
    def max_segments(self, value: int) -> None:
        self._max_segments = value

    def ensure_containers(self) -> None:
        """Create the container and the segments container if they are missing."""
        if self._containers_ready:
            return
        for name in (self.container_name, self.segment_container):
            try:
                self.call(f"checking container {name}", lambda c, name=name: c.head_container(name), translate=False)
            except Exception as exc:
                if status_of(exc) != 404:
                    raise translate_error(exc, "checking container", name) from None
                self.call(f"creating container {name}", lambda c, name=name: c.put_container(name))
                log.info("Created Swift container %s", name)
        self._containers_ready = True

    # -- layered requests --------------------------------------------------------------
    def object_headers(self, metadata: dict[str, str] | None) -> dict[str, str]:
        """Return the request headers carrying ``metadata`` (content_type, user metadata)."""
        headers = {}
        for name, value in (metadata or {}).items():
            if value is None or name == "storage_class":
                continue
            if name == "content_type":
                headers["Content-Type"] = str(value)
            else:
                headers[f"X-Object-Meta-{name}"] = str(value)
        return headers

    def head(self, key: str) -> dict[str, str]:
        """Return the object's headers (lower-case names).  Raise NotFoundError if it is missing."""
        name = self.check_key(key)
        try:
            return self.call(f"HEAD {key}", lambda c: c.head_object(self.container_name, name), translate=False)
        except Exception as exc:
            raise translate_error(exc, "looking up", self.describe(key)) from None

    def get_object(self, key: str, headers: dict[str, str] | None = None) -> tuple[dict[str, str], Any]:
        """Return ``(headers, body)`` of a streamed GET.  Raise NotFoundError if it is missing."""
        name = self.check_key(key)
        try:
            return self.call(
                f"GET {key}",
                lambda c: c.get_object(self.container_name, name, resp_chunk_size=READ_CHUNK, headers=headers),
                translate=False,
            )
        except Exception as exc:
            raise translate_error(exc, "reading", self.describe(key)) from None

    def holds(self, key: str, size: int, digest: str) -> bool:
        """Return True if ``key`` exists with this size and recorded SHA-256."""
        try:
            head = self.head(key)
        except NotFoundError:
            return False
        return int(head.get("content-length") or -1) == size and head.get(SHA256_HEADER) == digest

    def verify_committed(self, key: str, size: int, digest: str) -> base.ObjectInfo:
        """Check that Swift holds ``size`` bytes with our SHA-256 under ``key``; remove it if not."""
        head = self.head(key)
        stored = int(head.get("content-length") or 0)
        if stored != size or head.get(SHA256_HEADER) != digest:
            try:
                self.delete(key)
            finally:
                raise IntegrityError(f"{self.describe(key)}: Swift holds {stored} bytes, {size} were sent; removed")
        return base.ObjectInfo(key, stored, timestamp(head), {"etag": head.get("etag", ""), "sha256": digest})

    def delete_segments(self, names: list[str]) -> list[str]:
        """Delete these objects of the segments container (already gone is fine); return those left."""
        left = []
        for name in names:
            try:
                self.call(f"deleting segment {name}", lambda c, name=name: c.delete_object(self.segment_container, name), translate=False)
            except Exception as exc:  # noqa: BLE001 - reported to the caller
                if status_of(exc) != 404:
                    log.debug("segment %s not deleted (%s)", name, type(exc).__name__)
                    left.append(name)
        return left

    # -- primitives -----------------------------------------------------------------------
    def open_upload(
        self, key: str, metadata: dict[str, str] | None = None, *, progress: Callable[[int], None] | None = None
    ) -> base.Upload:
        """Start an upload of ``key`` (see :mod:`bakthat.backends._swift_upload`).

        Raise AlreadyExistsError at once if it exists.
        """
        self.check_key(key)
        if self.exists(key):
            raise AlreadyExistsError(f"{self.describe(key)} already exists; nothing was replaced")
        return SwiftUpload(self, key, metadata, progress)

    def open_read(self, key: str) -> IO[bytes]:
        headers, body = self.get_object(key)
        return SwiftReader(self, key, headers, body)  # type: ignore[return-value]

    def stat(self, key: str) -> base.ObjectInfo:
        head = self.head(key)
        metadata = {name[len("x-object-meta-"):]: value for name, value in head.items() if name.startswith("x-object-meta-")}
        metadata["etag"] = head.get("etag", "")
        return base.ObjectInfo(key, int(head.get("content-length") or 0), timestamp(head), metadata)

    def list(self, prefix: str = "") -> Iterator[base.ObjectInfo]:
        try:
            _headers, items = self.call(
                f"listing {self.container_name}",
                lambda c: c.get_container(self.container_name, prefix=prefix or None, full_listing=True),
                translate=False,
            )
        except Exception as exc:
            if status_of(exc) == 404:
                return
            raise translate_error(exc, "listing", f"swift://{self.container_name}/{prefix}") from None
        for item in sorted(items, key=lambda item: item["name"]):
            yield base.ObjectInfo(item["name"], int(item.get("bytes") or 0), listing_time(item.get("last_modified")), {"etag": item.get("hash", "")})

    def delete(self, key: str) -> None:
        """Delete ``key`` (with its segments when it is a large object); NotFoundError if missing."""
        head = self.head(key)
        query = "multipart-manifest=delete" if str(head.get("x-static-large-object", "")).lower() == "true" else None
        name = self.check_key(key)
        try:
            self.call(f"deleting {key}", lambda c: c.delete_object(self.container_name, name, query_string=query), translate=False)
        except Exception as exc:
            raise translate_error(exc, "deleting", self.describe(key)) from None

    def stale_uploads(self, older_than: float = 0) -> list[Any]:
        """Return the segment groups no manifest references, last written over ``older_than`` s ago."""
        return stale_uploads(self, older_than)

    def abort_upload(self, upload: Any) -> None:
        """Delete the segments of a stale upload found by :meth:`stale_uploads`."""
        left = self.delete_segments(upload.segments)
        if left:
            raise StorageError(f"{len(left)} segments of {upload.key} could not be deleted")

    def url(self, key: str, expires_in: int = 3600) -> str:
        """Return the object's URL: signed and expiring with ``swift_temp_url_key``; else plain
        (reading it then needs an auth token)."""
        connection = self.connection()
        if not connection.url:
            self.call("authenticating", lambda c: c.head_account())
        storage = urllib.parse.urlsplit(connection.url)
        path = f"{storage.path}/{urllib.parse.quote(self.container_name)}/{urllib.parse.quote(self.check_key(key))}"
        temp_key = self.config.temp_url_key
        if temp_key:
            from swiftclient.utils import generate_temp_url

            path = generate_temp_url(path, int(expires_in), str(temp_key), "GET")
        return f"{storage.scheme}://{storage.netloc}{path}"
