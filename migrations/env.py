"""Alembic environment: the URL is ``database.app_database_url()`` (``DATABASE_URL``, default:
the local SQLite file), or the caller hands over an open connection (``ingest migrate`` /
``ingest load``)."""

import sys
from pathlib import Path

from alembic import context
from sqlalchemy import create_engine

try:
    from durable_ingest.database import (app_database_url, ensure_postgres_database, is_postgres,
                                         transactional_sqlite_engine)
    from durable_ingest.models import Base
except ImportError:  # run from a checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from durable_ingest.database import (app_database_url, ensure_postgres_database,  # type: ignore
                                         is_postgres, transactional_sqlite_engine)
    from durable_ingest.models import Base  # type: ignore

target_metadata = Base.metadata


def run_with(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_with(connection)
        return
    url = app_database_url()
    if is_postgres(url):
        ensure_postgres_database(url)
        engine = create_engine(url)
    else:
        engine = transactional_sqlite_engine(url)
    with engine.connect() as conn:
        run_with(conn)
        conn.commit()
    engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=app_database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
