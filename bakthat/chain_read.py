"""Reading stored archives as plain tar streams, and restoring a chain from the store.

:class:`ArchiveStream` opens one stored archive (0.6's Blowfish or age decryption,
then zstd or gzip) as a plain tar stream and checks, once it has been read to its end,
that the stored bytes match the recorded size and SHA-256; ``restore`` and ``check
--read-data`` both read archives through it.  When something stops the reading (a codec
error, a malformed or hostile tar header), :meth:`ArchiveStream.damage` reads and hashes
the rest to tell damage in the store from an archive that is what backup stored.

:func:`restore_backup_chain` is what ``restore`` does for a differential or
incremental backup, a ``--at`` date or ``--include`` patterns: it finds the chain
(:mod:`bakthat.levels`), reads the index of every link from the store and merges them
(:mod:`bakthat.chain_state`), checks that every archive of the chain is there with its
recorded size (no archive is read for that), and then streams the archives, each once,
into one staging tree (:mod:`bakthat.chain_restore`), each link's SHA-256 compared once
its stream has been read and before its members reach the tree.  A missing link, or one
whose size differs, is refused before any archive is read; a link found damaged while
it streams (SHA-256 mismatch, or decryption, decompression or a tar header failing on
bytes that are not the recorded ones) is refused when it is found.  Either way the
error is BrokenChainError naming the link, and nothing reaches the target (the staging
tree is discarded).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bakthat.pipeline import HashingReader
from bakthat.errors import IntegrityError, NotFoundError, TargetExistsError, WrongPasswordError
from bakthat.levels import BrokenChainError, Link

log = logging.getLogger("bakthat")

#: The store-reading thread reads (and hashes) STORED_DEPTH pieces of STORED_CHUNK bytes
#: ahead of decryption and decompression, whose thread runs PLAIN_DEPTH chunks of
#: ``streams.CHUNK`` ahead of the tar parser: enough to keep the threads busy, with
#: a few MiB of buffers (a restore's peak RSS stays under 64 MiB).
STORED_CHUNK = 256 << 10
STORED_DEPTH = 4
PLAIN_DEPTH = 3


class ArchiveStream:
    """The plain tar stream of one stored archive.

    Given a backend, a catalog row and the DecryptingReader keywords of its backup (None
    or empty when it is not encrypted), open the stored object.  :meth:`read` gives the
    tar bytes (damaged compressed or encrypted data raises IntegrityError);
    :meth:`verify` reads whatever is left and raises IntegrityError if the stored bytes
    do not match the row's size and SHA-256.  :meth:`close` stops the threads and closes
    the stored object.

    The stages run in a pipeline of threads (:class:`bakthat.streams.ReadAhead`): one
    reads the store and computes the SHA-256, one decrypts and decompresses, and the
    caller's thread parses the tar stream, so the three overlap on several cores.  An
    error of any stage is raised by the read that reaches its position.  ``progress``
    is called from the reading thread.
    """

    def __init__(
        self,
        backend: Any,
        row: Any,
        secret: Mapping[str, Any] | None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        from bakthat import archive, legacy
        from bakthat.streams import ReadAhead

        self.row = row
        self._raw = backend.open_read(row.stored_filename)
        self._threads: list[ReadAhead] = []
        try:
            self.hashed = HashingReader(self._raw, progress)
            self.stored = ReadAhead(self.hashed, STORED_CHUNK, STORED_DEPTH)  # store read + SHA-256
            self._threads.append(self.stored)
            self.decrypted: Any = None
            if secret and legacy.is_legacy_encrypted(row):
                plain: Any = legacy.open_archive(self.stored, secret["passphrase"])
            else:
                if secret:
                    from bakthat import crypto  # not imported for plain archives: it costs memory

                    self.decrypted = crypto.DecryptingReader(
                        self.stored, expected_header_sha256=(row.metadata or {}).get("header_sha256"), **dict(secret)
                    )
                plain = archive.decompressor(self.decrypted or self.stored, row.compression or "gzip")
            self.plain = ReadAhead(plain, depth=PLAIN_DEPTH)  # decryption + decompression
            self._threads.append(self.plain)
        except BaseException:
            self.close()
            raise

    def read(self, size: int = -1) -> bytes:
        return self.plain.read(size)

    def readable(self) -> bool:
        return True

    def verify(self) -> None:
        """Read the rest of every layer; raise IntegrityError if the stored bytes are not
        the ones recorded at backup time."""
        # Each ReadAhead has finished once it returned its end: the layer below it may
        # then be read from this thread.
        for stream in (self.plain, self.decrypted, self.stored):
            if stream is not None:
                while stream.read(1 << 20):
                    pass
        self.hashed.drain()
        row = self.row
        if row.sha256 and (self.hashed.hexdigest() != row.sha256 or self.hashed.size != row.size):
            raise IntegrityError(f"{row.stored_filename}: SHA-256 mismatch (damaged or altered); nothing was restored")

    def damage(self, cause: BaseException) -> IntegrityError | None:
        """Given the exception that stopped the reading of this stream, read and hash the
        rest of the stored object; return an IntegrityError saying how it is damaged if
        decrypting or decompressing the rest fails or its bytes are not the recorded
        size and SHA-256, or None if they are (then ``cause`` is not damage in the store,
        or cannot be told from it: a read of the store that failed)."""
        try:
            drain_for_damage(self.plain, cause)
        except IntegrityError as found:
            return found
        try:
            # The decrypting and decompressing thread has finished (drained, or stopped
            # by its error): the stored bytes may be read from this thread.
            while self.stored.read(1 << 20):
                pass
            self.hashed.drain()
        except Exception:  # noqa: BLE001 - the store could not be read: cause stands
            log.debug("could not read the rest of %s", self.row.stored_filename, exc_info=True)
            return None
        row = self.row
        if row.sha256 and (self.hashed.hexdigest() != row.sha256 or self.hashed.size != row.size):
            return IntegrityError(f"{row.stored_filename}: SHA-256 mismatch, the stored archive is damaged or altered ({cause})")
        return None

    def close(self) -> None:
        """Stop the pipeline's threads, then close the stored object.  Idempotent."""
        for thread in reversed(self._threads):
            thread.close()
        self._raw.close()


