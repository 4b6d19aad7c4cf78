"""The manifest: the JSON object stored beside every archive, describing it.

A backup stores ``<stored filename>`` and ``<stored filename>.manifest.json``; the
manifest carries everything its catalog row holds (name, date, size, SHA-256,
compression, encryption, host, profile, source...), so the store alone can rebuild a
catalog (:mod:`bakthat.sync`).  This module is the manifest's one home: its suffix,
format name and version, its fields, how a backup builds it (:func:`build`), how an
adopted 0.6 backup gets one (:func:`build_adopted`), how it is read back from a store
with a size cap (:func:`read`, :func:`parse`) and turned into the fields of a catalog
row with every value checked (:func:`row_fields`).

A manifest read from a store is untrusted input: :func:`parse` and :func:`row_fields`
raise IntegrityError naming the first thing wrong (not JSON, not a manifest, a field
missing, of the wrong type or out of range); the caller names the object.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bakthat.errors import IntegrityError

#: What a manifest's key adds to its archive's stored filename.
SUFFIX = ".manifest.json"
#: The value of every manifest's ``format`` field.
FORMAT = "bakthat-manifest"
#: The archive format version bakthat writes (0 is an adopted bakthat 0.6 backup).
FORMAT_VERSION = 1
#: The largest manifest read (bakthat's own are about 1 KiB).
CAP = 1 << 20
#: The ``encryption`` values a manifest (and a catalog row) may name.
ENCRYPTIONS = ("none", "age-scrypt", "age-x25519", "beefish")

_MAX_DATE = 253402300799  # 9999-12-31T23:59:59Z
_MAX_SIZE = (1 << 63) - 1
_MAX_TEXT = 4096


def key_for(stored_filename: str) -> str:
    """Given an archive's stored filename, return its manifest's key."""
    return stored_filename + SUFFIX


def is_manifest(key: str) -> bool:
    """Return True if ``key`` names a manifest (by its suffix)."""
    return key.endswith(SUFFIX)


def archive_of(key: str) -> str:
    """Given a manifest's key, return the stored filename of the archive it describes."""
    return key[: -len(SUFFIX)] if key.endswith(SUFFIX) else key


# -- building -----------------------------------------------------------------------


def build(plan: Any, stats: Any, *, size: int, sha256: str, host: str, header_sha256: str | None, version: str) -> dict[str, Any]:
    """Given a backup's plan, its tar walk's stats and what the store got, return the manifest.

    ``plan`` has the attributes of :class:`bakthat.backup_plan.Plan` (name, stored_filename,
    backup_date, tags as one string, compression, encryption, profile, source_path,
    session_id, key, warnings); ``stats`` those of :class:`bakthat.tarwriter` stats
    (bytes, files, partial, excluded, excluded_names, skipped, changed).  ``size`` and
    ``sha256`` are the stored object's, ``header_sha256`` the age header's (None when
    not encrypted), ``version`` bakthat's.  The key order is the stored JSON's order.
    """
    return {
        "format": FORMAT,
        "name": plan.name,
        "stored_filename": plan.stored_filename,
        "backup_date": plan.backup_date,
        "tags": plan.tags.split(),
        "size": size,
        "sha256": sha256,
        "compression": plan.compression,
        "encryption": plan.encryption,
        "host": host,
        "profile": plan.profile,
        "source_path": plan.source_path,
        "source_size": stats.bytes,
        "file_count": stats.files,
        "session_id": plan.session_id,
        "format_version": FORMAT_VERSION,
        "level": getattr(plan, "level", "full"),
        "base": getattr(plan, "base", None),
        "index": getattr(plan, "index", None),
        "level_reason": getattr(plan, "level_reason", None),
        "header_sha256": header_sha256,
        "partial": stats.partial,
        "entries": {"excluded": stats.excluded, "skipped": len(stats.skipped), "changed": len(stats.changed)},
        "excluded": stats.excluded_names,
        "skipped": stats.skipped,
        "changed": stats.changed,
        "warnings": plan.warnings,
        "source_kind": plan.dump.kind if getattr(plan, "dump", None) is not None else None,
        "extension": plan.dump.extension if getattr(plan, "dump", None) is not None else None,
        "key": plan.key,
        "bakthat_version": version,
        "backup_date_iso": datetime.fromtimestamp(plan.backup_date).astimezone().isoformat(),
    }


