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
from sqlalchemy import event, func, insert, select, update

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


# -- tasks under the records' own keys (--key) ---------------------------------------------------
UPDATE, SKIP = "update", "skip"
KEYED_BATCH_ROWS = 1000


def write_keyed_tasks(session, run_id: str, rows: Iterable[tuple], on_conflict: str,
                      redrive: bool = False) -> tuple:
    """Upsert ``(key, ordinal, position, JSON bytes)`` rows into ``tasks``, one row per key;
    returns (rows inserted, records whose key was already there).

    ``update`` replaces a row stored by another run, or by this run from earlier in the
    input (file ordinal, then position); ``skip`` keeps it, except that within one run the
    earliest record stays. Either way the outcome does not depend on the order in which
    chunks commit. A redrive (``ingest retry``) never replaces another run's row. Error rows
    of the keys written are resolved: the key is in ``tasks`` now.
    """
    batch, duplicates = _one_per_key(rows, on_conflict)
    if not batch:
        return 0, duplicates
    connection = session.connection()
    condition = _replace_condition(on_conflict, redrive)
    if connection.dialect.name == "postgresql":
        inserted = _upsert_postgres(connection, run_id, batch, condition)
    else:
        inserted = sum(_upsert_sqlite(connection, run_id, batch[i:i + KEYED_BATCH_ROWS], condition)
                       for i in range(0, len(batch), KEYED_BATCH_ROWS))
        resolve_errors(session, run_id, batch)
    return inserted, len(batch) + duplicates - inserted


def _one_per_key(rows: Iterable[tuple], on_conflict: str) -> tuple:
    """(the rows that can win, one per key, how many others): the last in input order wins
    for ``update``, the first for ``skip``."""
    chosen: dict = {}
    duplicates = 0
    for row in rows:
        held = chosen.get(row[0])
        if held is None:
            chosen[row[0]] = row
            continue
        duplicates += 1
        later = (row[1], row[2]) > (held[1], held[2])
        if later == (on_conflict == UPDATE):
            chosen[row[0]] = row
    return list(chosen.values()), duplicates


def _replace_condition(on_conflict: str, redrive: bool) -> str:
    """When an incoming row replaces the stored one (t: stored, EXCLUDED: incoming)."""
    same_run = "t.run_id = EXCLUDED.run_id"
    order = "(COALESCE(t.ordinal, -1), t.position) {} (EXCLUDED.ordinal, EXCLUDED.position)"
    if on_conflict == UPDATE:
        later = f"{same_run} AND {order.format('<')}"
        return later if redrive else f"t.run_id <> EXCLUDED.run_id OR ({later})"
    return f"{same_run} AND {order.format('>')}"


INCOMING = "ingest_incoming"  # a temporary table per connection, emptied at each commit


def _upsert_postgres(connection, run_id: str, batch: list, condition: str) -> int:
    """COPY the batch into a temporary table, then one INSERT ... ON CONFLICT from it (an
    upsert of bound arrays measured 5x slower), and resolve the keys' error rows."""
    connection.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {INCOMING} (title text, data jsonb, source_key "
        "text, run_id text, ordinal bigint, position bigint) ON COMMIT DELETE ROWS")
    cursor = connection.connection.driver_connection.cursor()
    suffix = f"\t{run_id}\t".encode()
    with cursor.copy(f"COPY {INCOMING} (title, data, source_key, run_id, ordinal, position) "
                     "FROM STDIN") as copy:
        for low in range(0, len(batch), COPY_BATCH_ROWS):
            copy.write(b"".join(
                b"task %d\t%s\t%s%s%d\t%d\n" % (position, data.replace(b"\\", b"\\\\"),
                                                 _copy_text(key), suffix, ordinal, position)
                for key, ordinal, position, data in batch[low:low + COPY_BATCH_ROWS]))
    result = connection.exec_driver_sql(
        f"INSERT INTO tasks AS t (title, data, source_key, run_id, ordinal, position) "
        f"SELECT title, data, source_key, run_id, ordinal, position FROM {INCOMING} "
        "ON CONFLICT (source_key) DO UPDATE SET title = EXCLUDED.title, data = EXCLUDED.data, "
        "run_id = EXCLUDED.run_id, ordinal = EXCLUDED.ordinal, position = EXCLUDED.position "
        f"WHERE {condition} RETURNING (xmax = 0)")
    inserted = sum(1 for (new,) in result if new)
    older = ERROR_IS_OLDER.format(ordinal="(e.message->>'ordinal')::bigint")
    connection.exec_driver_sql(
        f"UPDATE errors AS e SET resolved_at = now() FROM {INCOMING} AS i JOIN tasks AS t "
        "ON t.source_key = i.source_key AND t.run_id = i.run_id AND t.ordinal = i.ordinal "
        "AND t.position = i.position WHERE e.source_key = i.source_key AND e.resolved_at IS NULL "
        f"AND {older}")
    connection.exec_driver_sql(f"TRUNCATE {INCOMING}")  # a redrive page may write twice
    return inserted


