"""The local cache of the state at the last backup of each name, so the next
differential or incremental reads nothing from the store.

The cache is a private, fast copy of a state index (:class:`bakthat.index.Index`), not
a second format: the store keeps the portable index files of :mod:`bakthat.index_file`,
and anything the cache holds can be rebuilt from them.  So the cache is written and
read for speed (Python's :mod:`marshal`: a 1 M entry state loads in about a second,
where checking the JSON index file of the store takes ten times longer) and trusted no
further than that:

* it is written atomically (a temporary file, then a rename) in a directory of mode
  0700, and starts with the SHA-256 of its payload, so a torn or damaged file is
  detected.  It is not fsynced: after a crash the file is whole, absent, torn (the
  SHA-256 says so) or the previous one (the state at another backup than the one asked
  for), and each of these is rebuilt from the store, so durability would only cost the
  nightly run two disk flushes;
* :func:`load_state` returns None, with the reason logged, for a missing, damaged,
  foreign or stale cache (a state of another backup than the base asked for): the
  caller then rebuilds the state from the store.

:mod:`marshal` is not meant for data an attacker wrote; whoever can write in the
user's cache directory can also write the user's configuration and plugins, so the
cache is as trusted as those.
"""

from __future__ import annotations

import hashlib
import logging
import marshal
import os
from pathlib import Path

from bakthat.atomic import save_file
from bakthat.index import Index
from bakthat.index_records import LEVELS, MIN_RECORD_SIZE

log = logging.getLogger("bakthat")

MAGIC = b"bakthat-index-cache 1\n"
_MARSHAL_VERSION = 4


def cache_path(directory: str | os.PathLike[str], backend_hash: str, name: str) -> Path:
    """Return the cache file of backup ``name`` in the store ``backend_hash``."""
    digest = hashlib.sha256(f"{backend_hash}\0{name}".encode()).hexdigest()[:40]
    return Path(directory) / f"{digest}.state"


def save_state(state: Index, path: str | os.PathLike[str]) -> None:
    """Given a state index, write it to ``path`` atomically (the directory is created
    with mode 0700).  Raise ValueError if ``state`` is not a state; OSError as the
    filesystem raises it (the previous cache file is then left as it was)."""
    if state.kind != "state":
        raise ValueError("only a state index is cached")
    target = Path(path)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    payload = marshal.dumps(
        (
            state.backup, state.level, state.base, state.root, list(state.holders), dict(state.users),
            dict(state.groups), state.records(),
        ),
        _MARSHAL_VERSION,
    )
    with save_file(target, prefix=".state-", durable=False) as handle:
        handle.write(MAGIC)
        handle.write(hashlib.sha256(payload).digest())
        handle.write(payload)


def load_state(path: str | os.PathLike[str], *, backup: str, root: str) -> Index | None:
    """Return the cached state at ``backup`` (of the backup named ``root``), or None if
    ``path`` is missing, damaged, of another format or Python, or holds the state at
    another backup (the reason is logged)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        log.debug("no cached index at %s", path)
        return None
    except OSError as exc:
        log.warning("cannot read the cached index %s (%s); it is rebuilt from the store", path, exc.strerror)
        return None
    start = len(MAGIC) + 32
    if not data.startswith(MAGIC) or hashlib.sha256(data[start:]).digest() != data[len(MAGIC):start]:
        log.warning("the cached index %s is damaged; it is rebuilt from the store", path)
        return None
    try:
        (cached_backup, level, base, cached_root, holders, users, groups, records) = marshal.loads(data[start:])
    except (EOFError, ValueError, TypeError):
        log.warning("the cached index %s was written by another Python; it is rebuilt from the store", path)
        return None
    if cached_backup != backup or cached_root != root:
        log.info("the cached index %s is the state at %s, not at %s; it is rebuilt from the store",
                 path, cached_backup, backup)
        return None
    if (
        level not in LEVELS
        or not isinstance(records, dict)
        or not isinstance(holders, list)
        # every key and record bytes, every record long enough (loops in C: this runs on
        # every incremental, over every entry)
        or not {type(key) for key in records} <= {bytes}
        or not {type(record) for record in records.values()} <= {bytes}
        or min(map(len, records.values()), default=MIN_RECORD_SIZE) < MIN_RECORD_SIZE
    ):
        log.warning("the cached index %s is not a state index; it is rebuilt from the store", path)
        return None
    state = Index(
        "state", backup=cached_backup, level=level, base=base, root=cached_root, holders=holders, records=records
    )
    state.users.update(users)
    state.groups.update(groups)
    return state
