"""KeyValue: JSON values under keys in S3, compressed and optionally encrypted, catalogued.

As in bakthat 0.4.5+ (see the developer guide)::

    kv = KeyValue(conf=bakthat_conf)
    kv.set_key("mykey", {"some": "data"})
    kv.get_key("mykey")                       # {'some': 'data'}
    kv.get_key_url("mykey", 60)               # a presigned URL, valid 60 seconds
    kv.delete_key("mykey")
    kv.set_key("my_encrypted_key", "myvalue", password="mypassword")

A value is serialised with JSON, gzip-compressed unless ``compress=False``, encrypted
with a password when one is given (an age file, as archives are), and stored with one
PUT whose metadata records the flags and the SHA-256.  Each entry has a catalog row
(metadata ``{"KeyValue": true, "is_enc": ..., "is_gzipped": ...}``), so it shows in
``bakthat show`` and ``bakthat restore KEY`` writes its decoded value to a file.

Two writers never silently lose an update: a write is conditional on the version the
writer last saw (``If-Match: <ETag>``), or on the key not existing yet
(``If-None-Match: *``); when another writer got there first the write is refused with
:class:`KeyConflictError` and nothing is replaced.  Read the key again (``get_key``),
which records its current version, then write.  "Last saw" is the version this
KeyValue object last read or wrote; for a key it has not touched yet, the version this
host's catalog recorded (so two read-modify-write cycles in two processes conflict,
and a key another host created must be read before it is replaced).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bakthat import backends, models
from bakthat.errors import (
    ConfigError,
    IntegrityError,
    NotFoundError,
    PasswordRequiredError,
    StorageError,
    TargetExistsError,
)

log = logging.getLogger("bakthat")

ENC_KEY = "bakthat-is-enc"
GZIP_KEY = "bakthat-is-gzipped"
KIND_KEY = "bakthat-keyvalue"

__all__ = ["KeyConflictError", "KeyValue", "restore_entry"]


class KeyConflictError(StorageError):
    """Another writer changed, created or deleted the key since this catalog last saw it.

    Nothing was written.  Read the key again with ``get_key`` (which records its current
    version) and decide what to write.
    """


def _encode(value: Any, compress: bool, password: str | None, work_factor: int) -> bytes:
    from bakthat import crypto

    data = json.dumps(value).encode("utf-8")
    if compress:
        data = gzip.compress(data, mtime=0)
    if password:
        sink = io.BytesIO()
        writer = crypto.EncryptingWriter(sink, passphrase=password, work_factor=work_factor)
        writer.write(data)
        writer.close()
        data = sink.getvalue()
    return data


def _looks_plain(raw: bytes) -> bool:
    """Return True if stored bytes are gzip or JSON as they are (not encrypted)."""
    if raw[:2] == b"\x1f\x8b":
        return True
    try:
        json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False
    return True


def _decode_bytes(
    raw: bytes, is_enc: bool, is_gzipped: bool, password: str | None, key: str, settings: Mapping[str, Any]
) -> bytes:
    """Given stored bytes and their flags, return the JSON document's bytes.

    An age file is decrypted as such; other encrypted bytes (flagged so, or neither
    gzip nor JSON) are bakthat 0.6's Blowfish format (:func:`bakthat.legacy.decode_value`).
    An encrypted value without ``password`` is opened with the configured one
    (``BAKTHAT_PASSWORD``, ``password_file``, ``password_command``).
    """
    from bakthat import crypto, passwords

    is_age = crypto.is_age(raw[: len(crypto.AGE_MAGIC)])
    if is_enc or is_age or not _looks_plain(raw):
        if not password:
            password = passwords.configured(settings) or None
        if not is_age:
            from bakthat import legacy

            return legacy.decode_value(raw, password, is_gzipped if is_enc else None, key)
        if not password:
            raise PasswordRequiredError(f"{key} is encrypted: give its password")
        raw = crypto.DecryptingReader(io.BytesIO(raw), passphrase=password).read()
    if is_gzipped or raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise IntegrityError(f"{key}: the stored value is not valid gzip ({exc})") from None
    return raw


def _flags(metadata: Mapping[str, str], row: Any) -> tuple[bool, bool]:
    row_meta = (row.metadata or {}) if row is not None else {}
    is_enc = metadata.get(ENC_KEY, str(bool(row_meta.get("is_enc"))).lower()) == "true"
    is_gzipped = metadata.get(GZIP_KEY, str(bool(row_meta.get("is_gzipped"))).lower()) == "true"
    return is_enc, is_gzipped


class KeyValue:
    """A small key/value store on the profile's S3 bucket (see the module docstring).

    ``conf`` is a settings dict (the developer guide's form) replacing the config file's
    profile; ``profile`` a profile name of ``~/.bakthat.yml`` (or ``config``).
    """

    def __init__(
        self,
        conf: Mapping[str, Any] | None = None,
        profile: str = "default",
        config: str | None = None,
        destination: str = "s3",
    ):
        from bakthat.conf import get_profile

        self.settings = get_profile(profile, config, conf)
        self.profile = profile
        self.destination = destination
        self.backend = backends.get_backend(destination, self.settings)
        #: key -> ETag this object last read or wrote (None: seen absent).
        self._seen: dict[str, str | None] = {}
        if not self.backend.conditional_writes:
            raise ConfigError(f"KeyValue needs an S3 destination (conditional writes); {destination} has none")
        self._catalog()

    # -- catalog ----------------------------------------------------------------------
    def _catalog(self) -> None:
        models.bind_settings(self.settings)

    def _row(self, key: str) -> Any:
        """Return this key's catalog row (deleted or not), or None.  Refuse a foreign row."""
        row = models.Backups.get_or_none(models.Backups.stored_filename == key)
        if row is None:
            return None
        if not (row.metadata or {}).get("KeyValue") or row.backend_hash != self.backend.backend_hash:
            raise ConfigError(f"the catalog already holds another backup stored as {key!r}; use another key")
        return row

    def _save_row(self, row: Any, key: str, size: int, sha256: str | None, etag: str, is_enc: bool, is_gzipped: bool) -> Any:
        now = int(time.time())
        metadata = {"KeyValue": True, "is_enc": is_enc, "is_gzipped": is_gzipped, "etag": etag, "client": socket.gethostname()}
        fields = {
            "backend": self.destination,
            "backend_hash": self.backend.backend_hash,
            "filename": key,
            "is_deleted": False,
            "state": "ok",
            "last_updated": now,
            "metadata": metadata,
            "size": size,
            "sha256": sha256,
            "compression": "gzip" if is_gzipped else "none",
            "encryption": "age-scrypt" if is_enc else "none",
            "host": socket.gethostname(),
            "profile": self.profile,
        }
        if row is None:
            return models.Backups.create(stored_filename=key, backup_date=now, tags="", **fields)
        for name, value in fields.items():
            setattr(row, name, value)
        row.backup_date = now
        row.save()
        return row

    # -- the 0.6 API ---------------------------------------------------------------------
    def set_key(self, key: str, value: Any, compress: bool = True, password: str | None = None) -> Any:
        """Store ``value`` (anything JSON can serialise) under ``key``; return the catalog row.

        Without ``password``, the configured one (``BAKTHAT_PASSWORD``, the profile's
        ``password_file`` or ``password_command``) encrypts the value, if any;
        ``password=""`` stores it unencrypted.  The write succeeds only if the store
        still holds the version this catalog last saw (or no object, for a key it does
        not know).  Raise KeyConflictError if another writer changed, created or
        deleted it meanwhile (nothing is replaced then), EncryptionRequiredError if the
        profile has ``require_encryption: true`` and there is no password.
        """
        from bakthat import passwords
        from bakthat.errors import AlreadyExistsError

        key = self.backend.check_key(key)
        if password is None:
            password = passwords.configured(self.settings)
        secret = passwords.BackupSecret(passphrase=password or None, chosen=password is not None)
        passwords.enforce(secret, self.settings, f"KeyValue {key!r}")
        password = secret.passphrase
        self._catalog()
        row = self._row(key)
        known = self._known(key, row)
        work_factor = int(self.settings.get("scrypt_work_factor") or 18)
        payload = _encode(value, compress, password, work_factor)
        metadata = {
            KIND_KEY: "1",
            ENC_KEY: str(bool(password)).lower(),
            GZIP_KEY: str(bool(compress)).lower(),
            "content_type": "application/octet-stream" if password else ("application/gzip" if compress else "application/json"),
            "storage_class": "STANDARD",
        }
        try:
            info = self._write(key, payload, metadata, known)
        except AlreadyExistsError:
            if not known or self.backend.exists(key):
                raise self._conflict(key, known) from None
            # Deleted by someone else since we saw it: nothing to lose; create it again,
            # still only if nobody else does so first.
            log.warning("KeyValue %s was deleted by another writer; creating it again", key)
            try:
                info = self._write(key, payload, metadata, None)
            except AlreadyExistsError:
                raise self._conflict(key, None) from None
        etag = str(info.metadata.get("etag", ""))
        self._seen[key] = etag
        row = self._save_row(row, key, len(payload), hashlib.sha256(payload).hexdigest(), etag, bool(password), compress)
        log.debug("KeyValue %s stored (%d bytes)", key, len(payload))
        return row

    def _known(self, key: str, row: Any) -> str | None:
        """Return the ETag a write of ``key`` must match (None: the key must not exist)."""
        if key in self._seen:
            return self._seen[key]
        return None if row is None or row.is_deleted else (row.metadata or {}).get("etag")

    def _write(self, key: str, payload: bytes, metadata: dict[str, str], known: str | None) -> Any:
        """Store ``payload`` conditionally on ``known`` (an ETag) or on absence; return its info."""
        upload = self.backend.open_upload(key, metadata, if_match=known)  # type: ignore[call-arg]
        try:
            upload.write(payload)
            return upload.commit()
        except BaseException:
            upload.abort()
            raise

    def _conflict(self, key: str, known: str | None) -> KeyConflictError:
        if known:
            return KeyConflictError(
                f"KeyValue {key!r} was changed or deleted by another writer since this catalog last saw it; "
                "nothing was written. Read it again with get_key(), then set it."
            )
        return KeyConflictError(
            f"KeyValue {key!r} already exists in the store but this catalog has not seen its current version; "
            "nothing was written. Read it with get_key() first (or delete_key() it), then set it."
        )

    def get_key(self, key: str, password: str | None = None, default: Any = None) -> Any:
        """Return the value stored under ``key``, or ``default`` if there is none.

        Raise PasswordRequiredError/WrongPasswordError for an encrypted value without
        or with a wrong password, IntegrityError if the stored bytes are damaged.  The
        version read is recorded in the catalog, so a following ``set_key`` may replace it.
        """
        key = self.backend.check_key(key)
        self._catalog()
        row = self._row(key)
        try:
            reader = self.backend.open_read(key)
        except NotFoundError:
            if row is not None and not row.is_deleted:
                row.set_deleted()  # deleted by another writer: the catalog follows the store
            self._seen[key] = None
            return default
        with reader:
            raw = reader.read()
        etag = str(getattr(reader, "etag", ""))
        metadata = dict(getattr(reader, "metadata", {}) or {})
        is_enc, is_gzipped = _flags(metadata, row)
        document = _decode_bytes(raw, is_enc, is_gzipped, password, key, self.settings)
        self._seen[key] = etag
        try:
            value = json.loads(document)
        except ValueError as exc:
            raise IntegrityError(f"KeyValue {key!r}: the stored value is not JSON ({exc.__class__.__name__})") from None
        if row is None or row.is_deleted or (row.metadata or {}).get("etag") != etag:
            self._save_row(row, key, len(raw), hashlib.sha256(raw).hexdigest(), etag, is_enc, is_gzipped)
        return value

    def delete_key(self, key: str) -> bool:
        """Delete ``key`` from the store and mark its row deleted; return True if it existed.

        When the catalog knows the key's version the delete is conditional on it:
        KeyConflictError if another writer changed it meanwhile (nothing is deleted).
        """
        from bakthat.errors import AlreadyExistsError

        key = self.backend.check_key(key)
        self._catalog()
        row = self._row(key)
        known = self._known(key, row)
        try:
            self.backend.delete(key, if_match=known)  # type: ignore[call-arg]
            existed = True
        except NotFoundError:
            existed = False
        except AlreadyExistsError:
            raise KeyConflictError(
                f"KeyValue {key!r} was changed by another writer since this catalog last saw it; nothing was deleted"
            ) from None
        self._seen[key] = None
        if row is not None and not row.is_deleted:
            row.set_deleted()
            return True
        return existed

    def get_key_url(self, key: str, expires_in: int = 3600) -> str:
        """Return a presigned URL serving the stored bytes of ``key`` for ``expires_in`` seconds.

        The bytes are as stored: JSON, gzip-compressed JSON, or an age file when
        encrypted.  Raise NotFoundError if the key does not exist.
        """
        key = self.backend.check_key(key)
        self.backend.stat(key)
        return self.backend.url(key, int(expires_in))


def restore_entry(
    ctx: Any,
    row: Any,
    target: str | os.PathLike[str] | None,
    password: str | None,
    overwrite: bool,
    wait: bool = False,
    dry_run: bool = False,
) -> Path:
    """Write the decoded value of a KeyValue row to ``<target>/<key>``; return the path.

    ``ctx`` is core's Context (its backend reads the entry).  The file appears whole
    or not at all (temp file, fsync, then a link or rename, then the directory fsync);
    an existing file is kept unless ``overwrite``.  With ``dry_run`` the value is read
    and decoded (so it is verified) and nothing is written.  Raise TargetExistsError,
    PasswordRequiredError/WrongPasswordError, IntegrityError, NotFoundError.
    """
    key = row.stored_filename
    backend = ctx.backend
    backend.check_key(key)
    where = Path(os.getcwd() if target is None else os.path.expanduser(os.fspath(target))).absolute()
    final = where / key
    if (final.exists() or final.is_symlink()) and not overwrite and not dry_run:
        raise TargetExistsError(f"{final} exists; use overwrite to replace it")
    backend.prepare_read(key, wait=wait)
    with backend.open_read(key) as reader:
        raw = reader.read()
    digest = hashlib.sha256(raw).hexdigest()
    etag = str(getattr(reader, "etag", ""))
    recorded = (row.metadata or {}).get("etag")
    if row.sha256 and digest != row.sha256:
        if recorded and etag and recorded != etag:
            log.warning("%s changed in the store since the catalog recorded it; restoring the current version", key)
        else:
            raise IntegrityError(f"{key}: SHA-256 mismatch with the catalog; nothing was restored")
    is_enc, is_gzipped = _flags(dict(getattr(reader, "metadata", {}) or {}), row)
    document = _decode_bytes(raw, is_enc, is_gzipped, password, key, ctx.settings)
    if dry_run:
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.parent.resolve() != where.resolve() and where.resolve() not in final.parent.resolve().parents:
        raise TargetExistsError(f"{final.parent} leads outside {where}; nothing was restored")
    from bakthat.atomic import save_file

    try:
        with save_file(final, prefix=".bakthat-restore-", exclusive=not overwrite) as handle:
            handle.write(document)
    except FileExistsError:
        raise TargetExistsError(f"{final} exists; use overwrite to replace it") from None
    log.info("Restored KeyValue %s into %s", key, final)
    return final
