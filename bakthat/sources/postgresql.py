"""PostgreSQL databases: ``pg_dump`` custom format, or ``pg_dumpall`` for a whole server.

Spec: ``postgresql://[user[:password]@][host][:port]/database[?param=value...]`` (also
``postgres://``), or a mapping ``{url: ..., name, password, options, restore_options,
hooks}``.  ``/*`` as the database dumps the whole server with ``pg_dumpall`` (plain
SQL: roles, tablespaces, every database).  Query parameters are libpq connection
parameters (``sslmode=require``, ``host=/var/run/postgresql`` for a socket directory).

- **Dump**: ``pg_dump --format=custom --compress=0`` (bakthat compresses the stream with
  zstd afterwards; pg_dump's own zlib would only cost CPU), stored as ``<name>.pgdump``,
  which ``pg_restore`` reads as it is.  ``pg_dumpall`` output is stored as ``.sql``.
  The backup is named after the database (``postgresql-all`` for ``/*``) unless ``name``
  is given.
- **Password**: the spec's ``password``, else the URL's, else the profile's
  ``postgresql_password``, else libpq's own (``~/.pgpass``, ``PGPASSWORD``).  bakthat
  passes its password through a private ``PGPASSFILE`` (0600, removed after), never on
  a command line; ``--no-password`` is always given, so nothing ever waits on a prompt.
- **Restore into**: the target database is created if it does not exist; one that holds
  tables is refused unless ``overwrite`` (then ``pg_restore --clean --if-exists``).  A
  custom-format dump goes through ``pg_restore --exit-on-error --single-transaction``, a
  plain SQL one through ``psql -v ON_ERROR_STOP=1 --single-transaction``: a failing
  restore commits nothing.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bakthat import profile_keys
from bakthat.context import RunContext
from bakthat.errors import ConfigError, TargetExistsError
from bakthat.sources.base import (
    DATABASE_KEYS,
    DatabaseSource,
    ProcessDump,
    check_name,
    environment,
    feed_program,
    parse_database_url,
    private_file,
    require_program,
)

SCHEMES = ("postgresql", "postgres")
KEY = None
KEYS = DATABASE_KEYS
ALL = "*"
CUSTOM_FORMAT_MAGIC = b"PGDMP"

#: The profile keys read here, declared in :mod:`bakthat.profile_keys` (read without importing this module).
SETTINGS = profile_keys.POSTGRESQL


@dataclass(frozen=True)
class PostgresqlSource(DatabaseSource):
    """A PostgreSQL database (or a whole server when ``database`` is ``*``)."""

    parameters: tuple[tuple[str, str], ...] = ()


def parse(spec: Mapping[str, Any], where: str) -> PostgresqlSource:
    """Given ``{url: ..., ...}`` and its place in the configuration, return the source.

    Raise ConfigError naming ``where`` for a URL without a database, a bad port, or an
    unknown key.
    """
    fields, parameters = parse_database_url(spec, where, "postgresql")
    if not fields["password"]:
        fields["password"] = next((value for key, value in parameters if key == "password"), None) or None
    every = fields["database"] == ALL
    return PostgresqlSource(
        kind="postgresql",
        name=check_name(spec.get("name", "postgresql-all" if every else fields["database"]), where),
        extension="sql" if every else "pgdump",
        parameters=tuple((key, value) for key, value in parameters if key != "password"),
        **fields,
    )


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def conninfo(source: PostgresqlSource, database: str | None = None) -> str:
    """Return the libpq connection string of ``source`` (another ``database`` if given),
    without any password."""
    items = [("host", source.host), ("port", str(source.port) if source.port else None), ("user", source.user)]
    items += [("connect_timeout", "30")] if not any(k == "connect_timeout" for k, _ in source.parameters) else []
    items += list(source.parameters)
    items.append(("dbname", database or source.database))
    return " ".join(f"{key}={_quote(value)}" for key, value in items if value is not None)


def _client(
    source: PostgresqlSource, settings: Mapping[str, Any], context: RunContext | None
) -> tuple[dict[str, str], tuple[str, ...], Any]:
    """Return (environment, secrets, cleanup) for a client program."""
    variables = environment(context)
    password = source.password or settings.get("postgresql_password")
    if not password:
        return variables, (), None
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    path, cleanup = private_file(f"*:*:*:*:{escaped}\n", "pgpass")
    variables["PGPASSFILE"] = path
    variables.pop("PGPASSWORD", None)  # it would win over the file
    return variables, (password,), cleanup


def open_dump(source: PostgresqlSource, settings: Mapping[str, Any], context: RunContext | None = None) -> ProcessDump:
    """Start ``pg_dump`` (``pg_dumpall`` for ``/*``) and return its running dump.

    Raise DumpError if the program is not installed.  Failures of the dump itself
    (unknown database, refused connection, killed) are raised by ``finish()``.
    """
    if source.database == ALL:
        argv = [require_program("pg_dumpall"), "--no-password", f"--dbname={conninfo(source, 'postgres')}"]
    else:
        argv = [require_program("pg_dump"), "--format=custom", "--compress=0", "--no-password",
                f"--dbname={conninfo(source)}"]
    variables, secrets, cleanup = _client(source, settings, context)
    return ProcessDump([*argv, *source.options], variables, source.display, secrets=secrets, cleanup=cleanup)


def _query(source: PostgresqlSource, database: str, sql: str, psql_variables: Mapping[str, str],
           variables: Mapping[str, str], secrets: tuple[str, ...]) -> str:
    """Run SQL (with psql ``:'psql_variables'``) on ``database`` with the environment
    ``variables``; return its unaligned output."""
    argv = [require_program("psql"), "-X", "-A", "-t", "-q", "--no-password", "-v", "ON_ERROR_STOP=1",
            *[f"--set={name}={value}" for name, value in psql_variables.items()],
            f"--dbname={conninfo(source, database)}"]
    return feed_program(argv, variables, io.BytesIO(sql.encode()), source.display, secrets=secrets)


def restore_into(
    source: PostgresqlSource, stream: Any, settings: Mapping[str, Any], *, overwrite: bool = False
) -> None:
    """Given a target database and a readable dump, restore the dump into it.

    Create the database if it does not exist.  Raise TargetExistsError if it holds
    tables and ``overwrite`` is false; RestoreIntoError if a client program fails
    (nothing is committed then); ConfigError for a ``/*`` target.
    """
    if source.database == ALL:
        raise ConfigError(f"{source.display}: restore a whole-server dump without --into, then run psql -f on it")
    variables, secrets, cleanup = _client(source, settings, None)
    try:
        exists = _query(source, "postgres", "SELECT 1 FROM pg_database WHERE datname = :'target';",
                        {"target": source.database}, variables, secrets).strip()
        if not exists:
            _query(source, "postgres", 'CREATE DATABASE :"target";', {"target": source.database}, variables, secrets)
        else:
            tables = _query(source, source.database, (
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname <> 'information_schema' "
                "AND n.nspname NOT LIKE 'pg\\_%';"), {}, variables, secrets).strip()
            if tables != "0" and not overwrite:
                raise TargetExistsError(
                    f"{source.display} is not empty ({tables} relations): restore into a new database, "
                    "or ask to overwrite"
                )
        head = stream.read(len(CUSTOM_FORMAT_MAGIC))
        if head == CUSTOM_FORMAT_MAGIC:
            argv = [require_program("pg_restore"), "--no-password", "--exit-on-error", "--single-transaction",
                    *(["--clean", "--if-exists"] if overwrite else []), *source.restore_options,
                    f"--dbname={conninfo(source)}"]
        else:
            argv = [require_program("psql"), "-X", "-q", "--no-password", "-v", "ON_ERROR_STOP=1",
                    "--single-transaction", *source.restore_options, f"--dbname={conninfo(source)}"]
        feed_program(argv, variables, _Prefixed(head, stream), source.display, secrets=secrets)
    finally:
        if cleanup is not None:
            cleanup()


class _Prefixed:
    """A reader giving ``head`` first, then the rest of ``stream``."""

    def __init__(self, head: bytes, stream: Any):
        self._head = head
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            return head
        return self._stream.read(size)
