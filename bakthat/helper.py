"""Helpers for backup scripts (0.6's ``bakthat.helper``): BakHelper and the KeyValue store."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from bakthat.keyvalue import KeyValue

__all__ = ["BakHelper", "KeyValue"]

log = logging.getLogger("bakthat")


class BakHelper:
    """Back up what a script produces: a temporary working directory and bakthat's actions.

    As a context manager, ``with BakHelper("myhost_mysql") as bh:`` creates a private
    temporary directory (``<backup_name>_XXXXXXXX`` under ``$TMPDIR``), makes it the
    current directory, and on exit goes back to the previous directory and removes it,
    also when the block raises (the exception then propagates).  Inside, dump files
    there (``mysqldump ... > dump.sql``) and call :meth:`backup`, which stores the
    directory under ``backup_name``.

    As a plain object (``bh = BakHelper(conf=...)``) nothing is created: pass what to
    back up, ``bh.backup("myfile.txt")``, stored under ``backup_name`` or, without one,
    under the file's own name.

    Every action uses the helper's ``destination``, ``password``, ``profile``,
    ``conf``, ``config``, ``tags`` and ``key``; each method's keyword arguments override
    them and are passed on to the bakthat function, which refuses (TypeError) any
    keyword it does not know.  Scripts never prompt: with no password,
    ``BAKTHAT_PASSWORD``, then the profile's ``password_file`` or ``password_command``
    is used, else the backup is not encrypted (unless the profile has
    ``encryption_recipients``), with a warning unless ``password=""`` was given or the
    profile says ``require_encryption: false`` (``require_encryption: true`` refuses it).
    """

    def __init__(
        self,
        backup_name: str | None = None,
        destination: str | None = None,
        password: str | None = None,
        profile: str = "default",
        conf: Mapping[str, Any] | None = None,
        tags: str | list[str] | None = None,
        key: str | None = None,
        config: str | None = None,
    ) -> None:
        self.backup_name = backup_name
        self.destination = destination
        self.password = password
        self.profile = profile
        self.conf = conf
        self.tags = tags
        self.key = key
        self.config = config
        self.dir: str | None = None
        self._previous_cwd: str | None = None
        self._names: dict[str, str] = {}

    # -- the temporary directory ----------------------------------------------------

    def __enter__(self) -> BakHelper:
        prefix = (self.backup_name or "bakhelper").replace(os.sep, "_") + "_"
        self._previous_cwd = os.getcwd()
        self.dir = tempfile.mkdtemp(prefix=prefix)
        try:
            os.chdir(self.dir)
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        directory, self.dir = self.dir, None
        try:
            if self._previous_cwd is not None:
                os.chdir(self._previous_cwd)
        finally:
            if directory is not None:
                shutil.rmtree(directory, onerror=_warn_not_removed)

    # -- actions ----------------------------------------------------------------------

    def backup(self, filename: str | os.PathLike[str] | None = None, **kwargs: Any) -> Any:
        """Back up ``filename`` (default: the temporary directory); return the catalog row.

        The backup is named ``backup_name`` (with no name: the file's own name), not
        after the temporary directory.  Keywords override the helper's settings and go
        to :func:`bakthat.backup` (``exclude_file``, ``compression``, ...).
        """
        import bakthat

        if filename is None:
            if self.dir is None:
                raise _usage("backup() without a file needs the temporary directory: use `with BakHelper(...) as bh`")
            if not self.backup_name:
                raise _usage("backup() of the temporary directory needs a backup_name: BakHelper('name', ...)")
            source = self.dir
            name = self.backup_name
        else:
            source = os.fspath(filename)
            name = self.backup_name or os.path.basename(os.path.normpath(source))
        self._names[source] = name
        options = self._options(kwargs, tags=self.tags, key=self.key, password=self.password)
        chosen = options.get("password") is not None or "prompt" in kwargs
        options.setdefault("prompt", "no")
        options.setdefault("custom_filename", name)
        result = bakthat.backup(source, **options)
        if not chosen and getattr(result, "encryption", "none") == "none":
            self._warn_unencrypted(result, options)
        return result

    @staticmethod
    def _warn_unencrypted(result: Any, options: Mapping[str, Any]) -> None:
        """Warn that a backup is unencrypted when nobody chose so (the helper never prompts)."""
        from bakthat import passwords
        from bakthat.conf import get_profile

        settings = get_profile(options.get("profile") or "default", options.get("config"), options.get("conf"))
        if settings.get("require_encryption") is None:
            passwords.warn_unencrypted(result.stored_filename, dry_run=bool(getattr(result, "dry_run", False)))

    def restore(self, filename: str | None = None, **kwargs: Any) -> Any:
        """Restore the newest backup of ``filename`` (default: ``backup_name``); return its row.

        It is extracted into the current directory (the temporary directory inside a
        ``with`` block) unless ``target=`` is given.
        """
        import bakthat

        options = self._options(kwargs, password=self.password)
        options.setdefault("prompt", "no")
        return bakthat.restore(self._name(filename, "restore"), **options)

    def rotate(self, filename: str | None = None, **kwargs: Any) -> Any:
        """Apply the profile's rotation policy to ``filename`` (default: ``backup_name``).

        Return the deleted rows (see :func:`bakthat.rotate_backups`).
        """
        import bakthat

        return bakthat.rotate_backups(self._name(filename, "rotate"), **self._options(kwargs))

    def delete_older_than(self, filename: str | None = None, interval: str | None = None, **kwargs: Any) -> Any:
        """Delete the backups of ``filename`` (default: ``backup_name``) older than ``interval``.

        ``interval`` is required (``"3M"``, ``"2W"``, ``"1Y2M"``...); the newest backup
        is always kept.  Return the deleted rows (see :func:`bakthat.delete_older_than`).
        """
        import bakthat

        if not interval:
            raise _usage("delete_older_than() needs an interval, for example interval='3M'")
        return bakthat.delete_older_than(self._name(filename, "delete_older_than"), interval, **self._options(kwargs))

    # -- internals ---------------------------------------------------------------------

    def _name(self, filename: str | os.PathLike[str] | None, action: str) -> str:
        """Return the backup name an action is about."""
        if filename is None:
            if not self.backup_name:
                raise _usage(f"{action}() needs a name: pass it, or create BakHelper('name', ...)")
            return self.backup_name
        text = os.fspath(filename)
        return self._names.get(text) or os.path.basename(os.path.normpath(text))

    def _options(self, overrides: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
        options: dict[str, Any] = {
            "destination": self.destination,
            "profile": self.profile,
            "conf": self.conf,
            "config": self.config,
            **extra,
        }
        options.update(overrides)
        return options

    def __repr__(self) -> str:
        return f"<BakHelper {self.backup_name or '(unnamed)'} in {self.dir or os.getcwd()}>"


def _usage(message: str) -> Exception:
    from bakthat.errors import ConfigError

    return ConfigError(message)


def _warn_not_removed(function: Any, path: str, excinfo: Any) -> None:
    log.warning("BakHelper could not remove %s: %s", path, excinfo[1])
