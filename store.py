"""Rows into the app database: records into ``tasks`` (COPY on Postgres), failures into
``errors``, a run's files into ``sources`` and their claims into ``contents``; metrics
counted when, and only when, a transaction commits.

Every function takes the session or connection of the caller's transaction: the DBOS
datasource transaction of a step (``integration``), or the command's own (``sources.plan``).
"""

import json
import re
from typing import Any, Iterable, Optional

import orjson
from sqlalchemy import event, insert, select, update

from . import telemetry
from .contract import BAD_FILE_POSITION, bad_file_key, source_key, title_of
from .errors import NulCharacter
from .models import Content, Error, Source, Task

COPY_BATCH_ROWS = 500
NUL_REASON = "record contains a NUL character (\\u0000), which Postgres JSONB cannot store"
# orjson writes NUL as \u0000; an escaped backslash before "u0000" (\\u0000) is no NUL.
_NUL = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


# -- JSON as it is stored -------------------------------------------------------------------
def dumps_exact(value) -> bytes:
    """orjson's JSON; the stdlib's for the rare integer over 64 bits, which orjson refuses."""
    try:
        return orjson.dumps(value)
    except TypeError as exc:
        if "64-bit" not in str(exc):
            raise
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def has_nul(data: bytes) -> bool:
    """Whether orjson's JSON text holds a NUL character."""
    return b"\\u0000" in data and _NUL.search(data) is not None


def stored_json(value) -> bytes:
    """The JSON a ``tasks`` row stores; NulCharacter if Postgres JSONB could not hold it."""
    data = dumps_exact(value)
    if has_nul(data):
        raise NulCharacter(NUL_REASON)
    return data


def storable(record: Any) -> Any:
    """The record as JSONB can hold it: NUL characters become U+FFFD."""
    if record is None:
        return None
    try:
        text = dumps_exact(record)
    except (TypeError, ValueError, RecursionError):  # nested deeper than orjson writes (254 levels)
        return None
    if has_nul(text):
        return orjson.loads(_NUL.sub(rb"\1\\ufffd", text))
    return orjson.loads(text)


# -- tasks ----------------------------------------------------------------------------------
def write_tasks(session, run_id: str, rows: Iterable[tuple]) -> int:
    """Bulk-insert ``(fingerprint, position, JSON bytes)`` rows into ``tasks``; returns how many."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        return _copy_tasks(connection, run_id, rows)
    # SQLite has one writer at a time and locks at the first INSERT: transform the whole
    # chunk first, so the lock is held for the inserts only and chunks overlap.
    values = [(title_of(position), data.decode(), source_key(fingerprint, position), run_id, position)
              for fingerprint, position, data in rows]
    if values:
        connection.exec_driver_sql(
            "INSERT INTO tasks (title, data, source_key, run_id, position) VALUES (?, ?, ?, ?, ?)",
            values)
    return len(values)


def _copy_tasks(connection, run_id: str, rows: Iterable[tuple]) -> int:
    """COPY rows in text format; the JSON is orjson's, so only backslashes need escaping.
    Run ids and fingerprints are [a-z0-9-]: nothing to escape there."""
    cursor = connection.connection.driver_connection.cursor()
    suffix = f"\t{run_id}\t".encode()
    written = 0
    batch: list = []
    prefixes: dict = {}
    sql = f"COPY {Task.__tablename__} (title, data, source_key, run_id, position) FROM STDIN"
    with cursor.copy(sql) as copy:
        for fingerprint, position, data in rows:
            key_prefix = prefixes.get(fingerprint)
            if key_prefix is None:
                key_prefix = prefixes[fingerprint] = f"\t{fingerprint}:".encode()
            pos = b"%d" % position
            escaped = data.replace(b"\\", b"\\\\")
            batch.append(b"task " + pos + b"\t" + escaped + key_prefix + pos + suffix + pos + b"\n")
            if len(batch) == COPY_BATCH_ROWS:
                copy.write(b"".join(batch))
                written += len(batch)
                batch.clear()
        if batch:
            copy.write(b"".join(batch))
            written += len(batch)
    return written


# -- errors ---------------------------------------------------------------------------------
def error_row(run_id: str, fingerprint: str, position: int, error_type: str, message: str,
              record: Any, attempts: int, permanent: bool) -> dict:
    """An ``errors`` row: the reason as JSON, with the original record for triage."""
    key = source_key(fingerprint, position)
    return {
        "title": title_of(position),
        "source_key": key,
        "run_id": run_id,
        "position": position,
        "message": {
            "title": title_of(position),
            "source_key": key,
            "position": position,
            "error_type": error_type,
            "error": message,
            "attempts": attempts,
            "permanent": permanent,
            "record": storable(record),
        },
    }


def bad_file_row(run_id: str, name: str, fingerprint: Optional[str], reason: str) -> dict:
    """The one ``errors`` row of a file that can't be loaded at all."""
    key = bad_file_key(fingerprint, name)
    return {
        "title": name,
        "source_key": key,
        "run_id": run_id,
        "position": BAD_FILE_POSITION,
        "message": {"title": name, "source_key": key, "position": BAD_FILE_POSITION,
                    "error_type": "BadFile", "error": reason, "attempts": 0, "permanent": True,
                    "path": name, "fingerprint": fingerprint, "record": None},
    }


