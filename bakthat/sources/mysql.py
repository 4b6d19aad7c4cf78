"""MySQL and MariaDB databases: ``mariadb-dump`` (or ``mysqldump``) with ``--single-transaction``.

Spec: ``mysql://[user[:password]@][host][:port]/database[?socket=/path]`` (also
``mariadb://``), or a mapping ``{url: ..., name, password, options, restore_options,
hooks}``.

- **Dump**: ``--single-transaction`` (a consistent snapshot of InnoDB tables without
  locking them), ``--routines --triggers --hex-blob --default-character-set=utf8mb4``,
  plain SQL stored as ``<name>.sql`` and named after the database unless ``name`` is
  given.  ``mariadb-dump`` is used when installed, else ``mysqldump``.
- **Password**: the spec's ``password``, else the URL's, else the profile's
  ``mysql_password``, else the client's own option files (``~/.my.cnf``).  bakthat
  writes its password to a private option file (0600, removed after) given as
  ``--defaults-extra-file``, never on a command line.  The client reads that file
  before ``~/.my.cnf`` (MySQL's order), so a password set there wins.
- **Restore into**: the database is created if missing; one that holds tables is
  refused unless ``overwrite``.  The dump is fed to ``mariadb``/``mysql``, which stops at
  the first error.  MySQL cannot roll DDL back: a failed restore leaves what it had
  done, which is why the default target is a new, empty database.
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

SCHEMES = ("mysql", "mariadb")
KEY = None
KEYS = DATABASE_KEYS
DUMP_OPTIONS = ("--single-transaction", "--routines", "--triggers", "--hex-blob", "--default-character-set=utf8mb4")

#: The profile keys read here, declared in :mod:`bakthat.profile_keys` (read without importing this module).
SETTINGS = profile_keys.MYSQL


@dataclass(frozen=True)
class MysqlSource(DatabaseSource):
    """A MySQL or MariaDB database."""

    socket: str | None = None


def parse(spec: Mapping[str, Any], where: str) -> MysqlSource:
    """Given ``{url: ..., ...}`` and its place in the configuration, return the source.

    Raise ConfigError naming ``where`` for a URL without exactly one database, a bad
    port, a query parameter other than ``socket``, or an unknown key.
    """
    fields, parameters = parse_database_url(spec, where, "mysql")
    if fields["database"] == "*" or fields["database"].startswith("-"):
        raise ConfigError(f"{where}.url: give one database (mysql://host/dbname)")
    socket = None
    for key, value in parameters:
        if key != "socket":
            raise ConfigError(f"{where}.url: unknown parameter {key!r} (only socket=/path is understood)")
        socket = value
    return MysqlSource(kind="mysql", name=check_name(spec.get("name", fields["database"]), where),
                       extension="sql", socket=socket, **fields)


def option_file_text(password: str) -> str:
    """Return a ``[client]`` option file holding ``password``: in double quotes (so ``#``,
    ``'`` and edge spaces are kept), with backslash, double quote and control characters
    escaped as the client's option parser expects."""
    escaped = password.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'[client]\npassword="{escaped}"\n'


def _connection(source: MysqlSource, settings: Mapping[str, Any], context: RunContext | None) -> tuple[
    list[str], dict[str, str], tuple[str, ...], Any
]:
    """Return (leading options, environment, secrets, cleanup) for a client program."""
    variables = environment(context)
    options: list[str] = []
    secrets: tuple[str, ...] = ()
    cleanup = None
    password = source.password or settings.get("mysql_password")
    if password:
        path, cleanup = private_file(option_file_text(password), "client.cnf")
        options.append(f"--defaults-extra-file={path}")  # must be the first option
        secrets = (password,)
    for flag, value in (("--host", source.host), ("--port", source.port), ("--user", source.user),
                        ("--socket", source.socket)):
        if value is not None:
            options.append(f"{flag}={value}")
    return options, variables, secrets, cleanup


def open_dump(source: MysqlSource, settings: Mapping[str, Any], context: RunContext | None = None) -> ProcessDump:
    """Start the dump program and return its running dump.

    Raise DumpError if neither mariadb-dump nor mysqldump is installed.  Failures of the
    dump itself are raised by ``finish()``.
    """
    program = require_program("mariadb-dump", "mysqldump")
    connection, variables, secrets, cleanup = _connection(source, settings, context)
    argv = [program, *connection, *DUMP_OPTIONS, *source.options, source.database]
    return ProcessDump(argv, variables, source.display, secrets=secrets, cleanup=cleanup)


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def restore_into(source: MysqlSource, stream: Any, settings: Mapping[str, Any], *, overwrite: bool = False) -> None:
    """Given a target database and a readable SQL dump, restore the dump into it.

    Create the database if it does not exist.  Raise TargetExistsError if it holds tables
    and ``overwrite`` is false; RestoreIntoError if the client fails.
    """
    client = require_program("mariadb", "mysql")
    connection, variables, secrets, cleanup = _connection(source, settings, None)
    try:
        literal = _literal(source.database)
        identifier = "`" + source.database.replace("`", "``") + "`"
        check = (f"CREATE DATABASE IF NOT EXISTS {identifier};\n"
                 f"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = {literal};\n")
        tables = feed_program([client, *connection, "--batch", "--skip-column-names"], variables,
                              io.BytesIO(check.encode()), source.display, secrets=secrets).strip()
        if tables != "0" and not overwrite:
            raise TargetExistsError(
                f"{source.display} is not empty ({tables} tables): restore into a new database, or ask to overwrite"
            )
        argv = [client, *connection, "--default-character-set=utf8mb4", *source.restore_options, source.database]
        feed_program(argv, variables, stream, source.display, secrets=secrets)
    finally:
        if cleanup is not None:
            cleanup()