def drain_for_damage(stream: Any, cause: BaseException) -> None:
    """Read ``stream`` to its end after ``cause`` stopped a restore; raise the
    IntegrityError its own checks raise on the way, if any, instead of ``cause``
    (unless ``cause`` is that error)."""
    try:
        while stream.read(1 << 20):
            pass
    except IntegrityError as damaged:
        if damaged is not cause:
            raise damaged from cause
    except Exception:  # noqa: BLE001 - the restore's own error is the one to report
        log.debug("could not read the rest of a refused archive", exc_info=True)


def read_through(
    stream: ArchiveStream,
    on_member: Callable[[], None] | None = None,
    on_error: Callable[[Exception], None] | None = None,
) -> int:
    """Given an open ArchiveStream, read it to its end, checking every member as a
    restore does (writing nothing; ``on_member`` is called after each), then verify its
    SHA-256; return the number of members.  The stream is closed.  Raise what reading
    raises for damage (IntegrityError, UnsafeArchiveError); ``on_error``, if given, is
    called with it first, the stream still open, and may raise another error instead."""
    from bakthat.extract import list_members

    members = 0
    try:
        try:
            for _ in list_members(stream):
                members += 1
                if on_member is not None:
                    on_member()
            stream.verify()
        except Exception as exc:
            if on_error is not None:
                on_error(exc)
            raise
    finally:
        stream.close()
    return members


def plan_chain(
    ctx: Any,
    row: Any,
    secret_of: Callable[[Any], Mapping[str, Any] | None],
) -> tuple[list[Link], dict[str, Any], Any, dict[str, Any]]:
    """Given a context, the row of a backup and a function giving the DecryptingReader
    keywords of a row, return ``(chain, rows by stored filename, state at the backup,
    delta indexes by stored filename)``, reading every index of the chain from the
    store.  Raise BrokenChainError naming the missing or damaged link."""
    from bakthat import index_store

    rows = index_store.live_rows(ctx, row.filename, row.profile)
    if all(other.stored_filename != row.stored_filename for other in rows):
        rows.append(row)
    history, by_name, unusable = index_store.history(rows)
    chain = history.chain(row.stored_filename, unusable if len(rows) > 1 else None)
    deltas: dict[str, Any] = {}
    state = index_store.chain_state(ctx, chain, by_name, secret_of, use_cache=False, deltas=deltas)
    return chain, by_name, state, deltas


def broken_link(target: Link, link: Link, cause: Exception, outcome: str) -> BrokenChainError:
    """Return the BrokenChainError saying that ``target`` cannot be used because the
    archive of ``link``, a link of its chain, is missing or damaged (``cause``)."""
    return BrokenChainError(
        f"cannot use {target.describe()}: its chain needs {link.describe()}, whose archive is missing or "
        f"damaged ({cause}); {outcome}",
        target.stored_filename,
        link.stored_filename,
    )


