"""What one backup will store, decided before any byte is written: the :class:`Plan`.

:func:`bakthat.core.backup` fills a Plan from its arguments and the profile
(:func:`join_tags`, :func:`dumped_source`), then :func:`plan_level` chooses its level and
base (see :mod:`bakthat.levels`) once the stored filename is reserved
(:mod:`bakthat.backup_reserve`).  :mod:`bakthat.manifest` builds the manifest from a
stored Plan.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from bakthat import passwords
from bakthat.actions import Context
from bakthat.errors import BakthatError

log = logging.getLogger("bakthat")


def join_tags(tags: str | list[str] | tuple[str, ...] | None) -> str:
    """Given tags as one string or a list (each item may hold several words), return
    them as the catalog stores them: words separated by one space, each once, in order."""
    if not tags:
        return ""
    words = tags.split() if isinstance(tags, str) else [word for tag in tags for word in str(tag).split()]
    return " ".join(dict.fromkeys(words))


def dumped_source(filename: Any, custom_filename: str | None) -> Any:
    """Return the parsed source if ``filename`` is a dumped source (a Source, or a
    ``postgresql://``, ``mysql://``, ``sqlite:///`` URL), else None (a path)."""
    if isinstance(filename, PurePath) or (isinstance(filename, str) and "://" not in filename):
        return None  # a path (every dump URL has "://"): the sources are not imported
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


@dataclass
class Plan:
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
    file_keys: list[Any] = field(default_factory=list)  # crypto.PendingFileKey: the archive's, the index's


def start_file_keys(ctx: Context, plan: Plan) -> None:
    """Start making the file keys of an encrypted backup, each in a thread (see
    :class:`bakthat.crypto.PendingFileKey`): the archive's, then the index's (not for a
    dump, which has no index), so their scrypt derivations overlap the start of the
    backup and its walk instead of delaying them.  Each is a new key with its own salt
    or ephemeral shares, as age requires of every file.  Nothing is started without
    encryption."""
    if plan.encryption == "none":
        return
    from bakthat import crypto  # not imported for plain backups: it costs memory

    arguments = {
        "passphrase": plan.passphrase,
        "recipients": plan.recipients,
        "work_factor": int(ctx.settings.get("scrypt_work_factor") or crypto.DEFAULT_WORK_FACTOR),
    }
    plan.file_keys = [crypto.PendingFileKey(**arguments)]
    if plan.dump is None:
        plan.file_keys.append(crypto.PendingFileKey(**arguments, after=plan.file_keys[0]))


def plan_level(ctx: Context, plan: Plan, requested: str) -> None:
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
