"""The public actions: backup, restore, delete, search.

Each action resolves its settings (profile, ``conf=``, environment), binds the catalog,
finds the backend by name, and runs inside an event session (see
:mod:`bakthat.eventing`).  Models and backends are looked up at call time through
their modules, so plugins that replace them are honoured.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bakthat import backends, models
from bakthat.archive import EXTENSIONS
from bakthat.backends.base import Backend, HashingReader, HashingWriter
from bakthat.errors import (
    AlreadyExistsError,
    ConfigError,
    IntegrityError,
    NotFoundError,
    PasswordRequiredError,
    TargetExistsError,
    WrongPasswordError,
)
from bakthat.eventing import current_session, session
from bakthat.utils import strict_keywords

log = logging.getLogger("bakthat")

FORMAT_VERSION = 1
MANIFEST_SUFFIX = ".manifest.json"


@dataclass
class Context:
    """Everything an action needs: settings, the backend, and the destination's name."""

    settings: dict[str, Any]
    destination: str
    backend: Backend


def _context(
    destination: str | None, profile: str, config: str | None, conf: Mapping[str, Any] | None
) -> Context:
    """Given the common action arguments, return the resolved Context and bind the catalog."""
    from bakthat.conf import get_profile

    settings = get_profile(profile, config, conf)
    if settings.get("plugins"):
        from bakthat import plugin

        # Activate the profile's plugins (once per process; a no-op when they are active)
        # before the backend and the models are looked up, so their patches apply to this
        # action.  Its before_ event has already fired: passing the running session lets
        # the new plugins' before_ handlers run now.
        plugin.load_plugins(settings, session=current_session())
    name = destination or settings.get("default_destination") or "local"
    backend = backends.get_backend(name, settings)
    models.bind_settings(settings)
    if backend.legacy_backend_hash:
        models.adopt_legacy_rows(name, backend.legacy_backend_hash, backend.backend_hash)
    return Context(settings, name, backend)


def _tags(tags: str | list[str] | tuple[str, ...] | None) -> str:
    if not tags:
        return ""
    words = tags.split() if isinstance(tags, str) else [word for tag in tags for word in str(tag).split()]
    return " ".join(dict.fromkeys(words))


def _interactive() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def _backup_secret(
    password: str | None, prompt: str | bool, settings: dict[str, Any]
) -> tuple[str | None, list[str]]:
    """Return ``(passphrase, recipients)`` for a backup; at most one is set."""
    recipients = settings.get("encryption_recipients") or []
    if isinstance(recipients, str):
        recipients = recipients.split()
    if recipients:
        return None, list(recipients)
    if password is None:
        password = os.environ.get("BAKTHAT_PASSWORD")
    if password is None and prompt not in ("no", False) and _interactive():
        password = getpass.getpass("Password (blank to disable encryption): ")
        if password and getpass.getpass("Password confirmation: ") != password:
            raise ConfigError("the two passwords do not match; nothing was backed up")
    return (password or None), []


def _restore_secret(row: Any, password: str | None, prompt: str | bool, settings: dict[str, Any]) -> dict[str, Any]:
    """Return the keyword arguments for DecryptingReader that open ``row``."""
    from bakthat import crypto

    if row.encryption == "age-x25519":
        identity_file = settings.get("identity_file")
        if not identity_file:
            raise PasswordRequiredError(
                f"{row.stored_filename} is encrypted to public keys: set identity_file "
                "(or BAKTHAT_IDENTITY_FILE) to the matching age identity"
            )
        return {"identities": crypto.load_identities(os.path.expanduser(str(identity_file)))}
    if password is None:
        password = os.environ.get("BAKTHAT_PASSWORD")
    if password is None and prompt not in ("no", False) and _interactive():
        password = getpass.getpass(f"Password for {row.stored_filename}: ")
    if not password:
        raise PasswordRequiredError(
            f"{row.stored_filename} is encrypted: give a password (BAKTHAT_PASSWORD or the prompt)"
        )
    return {"passphrase": password}


