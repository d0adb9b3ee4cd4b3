"""Where the data goes: database URLs, password redaction, creating a missing database,
and bringing the schema to alembic's head.

URLs come from ``--database-url`` / ``DATABASE_URL`` (app tables) and
``DBOS_SYSTEM_DATABASE_URL`` (DBOS's own tables). With neither set, both are local SQLite
files in the working directory (``durable_ingest_app.sqlite`` and DBOS's
``durable_ingest.sqlite``): the zero-set-up default.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import unquote

from .errors import IngestError

DEFAULT_DATABASE_URL = "sqlite:///durable_ingest_app.sqlite"
# DBOS's own default for an app named durable-ingest: what `dbos workflow list` reads.
DEFAULT_SQLITE_SYSTEM_URL = "sqlite:///durable_ingest.sqlite"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


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
    app = normalise_url(database_url or os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    system = system_url or os.environ.get("DBOS_SYSTEM_DATABASE_URL")
    return Databases(app, normalise_url(system) if system else derived_system_url(app))


def derived_system_url(app_url: str) -> str:
    """DBOS's tables: ``<db>_dbos_sys`` beside a Postgres app database; on SQLite, DBOS's
    default file for this app in the working directory, which the ``dbos`` CLI finds."""
    from sqlalchemy import make_url

    if not is_postgres(app_url):
        return DEFAULT_SQLITE_SYSTEM_URL
    url = make_url(app_url)
    return url.set(database=f"{url.database}_dbos_sys").render_as_string(hide_password=False)


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


_USERINFO = re.compile(r"(://[^:/@]*:)[^@]*@")


def scrub(text: str, *urls: str) -> str:
    """Remove any password of ``urls`` from ``text`` (a driver's message, say): decoded, as
    written in the URL (percent-encoded) and as SQLAlchemy re-encodes it; then mask the
    password of any ``scheme://user:password@`` left in the text."""
    secrets = set()
    for url in urls:
        if not url:
            continue
        secrets.update(_password_forms(url))
    for secret in sorted(secrets, key=len, reverse=True):  # "p%40ss" before "p"
        text = text.replace(secret, "***")
    return _USERINFO.sub(r"\1***@", text)


def _password_forms(url: str) -> set:
    forms = {_raw_password(url)}
    try:
        from sqlalchemy import make_url

        parsed = make_url(url)
        if parsed.password is not None:
            forms.add(str(parsed.password))
            forms.add(_raw_password(parsed.render_as_string(hide_password=False)))
    except Exception:
        pass
    forms |= {unquote(form) for form in forms if form}
    return {form for form in forms if form}  # never replace "" (it matches everywhere)


def _raw_password(url: str) -> Optional[str]:
    """The password as written: between the first ``:`` of the user info and the last ``@``."""
    _, sep, rest = url.partition("://")
    if not sep:
        rest = url
    if "@" not in rest:
        return None
    userinfo = rest.rsplit("@", 1)[0]
    return userinfo.split(":", 1)[1] if ":" in userinfo else None


def is_missing_database(exc: BaseException) -> bool:
    """Whether connecting failed because the Postgres database does not exist (3D000)."""
    orig = getattr(exc, "orig", exc)
    return getattr(orig, "sqlstate", None) == "3D000" or \
        'does not exist' in str(orig) and 'database "' in str(orig)


def ensure_postgres_database(url: str) -> bool:
    """Create the Postgres database ``url`` names if it is missing; True if it was created."""
    import psycopg
    from psycopg import sql
    from sqlalchemy import make_url

    target = make_url(url)
    maintenance = target.set(drivername="postgresql", database="postgres")
    try:
        with psycopg.connect(
            maintenance.render_as_string(hide_password=False), autocommit=True, connect_timeout=10
        ) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (target.database,)
            ).fetchone()
            if exists:
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
    except psycopg.OperationalError as exc:
        raise cannot_connect(url, exc) from None


def cannot_connect(url: str, error: Exception) -> DatabaseError:
    return DatabaseError(
        f"cannot connect to {redact(url)}: {scrub(_first_line(error), url)}; is the database "
        "running and the URL right? (with docker: docker compose up -d postgres)"
    )


def alembic_config(connection=None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


SCHEMA_HEAD = "0002"  # the newest migration's revision (a test keeps it equal to alembic's head)
_MIGRATION_LOCK = 7_203_311  # pg_advisory_xact_lock key: one migrating process at a time


def upgrade_schema(app_url: str) -> None:
    """Create the database if needed and run alembic's migrations up to head.

    Already at head (every load but the first), it costs one query and no alembic import.
    """
    from sqlalchemy import create_engine
    from sqlalchemy.exc import DBAPIError

    engine = create_engine(app_url)
    try:
        for attempt in range(5):
            try:
                if schema_version(engine) == SCHEMA_HEAD:
                    return
                _run_migrations(engine)
                return
            except DBAPIError as exc:
                if "does not exist" in str(exc.orig) and is_postgres(app_url):
                    ensure_postgres_database(app_url)
                elif _unreachable(exc):
                    raise cannot_connect(app_url, exc.orig) from None
                elif attempt == 4:
                    raise DatabaseError(
                        f"cannot prepare {redact(app_url)}: {scrub(_first_line(exc.orig), app_url)}"
                    ) from None
                # else: a concurrent process migrated at the same moment; look again
    finally:
        engine.dispose()


def schema_version(engine) -> Optional[str]:
    from sqlalchemy import inspect, text

    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _run_migrations(engine) -> None:
    from alembic import command

    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        command.upgrade(alembic_config(connection), "head")


def _unreachable(exc) -> bool:
    text = str(exc.orig).lower()
    return any(s in text for s in ("connection refused", "could not connect", "connection failed",
                                   "unable to open database", "password authentication"))


def _first_line(error) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[0] if lines else repr(error)