def _copy_text(value: str) -> bytes:
    """A value in COPY's text format: backslash, tab, newline and carriage return escaped."""
    text = value.encode()
    if b"\\" in text or b"\t" in text or b"\n" in text or b"\r" in text:
        text = (text.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\n", b"\\n")
                .replace(b"\r", b"\\r"))
    return text


def _upsert_sqlite(connection, run_id: str, batch: list, condition: str) -> int:
    rows = [(title_of(p), d.decode(), k, run_id, o, p) for k, o, p, d in batch]
    # SQLite can't tell an upsert's inserts from its updates: insert what is new first,
    # then replace where the condition says so (a row just inserted never satisfies it).
    inserted = connection.exec_driver_sql(
        "INSERT INTO tasks (title, data, source_key, run_id, ordinal, position) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (source_key) DO NOTHING", rows).rowcount
    stored = condition.replace("EXCLUDED.", "i.")
    connection.exec_driver_sql(
        "UPDATE tasks AS t SET title = i.title, data = i.data, run_id = i.run_id, "
        "ordinal = i.ordinal, position = i.position FROM (SELECT ? AS title, ? AS data, "
        "? AS source_key, ? AS run_id, ? AS ordinal, ? AS position) AS i "
        f"WHERE t.source_key = i.source_key AND ({stored})", rows)
    return inserted


# An errors row of a key is resolved when a record of its key is stored that comes after the
# failed one: in a later run, or later in this run's input (file ordinal, then position).
ERROR_IS_OLDER = ("(e.run_id <> i.run_id OR (COALESCE({ordinal}, -1), e.position) "
                  "< (i.ordinal, i.position))")


def resolve_errors(session, run_id: str, batch: list) -> None:
    """SQLite: resolve the errors rows of the keys ``batch`` now holds in ``tasks`` (see
    ``ERROR_IS_OLDER``); the rows are kept, for audit."""
    older = ERROR_IS_OLDER.format(ordinal="json_extract(e.message, '$.ordinal')")
    session.connection().exec_driver_sql(
        "UPDATE errors AS e SET resolved_at = CURRENT_TIMESTAMP FROM (SELECT ? AS source_key, "
        "? AS run_id, ? AS ordinal, ? AS position) AS i WHERE e.source_key = i.source_key "
        f"AND e.resolved_at IS NULL AND {older} AND EXISTS (SELECT 1 FROM tasks AS t WHERE "
        "t.source_key = i.source_key AND t.run_id = i.run_id AND t.ordinal = i.ordinal "
        "AND t.position = i.position)",
        [(key, run_id, ordinal, position) for key, ordinal, position, _ in batch])


def key_holders(session, keys: list) -> dict:
    """key -> (run id, ordinal, position) of the record ``tasks`` holds for it."""
    holders = {}
    for low in range(0, len(keys), KEYED_BATCH_ROWS):
        rows = session.execute(select(Task.source_key, Task.run_id, Task.ordinal, Task.position)
                               .where(Task.source_key.in_(keys[low:low + KEYED_BATCH_ROWS]))).all()
        holders.update({r.source_key: (r.run_id, r.ordinal, r.position) for r in rows})
    return holders


