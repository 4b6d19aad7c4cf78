"""The public actions: backup, delete, search (and ``restore``, whose home is :mod:`bakthat.restore_action`).

Each action resolves its settings (profile, ``conf=``, environment), binds the catalog,
finds the backend by name (:func:`bakthat.actions.resolve`), and runs inside an event
session (see :mod:`bakthat.eventing`).  Models and backends are looked up at call time
through their modules, so plugins that replace them are honoured.

This module is longer than most (about 720 lines) because it holds the backup's whole
sequence in one place (the order of catalog and store writes is the contract); what
can stand alone lives elsewhere: the restore action in :mod:`bakthat.restore_action`,
what every action shares in :mod:`bakthat.actions`, passwords in
:mod:`bakthat.passwords`, dry-run plans in :mod:`bakthat.dryrun`, backup names in
:mod:`bakthat.naming`, the tar walk in :mod:`bakthat.tarwriter`, extraction in
:mod:`bakthat.extract`, locks in :mod:`bakthat.locks`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bakthat import manifest, models, naming, passwords
from bakthat.actions import Context, advancing, find_row, resolve, status_publisher
from bakthat.archive import EXTENSIONS
from bakthat.catalog import search, show  # noqa: F401 - public here as in 0.6
from bakthat.pipeline import HashingWriter
from bakthat.process import pid_alive
from bakthat.settings import source_of
from bakthat.context import using_context
from bakthat.errors import (
    AlreadyExistsError,
    BakthatError,
    CatalogError,
    ConfigError,
    IntegrityError,
    NotFoundError,
)
from bakthat.eventing import session
from bakthat.restore_action import match_at, restore  # noqa: F401 - restore is public here
from bakthat.utils import strict_keywords

log = logging.getLogger("bakthat")

#: Kept for callers of 0.x releases of this module; :mod:`bakthat.manifest` is their home.
FORMAT_VERSION = manifest.FORMAT_VERSION
MANIFEST_SUFFIX = manifest.SUFFIX

#: Kept for the modules and tests that import them from here (:mod:`bakthat.actions` and
#: :mod:`bakthat.restore_action` are their homes); ``restore`` stays public here too.
_context = resolve
_match = find_row
_match_at = match_at


def _tags(tags: str | list[str] | tuple[str, ...] | None) -> str:
    if not tags:
        return ""
    words = tags.split() if isinstance(tags, str) else [word for tag in tags for word in str(tag).split()]
    return " ".join(dict.fromkeys(words))


def _candidates(ctx: Context, arcname: str, suffix: str, when: int) -> Any:
    """Yield ``(stored filename, stamp)`` from ``when`` on, skipping names taken in the catalog or store."""
    from bakthat.utils import utc_stamp

    for offset in range(3600):
        stamp = when + offset
        candidate = f"{arcname}.{utc_stamp(stamp)}.{suffix}"
        if models.Backups.select().where(models.Backups.stored_filename == candidate).exists():
            continue
        if ctx.backend.exists(candidate) or ctx.backend.exists(manifest.key_for(candidate)):
            continue
        yield candidate, stamp
    raise AlreadyExistsError(f"no free stored filename for {arcname} near {utc_stamp(when)}")


def _reserve(ctx: Context, arcname: str, suffix: str, when: int, session_id: str) -> tuple[Any, int]:
    """Claim a free stored filename ``<name>.<stamp>.<suffix>``; return (reservation, stamp).

    The stamp is ``when`` or, if that name is taken in the catalog, the store or by a
    concurrent backup, the next free second (the backup then waits for that second
    before its row is written, so no row is ever dated in the future).  Reservations
    left by dead processes on this host are swept first.  This is the first write to
    the catalog: a catalog that cannot be written fails the backup here, before any
    byte is uploaded (CatalogError).
    """
    import peewee

    Reservations = models.Reservations
    host = socket.gethostname()
    for stale in Reservations.select().where(Reservations.host == host):
        if not pid_alive(stale.pid):
            stale.delete_instance()
    for candidate, stamp in _candidates(ctx, arcname, suffix, when):
        try:
            reservation = Reservations.create(
                stored_filename=candidate, session_id=session_id, host=host, pid=os.getpid(), created=int(time.time())
            )
        except peewee.IntegrityError:
            continue
        return reservation, stamp
    raise AssertionError("unreachable: _candidates raises when no name is free")


def _own_paths(ctx: Context) -> list[str]:
    """Paths a backup must never include: the local store, the index cache and the catalog files (the
    walk compares them by device and inode, so any spelling or link reaching them is
    recognised)."""
    from bakthat.index_store import cache_directory

    paths = [str(cache_directory().parent)]
    container = getattr(ctx.backend, "root", None)
    if container is not None:
        paths.append(str(container))
    database = models.catalog_location(ctx.settings)
    if "://" not in database:
        db_path = os.path.abspath(os.path.expanduser(database))
        paths += [db_path, db_path + "-wal", db_path + "-shm", db_path + "-journal"]
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
    dry_run: bool = False,
    exclude: str | list[str] | None = None,
    level: str | None = None,
) -> Any:
    """Back up a file or directory and return its catalog row (``models.Backups``).

    Given a path (default: the current directory at call time; a symbolic link is
    followed), tar it with the backup name as top-level entry, compress it (the
    profile's ``compression``: zstd, gzip or none), encrypt it (a password from the
    argument, ``BAKTHAT_PASSWORD``, the profile's ``password_file`` or
    ``password_command``, or a prompt, blank meaning none; or the profile's
    ``encryption_recipients``), and store it under ``<name>.<UTC stamp>.<extension>``
    with a manifest beside it.  The name is ``custom_filename``, else the last component
    of the absolute path (``root`` for ``/``); a path-derived name earlier used on this
    host for another source path is warned about (``metadata["warnings"]``).  Entries
    matching the profile's ``exclude``, ``exclude`` (gitignore-style patterns),
    ``exclude_file`` or ``.bakthatexclude`` are left out.  The catalog row is written
    only after the store has confirmed the archive; if writing it fails, what was stored
    is removed again.  ``metadata["partial"]`` is true when entries could not be read
    or changed while being read.

    ``level`` (default: the profile's ``level``, itself ``full`` by default) is
    ``full``, ``diff`` (what changed since the last full of this name), ``incr`` (what
    changed since the last backup of this name) or ``auto`` (an incremental, or a full
    when there is none, the last is ``full_every`` old, or the chain is ``max_chain``
    long; see :mod:`bakthat.levels`).  A differential or incremental whose base cannot
    be used (no full yet, a broken chain, an index that cannot be read) is stored as a
    full, the reason logged and recorded (``metadata["level_reason"]``).  Every backup
    stores its file index beside the archive (see :mod:`bakthat.index_store`).

    With ``dry_run``, walk the source as a backup would and return a
    :class:`bakthat.dryrun.BackupPlan` (entries, bytes, excluded entries, the stored
    name); nothing is asked, stored or catalogued.

    Raise SourceError if the path is missing, ConfigError for a name conflict the
    profile makes an error, EncryptionRequiredError if the profile has
    ``require_encryption: true`` and no password or recipient is given, StorageError if
    the store fails, CatalogError if the catalog does, VetoedError if a
    ``before_backup`` handler refuses.
    """
    from bakthat import archive
    from bakthat.conf import combination_problems
    from bakthat.context import RunContext

    run = _HANDOFF.get()
    _HANDOFF.set(None)  # a backup started by a handler of this one is a run of its own
    dumped = _dumped_source(filename, custom_filename)
    source = Path(os.getcwd() if filename is None or dumped else os.path.expanduser(os.fspath(filename)))
    if dumped is not None:
        name, entry, source_path = dumped.name, dumped.name, dumped.display
    else:
        name, entry = naming.backup_names(source, custom_filename)
        source_path = naming.source_path(source)
    session_id = run.context.session_id if run is not None else str(uuid.uuid4())
    run_context = run.context if run is not None else RunContext(
        session_id, "backup", source=source_path, name=name, destination=destination, dry_run=bool(dry_run)
    )
    with ExitStack() as stack:
        stack.enter_context(using_context(run_context))
        current = stack.enter_context(session("backup", dry_run, session_id=session_id))
        ctx = resolve(destination, profile, config, conf)
        if run is not None and run.overrides:
            ctx.settings = ctx.settings.replace(**run.overrides)
        run_context = run_context.replace(destination=ctx.destination)
        stack.enter_context(using_context(run_context))
        kind = compression or ctx.settings.get("compression") or "zstd"
        if kind not in EXTENSIONS:
            raise ConfigError(f"unknown compression {kind!r}: choose zstd, gzip or none")
        problems = combination_problems({**ctx.settings, "compression": kind})
        if problems:
            raise ConfigError(f"{source_of(ctx.settings)}: profile {profile!r}: {problems[0]}")
        warning = None
        if custom_filename is None and dumped is None:
            warning = naming.name_conflict(ctx.settings, name, source_path)
        secret = passwords.for_backup(password, prompt, ctx.settings, ask=not dry_run)
        warn_unencrypted = passwords.enforce(secret, ctx.settings, f"the backup of {source_path}")
        publisher = run.publisher if run is not None else (
            None if dry_run else status_publisher(session_id, "backup", source_path, name)
        )
        if publisher is not None:
            progress = advancing(publisher, progress)
            if run is None:
                stack.enter_context(publisher)
        plan = _Plan(
            source=source,
            source_path=source_path,
            name=name,
            arcname=entry,
            compression=kind,
            encryption=secret.encryption,
            passphrase=secret.passphrase,
            recipients=secret.recipients,
            excludes=None if dumped is not None else archive.load_excludes(
                source, exclude_file, [ctx.settings.get("exclude"), exclude], bool(ctx.settings.get("exclude_gitignore"))
            ),
            warnings=[warning] if warning else [],
            tags=_tags(tags),
            key=key,
            profile=profile,
            session_id=current.session_id,
            storage_class="REDUCED_REDUNDANCY" if s3_reduced_redundancy else None,
            progress=progress,
            dump=dumped,
            context=run_context,
            publisher=publisher,
        )
        suffix = EXTENSIONS[kind] + (".age" if plan.encryption != "none" else "")
        requested = level or ctx.settings.get("level") or "full"
        from bakthat.levels import REQUESTS

        if requested not in REQUESTS:
            raise ConfigError(f"level must be one of {', '.join(REQUESTS)}, not {requested!r}")
        plan.requested_level = requested
        if dumped is not None:
            from bakthat.sources import pipeline

            suffix = pipeline.suffix(dumped, kind, plan.encryption != "none")
        if publisher is not None:
            publisher.update(phase="dump" if dumped is not None else "archive", name=name, source=source_path)
        if run is None and ctx.settings.get("hooks"):
            from bakthat.hooks.record import around_backup

            result = around_backup(ctx.settings, run_context, lambda _: _backup_work(ctx, plan, suffix, warn_unencrypted))
        else:
            result = _backup_work(ctx, plan, suffix, warn_unencrypted)
        if publisher is not None:
            publisher.end(files=int(getattr(result, "file_count", 0) or 0))
        if publisher is not None and run is None:
            publisher.finish("partial" if (getattr(result, "metadata", None) or {}).get("partial") else "ok")
        return current.finish(result)
    raise AssertionError("unreachable")


def _backup_work(ctx: Context, plan: _Plan, suffix: str, warn_unencrypted: bool) -> Any:
    """Store what ``plan`` says (or, in a dry run, say what would be stored); return the
    row (or the BackupPlan)."""
    if plan.context is not None and plan.context.dry_run:
        found = _dry_run_backup(ctx, plan, suffix)
        if warn_unencrypted:
            passwords.warn_unencrypted(found.stored_filename, dry_run=True)
        return found
    reservation, plan.backup_date = _reserve(ctx, plan.name, suffix, int(time.time()), plan.session_id)
    plan.stored_filename = reservation.stored_filename
    try:
        if plan.dump is None:
            _plan_level(ctx, plan, plan.requested_level)
        elif plan.requested_level not in ("full", "auto"):
            log.warning("Storing a full backup of %s: a database dump has no levels", plan.name)
        row = _store(ctx, plan)
    except CatalogError as exc:
        if not plan.committed:
            raise
        raise CatalogError(f"{exc}; the backup was not recorded, so {_unstore(ctx, plan)}") from exc
    except BaseException:
        if plan.committed:
            log.error("The backup failed after the store had it: %s", _unstore(ctx, plan))
        raise
    finally:
        reservation.delete_instance()
    log.info("Stored %s (%d bytes, %s)", row.stored_filename, row.size, row.level or "full")
    if plan.state is not None:
        from bakthat import index_store

        index_store.save_cache(ctx, plan.name, plan.state)
    if warn_unencrypted:
        passwords.warn_unencrypted(row.stored_filename)
    return row


@dataclass(frozen=True)
class Handoff:
    """What a job gives the backup of one of its sources: the source's run context
    (whose session id the backup's events carry) and the job's status publisher."""

    context: Any
    publisher: Any = None
    overrides: Mapping[str, Any] | None = None


_HANDOFF: ContextVar[Handoff | None] = ContextVar("bakthat_backup_handoff", default=None)


@contextmanager
def handing_off(handoff: Handoff) -> Iterator[None]:
    """Inside the block, the next :func:`backup` call runs as ``handoff`` says (used by
    :mod:`bakthat.jobs_run`); a backup started from within that one gets its own."""
    token = _HANDOFF.set(handoff)
    try:
        yield
    finally:
        _HANDOFF.reset(token)


def _dumped_source(filename: Any, custom_filename: str | None) -> Any:
    """Return the parsed source if ``filename`` is a dumped source (a Source, or a
    ``postgresql://``, ``mysql://``, ``sqlite:///`` URL), else None (a path)."""
    from bakthat import sources
    from bakthat.sources import pipeline

    if isinstance(filename, sources.Source):
        found = filename
    elif isinstance(filename, str) and pipeline.dump_scheme(filename):
        found = sources.parse(filename, "source")
    else:
        return None
    if found.kind == "path":
        return None
    if custom_filename is not None:
        import dataclasses

        from bakthat.sources.base import check_name

        found = dataclasses.replace(found, name=check_name(custom_filename, "--name"))
    return found


def _dry_run_backup(ctx: Context, plan: _Plan, suffix: str) -> Any:
    """Return the BackupPlan of a backup: the name it would get and what the source holds."""
    from bakthat import dryrun

    stored_filename, _ = next(_candidates(ctx, plan.name, suffix, int(time.time())))
    if plan.dump is not None:  # a dump is not started by a dry run: nothing to walk
        log.info("Would store %s (a dump of %s); dry run: nothing stored", stored_filename, plan.source_path)
        return dryrun.BackupPlan(
            filename=plan.name, stored_filename=stored_filename, destination=ctx.destination,
            source_path=plan.source_path, compression=plan.compression, encryption=plan.encryption, tags=plan.tags,
        )
    found = dryrun.plan_backup(
        plan.source,
        plan.arcname,
        plan.excludes,
        _own_paths(ctx),
        name=plan.name,
        source_path=plan.source_path,
        stored_filename=stored_filename,
        destination=ctx.destination,
        compression=plan.compression,
        encryption=plan.encryption,
        tags=plan.tags,
        progress=plan.progress,
    )
    log.info(
        "Would store %s (%d entries, %d bytes of file data); dry run: nothing stored",
        stored_filename, found.file_count, found.source_size,
    )
    return found


@dataclass
class _Plan:
    """What one backup will store, decided before any byte is written."""

    source: Path
    source_path: str
    name: str
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
    warnings: list[str]
    progress: Callable[[int], None] | None = None
    dump: Any = None
    context: Any = None
    stored_filename: str = ""
    backup_date: int = 0
    committed: bool = False
    requested_level: str = "full"
    level: str = "full"
    base: str | None = None
    level_reason: str = ""
    planner: Any = None  # bakthat.changes.ChangeSet
    publisher: Any = None  # bakthat.status.StatusPublisher (told by bakthat.estimates.begin)
    state: Any = None  # the state index at this backup, once stored
    index: dict[str, Any] | None = None  # what the manifest records of the stored index


def _plan_level(ctx: Context, plan: _Plan, requested: str) -> None:
    """Choose the backup's level and base (see :mod:`bakthat.levels`) and give ``plan``
    its change planner, with the state of the base loaded from the local cache or the
    store.  A differential or incremental whose base cannot be used becomes a full,
    with the reason logged."""
    from bakthat import index_store
    from bakthat.changes import ChangeSet

    try:
        plan.arcname.encode("utf-8")
    except UnicodeEncodeError:
        # The index file names its root as UTF-8 text: a top-level name that is not UTF-8
        # gets a full archive without an index (no levels, files or find for it).
        if requested != "full":
            log.warning("Storing a full backup of %s: its name is not UTF-8, so it has no file index", plan.name)
        plan.level_reason = "its name is not UTF-8: no file index"
        return
    previous = None
    choice_level, base, reason = "full", None, "a full backup was asked for"
    if requested != "full":
        rows = index_store.live_rows(ctx, plan.name, plan.profile)
        history, by_name, unusable = index_store.history(rows)
        choice = history.choose_level(
            requested,
            now=plan.backup_date,
            full_every=ctx.settings.get("full_every"),
            max_chain=ctx.settings.get("max_chain"),
            damaged=unusable,
        )
        choice_level, reason = choice.level, choice.reason
        if choice.base is not None:
            try:
                chain = history.chain(choice.base, unusable)
                previous = index_store.chain_state(
                    ctx, chain, by_name,
                    lambda row: passwords.for_restore(row, plan.passphrase, "no", ctx.settings) if row.is_encrypted() else None,
                    root=plan.arcname,
                )
                base = choice.base.stored_filename
            except (BakthatError, OSError) as exc:
                log.warning("Storing a full backup: the state of %s cannot be read (%s)", choice.base.stored_filename, exc)
                choice_level, previous, reason = "full", None, f"the state of its base cannot be read ({exc})"
    if requested not in ("auto", choice_level):
        log.warning("Storing a %s backup of %s: %s", choice_level, plan.name, reason)
    elif requested == "auto":
        log.info("Level %s: %s", choice_level, reason)
    plan.level, plan.base, plan.level_reason = choice_level, base, reason
    plan.planner = ChangeSet(previous, backup=plan.stored_filename, level=choice_level, base=base, root=plan.arcname)


def _unstore(ctx: Context, plan: _Plan) -> str:
    """Remove what a backup that failed after its upload stored (manifest, archive); say what happened."""
    left = []
    from bakthat.index_store import index_key

    for key in (manifest.key_for(plan.stored_filename), index_key(plan.stored_filename), plan.stored_filename):
        try:
            ctx.backend.delete(key)
        except NotFoundError:
            continue
        except Exception as exc:  # noqa: BLE001 - report every key that stays
            log.debug("could not remove %s: %s", key, exc)
            left.append(key)
    if left:
        return f"{', '.join(left)} could not be removed from {ctx.destination}: bakthat sync reports it as an orphan"
    return f"{plan.stored_filename} was removed from {ctx.destination}"


def _wait_until(stamp: int) -> None:
    """Sleep until the clock reaches ``stamp``: a row is never dated in the future."""
    delay = stamp - time.time()
    if delay > 0:
        time.sleep(delay)


def _store(ctx: Context, plan: _Plan) -> Any:
    """Stream the archive into the store, then write its manifest, then its catalog row.

    The upload is aborted (nothing left under any final name) if anything fails before
    the store confirms it.  Return the new row.
    """
    from bakthat import archive, estimates
    from bakthat.streams import WriteBehind

    log.info("Backing up %s", plan.source_path)
    upload = ctx.backend.open_upload(plan.stored_filename, {"storage_class": plan.storage_class} if plan.storage_class else None)
    behind = None
    try:
        counted = HashingWriter(upload)
        encrypter = key = None
        if plan.encryption != "none":
            from bakthat import crypto  # not imported for plain backups: it costs memory

            # One file key for the archive and its index: one scrypt derivation per backup.
            key = crypto.FileKey(
                passphrase=plan.passphrase,
                recipients=plan.recipients,
                work_factor=int(ctx.settings.get("scrypt_work_factor") or crypto.DEFAULT_WORK_FACTOR),
            )
            encrypter = crypto.EncryptingWriter(counted, key=key)
        # Encryption, hashing and the store's writes run in a thread of their own, so
        # the walk (this thread) and zstd's workers keep the cores busy.
        behind = WriteBehind(encrypter or counted)
        compressing = archive.compressor(
            behind,
            plan.compression,
            ctx.settings.get("compression_level"),
            int(ctx.settings.get("compression_threads", -1)),
        )
        # The store's temp files (this upload's and any other) are never part of a backup.
        own = [*_own_paths(ctx), *([os.path.dirname(upload.temp)] if getattr(upload, "temp", None) else [])]
        counts = estimates.begin(ctx, plan)  # the status follows the walk's counts, with an ETA
        if plan.dump is not None:
            from bakthat.sources import pipeline

            stats = pipeline.write_dump(plan.dump, ctx.settings, plan.context, compressing, plan.progress)
        else:
            stats = archive.write_tar(
                plan.source, plan.arcname, compressing, plan.excludes, skip=own, progress=plan.progress,
                planner=plan.planner, stats=counts,
            )
        compressing.close()
        behind.close()
        if encrypter is not None:
            encrypter.close()
        stored = upload.commit()
        plan.committed = True
    except BaseException:
        if behind is not None:
            behind.abandon()
        upload.abort()
        raise
    if stored.size != counted.size:
        raise IntegrityError(f"{plan.stored_filename}: store holds {stored.size} bytes, {counted.size} were written")
    if plan.planner is not None:
        from bakthat import index_store

        delta, plan.state = plan.planner.finish()
        plan.index = index_store.store_index(ctx.backend, delta, key=key)
        plan.index["entries"] = len(delta)
        plan.index["deletions"] = len(delta.deletions)
    header_sha256 = None if encrypter is None else hashlib.sha256(encrypter.header).hexdigest()
    stats.report()
    described = manifest.build(
        plan, stats, size=counted.size, sha256=counted.hexdigest(), host=socket.gethostname(),
        header_sha256=header_sha256, version=_version(),
    )
    ctx.backend.put(manifest.key_for(plan.stored_filename), manifest.encode(described))
    _wait_until(plan.backup_date)
    return models.Backups.create(
        backend=ctx.destination,
        backend_hash=ctx.backend.backend_hash,
        is_deleted=False,
        last_updated=int(time.time()),
        **manifest.own_row_fields(described),
    )


def _version() -> str:
    from bakthat import __version__

    return __version__


@strict_keywords()
def delete(
    filename: str,
    destination: str | None = None,
    profile: str = "default",
    config: str | None = None,
    conf: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    lock_timeout: float = 60.0,
) -> Any:
    """Delete the newest backup named ``filename`` (or stored as ``filename``); return its row.

    The deletion holds the lock of the backup's name (as rotation does, see
    :mod:`bakthat.locks`), so it never overlaps a rotation of that name on any host
    sharing the catalog.  The row is first marked deleted (``is_deleted``, state
    ``deleting``) so it can no longer be restored, then the archive and its manifest
    are deleted, then the state becomes ``deleted``.  An object already gone is a
    warning, not an error.  With ``dry_run``, return a
    :class:`bakthat.dryrun.DeletePlan` naming the backup and delete nothing.

    Raise NotFoundError if nothing matches; LockedError if another process holds the
    name's lock longer than ``lock_timeout`` seconds; StorageError (the row staying
    ``deleting`` for a retry) if the store fails.
    """
    from bakthat import dryrun
    from bakthat.locks import name_lock

    with session("delete", dry_run) as current:
        ctx = resolve(destination, profile, config, conf)
        row = find_row(ctx, filename)
        if dry_run:
            log.debug("Would delete %s; dry run: nothing was deleted", row.stored_filename)
            return current.finish(dryrun.DeletePlan(row))
        with name_lock(ctx.settings, ctx.backend.backend_hash, row.filename, lock_timeout):
            row = find_row(ctx, filename)  # again, under the lock: it may have changed meanwhile
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
        keys.append(manifest.key_for(row.stored_filename))
    if isinstance(metadata.get("index"), dict) and metadata["index"].get("key"):
        from bakthat.index_store import index_key

        keys.insert(1, index_key(row.stored_filename))
    for stored_key in keys:
        try:
            ctx.backend.delete(stored_key)
        except NotFoundError:
            log.warning("%s was already gone from %s", stored_key, ctx.destination)
    row.state = "deleted"
    row.save()
    log.info("Deleted %s", row.stored_filename)
