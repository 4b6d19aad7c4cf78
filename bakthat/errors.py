"""Errors raised by bakthat, each with a message and a documented CLI exit code.

Every error bakthat raises on purpose is a subclass of :class:`BakthatError`.  The
``exit_code`` class attribute is what the ``bakthat`` command exits with when the error
reaches it; the table lives in ``docs/cli.md`` (Exit codes) and in :data:`EXIT_CODES`.
Messages never contain a password, a key or any other secret.
"""

from __future__ import annotations


class BakthatError(Exception):
    """Base class: a failure bakthat expected and can explain (exit code 1)."""

    exit_code = 1


class ConfigError(BakthatError):
    """The configuration or the command-line usage is wrong (exit code 2)."""

    exit_code = 2


class PartialFailure(BakthatError):
    """Part of the work failed and the rest succeeded (exit code 3)."""

    exit_code = 3


class NotFoundError(BakthatError):
    """No backup (or stored object) matches what was asked for (exit code 4)."""

    exit_code = 4


class WrongPasswordError(BakthatError):
    """The password or identity does not open the archive (exit code 5)."""

    exit_code = 5


class PasswordRequiredError(WrongPasswordError):
    """The archive is encrypted and no password or identity was given (exit code 5)."""


class IntegrityError(BakthatError):
    """Stored data does not match its checksum or authentication tag (exit code 6).

    Raised for a flipped byte, a truncated or extended archive, a damaged header, or an
    object whose SHA-256 differs from the one recorded at backup time.
    """

    exit_code = 6


class UnsafeArchiveError(BakthatError):
    """An archive member would escape the target or is of a refused kind (exit code 7)."""

    exit_code = 7


class TargetExistsError(BakthatError):
    """Restoring would overwrite existing files and overwriting was not asked for (exit code 8)."""

    exit_code = 8


class StorageError(BakthatError):
    """The destination failed to store, read or delete an object (exit code 9)."""

    exit_code = 9


class AlreadyExistsError(StorageError):
    """An object already exists under the key a backend was asked to create."""


class VetoedError(BakthatError):
    """A ``before_`` event handler refused the action; nothing was done (exit code 10)."""

    exit_code = 10


class RetrievalPendingError(BakthatError):
    """The object is in an archive storage class; a retrieval was requested (exit code 11).

    Run the same restore again once the retrieval is done (or pass ``wait=True``).
    """

    exit_code = 11


class LockedError(BakthatError):
    """Another process holds the lock this action needs (exit code 12)."""

    exit_code = 12


class CatalogError(BakthatError):
    """The catalog cannot be opened, read, upgraded or written (exit code 13).

    The message names the catalog (its path, or its URL without the password): a
    damaged SQLite file, a full disk, an unreachable PostgreSQL server.
    """

    exit_code = 13


class EncryptionRequiredError(ConfigError):
    """``require_encryption`` is set and the backup would not be encrypted (exit code 2).

    Nothing was stored and no catalog row was written.
    """


class UnverifiableError(ConfigError):
    """Restoring would write data that nothing can verify, and that was not acknowledged
    (exit code 2).

    A bakthat 0.6 file uploaded with ``compress: false`` and encrypted with 0.6's
    Blowfish format has no checksum, no authentication and no inner structure: a wrong
    password or a damaged object can decrypt to plausible garbage.  Restoring it needs
    ``restore --unverified`` (``unverified=True``); nothing was read or written.
    """


class TargetFullError(StorageError):
    """Restoring ran out of space on the target's filesystem (exit code 9).

    The message names the target; the target is left as it was.
    """


class Interrupted(BakthatError):
    """The action was interrupted by Ctrl-C or SIGTERM (exit 130).

    Interrupted before its work was durable, an action keeps nothing partial.
    Interrupted later, while its ``on_`` event handlers ran, its result is kept: the
    message says so and ``kept`` holds it.
    """

    exit_code = 130


EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "failure (an unexpected or generic error)",
    2: "usage or configuration error (including a plugin that fails to load)",
    3: "partial failure: some items failed, the rest succeeded",
    4: "not found: no backup matches",
    5: "wrong password or missing password/identity",
    6: "integrity error: checksum or authentication failed, archive damaged or truncated",
    7: "unsafe archive: a member would be written outside the target, through a link, or is malformed",
    8: "target exists: restore would overwrite files (use --overwrite)",
    9: "storage error: the destination could not store, read or delete",
    10: "vetoed: a before_ event handler (plugin) refused the action",
    11: "retrieval pending: the archive is being restored from cold storage; run again later",
    12: "locked: another bakthat process holds the lock",
    13: "catalog error: the catalog cannot be opened, read, upgraded or written",
    130: "interrupted (SIGINT/SIGTERM) or questions cancelled; nothing partial is kept (the message says what is kept if the action had completed)",
}
