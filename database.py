"""Where the data goes: database URLs, password redaction, creating a missing database,
and bringing the schema to alembic's head.

URLs come from ``--database-url`` / ``DATABASE_URL`` (app tables) and
``DBOS_SYSTEM_DATABASE_URL`` (DBOS's own tables). With neither set, both are local SQLite
files in the working directory (``durable_ingest_app.sqlite`` and DBOS's
``durable_ingest.sqlite``): the zero-set-up default.

Errors are classified by code, never by the words of a message: ``sqlstate(exc)`` is
Postgres's SQLSTATE (through SQLAlchemy's ``.orig``), SQLite's ``sqlite_errorcode`` stands
in where SQLite has no SQLSTATE, and ``is_unreachable``, ``is_missing_database``,
``is_retryable_conflict`` and ``is_unique_violation`` name the classes callers act on.
A driver's error reaches the user as ``errors.one_line(driver_error(exc), url)``: one line,
passwords scrubbed.
"""

import ast
import functools
import os
import sqlite3
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from .errors import IngestError, MissingFolder, one_line

DATABASE_URL_VARIABLE = "DATABASE_URL"
SYSTEM_DATABASE_URL_VARIABLE = "DBOS_SYSTEM_DATABASE_URL"
DEFAULT_SQLITE_APP_FILE = "durable_ingest_app.sqlite"
DEFAULT_DATABASE_URL = f"sqlite:///{DEFAULT_SQLITE_APP_FILE}"
# DBOS's own default for an app named durable-ingest: what `dbos workflow list` reads.
DEFAULT_SQLITE_SYSTEM_FILE = "durable_ingest.sqlite"
DEFAULT_SQLITE_SYSTEM_URL = f"sqlite:///{DEFAULT_SQLITE_SYSTEM_FILE}"
PACKAGE_DIR = Path(__file__).resolve().parent
MIGRATIONS_DIR = PACKAGE_DIR / "migrations"
# Alembic's settings ([tool.alembic]), read by the `alembic` command (run from the checkout)
# and by alembic_config(); shipped in the package too (package-data).
ALEMBIC_SETTINGS = PACKAGE_DIR / "pyproject.toml"


class DatabaseError(IngestError):
    """A database can't be reached or prepared; the message says what to do."""


@dataclass(frozen=True)
class Databases:
    app_url: str
    system_url: str

    @property
    def is_postgres(self) -> bool:
        return is_postgres(self.app_url)


