"""The file index in the store: where it is kept, how it is written and read back.

Each backup stores its delta index (:mod:`bakthat.index`, serialised by
:mod:`bakthat.index_file`) beside its archive, as ``<stored name>.index.jsonl.zst``
(``.age`` appended when the archive is encrypted, and encrypted the same way, as an age
file of its own with its own file key: the index names every path, and the deletion
list with it, so it is never stored in plaintext beside an encrypted archive).  The manifest and the catalog row
(``metadata["index"]``) record its key, size and SHA-256.  It is written with
:meth:`Backend.put`, which keeps it in a class readable at once even in a Glacier
destination (the Glacier backend writes such side objects as STANDARD), so ``files``,
``find`` and the planning of a restore never need a retrieval.

:func:`read_index` verifies the recorded size and SHA-256, decrypts and reads the index
as untrusted input.  :func:`chain_state` gives the state at a backup, from the local
cache (:mod:`bakthat.index_cache`) when it holds that state, else from the indexes of
the chain in the store.  :func:`history` gives the chains of one backup name.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bakthat import index_cache
from bakthat.pipeline import HashingReader
from bakthat.errors import IntegrityError, NotFoundError
from bakthat.index import Index
from bakthat.index_file import index_bytes
from bakthat.index_file import read_index as parse_index
from bakthat.index_records import BadIndexError
from bakthat.levels import History, Link

log = logging.getLogger("bakthat")

INDEX_SUFFIX = ".index.jsonl.zst"
#: The largest index object read (50 M entries compress to far less).
INDEX_CAP = 8 << 30


def index_key(stored_filename: str) -> str:
    """Given an archive's stored filename, return the key of its index object."""
    return stored_filename + INDEX_SUFFIX + (".age" if stored_filename.endswith(".age") else "")


def archive_of_index(key: str) -> str | None:
    """Given a key, return the stored filename of the archive it is the index of, or None."""
    for suffix in (INDEX_SUFFIX + ".age", INDEX_SUFFIX):
        if key.endswith(suffix):
            stored = key[: -len(suffix)]
            return stored if index_key(stored) == key else None
    return None


