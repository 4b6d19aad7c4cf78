"""A temporary bakthat: its own HOME, configuration file, catalog and local store.

:class:`TemporaryBakthat` makes a directory the home of every bakthat default for as
long as it is active (a ``with`` block, or the ``bakthat_catalog`` pytest fixture):

- ``HOME`` points into it, so ``~/.bakthat.yml``, the SQLite catalog
  ``~/.bakthat.sqlite``, the local store ``~/.bakthat_store`` and the plugins directory
  ``~/.bakthat_plugins`` are all inside it;
- every ``BAKTHAT_*`` variable of the surrounding environment is removed (a developer's
  ``BAKTHAT_PASSWORD`` or ``BAKTHAT_DESTINATION`` cannot leak into a test);
- the working directory is its ``work/`` subdirectory;
- the catalog binding, the loaded plugins and the event handlers subscribed inside the
  block are dropped on exit, and the environment, working directory and handlers of
  before are put back.

Nothing is done at import, and nothing outside the given directory is written.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["TemporaryBakthat"]


class TemporaryBakthat:
    """Given a directory (created if missing), an isolated bakthat rooted there.

    Use it as a context manager; :attr:`home`, :attr:`work`, :attr:`config_path`,
    :attr:`catalog_path`, :attr:`store_path` and :attr:`plugins_dir` name the places
    bakthat uses by default.  Entering twice without leaving raises RuntimeError.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.home = self.root / "home"
        self.work = self.root / "work"
        self._saved: dict[str, Any] | None = None

    # -- the places -------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        """``~/.bakthat.yml`` of the temporary home (it exists once :meth:`configure` ran)."""
        return self.home / ".bakthat.yml"

    @property
    def catalog_path(self) -> Path:
        """``~/.bakthat.sqlite``: the default SQLite catalog of the temporary home."""
        return self.home / ".bakthat.sqlite"

    @property
    def store_path(self) -> Path:
        """``~/.bakthat_store``: the default local store of the temporary home."""
        return self.home / ".bakthat_store"

    @property
    def plugins_dir(self) -> Path:
        """``~/.bakthat_plugins``: the default plugins directory (created on first use)."""
        return self.home / ".bakthat_plugins"

    # -- entering and leaving ---------------------------------------------------------------

    def __enter__(self) -> TemporaryBakthat:
        from bakthat import models
        from bakthat.eventing import EVENT_NAMES, events

        if self._saved is not None:
            raise RuntimeError(f"{self!r} is already active")
        self.home.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        self._saved = {
            "environ": {name: value for name, value in os.environ.items() if name == "HOME" or name.startswith("BAKTHAT_")},
            "cwd": os.getcwd(),
            "handlers": {name: list(getattr(events, name)) for name in EVENT_NAMES},
        }
        for name in list(os.environ):
            if name.startswith("BAKTHAT_"):
                del os.environ[name]
        os.environ["HOME"] = str(self.home)
        os.chdir(self.work)
        models.unbind()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        import sys

        from bakthat import models
        from bakthat.eventing import EVENT_NAMES, events

        saved, self._saved = self._saved, None
        if saved is None:
            return
        try:
            if "bakthat.plugin" in sys.modules:
                sys.modules["bakthat.plugin"].unload_plugins()
            models.unbind()
        finally:
            for name in EVENT_NAMES:
                slot = getattr(events, name)
                slot.targets[:] = saved["handlers"][name]
            for name in list(os.environ):
                if name == "HOME" or name.startswith("BAKTHAT_"):
                    del os.environ[name]
            os.environ.update(saved["environ"])
            os.chdir(saved["cwd"])

    @property
    def active(self) -> bool:
        """True between entering and leaving."""
        return self._saved is not None

    def __repr__(self) -> str:
        return f"<TemporaryBakthat {self.root}>"

    # -- helpers for tests ------------------------------------------------------------------

    def configure(self, profile: str = "default", **settings: Any) -> dict[str, Any]:
        """Given a profile name and settings, write them into ``~/.bakthat.yml``.

        Keys already in the profile are kept unless given again.  The profile is
        validated like any other: an unknown key or a wrong type raises
        :class:`~bakthat.errors.ConfigError` and nothing is written.  Return the profile
        as written.  Raise RuntimeError if the temporary home is not active.
        """
        from bakthat.conf import update_profile

        self._require_active("configure")
        _, written = update_profile(profile, settings, config=self.config_path)
        return written

    def backups(self, include_deleted: bool = False) -> list[Any]:
        """Return the catalog's backup rows of the temporary catalog, oldest first.

        Deleted rows are left out unless ``include_deleted``.  The catalog is opened (and
        created if missing) at :attr:`catalog_path`.  Raise RuntimeError if not active.
        """
        from bakthat import models

        self._require_active("read the catalog")
        models.bind(str(self.catalog_path))
        query = models.Backups.select().order_by(models.Backups.backup_date, models.Backups.id)
        if not include_deleted:
            query = query.where(models.Backups.is_deleted == False)  # noqa: E712 - peewee expression
        return list(query)

    def stored(self) -> list[str]:
        """Return the paths (relative, sorted) of the files in the local store."""
        if not self.store_path.exists():
            return []
        return sorted(path.relative_to(self.store_path).as_posix() for path in _files(self.store_path))

    def _require_active(self, what: str) -> None:
        if self._saved is None:
            raise RuntimeError(f"cannot {what}: {self!r} is not active (use it in a with block)")


def _files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield path

