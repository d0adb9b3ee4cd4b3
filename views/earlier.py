"""The run history a SQLite app database had before its system database moved beside it (the
working directory's ``durable_ingest.sqlite``): where it is, how to list its runs, and
whether it holds a run (then that run is finished or looked at there, not started again)."""

import os
from contextlib import closing
from typing import Optional


def earlier_history(database_url: Optional[str]):
    """Where this SQLite app database's runs were kept before its system database moved
    beside it (the working directory's ``durable_ingest.sqlite``), when that file exists and
    is another one; else None."""
    from pathlib import Path

    from .. import database

    databases = database.resolve(database_url)
    now = database.sqlite_path(databases.system_url)
    earlier = Path(database.DEFAULT_SQLITE_SYSTEM_FILE).resolve()
    if now is None or os.environ.get(database.SYSTEM_DATABASE_URL_VARIABLE) \
            or not earlier.is_file() or now.resolve() == earlier:
        return None
    return earlier


def earlier_runs_hint(database_url: Optional[str]) -> Optional[str]:
    """How to list the runs of ``earlier_history``, if there is one."""
    earlier = earlier_history(database_url)
    if earlier is None:
        return None
    return (f"runs of this database started before its run history moved beside it may be in "
            f"{earlier}: DBOS_SYSTEM_DATABASE_URL=sqlite:///{earlier} ingest status")


def in_earlier_history(database_url: Optional[str], run_id: str) -> Optional[tuple]:
    """(``earlier_history``'s file, the run's status there) when that file holds ``run_id``:
    a new history would start the run again, and its chunks meet the rows it stored."""
    import sqlite3

    earlier = earlier_history(database_url)
    if earlier is None:
        return None
    try:
        with closing(sqlite3.connect(f"file:{earlier}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT status FROM workflow_status WHERE workflow_uuid = ?",
                             (run_id,)).fetchone()
    except sqlite3.Error:  # not a DBOS system database
        return None
    return (earlier, row[0]) if row else None
