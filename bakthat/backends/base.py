"""The small storage interface every backend implements.

A backend stores opaque objects under string keys.  Primitives (what a subclass writes):
:meth:`Backend.open_upload`, :meth:`Backend.open_read`, :meth:`Backend.stat`,
:meth:`Backend.list`, :meth:`Backend.delete` and optionally :meth:`Backend.url`.
Everything else (hashing, size checks, verification) is built above them here or in
the pipeline (:mod:`bakthat.pipeline`), so each backend stays short.  Remote stores
read through :class:`VerifiedReader`, which counts, hashes and checks every byte.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, ClassVar

from bakthat.backends._progress import Progress
from bakthat.errors import AlreadyExistsError, ConfigError, IntegrityError
from bakthat.pipeline import HashingWriter

log = logging.getLogger("bakthat.backends")

_BAD_KEY = re.compile(r"(^/)|(^|/)\.\.?(/|$)|\x00|\\|//")


@dataclass
class ObjectInfo:
    """What a backend knows about one stored object."""

    key: str
    size: int
    modified: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)


class Upload:
    """A write in progress.  Nothing is visible under the key until :meth:`commit`.

    Subclasses implement ``write``, ``commit`` and ``abort``.  ``abort`` is idempotent
    and safe to call after a failed ``commit``.
    """

    #: The SHA-256 (a ``hashlib`` object) of every byte given to :meth:`write`, for an
    #: upload that computes it anyway to record it with the object;
    #: :class:`~bakthat.pipeline.HashingWriter` then reads this one instead of hashing
    #: the stream a second time.  None: the upload computes none.
    running_sha256: Any = None

    def write(self, data: bytes) -> int:
        raise NotImplementedError

    def commit(self) -> ObjectInfo:
        """Make the object durable and visible.  Raise AlreadyExistsError if the key exists."""
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """Nothing to flush: writes are buffered by the upload itself."""


class Backend:
    """Base class of storage backends.  ``conf`` is the profile's settings (a mapping).

    A subclass sets :attr:`name`, declares its capabilities below (callers read them
    instead of probing for methods), builds its typed config from the settings in its
    constructor, and is registered under its name (:func:`bakthat.backends.register`).
    """

    name: ClassVar[str] = "base"

    # -- capabilities -------------------------------------------------------------------
    #: Reading an object twice costs little (a local disk): restore then verifies the
    #: whole object's SHA-256 before it decrypts or extracts anything.
    cheap_reads: ClassVar[bool] = False
    #: ``open_upload(key, metadata, if_match=etag)`` and ``delete(key, if_match=etag)``
    #: replace or delete only the version with that ETag (what KeyValue needs).
    conditional_writes: ClassVar[bool] = False
    #: :meth:`stale_uploads` and :meth:`abort_upload` find and remove what an upload
    #: killed midway left behind (``bakthat cleanup_uploads``).
    lists_stale_uploads: ClassVar[bool] = False
    #: :meth:`prepare_read` may request a retrieval that takes hours, recorded in the
    #: ``retrievals`` table, and :meth:`refresh` updates such a row from the store.
    archive_retrievals: ClassVar[bool] = False
    #: The store has no listing: ``inventory()`` and ``adopt_archive()`` give its objects
    #: (a legacy Glacier vault), used by ``bakthat sync`` to adopt 0.6 backups.
    vault_inventory: ClassVar[bool] = False

    def __init__(self, conf: Mapping[str, Any]):
        self.conf = conf

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Backend:
        """Given resolved profile settings, return a ready backend for them.

        The registry builds every backend through this factory; a destination whose
        settings select another implementation (``glacier`` with a vault) overrides it.
        """
        return cls(settings)

    # -- identity ---------------------------------------------------------------
    @property
    def container(self) -> str:
        """Return what identifies this store's location (a path, a bucket...)."""
        raise NotImplementedError

    @property
    def backend_hash(self) -> str:
        """Return the SHA-512 hex digest identifying this store, as 0.6's ``backend_hash``."""
        return hashlib.sha512(f"{self.name}:{self.container}".encode()).hexdigest()

    @property
    def legacy_backend_hash(self) -> str | None:
        """Return the ``backend_hash`` bakthat 0.6 gave this store, or None.

        Catalog rows carrying it (from a 0.6 catalog) are given :attr:`backend_hash`
        when the store is first used, so restore, delete and rotation find them.
        """
        return None

    @staticmethod
    def check_key(key: str) -> str:
        """Given a key, return it.  Raise ConfigError if it is empty, absolute or has ``..``."""
        if not key or _BAD_KEY.search(key):
            raise ConfigError(f"invalid storage key {key!r}")
        return key

    # -- primitives ---------------------------------------------------------------
    def open_upload(self, key: str, metadata: dict[str, str] | None = None) -> Upload:
        raise NotImplementedError

    def open_read(self, key: str) -> IO[bytes]:
        """Return a readable stream of the object.  Raise NotFoundError if it is missing."""
        raise NotImplementedError

    def stat(self, key: str) -> ObjectInfo:
        """Return the object's info.  Raise NotFoundError if it is missing."""
        raise NotImplementedError

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield every committed object whose key starts with ``prefix``, sorted by key."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Delete the object.  Raise NotFoundError if it is missing."""
        raise NotImplementedError

    def url(self, key: str, expires_in: int = 3600) -> str:
        """Return a URL that reads the object (signed and expiring where the store can)."""
        raise NotImplementedError

    def stale_uploads(self, older_than: float = 0) -> list[Any]:
        """Return the incomplete uploads started over ``older_than`` seconds ago (each with
        ``key`` and ``initiated``).  Raise ConfigError unless :attr:`lists_stale_uploads`."""
        raise ConfigError(f"destination {self.name} has no incomplete uploads to clean")

    def abort_upload(self, upload: Any) -> None:
        """Remove one upload found by :meth:`stale_uploads`."""
        raise ConfigError(f"destination {self.name} has no incomplete uploads to clean")

    def refresh(self, row: Any) -> Any:
        """Given a ``retrievals`` row of this store, update it from the store and return it.

        The default returns it unchanged (no :attr:`archive_retrievals`).
        """
        return row

    def prepare_read(self, key: str, wait: bool = False) -> None:
        """Make the object readable before :meth:`open_read`.

        Stores with cold storage classes request a retrieval here and raise
        RetrievalPendingError while it runs (or, with ``wait``, poll until it is done).
        The default does nothing: the object is readable at once.
        """

    # -- layered --------------------------------------------------------------------
    def exists(self, key: str) -> bool:
        """Return True if an object is stored under ``key``."""
        from bakthat.errors import NotFoundError

        try:
            self.stat(key)
        except NotFoundError:
            return False
        return True

    def put(
        self,
        key: str,
        source: IO[bytes] | bytes,
        *,
        metadata: dict[str, str] | None = None,
        sha256: str | None = None,
        size: int | None = None,
    ) -> ObjectInfo:
        """Given a key and a readable stream (or bytes), store it and return its info.

        When ``sha256`` or ``size`` is given, the bytes read must match them; otherwise
        the upload is aborted, nothing is stored, and IntegrityError is raised.
        """
        if isinstance(source, (bytes, bytearray)):
            source = io.BytesIO(source)
        upload = self.open_upload(self.check_key(key), metadata)
        try:
            writer = HashingWriter(upload)
            while chunk := source.read(1 << 20):
                writer.write(chunk)
            if size is not None and writer.size != size:
                raise IntegrityError(f"{key}: source gave {writer.size} bytes, {size} were declared")
            if sha256 is not None and writer.hexdigest() != sha256:
                raise IntegrityError(f"{key}: SHA-256 of the data does not match the declared one")
            return upload.commit()
        except BaseException:
            upload.abort()
            raise


