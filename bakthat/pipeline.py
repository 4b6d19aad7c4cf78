"""The byte pipeline's pass-through stages: count and hash what flows to or from a store.

A backup writes ``tar -> compressor -> [age encrypter] -> HashingWriter -> upload``; a
restore reads ``store -> HashingReader -> [age decrypter] -> decompressor -> extract``.
The compressors live in :mod:`bakthat.archive`, the age layer in :mod:`bakthat.crypto`;
the two stages here record the stored object's size and SHA-256 (what the catalog and
the manifest keep) without holding any of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import IO, Any

__all__ = ["HashingReader", "HashingWriter"]


class HashingWriter:
    """Pass writes to a sink while counting them and computing their SHA-256.

    A sink that hashes every byte it is given anyway (an S3 upload records the SHA-256
    with the object) offers its hash as ``running_sha256``: it is shared, not repeated.
    """

    def __init__(self, sink: Any):
        self._sink = sink
        shared = getattr(sink, "running_sha256", None)
        self._hash = shared if shared is not None else hashlib.sha256()
        self._update = None if shared is not None else self._hash.update
        self.size = 0

    def write(self, data: bytes) -> int:
        if self._update is not None:
            self._update(data)
        self.size += len(data)
        self._sink.write(data)
        return len(data)

    def flush(self) -> None:
        """Writes go straight to the sink."""

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class HashingReader:
    """Read from a source while counting and hashing what was read."""

    def __init__(self, source: IO[bytes], progress: Callable[[int], None] | None = None):
        self._source = source
        self._hash = hashlib.sha256()
        self._progress = progress
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._hash.update(data)
        self.size += len(data)
        if self._progress is not None and data:
            self._progress(len(data))
        return data

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        """Read the rest of the source so the hash covers the whole object."""
        while self.read(1 << 20):
            pass

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def close(self) -> None:
        self._source.close()