def check_objects(ctx: Any, chain: Sequence[Link], rows: Mapping[str, Any], wait: bool) -> None:
    """Check that every archive of a chain is in the store with its recorded size,
    asking cold storage for them first; no archive is read (its SHA-256 is compared as
    it streams).  Raise BrokenChainError naming the first link that is missing or has
    another size."""
    for link in chain:
        row = rows[link.stored_filename]
        ctx.backend.prepare_read(row.stored_filename, wait=wait)
        try:
            info = ctx.backend.stat(row.stored_filename)
            if info.size != row.size:
                raise IntegrityError(f"the store holds {info.size} bytes, the catalog {row.size}")
        except (NotFoundError, IntegrityError) as exc:
            raise broken_link(chain[-1], link, exc, "nothing was read or written") from exc


def _open_link(
    ctx: Any,
    target: Link,
    link: Link,
    row: Any,
    secret: Mapping[str, Any] | None,
    progress: Callable[[int], None] | None,
) -> tuple[ArchiveStream, Callable[[Exception], None]]:
    """Open the archive of ``link`` (a link of the chain of ``target``); return the
    stream and the function to call with an error that stops its reading, which raises
    BrokenChainError naming the link if the stored archive turns out to be damaged (and
    returns otherwise).  Raise BrokenChainError if the archive's header is damaged."""
    try:
        stream = ArchiveStream(ctx.backend, row, secret, progress)
    except BrokenChainError:
        raise
    except IntegrityError as exc:  # an age header that is not the recorded one
        raise broken_link(target, link, exc, "nothing was restored") from exc

    def refuse_damage(exc: Exception) -> None:
        if isinstance(exc, (OSError, BrokenChainError, TargetExistsError, WrongPasswordError)):
            return  # the target's disk, or not the archive's bytes
        found = stream.damage(exc)
        if found is not None:
            raise broken_link(target, link, found, "nothing was restored") from exc

    return stream, refuse_damage


def _reading(
    ctx: Any,
    row: Any,
    secret_of: Callable[[Any], Mapping[str, Any] | None],
    include: Sequence[str],
    wait: bool,
) -> tuple[list[Link], dict[str, Any], Any, dict[str, Any], Any, list[Link]]:
    """What a restore of ``row`` (or its dry run) reads: return ``(chain, rows by stored
    filename, state, delta indexes, selection or None, links to read)``, the links'
    archives checked in the store (:func:`check_objects`).  With ``include``, only the
    links holding matching paths are read.  Raise BrokenChainError for a missing or
    damaged link, NotFoundError if ``include`` matches nothing."""
    from bakthat.chain_state import select

    chain, rows, state, deltas = plan_chain(ctx, row, secret_of)
    selection = None
    reading = chain
    if include:
        selection = select(state, include)
        if not selection.paths:
            raise NotFoundError(
                f"no path of {row.stored_filename} matches {', '.join(map(repr, include))}; nothing was restored"
            )
        holding = set(selection.archives)
        reading = [link for link in chain if link.stored_filename in holding]
    check_objects(ctx, reading, rows, wait)
    return chain, rows, state, deltas, selection, reading


def restore_backup_chain(
    ctx: Any,
    row: Any,
    secret_of: Callable[[Any], Mapping[str, Any] | None],
    target: Path,
    *,
    include: Sequence[str] = (),
    overwrite: bool = False,
    wait: bool = False,
    progress: Callable[[int], None] | None = None,
) -> list[Path]:
    """Restore the state at the backup of ``row`` (its whole chain, or with ``include``
    only the matching paths, reading only the archives that hold them) into ``target``.

    Raise BrokenChainError naming the link if a link of the chain is missing or has
    another size (before any archive is read) or is found damaged as it streams (before
    any of it reaches the target); NotFoundError if ``include`` matches nothing; TargetExistsError if a
    top-level entry exists in the target and ``overwrite`` is false; what reading and
    extracting raise otherwise (the target is then left as it was).
    """
    from bakthat.chain_restore import ChainPart, restore_chain

    chain, rows, state, deltas, selection, reading = _reading(ctx, row, secret_of, include, wait)
    parts = []
    for position, link in enumerate(reading):
        link_row = rows[link.stored_filename]
        opened: list[tuple[ArchiveStream, Callable[[Exception], None]]] = []

        def open_part(link: Link = link, link_row: Any = link_row, opened: list[Any] = opened) -> Any:
            opened.append(_open_link(ctx, chain[-1], link, link_row, secret_of(link_row), progress))
            return opened[-1][0]

        def verify(opened: list[Any] = opened) -> None:
            opened[-1][0].verify()

        def on_error(exc: Exception, opened: list[Any] = opened) -> None:
            opened[-1][1](exc)

        if selection is None:
            deletions = [] if position == 0 else [os.fsdecode(key) for key in deltas[link.stored_filename].deletions]
            parts.append(ChainPart(link.stored_filename, open_part, deletions, verify, on_error=on_error))
        else:
            holder = state.holders.index(link.stored_filename)
            wanted = _wanted(state, selection, holder)
            parts.append(ChainPart(link.stored_filename, open_part, (), verify, select=wanted.__contains__,
                                   on_error=on_error))
    log.info(
        "Restoring %s (%s) into %s: %d archive(s) of its chain",
        row.stored_filename, row.level or "full", target, len(parts),
    )
    return restore_chain(
        parts, target, overwrite=overwrite,
        finish=None if selection is None else lambda tree: _set_parents(tree, state, selection.parents),
    )


