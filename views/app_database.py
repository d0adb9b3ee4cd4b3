"""Read-only views of the app database for operators: a run's files with the rows each has
(``ingest status RUN --files``) and the dataset tables'
schemas (``ingest schema``). Looking never changes anything, and never creates a database
that is not there."""

from typing import Optional

from ..contract import TASKS, is_run_id
from ..errors import RunNotFound, TableNotFound
from .runs import app_engine, run_table

FILES_PAGE = 100


# -- files --------------------------------------------------------------------------------------
def run_files(database_url: Optional[str], run_id: str, page: int,
              table: Optional[str] = None) -> dict:
    """One page of a run's files: state, records, and the rows each has in the run's table
    (``table``, else the run's own) and in errors."""
    from sqlalchemy import func, select

    from ..models import Source

    table = table or run_table(database_url, run_id)
    with app_engine(database_url) as engine:
        if engine is None or not is_run_id(run_id):
            raise RunNotFound(run_id)
        with engine.connect() as connection:
            total = connection.execute(select(func.count()).select_from(Source)
                                       .where(Source.run_id == run_id)).scalar()
            if not total:
                raise RunNotFound(run_id)
            rows = connection.execute(
                select(Source).where(Source.run_id == run_id).order_by(Source.ordinal)
                .offset((page - 1) * FILES_PAGE).limit(FILES_PAGE)).all()
            files = [file_row(connection, row, table) for row in rows]
    first = (page - 1) * FILES_PAGE + 1
    return {"run_id": run_id, "total": total, "first": first, "last": first + len(files) - 1,
            "next_page": page + 1 if first + len(files) <= total else None, "files": files}


def landing_notes(database_url: Optional[str], run_id: str) -> dict:
    """What a run's local files said of themselves (``store.files.file_notes``): held-back
    last lines and rewritten files; {} without an app database."""
    from ..store.files import file_notes

    with app_engine(database_url) as engine:
        if engine is None:
            return {}
        with engine.connect() as connection:
            notes = file_notes(connection, run_id)
    return {"held_back": notes["held_back"], "files_changed": notes["changed"],
            "files_changed_count": notes["changed_count"],
            "files_changed_skipped": notes["changed_skipped"]}


def file_row(connection, source, table: str = TASKS) -> dict:
    tasks = errors = 0
    if source.state == "new":
        tasks, errors = rows_of(connection, source.fingerprint, table)
    return {"ordinal": source.ordinal, "name": source.name, "state": source.state,
            "fingerprint": source.fingerprint, "records": source.records, "tasks": tasks,
            "errors": errors, "loaded_by": source.loaded_by, "error": source.error}


def rows_of(connection, fingerprint: str, table: str = TASKS) -> tuple:
    """The rows of one file's records, in the table and in errors: a range of the unique
    source-key index (a dataset table keyed by a field has no such range: 0)."""
    from sqlalchemy import column, func, select
    from sqlalchemy import table as table_clause

    from ..models import Error, Task
    from ..tables.names import SOURCE_KEY

    low, high = f"{fingerprint}:", f"{fingerprint};"  # ';' follows ':'
    errors = connection.execute(select(func.count()).select_from(Error).where(
        Error.table_name == table, Error.source_key >= low, Error.source_key < high)).scalar()
    if table == TASKS:
        key = Task.source_key
        rows = select(func.count()).select_from(Task)
    elif table_key(connection, table) is None:
        key = column(SOURCE_KEY)
        rows = select(func.count()).select_from(table_clause(table, key))
    else:
        return 0, errors
    return connection.execute(rows.where(key >= low, key < high)).scalar(), errors


def table_key(connection, table: str) -> Optional[str]:
    from ..tables.catalog import read_schema

    return read_schema(connection, table).key_column


# -- dataset tables ----------------------------------------------------------------------------
def table_schemas(database_url: Optional[str], table: Optional[str] = None) -> list:
    """The dataset tables (or one): their key, columns with type and the run that added
    each, and their rows (``ingest schema``)."""
    from ..tables.catalog import row_count, tables

    with app_engine(database_url) as engine:
        found = []
        if engine is not None:
            with engine.connect() as connection:
                found = tables(connection, table)
                for entry in found:
                    entry["rows"] = row_count(connection, entry["table"])
    if table and not found:
        raise TableNotFound(table)
    return found