#: Fields of a manifest :func:`build` writes that are catalog row columns.
_COLUMNS = (
    "stored_filename", "backup_date", "size", "sha256", "compression", "encryption", "host", "profile",
    "source_path", "source_size", "file_count", "session_id", "format_version", "level", "base",
)
#: Fields of a manifest :func:`build` writes that go to the row's ``metadata`` (when set).
_METADATA = (
    "header_sha256", "partial", "entries", "excluded", "skipped", "changed", "warnings", "key", "bakthat_version",
    "source_kind", "extension",
    "index", "level_reason",
)


def own_row_fields(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Given a manifest :func:`build` just returned (trusted: this process wrote it),
    return the catalog row's fields (``filename``, the columns, ``tags`` as one string,
    ``metadata``) without the destination's (backend, backend_hash, state)."""
    return {
        "filename": manifest["name"],
        "tags": " ".join(manifest["tags"]),
        **{column: manifest[column] for column in _COLUMNS},
        "metadata": {
            **_common_metadata(manifest["encryption"], manifest["compression"], manifest["host"], manifest["stored_filename"]),
            **{name: manifest[name] for name in _METADATA if manifest.get(name)},
        },
    }


def build_adopted(row: Any, adopted: str, adopted_by: str, version: int) -> dict[str, Any]:
    """Given the row of an adopted bakthat 0.6 backup (its SHA-256 known), return its manifest.

    ``adopted`` is the version that wrote the object (``0.6``), ``adopted_by`` the host
    adopting it, ``version`` the format version recorded (0).
    """
    return {
        "format": FORMAT,
        "name": row.filename,
        "stored_filename": row.stored_filename,
        "backup_date": row.backup_date,
        "tags": [],
        "size": row.size,
        "sha256": row.sha256,
        "compression": row.compression,
        "encryption": row.encryption,
        "host": None,
        "profile": row.profile,
        "format_version": version,
        "adopted": adopted,
        "adopted_by": adopted_by,
    }


def encode(manifest: Mapping[str, Any]) -> bytes:
    """Return a manifest as the bytes stored (indented JSON)."""
    return json.dumps(manifest, indent=2).encode()


# -- reading ------------------------------------------------------------------------