def _wanted(state: Any, selection: Any, holder: int) -> set[str]:
    """Return the member names to extract from the archive at position ``holder`` of the
    chain: the selected paths (and their hard-link partners and parents) whose data
    that archive holds in the state."""
    from bakthat.index_records import key_of, record_holder

    wanted = set()
    for path in [*selection.paths, *selection.partners, *selection.parents]:
        record = state.record(key_of(path))
        if record is not None and record_holder(record) == holder:
            wanted.add(path)
    return wanted


def _set_parents(tree: str, state: Any, parents: Sequence[str]) -> None:
    """Give the parent directories of the selected paths the mode and mtime the index
    records (deepest first, without following links)."""
    from bakthat.index_records import key_of, unpack

    for path in sorted(parents, key=lambda text: text.count("/"), reverse=True):
        record = state.record(key_of(path))
        if record is None:
            continue
        fields = unpack(record)
        full = os.path.join(tree, path)
        try:
            if os.path.islink(full) or not os.path.isdir(full):
                continue
            os.chmod(full, fields[7])
            os.utime(full, ns=(fields[2], fields[2]), follow_symlinks=False)
        except OSError as exc:
            log.warning("could not give %s its recorded mode and time: %s", path, exc.strerror)


def plan_backup_chain(
    ctx: Any,
    row: Any,
    secret_of: Callable[[Any], Mapping[str, Any] | None],
    target: Path,
    *,
    include: Sequence[str] = (),
    overwrite: bool = False,
    wait: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Any:
    """The dry run of :func:`restore_backup_chain`: check the chain and read every archive
    it would read end to end (SHA-256, decryption, decompression, every member checked),
    then return a :class:`bakthat.dryrun.RestorePlan` of the state it would write and
    what already exists in ``target``.  Nothing is written.  Raise what the restore
    raises for a broken chain or damaged data."""
    from bakthat.dryrun import MAX_LISTED, RestorePlan, _existing_kind
    from bakthat.index_records import DIRECTORY, FILE, SYMLINK, key_of, record_type, unpack

    chain, rows, state, _, selection, reading = _reading(ctx, row, secret_of, include, wait)
    if selection is not None:
        paths = sorted({*selection.paths, *selection.partners, *selection.parents})
    else:
        paths = sorted(os.fsdecode(key) for key in state)
    for link in reading:
        link_row = rows[link.stored_filename]
        stream, refuse_damage = _open_link(ctx, chain[-1], link, link_row, secret_of(link_row), progress)
        read_through(stream, on_error=refuse_damage)
    kinds = {DIRECTORY: "directory", SYMLINK: "symbolic link"}
    plan = RestorePlan(row=row, target=str(target), overwrite=overwrite)
    for relative in paths:
        record = state.record(key_of(relative))
        if record is None:
            continue
        plan.entries += 1
        kind_letter = record_type(record)
        if kind_letter == FILE:
            plan.bytes += unpack(record)[1]
        if len(plan.would_write) < MAX_LISTED:
            plan.would_write.append(relative)
        existing = _existing_kind(os.path.join(target, relative))
        if existing is None:
            continue
        kind = kinds.get(kind_letter, "file")
        both_directories = existing == "directory" and kind == "directory"
        if overwrite:
            if both_directories:
                continue
            outcome = "replaced" if "directory" not in (existing, kind) else "refused"
        else:
            if both_directories and "/" in relative:
                continue
            outcome = "refused"
        plan.conflict_count += 1
        if len(plan.conflicts) < MAX_LISTED:
            plan.conflicts.append({"path": relative, "existing": existing, "archive": kind, "outcome": outcome})
    return plan