def cache_directory() -> Path:
    """Return the directory of the local index cache (``$XDG_CACHE_HOME/bakthat/index``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bakthat" / "index"


def cache_file(backend_hash: str, name: str) -> Path:
    """Return the cache file of the last state of backup ``name`` in a store."""
    return index_cache.cache_path(cache_directory(), backend_hash, name)


def store_index(backend: Any, delta: Index, *, key: Any = None) -> dict[str, Any]:
    """Given a backend and the delta index of a new backup, store the index object
    (encrypted with ``key``, a new :class:`bakthat.crypto.FileKey` made for the index
    alone, when given) and return what the manifest records of it: ``{"key", "size",
    "sha256"}``."""
    import hashlib

    data = index_bytes(delta)
    if key is not None:
        from bakthat import crypto

        buffer = io.BytesIO()
        writer = crypto.EncryptingWriter(buffer, key=key)
        writer.write(data)
        writer.close()
        data = buffer.getvalue()
    object_key = index_key(delta.backup)
    backend.put(object_key, data)
    return {"key": object_key, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def index_info(row: Any) -> dict[str, Any] | None:
    """Return what a row records of its index (``{"key", "size", "sha256"}``), or None
    for a backup stored without one (before levels existed, or a KeyValue entry)."""
    info = (row.metadata or {}).get("index")
    if not isinstance(info, dict) or not isinstance(info.get("key"), str):
        return None
    return info


def read_index(backend: Any, row: Any, secret: Mapping[str, Any] | None) -> Index:
    """Given a backend, a row and the DecryptingReader keywords of its backup (None or
    empty when it is not encrypted), return its delta index, read from the store.

    Raise NotFoundError if the row records no index or the object is missing;
    BadIndexError (an IntegrityError) if its size or SHA-256 differ from the recorded
    ones, or it does not read as the index of this backup; what decryption raises
    (PasswordRequiredError, WrongPasswordError, IntegrityError).
    """
    from bakthat import crypto

    info = index_info(row)
    if info is None:
        raise NotFoundError(f"{row.stored_filename} has no file index (it was stored before backup levels existed)")
    key = info["key"]
    if key != index_key(row.stored_filename):
        raise BadIndexError(f"{row.stored_filename}: its row names {key!r} as its index")
    raw = backend.open_read(key)
    try:
        hashed = HashingReader(raw)
        plain: Any = hashed
        if row.is_encrypted():
            if not secret:
                from bakthat.errors import PasswordRequiredError

                raise PasswordRequiredError(f"the index of {row.stored_filename} is encrypted: give its password")
            plain = crypto.DecryptingReader(hashed, **dict(secret))
        index = parse_index(plain, key, expect_backup=row.stored_filename, expect_root=row.filename)
        hashed.drain()
    except IntegrityError as exc:
        if isinstance(exc, BadIndexError):
            raise
        raise BadIndexError(f"index {key}: {exc}") from exc
    finally:
        raw.close()
    if (info.get("size") is not None and hashed.size != info["size"]) or (
        info.get("sha256") and hashed.hexdigest() != info["sha256"]
    ):
        raise BadIndexError(f"index {key}: it does not match the SHA-256 and size recorded at backup time")
    return index


def live_rows(ctx: Any, name: str, profile: str | None = None) -> list[Any]:
    """Return the live rows of backup ``name`` in the context's destination (and
    ``profile`` when given)."""
    from bakthat.actions import backups_of

    return list(backups_of(ctx, name, profile=profile))


def history(rows: list[Any]) -> tuple[History, dict[str, Any], dict[str, str]]:
    """Given the live rows of one name, return ``(History, {stored filename: row},
    {stored filename: why it cannot be a link of a chain})`` (rows without an index)."""
    by_name = {row.stored_filename: row for row in rows}
    unusable = {
        row.stored_filename: "it has no file index"
        for row in rows
        if index_info(row) is None
    }
    return History(rows), by_name, unusable


def chain_state(
    ctx: Any,
    chain: list[Link],
    rows: Mapping[str, Any],
    secret_of: Callable[[Any], Mapping[str, Any] | None],
    *,
    use_cache: bool = True,
    deltas: dict[str, Index] | None = None,
    root: str | None = None,
) -> Index:
    """Given a chain (from :meth:`History.chain`), the rows by stored filename and a
    function giving the DecryptingReader keywords of a row, return the state at the
    chain's last backup: from the local cache when it holds exactly that state, else
    by reading and merging the indexes of the chain from the store (``deltas``, when
    given, holds delta indexes already read, by stored filename, and gets those read
    here).  ``root`` is the top-level archive path (default:
    the backup name).

    Raise BrokenChainError naming the link whose index is missing or damaged.
    """
    from bakthat.chain_state import state_at

    target = chain[-1]
    if use_cache and deltas is None:
        name = rows[target.stored_filename].filename
        cached = index_cache.load_state(
            cache_file(ctx.backend.backend_hash, name), backup=target.stored_filename, root=root or name
        )
        if cached is not None and cached.holders == [link.stored_filename for link in chain]:
            return cached

    def load(link: Link) -> Index:
        if deltas is not None and link.stored_filename in deltas:
            return deltas[link.stored_filename]
        row = rows[link.stored_filename]
        delta = read_index(ctx.backend, row, secret_of(row))
        if deltas is not None:
            deltas[link.stored_filename] = delta
        return delta

    return state_at(chain, load)


def save_cache(ctx: Any, name: str, state: Index) -> None:
    """Keep ``state`` as the local cache of backup ``name``; a failure is a warning."""
    try:
        index_cache.save_state(state, cache_file(ctx.backend.backend_hash, name))
    except OSError as exc:
        log.warning("could not write the local index cache (%s); the next backup reads the index from the store",
                    exc.strerror or exc)