def is_postgres(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


def normalise_url(url: str) -> str:
    """Accept the ``postgres://`` and ``postgresql://`` spellings; always use psycopg 3."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise DatabaseError(
            f"'{redact(url)}' is not a database URL; expected sqlite:///FILE or "
            "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        )
    base = scheme.split("+", 1)[0]
    if base in ("postgres", "postgresql"):
        return f"postgresql+psycopg://{rest}"
    if base == "sqlite":
        return url
    raise DatabaseError(
        f"unsupported database '{base}' in {redact(url)}; use sqlite:/// or postgresql://"
    )


def resolve(database_url: Optional[str] = None, system_url: Optional[str] = None) -> Databases:
    """The app and system database URLs, from arguments, then the environment, then defaults."""
    app = app_database_url(database_url)
    system = system_url or os.environ.get(SYSTEM_DATABASE_URL_VARIABLE)
    return Databases(app, normalise_url(system) if system else derived_system_url(app))


def app_database_url(database_url: Optional[str] = None) -> str:
    """The app database's URL, normalised: ``database_url``, else ``DATABASE_URL``, else the
    local SQLite file. The one place that reads ``DATABASE_URL``. A SQLite file in a folder
    that does not exist is ``MissingFolder`` (a read-only command would report no runs)."""
    url = normalise_url(database_url or os.environ.get(DATABASE_URL_VARIABLE) or DEFAULT_DATABASE_URL)
    if (path := sqlite_path(url)) is not None and not path.parent.is_dir():
        raise MissingFolder(f"the folder of {url} does not exist: {path.parent}; create it "
                            "(mkdir -p) or give another --database-url / DATABASE_URL")
    return url


def sqlite_path(url: str) -> Optional[Path]:
    """The file of a ``sqlite:///FILE`` URL (None: Postgres, in memory, or a URI form), as
    SQLAlchemy reads the URL."""
    from sqlalchemy import make_url

    name = None if is_postgres(url) else make_url(url).database
    return None if not name or name == ":memory:" or name.startswith("file:") else Path(name)


def environment_urls() -> tuple:
    """The database URLs the environment sets, as written (``DATABASE_URL``,
    ``DBOS_SYSTEM_DATABASE_URL``): passwords to scrub from a message."""
    values = (os.environ.get(name) for name in (DATABASE_URL_VARIABLE, SYSTEM_DATABASE_URL_VARIABLE))
    return tuple(value for value in values if value)


def derived_system_url(app_url: str) -> str:
    """DBOS's tables, one system database per app database, beside it: ``<db>_dbos_sys`` on
    its Postgres server; on SQLite ``<name>_dbos_sys.sqlite`` beside ``<name>.sqlite``, and
    DBOS's own default ``durable_ingest.sqlite`` beside ``durable_ingest_app.sqlite``."""
    from sqlalchemy import make_url

    if is_postgres(app_url):
        url = make_url(app_url)
        return url.set(database=f"{url.database}_dbos_sys").render_as_string(hide_password=False)
    path = sqlite_path(app_url)
    name = DEFAULT_SQLITE_SYSTEM_FILE if path is None or path.name == DEFAULT_SQLITE_APP_FILE \
        else f"{path.stem}_dbos_sys{path.suffix or '.sqlite'}"
    return f"sqlite:///{path.with_name(name) if path else name}"


def redact(url: str) -> str:
    """The URL with its password replaced by ``***``, safe to print or log.

    A URL SQLAlchemy can't parse (``postgres:secret@db/x``, a typo) or that it would parse
    ambiguously (several ``@``) still has its credentials masked: everything before the last
    ``@`` (after the ``scheme://`` if there is one). Without an ``@``, whatever follows the
    first ``:`` is masked (``postgres:secret`` -> ``postgres:***``).
    """
    scheme, sep, rest = url.partition("://")
    if sep and scheme.split("+", 1)[0] == "sqlite" and rest.startswith("/"):
        return url  # sqlite:///FILE: a path, no credentials
    if sep and rest.count("@") <= 1:
        try:
            from sqlalchemy import make_url

            return make_url(url).render_as_string(hide_password=True)
        except Exception:
            pass
    return _mask_credentials(url)


def _mask_credentials(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    prefix = f"{scheme}{sep}" if sep else ""
    if not sep:
        rest = url
    if "@" in rest:
        return f"{prefix}***@{rest.rsplit('@', 1)[1]}"
    if ":" in rest:  # no host part: "user:password" may be all there is
        return f"{prefix}{rest.split(':', 1)[0]}:***"
    return url


def ensure_postgres_database(url: str) -> bool:
    """Create the Postgres database ``url`` names if it is missing; True if it was created."""
    import psycopg
    from psycopg import sql
    from sqlalchemy import make_url

    target = make_url(url)
    try:
        with _maintenance_connection(url) as conn:
            if _database_exists(conn, target.database):
                return False
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target.database)))
            return True
    except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
        return False  # created by a concurrent process
    except psycopg.errors.InsufficientPrivilege as exc:
        raise DatabaseError(
            f"database '{target.database}' does not exist and user '{target.username}' may not "
            f"create it; create it with: createdb -h {target.host} -p {target.port or 5432} "
            f"-U <admin> {target.database}"
        ) from exc


def postgres_database_exists(url: str) -> bool:
    """Does the Postgres database ``url`` names exist? Asks the server's ``postgres``
    database: a failed connection to ``url`` itself does not say (see ``is_missing_database``)."""
    from sqlalchemy import make_url

    with _maintenance_connection(url) as conn:
        return _database_exists(conn, make_url(url).database)


@contextmanager
def _maintenance_connection(url: str):
    """An autocommit psycopg connection to the ``postgres`` database of ``url``'s server;
    DatabaseError (``cannot connect to <url>``) if there is none."""
    import psycopg
    from sqlalchemy import make_url

    maintenance = make_url(url).set(drivername="postgresql", database="postgres")
    try:
        with psycopg.connect(maintenance.render_as_string(hide_password=False),
                             autocommit=True, connect_timeout=10) as conn:
            yield conn
    except psycopg.OperationalError as exc:
        if not is_unreachable(exc):
            raise
        raise cannot_connect(url, exc) from None


