"""Transformed records under their own keys (``--key``): one row per key, whatever file,
page, label or run a record comes from, and ``--on-conflict`` deciding, the same way
whatever order chunks commit in, which record a key keeps."""

from typing import Iterable

from sqlalchemy import select

from ..contract import title_of
from ..models import Task
from .tasks import COPY_BATCH_ROWS

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
    batch, duplicates = one_per_key(rows, on_conflict)
    if not batch:
        return 0, duplicates
    connection = session.connection()
    condition = replace_condition(on_conflict, redrive)
    if connection.dialect.name == "postgresql":
        inserted = _upsert_postgres(connection, run_id, batch, condition)
    else:
        inserted = sum(_upsert_sqlite(connection, run_id, batch[i:i + KEYED_BATCH_ROWS], condition)
                       for i in range(0, len(batch), KEYED_BATCH_ROWS))
        resolve_errors(session, run_id, batch)
    return inserted, len(batch) + duplicates - inserted


def one_per_key(rows: Iterable[tuple], on_conflict: str) -> tuple:
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


def replace_condition(on_conflict: str, redrive: bool,
                      columns: tuple = ("run_id", "ordinal", "position")) -> str:
    """When an incoming row replaces the stored one (t: stored, EXCLUDED: incoming), by the
    table's columns of run, ordinal and position."""
    run, ordinal, position = columns
    same_run = f"t.{run} = EXCLUDED.{run}"
    order = (f"(COALESCE(t.{ordinal}, -1), t.{position}) {{}} "
             f"(EXCLUDED.{ordinal}, EXCLUDED.{position})")
    if on_conflict == UPDATE:
        later = f"{same_run} AND {order.format('<')}"
        return later if redrive else f"t.{run} <> EXCLUDED.{run} OR ({later})"
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
        "AND t.position = i.position WHERE e.table_name = 'tasks' AND e.source_key = i.source_key "
        f"AND e.resolved_at IS NULL AND {older}")
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
        "? AS run_id, ? AS ordinal, ? AS position) AS i WHERE e.table_name = 'tasks' "
        f"AND e.source_key = i.source_key AND e.resolved_at IS NULL AND {older} AND EXISTS "
        "(SELECT 1 FROM tasks AS t WHERE t.source_key = i.source_key AND t.run_id = i.run_id "
        "AND t.ordinal = i.ordinal AND t.position = i.position)",
        [(key, run_id, ordinal, position) for key, ordinal, position, _ in batch])


def key_holders(session, keys: list) -> dict:
    """key -> (run id, ordinal, position) of the record ``tasks`` holds for it."""
    holders = {}
    for low in range(0, len(keys), KEYED_BATCH_ROWS):
        rows = session.execute(select(Task.source_key, Task.run_id, Task.ordinal, Task.position)
                               .where(Task.source_key.in_(keys[low:low + KEYED_BATCH_ROWS]))).all()
        holders.update({r.source_key: (r.run_id, r.ordinal, r.position) for r in rows})
    return holders
