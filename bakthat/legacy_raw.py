"""Restoring a file bakthat 0.6 uploaded with ``compress: false``: one file, no archive.

With ``compress: false``, 0.6 stored the file itself, named ``<name>.<YYYYmmddHHMMSS>``
(``.enc`` appended when it was encrypted with 0.6's Blowfish format, see
:mod:`bakthat.legacy`).  :func:`restore` writes it back as the single file
``<target>/<name>`` through the same staging and commit as every restore
(:func:`bakthat.extract.safe_write_file`): nothing reaches the target before the whole
object has been read and checked, an existing file is kept unless ``overwrite``, and
the name, which comes from the store and is not trusted, must be one path component.

0.6 recorded nothing about such a file, so what can be checked is little:

- the number of bytes read must be the object's size as catalogued;
- its MD5 where the store gives one: S3 and Swift return the MD5 of an object stored
  in one PUT as its ETag (0.6 always stored that way).  The bytes read must match the
  ETag the store sends with them (damage at rest or in transit), and the ETag recorded
  when the object was adopted (it was not replaced since).  A multipart ETag (holding
  ``-``) is no MD5 and is not checked; a local directory and a Glacier vault (which
  checks its own tree hashes) record none;
- its SHA-256, once ``sync --write-manifests`` has recorded one.

An encrypted raw file has nothing more: Blowfish-CBC has no MAC and a file no inner
structure.  Only beefish's padding byte can betray a wrong password (about one wrong
password in 32 leaves an impossible last byte, refused as a wrong password); any other
wrong password, or damage inside the object, decrypts to garbage that cannot be told
from the file.  Restoring one therefore needs the caller's acknowledgement
(``unverified=True``, ``restore --unverified``), checked by :func:`check` before any
password is asked or any byte downloaded.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Any

from bakthat import legacy
from bakthat.pipeline import HashingReader
from bakthat.errors import IntegrityError, TargetFullError, UnsafeArchiveError, UnverifiableError, WrongPasswordError

log = logging.getLogger("bakthat")

__all__ = ["check", "file_name", "read_and_check", "restore"]

_MD5 = re.compile(r"[0-9a-f]{32}")
_READ = 1 << 20
#: The longest file name Linux file systems take (bytes).
_NAME_MAX = 255


def file_name(row: Any) -> str:
    """Given a raw 0.6 row, return the name of the file it restores to.

    Raise UnsafeArchiveError if its stored name does not give one path component.
    """
    parsed = legacy.parse_name(str(row.stored_filename))
    if parsed is None or not parsed.raw or len(os.fsencode(parsed.name)) > _NAME_MAX:
        raise UnsafeArchiveError(
            f"refusing to restore {row.stored_filename!r}: as a bakthat 0.6 file uploaded without "
            "compression it would be written under a name that is not a single file name; nothing was restored"
        )
    return parsed.name


def check(row: Any, unverified: bool) -> str:
    """Before any password or download: return the file name a raw row restores to.

    Raise UnsafeArchiveError for a name that is not one path component, and
    UnverifiableError for an encrypted one unless ``unverified`` acknowledges that
    nothing can verify it.
    """
    name = file_name(row)
    if row.is_encrypted() and not unverified:
        raise UnverifiableError(
            f"{row.stored_filename} is a file bakthat 0.6 uploaded without compression (compress: false) and "
            "encrypted with its Blowfish format, which has no checksum and no authentication: a wrong password "
            "or a damaged object would decrypt to garbage that cannot be detected. To restore it anyway, "
            "accepting that, add --unverified (unverified=True from Python), then check the file's content; "
            "nothing was read or written"
        )
    return name


class _MD5Reader:
    """Read through ``source``, keeping the MD5 of what was read (S3's and Swift's ETag)."""

    def __init__(self, source: Any) -> None:
        self._source = source
        self._md5 = hashlib.md5()  # noqa: S324 - the store's integrity check, not security

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self._source.read(n)
        self._md5.update(data)
        return data

    def hexdigest(self) -> str:
        return self._md5.hexdigest()


def _md5_of(etag: Any) -> str | None:
    """Return the MD5 an ETag holds, or None for a multipart or missing one."""
    value = str(etag or "").strip().strip('"').lower()
    return value if _MD5.fullmatch(value) else None


def _verifier(row: Any, stored: Any, hashed: HashingReader, md5: _MD5Reader, plain: Any) -> tuple[Any, Any]:
    """Return ``(check_stored, verify)``: the checks of the stored bytes (read the rest,
    then compare size, MD5s and SHA-256), and the before-commit check (read ``plain``
    to its end, then those)."""
    key = row.stored_filename

    def check_stored() -> None:
        while md5.read(_READ):
            pass
        if hashed.size != row.size:
            raise IntegrityError(f"{key}: read {hashed.size} bytes, the catalog recorded {row.size}; nothing was restored")
        if row.sha256 and hashed.hexdigest() != row.sha256:
            raise IntegrityError(f"{key}: SHA-256 mismatch with the catalog; nothing was restored")
        digest = md5.hexdigest()
        sent = _md5_of(getattr(stored, "etag", None))
        if sent is not None and sent != digest:
            raise IntegrityError(f"{key}: the bytes read do not match the store's ETag (MD5); nothing was restored")
        recorded = _md5_of((row.metadata or {}).get("etag"))
        if recorded is not None and recorded != digest:
            raise IntegrityError(
                f"{key}: its MD5 differs from the ETag recorded when it was adopted (the object was "
                "replaced or damaged since); nothing was restored"
            )

    def verify() -> None:
        while plain.read(_READ):
            pass
        check_stored()

    return check_stored, verify


class _DamageFirst:
    """Read ``plain``; when it reports a wrong password (the padding), first run the
    checks of the stored bytes: a truncated, extended or altered object is damage, and
    is reported as such."""

    def __init__(self, plain: Any, check_stored: Any) -> None:
        self._plain = plain
        self._check_stored = check_stored

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        try:
            return bytes(self._plain.read(n))
        except WrongPasswordError as wrong:
            try:
                self._check_stored()
            except IntegrityError as damaged:
                raise damaged from wrong
            raise


def _read_all(plain: Any, verify: Any) -> int:
    """Read ``plain`` to its end, run ``verify``; return the number of bytes read."""
    size = 0
    while chunk := plain.read(_READ):
        size += len(chunk)
    verify()
    return size


def read_and_check(backend: Any, row: Any, password: str | None) -> int:
    """Given a backend, a raw 0.6 row and its password (None if not encrypted), read
    the object to its end with every check :func:`restore` makes, writing nothing;
    return the size of the file it holds (``bakthat check --read-data``).

    Raise UnsafeArchiveError, WrongPasswordError or IntegrityError as restore does.
    An encrypted one that passes is still unverified (see the module docstring).
    """
    file_name(row)
    stored = backend.open_read(row.stored_filename)
    try:
        hashed = HashingReader(stored)
        md5 = _MD5Reader(hashed)
        plain: Any = md5
        if password is not None:
            plain = _DamageFirst(legacy.BlowfishReader(md5, password, bad_padding=WrongPasswordError), lambda: check_stored())
        check_stored, verify = _verifier(row, stored, hashed, md5, plain)
        return _read_all(plain, verify)
    finally:
        stored.close()


def restore(
    ctx: Any,
    row: Any,
    password: str | None,
    where: Path,
    *,
    overwrite: bool,
    wait: bool,
    dry_run: bool,
    progress: Any = None,
) -> Any:
    """Given core's Context, a raw 0.6 row (see :func:`bakthat.legacy.is_raw`) already
    passed through :func:`check`, its password (None if not encrypted) and the target
    directory, restore the file; return the row (with ``dry_run``, a
    :class:`bakthat.dryrun.RestorePlan`, nothing written).

    Raise UnsafeArchiveError for a name that is not one path component;
    WrongPasswordError for a password 0.6 could not have used or an impossible padding
    byte; IntegrityError for a size, MD5 or SHA-256 mismatch or a ciphertext that is
    not whole blocks; TargetExistsError, TargetFullError as every restore.  Nothing
    reaches the target unless every check passed.
    """
    from bakthat import dryrun
    from bakthat.extract import safe_write_file

    name = file_name(row)
    key = row.stored_filename
    ctx.backend.prepare_read(key, wait=wait)
    stored = ctx.backend.open_read(key)
    try:
        hashed = HashingReader(stored, progress)
        md5 = _MD5Reader(hashed)
        plain: Any = md5
        if password is not None:
            decrypted = legacy.BlowfishReader(md5, password, bad_padding=WrongPasswordError)
            plain = _DamageFirst(decrypted, lambda: check_stored())
        check_stored, verify = _verifier(row, stored, hashed, md5, plain)
        if dry_run:
            size = _read_all(plain, verify)
            plan = dryrun.plan_entry(row, where / name, overwrite)
            plan.bytes = size
            plan.verified = password is None
            log.info("Checked (dry run) %s: would restore the file %s", key, where / name)
            return plan
        log.info("Restoring %s (a bakthat 0.6 file, no archive) into %s", key, where)
        try:
            path = safe_write_file(plain, where, name, overwrite=overwrite, before_commit=verify)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise TargetFullError(
                f"no space left on the disk of {where} while restoring {key}; nothing was restored and the target is as it was"
            ) from exc
    finally:
        stored.close()
    if password is not None:
        log.warning(
            "Restored %s unverified: 0.6's Blowfish format cannot tell a wrong password or damage from the file; "
            "check its content", path,
        )
    return row