def _database_exists(conn, name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def cannot_connect(url: str, error: Exception) -> DatabaseError:
    return DatabaseError(
        f"cannot connect to {redact(url)}: {one_line(driver_error(error), url)}; is the database "
        "running and the URL right? (with docker: docker compose up -d postgres)"
    )


def alembic_config(connection=None):
    """Alembic's configuration: the ``[tool.alembic]`` settings the ``alembic`` command reads,
    and the open ``connection`` migrations/env.py should use, if any."""
    from alembic.config import Config

    cfg = Config(toml_file=ALEMBIC_SETTINGS)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def schema_head() -> str:
    """The newest migration's revision, read from migrations/versions/*.py (no alembic import):
    the one revision no other revision's ``down_revision`` names. Cached."""
    return _schema_head(MIGRATIONS_DIR / "versions")


def _schema_head(versions_dir: Path) -> str:
    revisions = dict(_revision_of(path) for path in sorted(versions_dir.glob("*.py"))
                     if path.name != "__init__.py")
    parents = {parent for down in revisions.values() for parent in down}
    heads = sorted(set(revisions) - parents)
    if len(heads) != 1:
        raise DatabaseError(f"migrations in {versions_dir} have {len(heads)} heads "
                            f"({', '.join(heads) or 'none'}); there must be one (alembic merge heads)")
    return heads[0]


def _revision_of(path: Path) -> tuple:
    """(revision, (down revisions...)) from a migration file's top-level assignments."""
    assigned = dict(_assignments(path, ("revision", "down_revision")))
    if not isinstance(assigned.get("revision"), str):
        raise DatabaseError(f"{path} has no `revision = \"...\"`")
    down = assigned.get("down_revision")
    return assigned["revision"], (down,) if isinstance(down, str) else tuple(down or ())


def _assignments(path: Path, names: tuple) -> Iterator[tuple]:
    """(name, literal value) of the module-level ``name = ...`` / ``name: T = ...`` of ``names``."""
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id in names:
                yield target.id, ast.literal_eval(node.value)


def __getattr__(name: str):
    """``SCHEMA_HEAD``, the constant this used to be: now ``schema_head()``."""
    if name == "SCHEMA_HEAD":
        return schema_head()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_MIGRATION_LOCK = 7_203_311  # pg_advisory_xact_lock key: one migrating process at a time


def upgrade_schema(app_url: str) -> None:
    """Create the database if needed and run alembic's migrations up to head.

    Already at head (every load but the first), it costs one query and no alembic import.
    """
    from sqlalchemy import create_engine
    from sqlalchemy.exc import DBAPIError

    engine = create_engine(app_url)
    created_if_missing = False
    try:
        for attempt in range(5):
            try:
                if schema_version(engine) == schema_head():
                    return
                _run_migrations(engine)
                return
            except DBAPIError as exc:
                if _may_be_missing(exc, app_url) and not created_if_missing:
                    created_if_missing = True
                    ensure_postgres_database(app_url)  # then look again
                elif is_unreachable(exc):
                    raise cannot_connect(app_url, exc) from None
                elif attempt == 4:
                    raise DatabaseError(f"cannot prepare {redact(app_url)}: {one_line(driver_error(exc), app_url)}") from None
                # else: a concurrent process migrated at the same moment; look again
    finally:
        engine.dispose()


def _may_be_missing(exc: BaseException, app_url: str) -> bool:
    """Could the Postgres database be missing? libpq reports the server's "database does not
    exist" at connection time without its SQLSTATE (3D000), so every failed connection may
    be one: ``ensure_postgres_database`` asks the server, once."""
    return is_postgres(app_url) and (is_missing_database(exc) or is_unreachable(exc))


def schema_version(engine) -> Optional[str]:
    from sqlalchemy import inspect, text

    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _run_migrations(engine) -> None:
    from alembic import command

    if engine.dialect.name == "sqlite":
        engine = transactional_sqlite_engine(engine.url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            command.upgrade(alembic_config(connection), "head")
    finally:
        if engine.dialect.name == "sqlite":
            engine.dispose()


def transactional_sqlite_engine(url):
    """A SQLite engine whose transactions cover DDL too. Python's sqlite3 opens a transaction
    only before INSERT/UPDATE/DELETE, so a ``CREATE TABLE`` commits by itself: a process
    killed mid-migration would leave tables without ``alembic_version``, and every later
    run would fail with "table already exists". Here the driver stays in autocommit and
    SQLAlchemy's ``begin`` emits ``BEGIN IMMEDIATE`` (the write lock, so two processes
    migrating the same file take turns)."""
    from sqlalchemy import create_engine, event

    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _driver_autocommit(dbapi_connection, _record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


# -- errors, by code -------------------------------------------------------------------------
# SQLSTATE codes and classes (PostgreSQL, Appendix A "Error Codes").
CONNECTION_EXCEPTION = "08"  # class: connection refused, lost, rejected
INVALID_AUTHORIZATION = "28"  # class: 28000 (no such role, pg_hba), 28P01 (wrong password)
INVALID_CATALOG_NAME = "3D000"  # the database does not exist
INSUFFICIENT_PRIVILEGE = "42501"
SERIALIZATION_FAILURE = "40001"
DEADLOCK_DETECTED = "40P01"
UNIQUE_VIOLATION = "23505"
_SQLITE_UNIQUE = (sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)


def driver_error(exc: BaseException) -> BaseException:
    """The DB-API driver's exception: SQLAlchemy's ``.orig`` if ``exc`` wraps one, else ``exc``."""
    while isinstance(getattr(exc, "orig", None), BaseException):
        exc = exc.orig
    return exc


def sqlstate(exc: BaseException) -> Optional[str]:
    """The SQLSTATE of a Postgres error (``"23505"``), also under SQLAlchemy's wrapper; None
    for other errors, and for connection failures: libpq reports those without a code."""
    code = getattr(driver_error(exc), "sqlstate", None)
    return code if isinstance(code, str) else None


def sqlite_code(exc: BaseException) -> Optional[int]:
    """SQLite's extended result code of an ``sqlite3`` error (``sqlite3.SQLITE_CANTOPEN``), else None."""
    code = getattr(driver_error(exc), "sqlite_errorcode", None)
    return code if isinstance(code, int) else None


def is_unreachable(exc: BaseException) -> bool:
    """The database can't be used at all: Postgres refused, lost or rejected the connection
    (SQLSTATE class 08, authentication class 28, or a connection libpq gave up on), or the
    SQLite file can't be opened (SQLITE_CANTOPEN)."""
    code = sqlstate(exc)
    if code is not None:
        return code[:2] in (CONNECTION_EXCEPTION, INVALID_AUTHORIZATION)
    return _is_failed_connection(exc) or _sqlite_primary(exc) == sqlite3.SQLITE_CANTOPEN


def _is_failed_connection(exc: BaseException) -> bool:
    """A psycopg OperationalError without a SQLSTATE: libpq could not connect (refused, host
    unknown, timed out, or the server's start-up error) or lost the connection."""
    psycopg = sys.modules.get("psycopg")  # loaded if the error is one of its
    error = driver_error(exc)
    return psycopg is not None and isinstance(error, psycopg.OperationalError) and error.sqlstate is None


def is_missing_database(exc: BaseException) -> bool:
    """The server says the database does not exist (SQLSTATE 3D000). A *connection* to a
    missing database fails without a code (libpq keeps it): that is ``is_unreachable``; ask
    ``postgres_database_exists(url)`` to tell the two apart."""
    return sqlstate(exc) == INVALID_CATALOG_NAME


def is_insufficient_privilege(exc: BaseException) -> bool:
    """The user may not do this (SQLSTATE 42501)."""
    return sqlstate(exc) == INSUFFICIENT_PRIVILEGE


def is_retryable_conflict(exc: BaseException) -> bool:
    """A concurrent transaction got in the way and trying again may succeed: a serialization
    failure (40001) or a deadlock (40P01) on Postgres; SQLITE_BUSY on SQLite."""
    code = sqlstate(exc)
    if code is not None:
        return code in (SERIALIZATION_FAILURE, DEADLOCK_DETECTED)
    return _sqlite_primary(exc) == sqlite3.SQLITE_BUSY


def is_unique_violation(exc: BaseException) -> bool:
    """A row with the same unique key exists: SQLSTATE 23505, or SQLite's UNIQUE or
    PRIMARY KEY constraint."""
    code = sqlstate(exc)
    if code is not None:
        return code == UNIQUE_VIOLATION
    return sqlite_code(exc) in _SQLITE_UNIQUE


def _sqlite_primary(exc: BaseException) -> Optional[int]:
    """The primary result code (the low byte of the extended one): SQLITE_BUSY for SQLITE_BUSY_SNAPSHOT."""
    code = sqlite_code(exc)
    return None if code is None else code & 0xFF
