"""Where passwords come from, and the rule that nothing is stored weaker than asked.

A password is taken from the first of these that gives one, for backup, restore and
KeyValue alike:

1. the ``password`` argument (``""`` means: no encryption, chosen explicitly);
2. ``BAKTHAT_PASSWORD`` (set but empty: no encryption, as bakthat 0.6, unless one of
   the next two is configured);
3. the profile's ``password_file`` (or ``BAKTHAT_PASSWORD_FILE``): the file's content
   without its final newline;
4. the profile's ``password_command`` (or ``BAKTHAT_PASSWORD_COMMAND``): what the
   command prints on stdout, without its final newline.  It runs without a shell, as
   an argv list or a string split the way a shell would (``shlex``); its stderr goes to
   bakthat's stderr; its output is never logged, and when it fails the error names the
   program, not what it printed;
5. a prompt, when ``prompt`` is not ``"no"`` and stdin is a terminal (a blank answer
   means no encryption, chosen explicitly).

A profile with ``encryption_recipients`` encrypts backups to those public keys instead.

``require_encryption: true`` refuses (EncryptionRequiredError, exit 2, before anything
is stored) a backup or KeyValue entry that would not be encrypted.  Without it, a backup
stored unencrypted although nobody chose that (no ``password=""``, no ``--prompt no``,
no blank answer, no ``require_encryption: false``) logs a warning saying how to encrypt.
"""

from __future__ import annotations

import getpass
import logging
import os
import shlex
import stat
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bakthat import profile_keys
from bakthat.utils import display_path
from bakthat.errors import ConfigError, EncryptionRequiredError, PasswordRequiredError
from bakthat.settings import profile_of

log = logging.getLogger("bakthat")

COMMAND_TIMEOUT = 60

#: The profile keys read here, declared in :mod:`bakthat.profile_keys` (read without importing this module).
SETTINGS = profile_keys.PASSWORDS


@dataclass
class BackupSecret:
    """How a backup will be encrypted: a passphrase, public keys, or nothing.

    ``chosen`` is True when "no encryption" was an explicit choice; ``prompt`` is True
    when a dry run would have asked for the password.
    """

    passphrase: str | None = None
    recipients: list[str] = field(default_factory=list)
    chosen: bool = False
    prompt: bool = False

    @property
    def encryption(self) -> str:
        if self.recipients:
            return "age-x25519"
        return "age-scrypt" if self.passphrase or self.prompt else "none"


def interactive() -> bool:
    """Return True if a password can be asked for (stdin is a terminal)."""
    return sys.stdin is not None and sys.stdin.isatty()


def configured(settings: Mapping[str, Any]) -> str | None:
    """Return the password ``BAKTHAT_PASSWORD``, ``password_file`` or ``password_command`` gives, or None.

    ``BAKTHAT_PASSWORD`` set but empty gives ``""`` (no encryption, as in 0.6), unless
    the profile names a ``password_file`` or ``password_command``: an empty variable
    (``export BAKTHAT_PASSWORD=$UNSET``) never turns off a configured password.  Raise
    ConfigError (naming the file or the program, never the password) if a configured
    source fails.
    """
    password = os.environ.get("BAKTHAT_PASSWORD")
    if password:
        return password
    path, command = settings.get("password_file"), settings.get("password_command")
    if path and command:
        raise ConfigError("set password_file or password_command, not both")
    if path:
        return read_password_file(str(path))
    if command:
        return run_password_command(command)
    return password


def read_password_file(path: str) -> str:
    """Given a path, return the password it holds (its final newline dropped).

    Raise ConfigError naming the file if it cannot be read or is empty.  Warn if
    other users can read it.
    """
    full = os.path.expanduser(path)
    shown = display_path(full)
    try:
        with open(full, "rb") as handle:
            mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
            data = handle.read(1 << 16)
    except OSError as exc:
        raise ConfigError(f"password_file {shown}: {exc.strerror or exc}") from None
    if mode & 0o077:
        log.warning("password_file %s can be read by other users (mode %04o): run chmod 600 %s", shown, mode, shown)
    return _password_from(data, f"password_file {shown}", "holds no password: write it in the file (or remove password_file)")