def write_errors(session, rows: list) -> None:
    if rows:
        session.execute(insert(Error), rows)


def write_errors_once(session, rows: list) -> int:
    """Insert rows whose source key may already be there (a bad file seen again), one by
    one (they are few); returns how many are new."""
    statement = _insert_ignoring_conflicts(session, Error).returning(Error.id)
    return sum(len(session.execute(statement, row).all()) for row in rows)


def _insert_ignoring_conflicts(session_or_connection, model):
    dialect = session_or_connection.get_bind().dialect if hasattr(session_or_connection, "get_bind") \
        else session_or_connection.dialect
    if dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(model).on_conflict_do_nothing()


# -- a run's files ---------------------------------------------------------------------------
def write_sources(connection, rows: list) -> None:
    """Plan rows of a run's files; a row already written (a command run again) is kept."""
    if rows:
        connection.execute(_insert_ignoring_conflicts(connection, Source), rows)


def claimed_by(connection, fingerprints: list) -> dict:
    """fingerprint -> the run that claimed it, for those already claimed."""
    if not fingerprints:
        return {}
    rows = connection.execute(select(Content.fingerprint, Content.run_id)
                              .where(Content.fingerprint.in_(fingerprints))).all()
    return dict(rows)


def claim(session, run_id: str, files: list) -> dict:
    """Claim the contents of ``(ordinal, fingerprint)`` pairs for this run, in order; returns
    fingerprint -> (owner run, owner ordinal), whoever won."""
    if files:
        statement = _insert_ignoring_conflicts(session, Content)
        session.execute(statement, [{"fingerprint": f, "run_id": run_id, "ordinal": o}
                                    for o, f in files])
    rows = session.execute(select(Content.fingerprint, Content.run_id, Content.ordinal)
                           .where(Content.fingerprint.in_([f for _, f in files]))).all()
    return {f: (r, o) for f, r, o in rows}


def set_source_states(session, run_id: str, ordinals: list, state: str,
                      loaded_by: Optional[dict] = None) -> None:
    if not ordinals:
        return
    if loaded_by is None:
        session.execute(update(Source).where(Source.run_id == run_id, Source.ordinal.in_(ordinals))
                        .values(state=state))
        return
    for ordinal in ordinals:
        session.execute(update(Source).where(Source.run_id == run_id, Source.ordinal == ordinal)
                        .values(state=state, loaded_by=loaded_by[ordinal]))


# -- metrics --------------------------------------------------------------------------------
def count_on_commit(session, tasks: int, errors: int, retries: int = 0,
                    redriven: bool = False) -> None:
    """Count rows in the metrics when, and only when, this transaction commits."""

    def committed(_session) -> None:
        telemetry.record_writes(tasks=tasks, errors=errors, retries=retries, redriven=redriven)

    event.listen(session, "after_commit", committed, once=True)
