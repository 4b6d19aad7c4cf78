"""Browsing what backups hold, from their file indexes: ``files`` and ``find``.

Nothing here reads an archive.  The state at a backup (for a differential or
incremental: its whole chain merged, see :mod:`bakthat.chain_state`) comes from the
local index cache when it holds exactly that state, else from the index objects in the
store, which stay in a class readable at once even in a Glacier destination (see
:mod:`bakthat.index_store`): listing a Glacier backup needs no retrieval.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bakthat import passwords
from bakthat.errors import ConfigError, NotFoundError
from bakthat.index import Entry, Index
from bakthat.utils import strict_keywords

log = logging.getLogger("bakthat")


def _secrets(ctx: Any, password: str | None, prompt: Any) -> Any:
    """Return a function giving the DecryptingReader keywords of a row, asking once per
    encryption kind."""
    known: dict[str, Any] = {}

    def secret_of(row: Any) -> Any:
        if not row.is_encrypted():
            return None
        if row.encryption not in known:
            known[row.encryption] = passwords.for_restore(row, password, prompt, ctx.settings)
        return known[row.encryption]

    return secret_of


def state_of(ctx: Any, row: Any, secret_of: Any, deltas: dict[str, Index] | None = None) -> Index:
    """Return the state index at the backup of ``row`` (cache, else the store).  Raise
    BrokenChainError naming a missing or damaged link, NotFoundError for a backup
    stored without an index."""
    from bakthat import index_store

    if index_store.index_info(row) is None:
        raise NotFoundError(
            f"{row.stored_filename} has no file index (it was stored before backup levels existed): "
            "restore it to see what it holds"
        )
    rows = index_store.live_rows(ctx, row.filename, row.profile)
    history, by_name, unusable = index_store.history(rows)
    chain = history.chain(row.stored_filename, unusable)
    return index_store.chain_state(ctx, chain, by_name, secret_of, use_cache=deltas is None, deltas=deltas)


@strict_keywords()
def files(
    name: str,
    destination: str | None = None,
    profile: str = "default",
    config: str | None = None,
    conf: Mapping[str, Any] | None = None,
    at: Any = None,
    password: str | None = None,
    prompt: str | bool = "yes",
) -> list[Entry]:
    """Return the entries of the newest backup named ``name`` (or stored as ``name``; with
    ``at``, the newest at or before that date), sorted by path: the state at that
    backup, each entry with the backup whose archive holds it (``holder``).

    Raise NotFoundError if there is no such backup or it has no index,
    BrokenChainError if its chain is broken, PasswordRequiredError/WrongPasswordError
    for an encrypted index without its secret.
    """
    from bakthat.actions import find_row, resolve
    from bakthat.restore_action import match_at

    ctx = resolve(destination, profile, config, conf)
    row = find_row(ctx, name) if at is None else match_at(ctx, name, at)
    state = state_of(ctx, row, _secrets(ctx, password, prompt))
    return list(state.entries())


@dataclass
class Found:
    """The paths of one backup that match a ``find`` pattern."""

    name: str
    stored_filename: str
    backup_date: int
    level: str
    paths: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@strict_keywords()
def find(
    pattern: str | list[str],
    name: str | None = None,
    destination: str | None = None,
    profile: str = "default",
    config: str | None = None,
    conf: Mapping[str, Any] | None = None,
    password: str | None = None,
    prompt: str | bool = "yes",
) -> list[Found]:
    """Return the backups (of ``name``, or of every name in the destination) holding
    paths that match ``pattern`` (gitignore-style, below each backup's top-level entry,
    or a list of such patterns), newest first, each with the matching paths.

    Backups stored before backup levels existed (no index) are skipped with a warning;
    a backup whose chain is broken is skipped with a warning naming the missing link.
    Raise ConfigError for a malformed pattern.
    """
    import pathspec

    from bakthat.actions import backups_of, resolve
    from bakthat.errors import IntegrityError
    from bakthat.index_records import DIRECTORY, record_type

    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    if not patterns:
        raise ConfigError("find needs a pattern")
    try:
        spec = pathspec.GitIgnoreSpec.from_lines(patterns)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"bad pattern: {exc}") from None
    ctx = resolve(destination, profile, config, conf)
    rows = list(backups_of(ctx, name))
    secret_of = _secrets(ctx, password, prompt)
    deltas: dict[str, Index] = {}
    found = []
    for row in rows:  # newest first
        from bakthat import index_store

        if index_store.index_info(row) is None:
            log.warning("Skipping %s: it has no file index (stored before backup levels existed)", row.stored_filename)
            continue
        try:
            state = state_of(ctx, row, secret_of, deltas)
        except IntegrityError as exc:
            log.warning("Skipping %s: %s", row.stored_filename, exc)
            continue
        prefix = state.root.encode("utf-8", "surrogateescape") + b"/"
        paths = []
        for key, record in state.items():
            if not key.startswith(prefix):
                continue
            relative = key[len(prefix):].decode("utf-8", "surrogateescape")
            if spec.match_file(relative + "/" if record_type(record) == DIRECTORY else relative):
                paths.append(key.decode("utf-8", "surrogateescape"))
        if paths:
            found.append(Found(row.filename, row.stored_filename, row.backup_date, row.level or "full", sorted(paths)))
    return found
