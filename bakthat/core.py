"""The backup action, and the public names of every action: backup, restore, delete, search, show.

:func:`backup` resolves its settings (profile, ``conf=``, environment), binds the
catalog, finds the backend by name (:func:`bakthat.actions.resolve`), and runs inside
an event session (see :mod:`bakthat.eventing`).  Models and backends are looked up at
call time through their modules, so plugins that replace them are honoured.  Its
whole sequence of catalog and store writes is here, in order (that order is the
contract): reserve the stored filename, stream the archive, write the manifest, then
the row.  The other actions have homes of their own and stay importable from here:
``restore`` (:mod:`bakthat.restore_action`), ``delete`` and ``delete_row``
(:mod:`bakthat.delete_action`), ``search`` and ``show`` (:mod:`bakthat.catalog`).  What a backup decides before writing is in
:mod:`bakthat.backup_plan`, its stored filename's claim and clean-up in
:mod:`bakthat.backup_reserve`, what every action shares in :mod:`bakthat.actions`;
passwords in :mod:`bakthat.passwords`, dry-run plans in :mod:`bakthat.dryrun`, backup
names in :mod:`bakthat.naming`, the tar walk in :mod:`bakthat.tarwriter`.
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
from bakthat.backup_plan import Plan, dumped_source, join_tags, plan_level, start_file_keys
from bakthat.backup_reserve import candidates, reserve, unstore, wait_until
from bakthat.catalog import search, show  # noqa: F401 - public here as in 0.6
from bakthat.context import using_context
from bakthat.delete_action import delete, delete_row  # noqa: F401 - public here too
from bakthat.errors import CatalogError, ConfigError, IntegrityError
from bakthat.eventing import session
from bakthat.pipeline import HashingWriter
from bakthat.restore_action import match_at, restore  # noqa: F401 - public here too
from bakthat.settings import source_of
from bakthat.utils import strict_keywords

log = logging.getLogger("bakthat")

#: Kept for callers of 0.x releases of this module; :mod:`bakthat.manifest` is their home.
FORMAT_VERSION = manifest.FORMAT_VERSION
MANIFEST_SUFFIX = manifest.SUFFIX

#: Kept for the modules and tests that import them from here (:mod:`bakthat.actions` and
#: :mod:`bakthat.restore_action` are their homes).
_context = resolve
_match = find_row
_match_at = match_at


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
    dumped = dumped_source(filename, custom_filename)
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
        plan = Plan(
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
            tags=join_tags(tags),
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


def _backup_work(ctx: Context, plan: Plan, suffix: str, warn_unencrypted: bool) -> Any:
    """Store what ``plan`` says (or, in a dry run, say what would be stored); return the
    row (or the BackupPlan)."""
    if plan.context is not None and plan.context.dry_run:
        found = _dry_run_backup(ctx, plan, suffix)
        if warn_unencrypted:
            passwords.warn_unencrypted(found.stored_filename, dry_run=True)
        return found
    start_file_keys(ctx, plan)
    reservation, plan.backup_date = reserve(ctx, plan.name, suffix, int(time.time()), plan.session_id)
    plan.stored_filename = reservation.stored_filename
    try:
        if plan.dump is None:
            plan_level(ctx, plan, plan.requested_level)
        elif plan.requested_level not in ("full", "auto"):
            log.warning("Storing a full backup of %s: a database dump has no levels", plan.name)
        row = _store(ctx, plan)
    except CatalogError as exc:
        if not plan.committed:
            raise
        raise CatalogError(f"{exc}; the backup was not recorded, so {unstore(ctx, plan)}") from exc
    except BaseException:
        if plan.committed:
            log.error("The backup failed after the store had it: %s", unstore(ctx, plan))
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


def _dry_run_backup(ctx: Context, plan: Plan, suffix: str) -> Any:
    """Return the BackupPlan of a backup: the name it would get and what the source holds."""
    from bakthat import dryrun

    stored_filename, _ = next(candidates(ctx, plan.name, suffix, int(time.time())))
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


def _store(ctx: Context, plan: Plan) -> Any:
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
        encrypter = None
        if plan.encryption != "none":
            from bakthat import crypto  # not imported for plain backups: it costs memory

            # The key may still be in the making: the first compressed bytes wait for it
            # in memory (see start_file_keys), not the walk.
            encrypter = crypto.KeyAwaitingWriter(counted, plan.file_keys[0])
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
        # The index is a file of its own: its own file key, salt or ephemeral share (age).
        plan.index = index_store.store_index(
            ctx.backend, delta, key=None if encrypter is None else plan.file_keys[1].result()
        )
        plan.index["entries"] = len(delta)
        plan.index["deletions"] = len(delta.deletions)
    header_sha256 = None if encrypter is None else hashlib.sha256(encrypter.header).hexdigest()
    stats.report()
    described = manifest.build(
        plan, stats, size=counted.size, sha256=counted.hexdigest(), host=socket.gethostname(),
        header_sha256=header_sha256, version=_version(),
    )
    ctx.backend.put(manifest.key_for(plan.stored_filename), manifest.encode(described))
    wait_until(plan.backup_date)
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
