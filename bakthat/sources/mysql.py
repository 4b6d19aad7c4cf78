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
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from bakthat.conf import Setting
from bakthat.context import RunContext
from bakthat.errors import ConfigError, TargetExistsError
from bakthat.sources.base import (
    ProcessDump,
    Source,
    check_keys,
    check_name,
    feed_program,
    private_file,
    require_program,
    text_list,
)

SCHEMES = ("mysql", "mariadb")
KEY = None
KEYS = ("url", "password", "options", "restore_options")
DUMP_OPTIONS = ("--single-transaction", "--routines", "--triggers", "--hex-blob", "--default-character-set=utf8mb4")

SETTINGS: dict[str, Setting] = {
    "mysql_password": Setting(str, None, "password of MySQL/MariaDB sources that give none themselves", secret=True),
}


@dataclass(frozen=True)
class MysqlSource(Source):
    """A MySQL or MariaDB database."""

    database: str = ""
    host: str | None = None
    port: int | None = None
    user: str | None = None
    socket: str | None = None
    password: str | None = field(default=None, repr=False)
    options: tuple[str, ...] = ()
    restore_options: tuple[str, ...] = ()

    def secrets(self) -> tuple[str, ...]:
        return (self.password,) if self.password else ()


def parse(spec: Mapping[str, Any], where: str) -> MysqlSource:
    """Given ``{url: ..., ...}`` and its place in the configuration, return the source.

    Raise ConfigError naming ``where`` for a URL without exactly one database, a bad
    port, a query parameter other than ``socket``, or an unknown key.
    """
    check_keys(spec, KEYS, where)
    url = spec["url"]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{where}.url: {exc}") from None
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database or database == "*" or database.startswith("-"):
        raise ConfigError(f"{where}.url: give one database (mysql://host/dbname)")
    socket = None
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key != "socket":
            raise ConfigError(f"{where}.url: unknown parameter {key!r} (only socket=/path is understood)")
        socket = value
    user = unquote(parts.username) if parts.username else None
    host = unquote(parts.hostname) if parts.hostname else None
    password = spec.get("password") or (unquote(parts.password) if parts.password else None)
    shown_host = f"{host or ''}{f':{port}' if port else ''}"
    return MysqlSource(
        kind="mysql",
        name=check_name(spec.get("name", database), where),
        display=f"mysql://{f'{user}@' if user else ''}{shown_host}/{database}",
        extension="sql",
        hooks=spec.get("hooks"),
        database=database,
        host=host,
        port=port,
        user=user,
        socket=socket,
        password=password if isinstance(password, str) and password else None,
        options=text_list(spec.get("options"), f"{where}.options"),
        restore_options=text_list(spec.get("restore_options"), f"{where}.restore_options"),
    )


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
    environment = dict(os.environ)
    if context is not None:
        environment.update(context.as_environment())
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
    return options, environment, secrets, cleanup


def open_dump(source: MysqlSource, settings: Mapping[str, Any], context: RunContext | None = None) -> ProcessDump:
    """Start the dump program and return its running dump.

    Raise DumpError if neither mariadb-dump nor mysqldump is installed.  Failures of the
    dump itself are raised by ``finish()``.
    """
    program = require_program("mariadb-dump", "mysqldump")
    connection, environment, secrets, cleanup = _connection(source, settings, context)
    argv = [program, *connection, *DUMP_OPTIONS, *source.options, source.database]
    return ProcessDump(argv, environment, source.display, secrets=secrets, cleanup=cleanup)


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def restore_into(source: MysqlSource, stream: Any, settings: Mapping[str, Any], *, overwrite: bool = False) -> None:
    """Given a target database and a readable SQL dump, restore the dump into it.

    Create the database if it does not exist.  Raise TargetExistsError if it holds tables
    and ``overwrite`` is false; RestoreIntoError if the client fails.
    """
    client = require_program("mariadb", "mysql")
    connection, environment, secrets, cleanup = _connection(source, settings, None)
    try:
        literal = _literal(source.database)
        identifier = "`" + source.database.replace("`", "``") + "`"
        check = (f"CREATE DATABASE IF NOT EXISTS {identifier};\n"
                 f"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = {literal};\n")
        tables = feed_program([client, *connection, "--batch", "--skip-column-names"], environment,
                              io.BytesIO(check.encode()), source.display, secrets=secrets).strip()
        if tables != "0" and not overwrite:
            raise TargetExistsError(
                f"{source.display} is not empty ({tables} tables): restore into a new database, or ask to overwrite"
            )
        argv = [client, *connection, "--default-character-set=utf8mb4", *source.restore_options, source.database]
        feed_program(argv, environment, stream, source.display, secrets=secrets)
    finally:
        if cleanup is not None:
            cleanup()
