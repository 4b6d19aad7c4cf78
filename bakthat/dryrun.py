"""Dry runs of backup, restore and delete: what would happen, with nothing written.

Each returns a plan object with ``dry_run = True`` and ``to_dict()`` (the CLI's
``--json``), which is also what the action's ``on_`` event handlers receive.

- :func:`plan_backup` walks the source exactly as a backup does (the same tar writer
  into a sink that discards the bytes), so it finds the same files, the same excluded
  and unreadable entries, and names the archive the backup would store.  Nothing is
  compressed, encrypted, stored or catalogued.
- :func:`plan_restore` reads and verifies the whole archive (SHA-256, authenticated
  decryption, every member checked as restore checks it) and lists what would be
  written and what already exists in the target.  Nothing is written to the target.
- :class:`DeletePlan` names the backup a delete would remove.

Lists of paths in a plan are capped at :data:`MAX_LISTED` entries; the counts are exact.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

MAX_LISTED = 10_000


class _Discard:
    """A sink that counts the bytes written to it and keeps none."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered."""


class _RecordingExcludes:
    """Wrap an exclude matcher and remember what it excluded."""

    def __init__(self, spec: Any):
        self._spec = spec
        self.excluded: list[str] = []
        self.count = 0

    def match_file(self, path: str) -> bool:
        hit = bool(self._spec.match_file(path))
        if hit:
            self.count += 1
            if len(self.excluded) < MAX_LISTED:
                self.excluded.append(path)
        return hit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._spec, name)


@dataclass
class BackupPlan:
    """What ``backup(..., dry_run=True)`` found: the archive it would store, and its content."""

    filename: str
    stored_filename: str
    destination: str
    source_path: str
    compression: str
    encryption: str
    file_count: int = 0
    source_size: int = 0
    tar_size: int = 0
    excluded: list[str] = field(default_factory=list)
    excluded_count: int = 0
    skipped: list[str] = field(default_factory=list)
    tags: str = ""
    dry_run: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "excluded": list(self.excluded), "skipped": list(self.skipped)}

    def describe(self) -> str:
        """Return the human-readable report (what ``bakthat backup --dry-run`` prints)."""
        from bakthat.utils import human_size

        lines = [
            f"would store {self.stored_filename} in {self.destination}: {self.file_count} entries, "
            f"{human_size(self.source_size)} of file data from {self.source_path}",
            f"compression {self.compression}, encryption {self.encryption}",
        ]
        if self.excluded_count:
            lines.append(f"{self.excluded_count} excluded:")
            lines += [f"  {path}" for path in self.excluded]
        if self.skipped:
            lines.append(f"{len(self.skipped)} could not be read and would be skipped:")
            lines += [f"  {path}" for path in self.skipped]
        lines.append("dry run: nothing was stored")
        return "\n".join(lines)


def plan_backup(
    source: Path,
    arcname: str,
    excludes: Any,
    skip: list[str],
    *,
    name: str | None = None,
    source_path: str | None = None,
    stored_filename: str,
    destination: str,
    compression: str,
    encryption: str,
    tags: str,
    progress: Callable[[int], None] | None = None,
) -> BackupPlan:
    """Walk ``source`` as a backup would and return the BackupPlan; nothing is stored.

    ``arcname`` is the archive's top-level entry, ``name`` the backup name (default:
    ``arcname``), ``source_path`` the path recorded (default: ``source``, absolute).
    Raise SourceError as a backup would (a missing or unreadable source).
    """
    from bakthat import archive

    recording = _RecordingExcludes(excludes) if excludes is not None else None
    sink = _Discard()
    stats = archive.write_tar(source, arcname, sink, recording, skip=skip, progress=progress)
    return BackupPlan(
        filename=name or arcname,
        stored_filename=stored_filename,
        destination=destination,
        source_path=source_path or str(source.absolute()),
        compression=compression,
        encryption=encryption,
        file_count=stats.files,
        source_size=stats.bytes,
        tar_size=sink.size,
        excluded=(list(recording.excluded) if recording else []) + stats.filtered_names,
        excluded_count=(recording.count if recording else 0) + stats.filtered,
        skipped=[entry["path"] for entry in stats.skipped],
        tags=tags,
    )