# -- errors ---------------------------------------------------------------------------------
def error_row(run_id: str, fingerprint: str, position: int, error_type: str, message: str,
              record: Any, attempts: int, permanent: bool, key: Optional[str] = None,
              ordinal: Optional[int] = None) -> dict:
    """An ``errors`` row: the reason as JSON, with the original record for triage. A record
    with its own key (``--key``) is filed under it, with the file it came from."""
    stored_key = key if key is not None else source_key(fingerprint, position)
    reason = {
        "title": title_of(position),
        "source_key": stored_key,
        "position": position,
        "error_type": error_type,
        "error": message,
        "attempts": attempts,
        "permanent": permanent,
        "record": storable(record),
    }
    if key is not None:
        reason.update(key=key, ordinal=ordinal, fingerprint=fingerprint)
    return {"title": title_of(position), "source_key": stored_key, "run_id": run_id,
            "position": position, "message": reason}


def bad_file_row(run_id: str, name: str, fingerprint: Optional[str], reason: str) -> dict:
    """The one ``errors`` row of a file (or an API page: ``BadPage``) that can't be loaded
    at all."""
    from .sources.http import is_url

    key = bad_file_key(fingerprint, name)
    kind = "BadPage" if is_url(name) else "BadFile"
    return {
        "title": name,
        "source_key": key,
        "run_id": run_id,
        "position": BAD_FILE_POSITION,
        "message": {"title": name, "source_key": key, "position": BAD_FILE_POSITION,
                    "error_type": kind, "error": reason, "attempts": 0, "permanent": True,
                    "path": name, "fingerprint": fingerprint, "record": None},
    }


def resolve_bad_pages(session, names: list) -> None:
    """A page that loads now marks the errors rows of its earlier failures resolved."""
    keys = [bad_file_key(None, name) for name in names]
    if keys:
        session.execute(update(Error).where(Error.source_key.in_(keys), Error.resolved_at.is_(None))
                        .values(resolved_at=func.now()))


def write_errors(session, rows: list, keyed: bool = False) -> None:
    """Insert ``errors`` rows. Under records' own keys (``keyed``), a key that failed before
    keeps one row: the newest failure, unresolved again."""
    if not rows:
        return
    if not keyed:
        session.execute(insert(Error), rows)
        return
    statement = _dialect_insert(session, Error)
    session.execute(statement.on_conflict_do_update(
        index_elements=[Error.source_key],
        set_={"title": statement.excluded.title, "run_id": statement.excluded.run_id,
              "position": statement.excluded.position, "message": statement.excluded.message,
              "resolved_at": None}), rows)


def write_errors_once(session, rows: list) -> int:
    """Insert rows whose source key may already be there (a bad file seen again), one by
    one (they are few); returns how many are new. A row resolved since (an API page that
    loaded once, then failed again) is open again, with the new reason, and counts as new."""
    statement = _dialect_insert(session, Error)
    statement = statement.on_conflict_do_update(
        index_elements=[Error.source_key],
        set_={"run_id": statement.excluded.run_id, "message": statement.excluded.message,
              "resolved_at": None},
        where=Error.resolved_at.is_not(None)).returning(Error.id)
    return sum(len(session.execute(statement, row).all()) for row in rows)


def _insert_ignoring_conflicts(session_or_connection, model):
    return _dialect_insert(session_or_connection, model).on_conflict_do_nothing()


def _dialect_insert(session_or_connection, model):
    dialect = session_or_connection.get_bind().dialect if hasattr(session_or_connection, "get_bind") \
        else session_or_connection.dialect
    if dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(model)


# -- a run's files ---------------------------------------------------------------------------
def source_row(run_id: str, ordinal: int, name: str, path: Optional[str], **columns) -> dict:
    """A ``sources`` row of a file or an API page: ``planned``, with nothing known of its
    content, except for ``columns``."""
    return {"run_id": run_id, "ordinal": ordinal, "name": name, "path": path or name,
            "fingerprint": None, "records": 0, "state": "planned", "shape": None, "size": None,
            "mtime_ns": None, "pieces": None, "error": None, "loaded_by": None, **columns}


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
                    redriven: bool = False, updated: int = 0, skipped: int = 0) -> None:
    """Count rows in the metrics when, and only when, this transaction commits."""

    def committed(_session) -> None:
        telemetry.record_writes(tasks=tasks, errors=errors, retries=retries, redriven=redriven,
                                updated=updated, skipped=skipped)

    event.listen(session, "after_commit", committed, once=True)