def _arcname(source: Path, custom_filename: str | None) -> str:
    name = custom_filename or os.path.basename(os.path.normpath(str(source)))
    if not name or name in {".", ".."} or "/" in name or "\x00" in name:
        raise ConfigError(f"cannot use {name!r} as a backup name")
    return name


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reserve(ctx: Context, arcname: str, suffix: str, when: int, session_id: str) -> tuple[Any, int]:
    """Claim a free stored filename ``<name>.<stamp>.<suffix>``; return (reservation, stamp).

    The stamp is ``when`` or, if that name is taken in the catalog, the store or by a
    concurrent backup, the next free second.  Reservations left by dead processes on
    this host are swept first.
    """
    import peewee

    from bakthat.utils import utc_stamp

    Reservations = models.Reservations
    host = socket.gethostname()
    for stale in Reservations.select().where(Reservations.host == host):
        if not _pid_alive(stale.pid):
            stale.delete_instance()
    for offset in range(3600):
        stamp = when + offset
        candidate = f"{arcname}.{utc_stamp(stamp)}.{suffix}"
        if models.Backups.select().where(models.Backups.stored_filename == candidate).exists():
            continue
        if ctx.backend.exists(candidate) or ctx.backend.exists(candidate + MANIFEST_SUFFIX):
            continue
        try:
            reservation = Reservations.create(
                stored_filename=candidate, session_id=session_id, host=host, pid=os.getpid(), created=int(time.time())
            )
        except peewee.IntegrityError:
            continue
        return reservation, stamp
    raise AlreadyExistsError(f"no free stored filename for {arcname} near {utc_stamp(when)}")


def _own_paths(ctx: Context) -> list[str]:
    """Paths a backup must never include: the local store and the catalog files."""
    paths = []
    container = getattr(ctx.backend, "root", None)
    if container is not None:
        paths.append(str(container))
    database = str(ctx.settings.get("database") or "")
    if database and "://" not in database:
        db_path = os.path.abspath(os.path.expanduser(database))
        paths += [db_path, db_path + "-wal", db_path + "-shm"]
    return paths


