"""A dumped source in the backup pipeline: stored as the dump itself, restored as a file or into a database.

A database or command source is not a tree: what is stored is the dump's bytes,
compressed and encrypted like any archive (``<name>.<stamp>.<extension>.zst[.age]``,
``extension`` the source's: ``pgdump``, ``sql``, ``sqlite``, ``bin``), so stock tools
open it: ``age -d FILE | zstd -d > app.pgdump``.  The catalog row says what it is:
``metadata["source_kind"]`` (``postgresql``, ``mysql``, ``sqlite``, ``command``) and
``metadata["extension"]``.

- :func:`write_dump` copies a running dump into the compressor and checks its verdict
  before the store commits: a dump that fails or is killed raises, the upload is aborted,
  nothing is catalogued.
- :func:`restore_dump` writes the restored dump to ``<target>/<name>.<extension>`` (the
  file appears complete, or not at all), or streams it into a database with the kind's
  ``restore_into``; in both cases the stored object's checks (SHA-256, authenticated
  decryption) run before the last byte is handed over, so a client tool never sees the
  end of a damaged stream.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bakthat.atomic import save_file
from bakthat.context import RunContext
from bakthat.errors import ConfigError, TargetExistsError
from bakthat.sources.base import CHUNK, Source

#: Extension added to a dump's stored filename by each compression.
COMPRESSION_SUFFIXES = {"zstd": ".zst", "gzip": ".gz", "none": ""}
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def dump_scheme(text: str) -> str | None:
    """Given a command-line source, return its URL scheme if a dumped source kind handles
    it (``postgresql``, ``mysql``, ``sqlite``...), else None (a path)."""
    from bakthat import sources

    match = _URL.match(text)
    if match is None:
        return None
    scheme = match.group(1).lower()
    module = sources.kinds().get(scheme)
    return scheme if module is not None and scheme in module.SCHEMES else None


def suffix(source: Source, compression: str, encrypted: bool) -> str:
    """Return the stored filename's suffix of a dump: ``pgdump.zst.age``..."""
    return source.extension + COMPRESSION_SUFFIXES[compression] + (".age" if encrypted else "")


def write_dump(
    source: Source,
    settings: Mapping[str, Any],
    context: RunContext | None,
    sink: Any,
    progress: Callable[[int], None] | None = None,
) -> Any:
    """Given a dumped source, start its dump and copy it into ``sink`` (the compressor);
    return TarStats-like counts (one file, the dump's bytes).

    Raise DumpError if the dump fails, is killed or cannot start (the dump is stopped
    and nothing it wrote counts: the caller aborts its upload).
    """
    from bakthat import sources
    from bakthat.tarwriter import TarStats

    with sources.open_dump(source, settings, context) as dump:
        dump.copy_to(sink, progress)
        result = dump.finish()
    stats = TarStats(files=1, bytes=result.bytes)
    return stats


class _Verified:
    """A reader that, when its stream ends, runs ``verify`` before reporting the end."""

    def __init__(self, stream: Any, verify: Callable[[], None]):
        self._stream = stream
        self._verify = verify
        self._ended = False

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        if not data and not self._ended:
            self._verify()
            self._ended = True
        return data


def restore_dump(
    row: Any,
    stream: Any,
    target: Path,
    into: str | None,
    overwrite: bool,
    settings: Mapping[str, Any],
    verify: Callable[[], None],
) -> str:
    """Given a dump's catalog row, its decompressed stream and ``verify`` (which raises
    IntegrityError if the stored object was damaged), restore it; return where to.

    With ``into`` (a database URL or ``sqlite:///path``), stream it into that database
    through the kind's ``restore_into``; without, write ``<target>/<name>.<extension>``.
    Raise ConfigError if ``into`` is not of the backup's kind, TargetExistsError if the
    file or database exists (and is not empty) without ``overwrite``.
    """
    from bakthat import sources

    metadata = row.metadata or {}
    kind = metadata.get("source_kind")
    checked = _Verified(stream, verify)
    if into is not None:
        target_source = sources.parse(into, "--into")
        if target_source.kind != kind:
            raise ConfigError(
                f"--into {target_source.display}: {row.stored_filename} is a {kind} dump; "
                f"restore it into a {kind} database, or without --into as a file"
            )
        sources.restore_into(target_source, checked, settings, overwrite=overwrite)
        return target_source.display
    extension = str(metadata.get("extension") or "bin")
    if "/" in row.filename + extension or row.filename in (".", "..") or "\x00" in row.filename:
        raise ConfigError(f"{row.stored_filename}: its name cannot name a file in {target}")
    path = target / f"{row.filename}.{extension}"
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise TargetExistsError(f"{path} exists: restore elsewhere (--target), or overwrite")
    target.mkdir(parents=True, exist_ok=True)
    with save_file(path, prefix=".bakthat-restore-", mode=0o600) as handle:
        while chunk := checked.read(CHUNK):
            handle.write(chunk)
    return str(path)