@dataclass
class RestorePlan:
    """What ``restore(..., dry_run=True)`` verified: the archive is sound, and what it would write."""

    row: Any
    target: str
    overwrite: bool
    entries: int = 0
    bytes: int = 0
    would_write: list[str] = field(default_factory=list)
    conflicts: list[dict[str, str]] = field(default_factory=list)
    conflict_count: int = 0
    #: False when nothing could verify the data (a 0.6 Blowfish file without archive).
    verified: bool = True
    dry_run: bool = True

    @property
    def refused(self) -> bool:
        """True if the real restore would stop on a conflict (nothing would be written)."""
        return any(conflict["outcome"] == "refused" for conflict in self.conflicts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": True,
            "backup": self.row.to_dict() if hasattr(self.row, "to_dict") else self.row,
            "target": self.target,
            "overwrite": self.overwrite,
            "verified": self.verified,
            "entries": self.entries,
            "bytes": self.bytes,
            "would_write": list(self.would_write),
            "conflicts": [dict(conflict) for conflict in self.conflicts],
            "conflict_count": self.conflict_count,
            "refused": self.refused,
        }

    def describe(self) -> str:
        from bakthat.utils import human_size

        checked = "verified" if self.verified else "read (it cannot be verified)"
        lines = [
            f"{self.row.stored_filename} {checked}: {self.entries} entries, {human_size(self.bytes)} of file data",
            f"would restore into {self.target}:",
            *[f"  {path}" for path in self.would_write],
        ]
        if self.conflict_count:
            lines.append(f"{self.conflict_count} already exist in the target:")
            lines += [f"  {c['outcome']:<8}  {c['path']} ({c['existing']} in the target)" for c in self.conflicts]
            if self.refused:
                lines.append("the restore would stop before writing anything (use --overwrite to replace files)")
        lines.append("dry run: nothing was written")
        return "\n".join(lines)


_KINDS = {tarfile.DIRTYPE: "directory", tarfile.SYMTYPE: "symbolic link", tarfile.LNKTYPE: "hard link"}


def _existing_kind(path: str) -> str | None:
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symbolic link"
    return "file"


def plan_restore(
    row: Any, stream: IO[bytes], target: Path, overwrite: bool, verify: Callable[[], None]
) -> RestorePlan:
    """Read the whole archive from ``stream``, check every member, then call ``verify``.

    Return the RestorePlan: every path the restore would write under ``target`` and
    every one that already exists there, with what the restore would do: without
    ``overwrite`` an existing entry is ``refused`` (the restore would stop); with it a
    file is ``replaced``, a directory merged (not listed), and a directory where the
    archive has a file, or the other way round, ``refused``.  Raise what restore raises
    for a damaged or hostile archive.
    """
    from bakthat.extract import list_members

    plan = RestorePlan(row=row, target=str(target), overwrite=overwrite)
    for member in list_members(stream):
        relative = "/".join(part for part in member.name.split("/") if part not in ("", "."))
        if not relative:
            continue
        plan.entries += 1
        if member.isreg():
            plan.bytes += member.size
        if len(plan.would_write) < MAX_LISTED:
            plan.would_write.append(relative)
        existing = _existing_kind(os.path.join(target, relative))
        if existing is None:
            continue
        kind = _KINDS.get(member.type, "file")
        both_directories = existing == "directory" and kind == "directory"
        if overwrite:
            if both_directories:
                continue  # merged
            outcome = "replaced" if "directory" not in (existing, kind) else "refused"
        else:
            if both_directories and "/" in relative:
                continue  # inside a top-level entry that is already refused
            outcome = "refused"
        plan.conflict_count += 1
        if len(plan.conflicts) < MAX_LISTED:
            plan.conflicts.append({"path": relative, "existing": existing, "archive": kind, "outcome": outcome})
    verify()
    return plan


def plan_entry(row: Any, final: Path, overwrite: bool) -> RestorePlan:
    """Return the RestorePlan of a KeyValue entry already read and decoded into ``final``."""
    plan = RestorePlan(row=row, target=str(final.parent), overwrite=overwrite, entries=1, would_write=[final.name])
    existing = _existing_kind(str(final))
    if existing is not None:
        outcome = "replaced" if overwrite and existing != "directory" else "refused"
        plan.conflict_count = 1
        plan.conflicts.append({"path": final.name, "existing": existing, "archive": "file", "outcome": outcome})
    return plan


@dataclass
class DeletePlan:
    """What ``delete(..., dry_run=True)`` would delete."""

    row: Any
    dry_run: bool = True

    @property
    def stored_filename(self) -> str:
        return str(self.row.stored_filename)

    def to_dict(self) -> dict[str, Any]:
        return {**self.row.to_dict(), "dry_run": True}

    def describe(self) -> str:
        return f"would delete {self.row.stored_filename} (and its manifest); dry run: nothing was deleted"