class VerifiedReader(io.RawIOBase):
    """A verified read of one stored object: the base of the remote stores' readers.

    Given the object's name for messages (``described``), its size, and optionally a
    progress counter, it counts and hashes every byte read.  Reading past ``size``, or
    reaching the end of the stream with another length, raises IntegrityError naming
    the object; so does a SHA-256 other than :meth:`expected_sha256` (when the store
    recorded one).  :meth:`check_more` lets a store add its own check (Swift's MD5).

    A subclass implements :meth:`read_raw` (the next bytes from the store, b"" at the
    end), usually with :meth:`read_resuming`, which retries a broken stream from the
    byte reached through :meth:`resume`.  ``_body``, when set, is closed by :meth:`close`.
    """

    #: What the stored thing is called in messages ("object", "archive").
    noun: ClassVar[str] = "object"
    #: The end of the SHA-256 mismatch message.
    damaged: ClassVar[str] = "the object is damaged (in transit or at rest)"
    #: The bytes :meth:`readall` asks for at a time.
    chunk: ClassVar[int] = 1 << 20

    def __init__(self, described: str, size: int, progress: Progress | None = None):
        super().__init__()
        self.described = described
        self.size = size
        self.position = 0
        self._body: Any = None
        self._sha256 = hashlib.sha256()
        self._progress = progress
        self._verified = False

    # -- what a store supplies ----------------------------------------------------------
    def read_raw(self, size: int) -> bytes:
        """Return up to ``size`` bytes from the store, b"" at the end of the object."""
        raise NotImplementedError

    def expected_sha256(self) -> str | None:
        """Return the SHA-256 recorded for the object, or None if the store has none."""
        return None

    def check_more(self) -> None:
        """Check anything else at the end of a complete read; raise IntegrityError if wrong."""

    # -- the verified stream -----------------------------------------------------------
    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Return up to ``size`` bytes (all that is left when ``size`` is None or negative).

        Raise IntegrityError naming the object if the bytes read exceed its size, or if
        the complete read has another length or SHA-256 than the object's.
        """
        if self._verified:
            return b""
        if size is None or size < 0:
            return self.readall()
        data = self.read_raw(size)
        if data:
            self._sha256.update(data)
            self.update(data)
            self.position += len(data)
            if self._progress is not None:
                self._progress.update(len(data))
            if self.position > self.size:
                raise IntegrityError(f"{self.described}: more bytes than the {self.noun}'s {self.size}")
        if not data or self.position == self.size:
            self._verify()
        return data

    def update(self, data: bytes) -> None:
        """Take ``data`` just read into any further hash a store keeps (nothing here)."""

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        chunks = []
        while chunk := self.read(self.chunk):
            chunks.append(chunk)
        return b"".join(chunks)

    def _verify(self) -> None:
        if self._verified:
            return
        self._verified = True
        if self.position != self.size:
            raise IntegrityError(f"{self.described}: read {self.position} bytes, the {self.noun} has {self.size}")
        expected = self.expected_sha256()
        if expected and expected != self._sha256.hexdigest():
            raise IntegrityError(f"{self.described}: SHA-256 mismatch; {self.damaged}")
        self.check_more()
        if self._progress is not None:
            self._progress.finish()

    def hexdigest(self) -> str:
        """Return the SHA-256 hex digest of the bytes read so far."""
        return self._sha256.hexdigest()

    def close(self) -> None:
        if not self.closed:
            try:
                if self._body is not None:
                    self._body.close()
            finally:
                super().close()

    # -- resuming a broken stream --------------------------------------------------------
    def read_resuming(
        self,
        size: int,
        retry_policy: Any,
        transient: Callable[[BaseException], bool],
        translate: Callable[[BaseException], BaseException],
        changed: Callable[[BaseException], bool],
    ) -> bytes:
        """Return ``self._body.read(size)``; resume a stream broken by a transient error.

        Given the store's retry policy (``attempts``, ``delay(n)``), ``transient(exc)``
        telling a failure worth another attempt, ``translate(exc)`` giving the bakthat
        error to raise, and ``changed(exc)`` telling that the resumed request failed
        because the object changed (its ETag no longer matches; an AlreadyExistsError,
        which the stores' GET helpers make of that failure, says so too): retry after
        :meth:`resume` until the policy's attempts are spent.  Raise IntegrityError if
        the object changed while it was being read.
        """
        attempt = 0
        while True:
            try:
                return self._body.read(size)
            except Exception as exc:  # noqa: BLE001 - classified just below
                attempt += 1
                if attempt >= retry_policy.attempts or not transient(exc):
                    raise translate(exc) from None
                log.debug("read of %s broke at byte %d (%s); resuming", self.described, self.position, type(exc).__name__)
                time.sleep(retry_policy.delay(attempt))
                try:
                    self.resume()
                except Exception as resume_exc:  # noqa: BLE001
                    # The stores' GET helpers translate a failed If-Match to AlreadyExistsError.
                    if isinstance(resume_exc, AlreadyExistsError) or changed(resume_exc):
                        raise IntegrityError(f"{self.described} changed while it was being read") from None
                    raise translate(resume_exc) from None

    def resume(self) -> None:
        """Replace ``_body`` with a stream from :attr:`position` of the same version."""
        raise NotImplementedError