@strict_keywords()
def backup(
    filename: str | os.PathLike[str] | None = None,
    destination: str | None = None,
    profile: str = "default",
    config: str | None = None,
    prompt: str | bool = "yes",
    tags: str | list[str] | None = None,
    key: str | None = None,
    exclude_file: str | None = None,
    s3_reduced_redundancy: bool = False,
    conf: Mapping[str, Any] | None = None,
    password: str | None = None,
    custom_filename: str | None = None,
    compression: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Any:
    """Back up a file or directory and return its catalog row (``models.Backups``).

    Given a path (default: the current directory at call time), tar it with the path's
    last component (or ``custom_filename``) as top-level entry, compress it (the
    profile's ``compression``: zstd, gzip or none), encrypt it (a password from the
    argument, ``BAKTHAT_PASSWORD`` or a prompt, blank meaning none; or the profile's
    ``encryption_recipients``), and store it under ``<name>.<UTC stamp>.<extension>``
    with a manifest beside it.  The catalog row is written only after the store has
    confirmed the archive.  Raise SourceError if the path is missing, StorageError if
    the store fails, VetoedError if a ``before_backup`` handler refuses.
    """
    from bakthat import archive

    source = Path(os.getcwd() if filename is None else os.path.expanduser(os.fspath(filename)))
    with session("backup") as current:
        ctx = _context(destination, profile, config, conf)
        kind = compression or ctx.settings.get("compression") or "zstd"
        if kind not in EXTENSIONS:
            raise ConfigError(f"unknown compression {kind!r}: choose zstd, gzip or none")
        passphrase, recipients = _backup_secret(password, prompt, ctx.settings)
        plan = _Plan(
            source=source,
            arcname=_arcname(source, custom_filename),
            compression=kind,
            encryption="age-x25519" if recipients else ("age-scrypt" if passphrase else "none"),
            passphrase=passphrase,
            recipients=recipients,
            excludes=archive.load_excludes(source, exclude_file),
            tags=_tags(tags),
            key=key,
            profile=profile,
            session_id=current.session_id,
            storage_class="REDUCED_REDUNDANCY" if s3_reduced_redundancy else None,
            progress=progress,
        )
        suffix = EXTENSIONS[kind] + (".age" if plan.encryption != "none" else "")
        reservation, plan.backup_date = _reserve(ctx, plan.arcname, suffix, int(time.time()), current.session_id)
        plan.stored_filename = reservation.stored_filename
        try:
            row = _store(ctx, plan)
        finally:
            reservation.delete_instance()
        log.info("Stored %s (%d bytes)", row.stored_filename, row.size)
        return current.finish(row)


@dataclass
class _Plan:
    """What one backup will store, decided before any byte is written."""

    source: Path
    arcname: str
    compression: str
    encryption: str
    passphrase: str | None
    recipients: list[str]
    excludes: Any
    tags: str
    key: str | None
    profile: str
    session_id: str
    storage_class: str | None
    progress: Callable[[int], None] | None = None
    stored_filename: str = ""
    backup_date: int = 0


def _store(ctx: Context, plan: _Plan) -> Any:
    """Stream the archive into the store, then write its manifest, then its catalog row.

    The upload is aborted (nothing left under any final name) if anything fails before
    the store confirms it.  Return the new row.
    """
    from bakthat import archive, crypto

    log.info("Backing up %s", plan.source.absolute())
    upload = ctx.backend.open_upload(plan.stored_filename, {"storage_class": plan.storage_class} if plan.storage_class else None)
    try:
        counted = HashingWriter(upload)
        encrypter = None
        if plan.encryption != "none":
            encrypter = crypto.EncryptingWriter(
                counted,
                passphrase=plan.passphrase,
                recipients=plan.recipients,
                work_factor=int(ctx.settings.get("scrypt_work_factor") or crypto.DEFAULT_WORK_FACTOR),
            )
        compressing = archive.compressor(
            encrypter or counted,
            plan.compression,
            ctx.settings.get("compression_level"),
            int(ctx.settings.get("compression_threads", -1)),
        )
        stats = archive.write_tar(
            plan.source, plan.arcname, compressing, plan.excludes, skip=_own_paths(ctx), progress=plan.progress
        )
        compressing.close()
        if encrypter is not None:
            encrypter.close()
        stored = upload.commit()
    except BaseException:
        upload.abort()
        raise
    if stored.size != counted.size:
        raise IntegrityError(f"{plan.stored_filename}: store holds {stored.size} bytes, {counted.size} were written")
    host = socket.gethostname()
    header_sha256 = None if encrypter is None else hashlib.sha256(encrypter.header).hexdigest()
    manifest_key = plan.stored_filename + MANIFEST_SUFFIX
    described = {
        "name": plan.arcname,
        "stored_filename": plan.stored_filename,
        "backup_date": plan.backup_date,
        "tags": plan.tags,
        "size": counted.size,
        "sha256": counted.hexdigest(),
        "compression": plan.compression,
        "encryption": plan.encryption,
        "host": host,
        "profile": plan.profile,
        "source_path": str(plan.source.absolute()),
        "source_size": stats.bytes,
        "file_count": stats.files,
        "session_id": plan.session_id,
        "format_version": FORMAT_VERSION,
    }
    extra = {
        "header_sha256": header_sha256,
        "skipped": stats.skipped,
        "key": plan.key,
        "bakthat_version": _version(),
        "backup_date_iso": datetime.fromtimestamp(plan.backup_date).astimezone().isoformat(),
    }
    manifest = {"format": "bakthat-manifest", **described, **extra, "tags": plan.tags.split()}
    ctx.backend.put(manifest_key, json.dumps(manifest, indent=2).encode())
    return models.Backups.create(
        backend=ctx.destination,
        backend_hash=ctx.backend.backend_hash,
        filename=described.pop("name"),
        is_deleted=False,
        last_updated=int(time.time()),
        metadata={
            "is_enc": plan.encryption != "none",
            "is_gzipped": plan.compression == "gzip",
            "client": host,
            "manifest": manifest_key,
            **{name: value for name, value in extra.items() if value and name != "backup_date_iso"},
        },
        **described,
    )


def _version() -> str:
    from bakthat import __version__

    return __version__


def _match(ctx: Context, filename: str) -> Any:
    """Return the newest live row named ``filename``, or the row stored as ``filename``.

    Raise NotFoundError (naming close matches) if neither exists in this destination.
    """
    Backups = models.Backups
    scope = Backups.search(destination=ctx.destination, backend_hash=ctx.backend.backend_hash)
    row = scope.where(Backups.filename == filename).first()
    if row is None:
        row = scope.where(Backups.stored_filename == filename).first()
    if row is None:
        close = sorted({r.filename for r in scope.where(Backups.filename.startswith(filename[:3])).limit(20)})
        hint = f" (similar names: {', '.join(close)})" if close else ""
        raise NotFoundError(f"no backup named {filename!r} in destination {ctx.destination}{hint}")
    return row


def _verify_stored_object(backend: Backend, row: Any) -> None:
    """Hash the whole stored object and compare with the catalog before anything else."""
    reader = HashingReader(backend.open_read(row.stored_filename))
    try:
        reader.drain()
    finally:
        reader.close()
    if row.sha256 and (reader.hexdigest() != row.sha256 or reader.size != row.size):
        raise IntegrityError(
            f"{row.stored_filename}: the stored archive does not match its SHA-256 "
            "(damaged or altered); nothing was restored"
        )


@strict_keywords(ignored={"job_check": "a cold-storage retrieval in progress raises RetrievalPendingError (bakthat retrievals lists them)"})
def restore(
    filename: str,
    destination: str | None = None,
    profile: str = "default",
    config: str | None = None,
    conf: Mapping[str, Any] | None = None,
    password: str | None = None,
    target: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    prompt: str | bool = "yes",
    wait: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Any:
    """Restore the newest backup named ``filename`` (or stored as ``filename``); return its row.

    The archive is verified (SHA-256, authenticated decryption), extracted into a
    staging directory inside ``target`` (default: the current directory), checked member
    by member, and only then moved into place.  Raise NotFoundError if nothing matches,
    PasswordRequiredError/WrongPasswordError for a missing or wrong secret,
    IntegrityError for damaged data, UnsafeArchiveError for a hostile archive,
    TargetExistsError if files would be overwritten and ``overwrite`` is false.  On any
    error the target directory is left exactly as it was.
    """
    from bakthat import archive, crypto, legacy
    from bakthat.extract import safe_extract

    with session("restore") as current:
        ctx = _context(destination, profile, config, conf)
        row = _match(ctx, filename)
        secret = _restore_secret(row, password, prompt, ctx.settings) if row.is_encrypted() else {}
        if (row.metadata or {}).get("KeyValue"):
            from bakthat.keyvalue import restore_entry

            restore_entry(ctx, row, target, secret.get("passphrase") if secret else password, overwrite, wait=wait)
            return current.finish(row)
        ctx.backend.prepare_read(row.stored_filename, wait=wait)
        if ctx.backend.cheap_reads and row.sha256:  # nothing to compare for an adopted 0.6 backup
            _verify_stored_object(ctx.backend, row)
        raw = ctx.backend.open_read(row.stored_filename)
        hashed = HashingReader(raw, progress)
        try:
            decrypted = None
            if secret and legacy.is_legacy_encrypted(row):
                # bakthat 0.6's Blowfish format: no MAC, so the gzip layer's checks
                # (header, CRC-32, length) are what tell a wrong password or damage.
                plain = legacy.open_archive(hashed, secret["passphrase"])
            else:
                if secret:
                    decrypted = crypto.DecryptingReader(
                        hashed, expected_header_sha256=(row.metadata or {}).get("header_sha256"), **secret
                    )
                plain = archive.decompressor(decrypted or hashed, row.compression or "gzip")

            def verify() -> None:
                for stream in (plain, decrypted):
                    if stream is not None:
                        while stream.read(1 << 20):
                            pass
                hashed.drain()
                if row.sha256 and (hashed.hexdigest() != row.sha256 or hashed.size != row.size):
                    raise IntegrityError(f"{row.stored_filename}: SHA-256 mismatch; nothing was restored")

            where = Path(os.getcwd() if target is None else os.path.expanduser(os.fspath(target)))
            log.info("Restoring %s into %s", row.stored_filename, where)
            try:
                safe_extract(plain, where, overwrite=overwrite, before_commit=verify)
            except (WrongPasswordError, TargetExistsError, IntegrityError):
                raise
            except Exception as exc:
                # A damaged archive can look hostile or malformed: if the rest of the
                # stream fails its own checks (a checksum, gzip's CRC-32), or the bytes do
                # not match the recorded SHA-256, report it as what it is.
                _drain_for_damage(plain, exc)
                hashed.drain()
                if row.sha256 and hashed.hexdigest() != row.sha256:
                    raise IntegrityError(
                        f"{row.stored_filename}: SHA-256 mismatch ({exc}); nothing was restored"
                    ) from exc
                raise
        finally:
            raw.close()
        return current.finish(row)


def _drain_for_damage(stream: Any, cause: BaseException) -> None:
    """Read ``stream`` to its end after ``cause`` stopped a restore; raise the
    IntegrityError its own checks raise on the way, if any, instead of ``cause``."""
    try:
        while stream.read(1 << 20):
            pass
    except IntegrityError as damaged:
        raise damaged from cause
    except Exception:  # noqa: BLE001 - the restore's own error is the one to report
        log.debug("could not read the rest of a refused archive", exc_info=True)


@strict_keywords()
def delete(
    filename: str,
    destination: str | None = None,
    profile: str = "default",
    config: str | None = None,
    conf: Mapping[str, Any] | None = None,
) -> Any:
    """Delete the newest backup named ``filename`` (or stored as ``filename``); return its row.

    The row is first marked deleted (``is_deleted``, state ``deleting``) so it can no
    longer be restored, then the archive and its manifest are deleted, then the state
    becomes ``deleted``.  An object already gone is a warning, not an error.  Raise
    NotFoundError if nothing matches; StorageError (the row staying ``deleting`` for a
    retry) if the store fails.
    """
    with session("delete") as current:
        ctx = _context(destination, profile, config, conf)
        row = _match(ctx, filename)
        delete_row(ctx, row)
        return current.finish(row)


def delete_row(ctx: Context, row: Any) -> None:
    """Given a context and a live row, delete its backup in the safe order.

    Mark the row deleted (``is_deleted``, state ``deleting``) first, so it can never be
    restored again; then delete the archive and its manifest (an object already gone
    is a warning); then set state ``deleted``.  Raise StorageError, leaving the row in
    state ``deleting`` for a retry, if the store fails.
    """
    row.is_deleted = True
    row.state = "deleting"
    row.last_updated = int(time.time())
    row.save()
    keys = [row.stored_filename]
    metadata = row.metadata or {}
    # KeyValue entries have no manifest, nor do adopted 0.6 backups unless one was written.
    if metadata.get("manifest") or not (metadata.get("KeyValue") or metadata.get("adopted")):
        keys.append(row.stored_filename + MANIFEST_SUFFIX)
    for stored_key in keys:
        try:
            ctx.backend.delete(stored_key)
        except NotFoundError:
            log.warning("%s was already gone from %s", stored_key, ctx.destination)
    row.state = "deleted"
    row.save()
    log.info("Deleted %s", row.stored_filename)


def _epoch(value: int | float | datetime | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return int(value.timestamp())
    return int(value)


@strict_keywords()
def search(
    query: str = "",
    destination: str | None = None,
    tags: str | list[str] | None = None,
    profile: str = "default",
    config: str | None = None,
    conf: Mapping[str, Any] | None = None,
    name: str | None = None,
    since: int | float | datetime | None = None,
    until: int | float | datetime | None = None,
    include_deleted: bool = False,
) -> list[Any]:
    """Return catalog rows, newest first, matching every filter given.

    ``query`` is a substring of the name or stored filename, ``name`` an exact name,
    ``tags`` all required, ``destination`` restricts to one backend (default: all),
    ``since``/``until`` bound the backup date (datetimes or Unix seconds).
    """
    from bakthat.conf import get_profile

    settings = get_profile(profile, config, conf)
    models.bind_settings(settings)
    select = models.Backups.search(
        query,
        destination=destination,
        tags=tags,
        name=name,
        newer_than=None if since is None else _epoch(since) - 1,
        older_than=None if until is None else _epoch(until) + 1,
        include_deleted=include_deleted,
    )
    return list(select)


@strict_keywords()
def show(
    query: str = "",
    destination: str | None = None,
    tags: str | list[str] | None = None,
    profile: str = "default",
    config: str | None = None,
    conf: Mapping[str, Any] | None = None,
    name: str | None = None,
    since: int | float | datetime | None = None,
    until: int | float | datetime | None = None,
    include_deleted: bool = False,
) -> list[Any]:
    """Log one line per matching backup (as 0.6's ``show``) and return the rows.

    The arguments are :func:`search`'s.
    """
    from bakthat.utils import human_size, local_time

    rows = search(query, destination, tags, profile, config, conf, name, since, until, include_deleted)
    for row in rows:
        log.info("%s\t%s\t%s\t%s\t(%s)", local_time(row.backup_date), row.backend, human_size(row.size), row.stored_filename, row.tags)
    return rows
