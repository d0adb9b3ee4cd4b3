"""The app database's DBOS datasource, for the workflows' transactions: set once by
``runtime.launch``, read by every step that writes rows (``session()`` inside a transaction)."""

from typing import Optional

_datasource = None  # dbos.SQLAlchemyDatasource, once launched


def install(datasource) -> None:
    """The datasource of this process (None: DBOS stopped)."""
    global _datasource
    _datasource = datasource


def app_db():
    assert _datasource is not None, "launch() first"
    return _datasource


def session():
    """The SQLAlchemy session of the datasource transaction that is running."""
    return app_db().sql_session()


def run_tx(name: str, function, *args):
    """Run ``function(*args)`` as the datasource transaction ``name`` (a step of the
    workflow that calls it: its rows commit together with DBOS's checkpoint)."""
    return app_db().run_tx_step(tx_options(name), function, *args)


def tx_options(name: str) -> dict:
    """Inserts of distinct keys need no more than READ COMMITTED (SQLite has no such level)."""
    postgres = app_db().engine.dialect.name == "postgresql"
    return {"name": name, "isolation_level": "READ COMMITTED" if postgres else "SERIALIZABLE"}


def dialect() -> Optional[str]:
    return app_db().engine.dialect.name if _datasource is not None else None