def parse(data: bytes) -> dict[str, Any]:
    """Given a stored manifest's bytes, return the mapping.

    Raise IntegrityError if they are more than :data:`CAP` bytes, not JSON, or not a
    bakthat manifest (no ``format: bakthat-manifest``).
    """
    if len(data) > CAP:
        raise IntegrityError(f"it holds more than the {CAP} bytes a manifest may hold")
    try:
        manifest = json.loads(data)
    except (ValueError, RecursionError):
        raise IntegrityError("it is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IntegrityError("not a bakthat manifest")
    return manifest


def read(backend: Any, info: Any) -> dict[str, Any]:
    """Given a backend and the ObjectInfo of a manifest, read it (never more than
    :data:`CAP` bytes) and return the parsed mapping.  Raise IntegrityError as
    :func:`parse` does, or if the store lists it larger than :data:`CAP`."""
    if info.size > CAP:
        raise IntegrityError(f"it is {info.size} bytes, more than the {CAP} a manifest may hold")
    with backend.open_read(info.key) as handle:
        data = handle.read(CAP + 1)
    return parse(data)


def _text(manifest: Mapping[str, Any], field: str, required: bool = True, pattern: str | None = None) -> str | None:
    value = manifest.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise IntegrityError(f"{field} must be a {'non-empty ' if required else ''}string")
    if len(value) > _MAX_TEXT or "\x00" in value or (pattern and not re.fullmatch(pattern, value)):
        raise IntegrityError(f"{field} is malformed")
    return value


def _number(manifest: Mapping[str, Any], field: str, high: int, required: bool = True, low: int = 0) -> int | None:
    value = manifest.get(field)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise IntegrityError(f"{field} must be a whole number")
    if not low <= value <= high:
        raise IntegrityError(f"{field} {value} is out of range ({low} to {high})")
    return value


def _common_metadata(encryption: str, compression: str, host: str | None, stored_filename: str) -> dict[str, Any]:
    return {
        "is_enc": encryption != "none",
        "is_gzipped": compression == "gzip",
        "client": host,
        "manifest": key_for(stored_filename),
    }


def row_fields(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Given a manifest read from a store, return the fields of its catalog row.

    The result holds ``filename``, ``stored_filename``, ``backup_date``, ``size``,
    ``sha256``, ``tags`` (one string), ``compression``, ``encryption``, ``host``,
    ``profile``, ``source_path``, ``source_size``, ``file_count``, ``session_id``,
    ``format_version`` and ``metadata``; not the destination's fields (backend,
    backend_hash) nor ``is_deleted``/``last_updated``.  Raise IntegrityError naming the
    first field that is missing, of the wrong type or out of range, or a format
    version newer than :data:`FORMAT_VERSION`.
    """
    from bakthat.archive import EXTENSIONS
    from bakthat.legacy import RAW

    name = _text(manifest, "name")
    if "/" in str(name) or name in (".", ".."):
        raise IntegrityError("name must not contain '/'")
    compression = _text(manifest, "compression")
    encryption = _text(manifest, "encryption")
    if encryption not in ENCRYPTIONS:
        raise IntegrityError(f"unknown encryption {encryption!r}")
    version = _number(manifest, "format_version", 1 << 16, required=False)  # 0: an adopted 0.6 backup
    version = 1 if version is None else version
    if compression not in EXTENSIONS and not (compression == RAW and version == 0):  # raw: a 0.6 file, no tar
        raise IntegrityError(f"unknown compression {compression!r}")
    if version > FORMAT_VERSION:
        raise IntegrityError(f"format version {version} is newer than this bakthat's ({FORMAT_VERSION})")
    tags = manifest.get("tags") or []
    if isinstance(tags, str):
        tags = tags.split()
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags) or len(" ".join(tags)) > _MAX_TEXT:
        raise IntegrityError("tags must be a list of words")
    skipped = manifest.get("skipped") or []
    if not isinstance(skipped, list) or not all(isinstance(path, str) for path in skipped):
        raise IntegrityError("skipped must be a list of paths")
    host = _text(manifest, "host", required=False)
    extra = {
        "header_sha256": _text(manifest, "header_sha256", required=False, pattern="[0-9a-f]{64}"),
        "skipped": skipped,
        "key": _text(manifest, "key", required=False),
        "adopted": _text(manifest, "adopted", required=False),
        # a database or command dump (bakthat.sources.pipeline): restored as a file or --into
        "source_kind": _text(manifest, "source_kind", required=False, pattern="[a-z]{1,20}"),
        "extension": _text(manifest, "extension", required=False, pattern="[A-Za-z0-9][A-Za-z0-9._-]{0,30}"),
    }
    assert compression is not None and encryption is not None  # checked above
    fields = {
        "backup_date": _number(manifest, "backup_date", _MAX_DATE),
        "filename": name,
        "metadata": {
            **_common_metadata(encryption, compression, host, str(manifest.get("stored_filename"))),
            **{key: value for key, value in extra.items() if value},
        },
        "size": _number(manifest, "size", _MAX_SIZE),
        "stored_filename": _text(manifest, "stored_filename"),
        "tags": " ".join(tags),
        "session_id": _text(manifest, "session_id", required=False),
        "sha256": _text(manifest, "sha256", pattern="[0-9a-f]{64}"),
        "compression": compression,
        "encryption": encryption,
        "host": host,
        "profile": _text(manifest, "profile", required=False) or "default",
        "source_path": _text(manifest, "source_path", required=False),
        "source_size": _number(manifest, "source_size", _MAX_SIZE, required=False),
        "file_count": _number(manifest, "file_count", _MAX_SIZE, required=False),
        "format_version": version,
    }
    level, base, index = level_fields(manifest, str(fields["stored_filename"]))
    fields.update(level=level, base=base)
    if index is not None:
        fields["metadata"]["index"] = index
    return fields


def level_fields(manifest: Mapping[str, Any], stored_filename: str) -> tuple[str, str | None, dict[str, Any] | None]:
    """Return the level, base and index record of a manifest (one written before levels
    existed is a full backup without an index).  Raise IntegrityError naming a field
    that is malformed."""
    from bakthat.index_records import LEVELS
    from bakthat.index_store import index_key

    level = _text(manifest, "level", required=False) or "full"
    if level not in LEVELS:
        raise IntegrityError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    base = _text(manifest, "base", required=False)
    if (level == "full") != (base is None):
        raise IntegrityError("base must be given for a differential or incremental backup, and only then")
    if base is not None and ("/" in base or base == stored_filename):
        raise IntegrityError("base is not the stored filename of another backup")
    index = manifest.get("index")
    if index is None:
        return level, base, None
    if not isinstance(index, dict) or index.get("key") != index_key(stored_filename):
        raise IntegrityError(f"index must name {index_key(stored_filename)!r}")
    record = {
        "key": index["key"],
        "size": _number(index, "size", _MAX_SIZE),
        "sha256": _text(index, "sha256", pattern="[0-9a-f]{64}"),
    }
    for field in ("entries", "deletions"):
        if index.get(field) is not None:
            record[field] = _number(index, field, _MAX_SIZE)
    return level, base, record