def run_password_command(command: Any) -> str:
    """Run ``password_command`` without a shell and return what it printed (final newline dropped).

    Raise ConfigError naming the program (never its output) if it cannot be run,
    fails, takes longer than :data:`COMMAND_TIMEOUT` seconds or prints nothing.
    """
    try:
        argv = shlex.split(command) if isinstance(command, str) else [str(part) for part in command]
    except ValueError as exc:
        raise ConfigError(f"password_command cannot be split into arguments: {exc}") from None
    if not argv:
        raise ConfigError("password_command is empty")
    program = argv[0]
    try:
        done = subprocess.run(argv, stdout=subprocess.PIPE, timeout=COMMAND_TIMEOUT, check=False)  # noqa: S603
    except FileNotFoundError:
        raise ConfigError(f"password_command: program {program!r} not found") from None
    except PermissionError:
        raise ConfigError(f"password_command: program {program!r} cannot be run (permission denied)") from None
    except subprocess.TimeoutExpired:
        raise ConfigError(f"password_command {program!r} did not finish within {COMMAND_TIMEOUT} s") from None
    except OSError as exc:
        raise ConfigError(f"password_command {program!r} cannot be run: {exc.strerror or exc}") from None
    if done.returncode != 0:
        raise ConfigError(
            f"password_command {program!r} failed with exit status {done.returncode} (its output is not shown)"
        )
    return _password_from(done.stdout, f"password_command {program!r}", "printed no password")


def _password_from(data: bytes, source: str, empty: str) -> str:
    """Given the bytes a source gave, return the password: UTF-8, its final newline dropped.

    Raise ConfigError naming ``source`` (never the bytes) if it is not UTF-8 or empty.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{source} gave something that is not UTF-8 text") from None
    text = text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text
    if not text:
        raise ConfigError(f"{source} {empty}")
    return text


def for_backup(password: str | None, prompt: str | bool, settings: Mapping[str, Any], ask: bool = True) -> BackupSecret:
    """Given the backup's ``password`` and ``prompt`` arguments and the settings, return its BackupSecret.

    With ``ask`` false (a dry run) nothing is asked: ``prompt`` is set instead.  Raise
    ConfigError if the two typed passwords differ or a configured source fails.
    """
    recipients = settings.get("encryption_recipients") or []
    if isinstance(recipients, str):
        recipients = recipients.split()
    if recipients:
        return BackupSecret(recipients=list(recipients))
    if password is None:
        password = configured(settings)
    if password is not None:
        return BackupSecret(passphrase=password or None, chosen=not password)
    if prompt in ("no", False):
        return BackupSecret(chosen=True)
    if not interactive():
        return BackupSecret()
    if not ask:
        return BackupSecret(prompt=True)
    password = getpass.getpass("Password (blank to disable encryption): ")
    if password and getpass.getpass("Password confirmation: ") != password:
        raise ConfigError("the two passwords do not match; nothing was backed up")
    return BackupSecret(passphrase=password or None, chosen=not password)


def enforce(secret: BackupSecret, settings: Mapping[str, Any], what: str) -> bool:
    """Refuse to store ``what`` unencrypted when the settings require encryption.

    Raise EncryptionRequiredError if ``require_encryption`` is true and ``secret``
    does not encrypt.  Return True if it will be stored unencrypted though nobody
    chose that (the caller then logs :func:`warn_unencrypted` once it is stored).
    """
    if secret.encryption != "none":
        return False
    required = settings.get("require_encryption")
    if required:
        raise EncryptionRequiredError(
            f"profile {profile_of(settings)!r} has require_encryption: true and {what} would not "
            "be encrypted: give a password (BAKTHAT_PASSWORD, password_file, password_command or the prompt) or "
            "set encryption_recipients; nothing was stored"
        )
    return required is None and not secret.chosen


def warn_unencrypted(what: str, dry_run: bool = False) -> None:
    """Log the warning for a backup stored unencrypted that nobody chose so."""
    log.warning(
        "%s %s unencrypted: no password was given. To encrypt, set BAKTHAT_PASSWORD, password_file or "
        "password_command (or encryption_recipients) in the profile; to store unencrypted on purpose without "
        "this warning, use --prompt no, password=\"\" or require_encryption: false",
        what, "would be stored" if dry_run else "is stored",
    )


def for_restore(row: Any, password: str | None, prompt: str | bool, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Given an encrypted row, return the keyword arguments of DecryptingReader that open it.

    Raise PasswordRequiredError if no password (or, for public-key backups, no
    ``identity_file``) is available.
    """
    from bakthat import crypto

    if row.encryption == "age-x25519":
        identity_file = settings.get("identity_file")
        if not identity_file:
            raise PasswordRequiredError(
                f"{row.stored_filename} is encrypted to public keys: set identity_file "
                "(or BAKTHAT_IDENTITY_FILE) to the matching age identity"
            )
        return {"identities": crypto.load_identities(os.path.expanduser(str(identity_file)))}
    if password is None:
        password = configured(settings)
    if password is None and prompt not in ("no", False) and interactive():
        password = getpass.getpass(f"Password for {row.stored_filename}: ")
    if not password:
        raise PasswordRequiredError(
            f"{row.stored_filename} is encrypted: give a password (BAKTHAT_PASSWORD, password_file, "
            "password_command or the prompt)"
        )
    return {"passphrase": password}
