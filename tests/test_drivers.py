"""peewee imported by the command without psycopg2, which a PostgreSQL database then loads."""

from __future__ import annotations

import json
import subprocess
import sys
import types

from bakthat import drivers
from tests.conftest import ROOT


def _run(code: str) -> dict:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_after_defer_peewee_imports_without_psycopg2_and_a_postgresql_database_loads_it():
    found = _run(
        "import json, sys\n"
        "from bakthat import drivers\n"
        "drivers.defer_postgresql_driver()\n"
        "import peewee\n"
        "before = 'psycopg2' in sys.modules\n"
        "db = peewee.PostgresqlDatabase('bakthat_never_connected')\n"
        "import psycopg2.extensions as ext\n"
        "print(json.dumps({'before': before, 'driver': peewee.psycopg2 is sys.modules['psycopg2'],\n"
        "  'adapter': type(db._adapter).__name__, 'json': db._adapter.json_type is not None,\n"
        "  'idle': db._adapter.txn_idle == ext.TRANSACTION_STATUS_IDLE}))\n"
    )
    assert found == {"before": False, "driver": True, "adapter": "Psycopg2Adapter", "json": True, "idle": True}


def test_without_defer_importing_bakthat_leaves_peewee_s_import_alone():
    found = _run("import json, sys, bakthat, bakthat.models; print(json.dumps('psycopg2' in sys.modules))")
    assert found is True


def test_a_peewee_whose_layout_is_unknown_is_not_kept_without_its_driver():
    known = types.ModuleType("peewee")
    known.psycopg2 = known.Json_pg2 = None
    known.Psycopg2Adapter = type("Psycopg2Adapter", (), {})
    known.PostgresqlDatabase = type("PostgresqlDatabase", (), {"init": lambda self, database: None})
    assert drivers._known_layout(known)
    older = types.ModuleType("peewee")  # peewee 3: no adapter classes
    older.psycopg2 = None
    older.PostgresqlDatabase = known.PostgresqlDatabase
    assert not drivers._known_layout(older)
