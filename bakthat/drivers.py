"""peewee without its PostgreSQL driver until a PostgreSQL database is used (for the CLI).

peewee imports psycopg2 when it is imported (and registers psycopg2's UUID adapter):
about 15 ms of CPU and a shared library that a SQLite catalog never uses, a tenth of
``bakthat show``.  :func:`defer_postgresql_driver`, called by the ``bakthat`` command
before anything imports peewee, arranges for peewee's import to run with psycopg2
hidden; the first PostgreSQL database created in the process (bakthat's catalog or a
plugin's) then loads the driver into peewee exactly as peewee's own import would have
(:func:`load_postgresql_driver`).

Only the command does this: ``import bakthat`` and the Python API leave peewee's import
alone.  A peewee whose module layout is not the one handled here (peewee 3's) is
imported again, normally, at once: slower, never wrong.
"""

from __future__ import annotations

import sys
from typing import Any

#: Set while peewee is imported with psycopg2 hidden and the driver is not loaded yet.
_deferred = False


class _PeeweeFinder:
    """A one-shot meta path finder: the first import of peewee goes through :class:`_Loader`."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "peewee":
            return None
        sys.meta_path.remove(self)
        from importlib.util import find_spec

        spec = find_spec("peewee")
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _Loader(spec.loader)
        return spec


class _Loader:
    """Execute peewee's module with ``sys.modules["psycopg2"] = None`` (so its import fails)."""

    def __init__(self, loader: Any):
        self.loader = loader

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        global _deferred
        hidden = "psycopg2" not in sys.modules
        if hidden:
            sys.modules["psycopg2"] = None  # type: ignore[assignment]
        try:
            self.loader.exec_module(module)
        finally:
            if hidden and sys.modules.get("psycopg2", ...) is None:
                del sys.modules["psycopg2"]
        if not hidden or vars(module).get("pg_extensions") is not None:
            return  # the driver was there anyway (psycopg2cffi registers it as psycopg2)
        if not _known_layout(module):
            self.loader.exec_module(module)  # an unknown peewee: import it again, with the driver
            return
        _deferred = True
        original = module.PostgresqlDatabase.init

        def init(self: Any, *args: Any, **kwargs: Any) -> Any:
            load_postgresql_driver()
            return original(self, *args, **kwargs)

        init.__wrapped__ = original  # type: ignore[attr-defined]
        module.PostgresqlDatabase.init = init


def _known_layout(peewee: Any) -> bool:
    """Return True if peewee keeps psycopg2 where :func:`load_postgresql_driver` puts it (peewee 4)."""
    names = vars(peewee)
    adapter = names.get("Psycopg2Adapter")
    return (
        isinstance(adapter, type)
        and names.get("psycopg2", ...) is None
        and names.get("Json_pg2", ...) is None
        and isinstance(names.get("PostgresqlDatabase"), type)
        and callable(getattr(names["PostgresqlDatabase"], "init", None))
    )


def defer_postgresql_driver() -> None:
    """Arrange for peewee, when first imported in this process, not to load psycopg2.

    Does nothing if peewee or psycopg2 is already imported.
    """
    if "peewee" in sys.modules or "psycopg2" in sys.modules:
        return
    if not any(isinstance(finder, _PeeweeFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PeeweeFinder())


def load_postgresql_driver() -> None:
    """Give peewee the psycopg2 driver it was imported without; no-op if it has it.

    If psycopg2 is not installed, leave peewee as it is: it reports the missing driver
    as it always did (bakthat's catalog turns that into a CatalogError).
    """
    global _deferred
    if not _deferred:
        return
    try:
        import psycopg2
        from psycopg2 import extensions
        from psycopg2.extras import Json, register_uuid
    except ImportError:
        return
    import peewee

    register_uuid()
    peewee.psycopg2 = psycopg2
    peewee.pg_extensions = extensions
    peewee.pg_register_uuid = register_uuid
    peewee.Json_pg2 = Json
    adapter = peewee.Psycopg2Adapter
    adapter.txn_idle = extensions.TRANSACTION_STATUS_IDLE
    adapter.txn_inerror = extensions.TRANSACTION_STATUS_INERROR
    adapter.txn_unknown = extensions.TRANSACTION_STATUS_UNKNOWN
    _deferred = False
