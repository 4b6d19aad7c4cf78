"""The restore action: choosing the backup (by name, stored filename or ``--at`` date),
and reading it back into a directory or a database, verified before anything is written.

A backup that is a differential or incremental, or a restore of some paths only
(``include``), goes through its chain (:mod:`bakthat.chain_read`); a dump is streamed
to its client tool (:mod:`bakthat.sources.pipeline`); an archive bakthat 0.6 wrote
uncompressed goes through :mod:`bakthat.legacy_raw`; everything else is one archive
read once, front to back, into :func:`bakthat.extract.safe_extract`.  Its public name
stays :func:`bakthat.restore` (and ``bakthat.core.restore``).
"""

from __future__ import annotations

import errno
import logging
import os
import uuid
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bakthat import passwords
from bakthat.actions import Context, advancing, backups_of, find_row, resolve, status_publisher
from bakthat.chain_read import ArchiveStream
from bakthat.context import using_context
from bakthat.errors import (
    BakthatError,
    ConfigError,
    IntegrityError,
    NotFoundError,
    TargetExistsError,
    TargetFullError,
    UnsafeArchiveError,
    WrongPasswordError,
)
from bakthat.eventing import session
from bakthat.utils import strict_keywords

log = logging.getLogger("bakthat")


def match_at(ctx: Context, filename: str, at: Any) -> Any:
    """Return the newest live row named ``filename`` dated at or before ``at``.

    Raise NotFoundError if there is none, ConfigError for a malformed date.
    """
    from bakthat.levels import History

    rows = list(backups_of(ctx, filename))
    if not rows:
        find_row(ctx, filename)  # raises NotFoundError with close names
        raise NotFoundError(f"{filename!r} is not a backup name (--at picks among the backups of a name)")
    by_name = {row.stored_filename: row for row in rows}
    try:
        link = History(rows).at(at)
    except NotFoundError as exc:
        raise NotFoundError(f"{filename}: {exc}") from None
    return by_name[link.stored_filename]


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
    dry_run: bool = False,
    into: str | None = None,
    unverified: bool = False,
    at: Any = None,
    include: str | list[str] | tuple[str, ...] | None = None,
) -> Any:
    """Restore the newest backup named ``filename`` (or stored as ``filename``); return its row.

    A database or command dump is restored as one file, ``<target>/<name>.<extension>``
    (``app.pgdump``), or with ``into`` (``postgresql://.../newdb``, ``mysql://...``,
    ``sqlite:///path``) streamed into that database by its client tool: created if
    missing, refused if it holds tables unless ``overwrite`` (see docs/jobs.md).

    The archive is verified (SHA-256, authenticated decryption), extracted into a
    staging directory inside ``target`` (default: the current directory), checked member
    by member, and only then moved into place.  The password comes from ``password``,
    ``BAKTHAT_PASSWORD``, the profile's ``password_file`` or ``password_command``, or a
    prompt.

    With ``dry_run``, the whole archive is read and verified the same way and a
    :class:`bakthat.dryrun.RestorePlan` is returned (what would be written, what
    already exists in the target); nothing is written to the target.

    A file bakthat 0.6 uploaded with ``compress: false`` is restored as the single file
    its name gives (see :mod:`bakthat.legacy_raw`); when it is Blowfish-encrypted
    nothing can verify it, and ``unverified=True`` must acknowledge that (else
    UnverifiableError, before any password or download).  ``unverified`` changes
    nothing for other backups.

    ``at`` (an ISO 8601 date or time, a ``backup_date`` as ``show --json`` prints it,
    or an aware datetime) restores the newest backup of the name at or before it.  The
    backup of a differential or incremental is restored with its chain: the state at
    that backup (see :mod:`bakthat.chain_read`); a chain with a missing or damaged
    link raises BrokenChainError naming it, with nothing written to the target (a
    missing link is found before any archive is read, damage as the link streams; a
    dry run checks the chain and reads every archive it would read).  ``include``
    (gitignore-style patterns, matched below the backup's top-level entry) restores
    only the matching paths, reading only the archives of the chain that hold them.

    Raise NotFoundError if nothing matches, PasswordRequiredError/WrongPasswordError
    for a missing or wrong secret, IntegrityError for damaged data,
    UnsafeArchiveError for a hostile archive, TargetExistsError if files would be
    overwritten and ``overwrite`` is false, TargetFullError if the target's disk fills
    up.  On any error the target directory is left exactly as it was.
    """
    from bakthat import dryrun, legacy, legacy_raw
    from bakthat.extract import safe_extract

    from bakthat.context import RunContext

    session_id = str(uuid.uuid4())
    with ExitStack() as stack:
        stack.enter_context(using_context(RunContext(session_id, "restore", name=filename, destination=destination,
                                                     dry_run=bool(dry_run))))
        current = stack.enter_context(session("restore", dry_run, session_id=session_id))
        ctx = resolve(destination, profile, config, conf)
        row = find_row(ctx, filename) if at is None else match_at(ctx, filename, at)
        patterns = [include] if isinstance(include, str) else list(include or [])
        stack.enter_context(using_context(RunContext(
            session_id, "restore", source=row.source_path, name=row.filename, destination=ctx.destination,
            dry_run=bool(dry_run),
        )))
        dump_kind = (row.metadata or {}).get("source_kind")
        if into is not None:
            from bakthat import sources

            if not dump_kind:
                raise ConfigError(f"--into: {row.stored_filename} is a file archive, not a database dump; "
                                  "restore it with --target")
            target_kind = sources.parse(into, "--into").kind
            if target_kind != dump_kind:
                raise ConfigError(f"--into: {row.stored_filename} is a {dump_kind} dump, it cannot be restored "
                                  f"into a {target_kind} target")
        raw_06 = legacy.is_raw(row)
        if raw_06:
            legacy_raw.check(row, unverified)
        secret = passwords.for_restore(row, password, prompt, ctx.settings) if row.is_encrypted() else {}
        where = Path(os.getcwd() if target is None else os.path.expanduser(os.fspath(target)))
        if raw_06:
            restored = legacy_raw.restore(
                ctx, row, secret.get("passphrase"), where, overwrite=overwrite, wait=wait, dry_run=dry_run, progress=progress
            )
            return current.finish(restored)
        if patterns and dump_kind:
            raise ConfigError(f"--include: {row.stored_filename} is a {dump_kind} dump, not a tree of paths")
        if patterns or (row.level or "full") != "full":
            from bakthat.chain_read import plan_backup_chain, restore_backup_chain

            def secret_of(other: Any) -> Any:
                if not other.is_encrypted():
                    return None
                if other.encryption == row.encryption:
                    return secret
                return passwords.for_restore(other, password, prompt, ctx.settings)

            if dry_run:
                return current.finish(plan_backup_chain(
                    ctx, row, secret_of, where, include=patterns, overwrite=overwrite, wait=wait, progress=progress
                ))
            try:
                restore_backup_chain(
                    ctx, row, secret_of, where, include=patterns, overwrite=overwrite, wait=wait, progress=progress
                )
            except OSError as exc:
                _raise_if_target_full(exc, where, row.stored_filename)
                raise
            return current.finish(row)
        if (row.metadata or {}).get("KeyValue"):
            from bakthat.keyvalue import restore_entry

            path = restore_entry(
                ctx, row, target, secret.get("passphrase") if secret else password, overwrite, wait=wait, dry_run=dry_run
            )
            return current.finish(dryrun.plan_entry(row, path, overwrite) if dry_run else row)
        ctx.backend.prepare_read(row.stored_filename, wait=wait)
        publisher = None if dry_run else status_publisher(session_id, "restore", row.source_path, row.filename)
        if publisher is not None:
            progress = advancing(publisher, progress)
            stack.enter_context(publisher)
            publisher.update(phase="restore", bytes_total=row.size)
        stream = None
        try:
            # One pass: the archive's SHA-256 is compared after the last member, before
            # anything leaves the staging directory (the target is untouched until then).
            stream = ArchiveStream(ctx.backend, row, secret, progress)
            log.info("%s %s into %s", "Checking (dry run)" if dry_run else "Restoring", row.stored_filename,
                     into or where)
            try:
                if dump_kind and not dry_run:
                    from bakthat.sources import pipeline

                    restored = pipeline.restore_dump(row, stream, where, into, overwrite, ctx.settings, stream.verify)
                    log.info("Restored %s to %s", row.stored_filename, restored)
                    result = row
                elif dump_kind:
                    stream.verify()
                    dumped_to = into or str(where / f"{row.filename}.{(row.metadata or {}).get('extension')}")
                    result = dryrun.RestorePlan(row, dumped_to, overwrite, entries=1, bytes=stream.hashed.size,
                                                would_write=[f"the dump of {row.source_path}"])
                elif dry_run:
                    result = dryrun.plan_restore(row, stream, where, overwrite, stream.verify)
                else:
                    safe_extract(stream, where, overwrite=overwrite, before_commit=stream.verify)
                    result = row
            except (WrongPasswordError, TargetExistsError):
                raise
            except OSError as exc:
                _raise_if_target_full(exc, where, row.stored_filename)
                raise
            except Exception as exc:
                # Damage can look like anything downstream (a codec error, a malformed
                # or hostile header): the rest of the archive is read, and if its bytes
                # are not the recorded ones, the error says the stored archive is damaged.
                found = stream.damage(exc)
                if found is not None:
                    raise found from exc
                if isinstance(exc, IntegrityError) and row.stored_filename not in str(exc):
                    raise IntegrityError(f"{row.stored_filename}: {exc}") from exc
                raise
        except (IntegrityError, WrongPasswordError, UnsafeArchiveError) as exc:
            if row.stored_filename in str(exc):
                raise
            raise _named(exc, row.stored_filename) from exc
        finally:
            if stream is not None:
                stream.close()
        return current.finish(result)
    raise AssertionError("unreachable")


def _raise_if_target_full(exc: OSError, where: Path, stored_filename: str) -> None:
    """Given an OSError raised while restoring ``stored_filename`` into ``where``, raise
    TargetFullError (from it) if it says the disk or the quota is full; else return."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise TargetFullError(
            f"no space left on the disk of {where} while restoring {stored_filename}; "
            "nothing was restored and the target is as it was"
        ) from exc


def _named(error: BakthatError, stored_filename: str) -> BakthatError:
    """Given an error about an archive's content, return a copy naming the archive in
    front of its message, of the same class (so it keeps its exit code)."""
    named = type(error)(f"{stored_filename}: {error}")
    named.__dict__.update(error.__dict__)
    return named
