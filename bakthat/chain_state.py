"""The state along a chain: merging delta indexes, and what ``--include`` reads.

:func:`merge` turns the delta indexes of a chain (:meth:`bakthat.levels.History.chain`)
into the state at its last backup, applying each backup's deletions before its
entries; :func:`state_at` does it from a loader and names the link that fails.
:func:`select` finds the paths gitignore-style patterns match in a state and which
archives of the chain hold them, so a partial restore reads only those.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bakthat.errors import ConfigError, IntegrityError, NotFoundError
from bakthat.index import Index
from bakthat.index_records import (
    DIRECTORY,
    FILE,
    BadIndexError,
    ancestors_of,
    key_of,
    record_holder,
    record_type,
    unpack,
)
from bakthat.levels import BrokenChainError, Link


def merge(deltas: Sequence[Index], *, check: bool = True) -> Index:
    """Given the delta indexes of a chain, full first, return the state at the last one.

    Each delta's deletions are applied before its entries.  With ``check``, the result
    is checked to be a tree (every parent a directory).  Raise BadIndexError if the
    chain does not start with a full, if a delta's base is not the backup before it, if
    a delta deletes a path the state does not hold, or if the result is not a tree.
    """
    if not deltas:
        raise ValueError("merge() needs at least the full backup's index")
    state = Index.state_of_full(deltas[0])
    for delta in deltas[1:]:
        state.apply(delta)
    if check:
        state.check_tree()
    return state


def state_at(chain: Sequence[Link], load: Callable[[Link], Index]) -> Index:
    """Given a chain (from :meth:`History.chain`) and a function that returns the delta
    index of a link (read from the cache or the store), return the state at its end.

    Raise BrokenChainError naming the link whose index cannot be read or does not fit
    the chain (the error of ``load`` is kept as the cause).
    """
    deltas = []
    target = chain[-1]
    for link in chain:
        try:
            delta = load(link)
            if delta.backup != link.stored_filename or delta.level != link.level or delta.base != link.base:
                raise BadIndexError(
                    f"the index describes {delta.backup} ({delta.level}, base {delta.base}), "
                    f"the catalog {link.stored_filename} ({link.level}, base {link.base})"
                )
        except (IntegrityError, NotFoundError) as exc:
            raise BrokenChainError(
                f"cannot use {target.describe()}: the index of {link.stored_filename} in its chain is missing or "
                f"damaged ({exc}); nothing was read or written",
                target.stored_filename,
                link.stored_filename,
            ) from exc
        deltas.append(delta)
    try:
        return merge(deltas)
    except BadIndexError as exc:
        raise BrokenChainError(
            f"cannot use {target.describe()}: the indexes of its chain do not fit together ({exc}); "
            "nothing was read or written",
            target.stored_filename,
            target.stored_filename,
        ) from exc


@dataclass
class Selection:
    """What a restore with ``--include`` patterns reads and writes.

    ``paths``: the archive paths the patterns match, sorted.  ``partners``: paths not
    matched but hard-linked to a matched file in the same archive (the archive may
    store the data under their name, so they are extracted too).  ``parents``: the
    directories above matched paths that are not matched themselves (created with the
    mode and mtime the index records).  ``archives``: the stored filenames of the
    chain's archives holding matched or partner entries, in chain order (the others
    are not read).
    """

    paths: list[str]
    partners: list[str]
    parents: list[str]
    archives: list[str]


def select(state: Index, patterns: Sequence[str]) -> Selection:
    """Given the state at a backup and gitignore-style patterns, return the Selection.

    Patterns match the path below the backup's root (``docs/*.md`` matches
    ``www/docs/a.md`` of a backup named ``www``), with gitignore semantics: a pattern
    that matches a directory matches everything below it, ``dir/`` matches directories
    only, ``!pattern`` excludes again what an earlier pattern matched.  Raise
    ConfigError if there is no pattern or a pattern is malformed.
    """
    import pathspec

    if not patterns:
        raise ConfigError("--include needs at least one pattern")
    try:
        spec = pathspec.GitIgnoreSpec.from_lines([str(pattern) for pattern in patterns])
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"bad --include pattern: {exc}") from None
    prefix = key_of(state.root) + b"/"
    matched: list[bytes] = []
    for key, record in state.items():
        if not key.startswith(prefix):
            continue
        relative = key[len(prefix):].decode("utf-8", "surrogateescape")
        if spec.match_file(relative + "/" if record_type(record) == DIRECTORY else relative):
            matched.append(key)
    chosen = set(matched)
    groups: dict[tuple[int, int, int], list[bytes]] = {}
    for key, record in state.items():
        if record_type(record) == FILE:
            fields = unpack(record)
            if fields[6] > 1:
                groups.setdefault((fields[5], fields[4], record_holder(record)), []).append(key)
    partners: set[bytes] = set()
    for keys in groups.values():
        if any(key in chosen for key in keys):
            partners.update(key for key in keys if key not in chosen)
    parents = {ancestor for key in matched for ancestor in ancestors_of(key)} - chosen
    holders = {record_holder(state.record(key)) for key in [*matched, *partners]}  # type: ignore[arg-type]
    return Selection(
        paths=sorted(_text(key) for key in matched),
        partners=sorted(_text(key) for key in partners),
        parents=sorted(_text(key) for key in parents),
        archives=[state.holders[position] for position in sorted(holders)],
    )


def _text(key: bytes) -> str:
    return os.fsdecode(key)
