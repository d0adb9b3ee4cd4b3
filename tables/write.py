"""Transformed records into a dataset table (``--table NAME``), in the chunk's transaction:
typed columns added first where new fields need them (``catalog``), then the rows (COPY on
Postgres, one executemany on SQLite), or, under the records' own keys, an upsert decided by
``--on-conflict`` exactly as ``tasks``'s is (``store.keyed``).

A row is ``(fingerprint, position, JSON bytes, record)``, or with a key ``(key, ordinal,
position, JSON bytes, record)``: the JSON is the ``data`` column, the record is flattened into
the typed ones.
"""

from typing import Iterable

from ..store.keyed import UPDATE, one_per_key, replace_condition
from . import catalog, names
from .catalog import Schema
from .names import quoted
from .rows import Rows
from .types import copy_text

COPY_BATCH_ROWS = 500
KEYS_PER_STATEMENT = 1000  # bound parameters stay far below SQLite's limit
# A temporary table of the transaction's keyed rows: named in pg_temp, never a user's table.
INCOMING = "pg_temp.ingest_table_incoming"
_copy_string = copy_text("text")


def write_rows(session, table: str, run_id: str, rows: Iterable[tuple], key_path: str = "",
               on_conflict: str = "skip", redrive: bool = False) -> dict:
    """Write the rows; {"tasks": new rows, "updated": .., "skipped": ..} as ``tasks``'s writers
    count them."""
    connection = session.connection()
    schema = catalog.read_schema(connection, table)
    if not schema.exists:
        schema = catalog.create_table(session, table, key_path, run_id)
    duplicates = 0
    if key_path:
        rows, duplicates = one_per_key(rows, on_conflict)
    built = build(session, schema, run_id, rows)
    if not built.rows:
        return counts(0, duplicates, on_conflict, key_path)
    if not key_path:
        return counts(insert(connection, built), 0, on_conflict, key_path)
    inserted = upsert(connection, built, replace_condition(
        on_conflict, redrive, (names.RUN_ID, names.ORDINAL, names.POSITION)))
    resolve_errors(connection, built, table)
    return counts(inserted, len(built.rows) + duplicates - inserted, on_conflict, key_path)


def counts(inserted: int, existing: int, on_conflict: str, key_path: str) -> dict:
    if key_path and on_conflict == UPDATE:
        return {"tasks": inserted, "updated": existing, "skipped": 0}
    return {"tasks": inserted, "updated": 0, "skipped": existing}


def build(session, schema: Schema, run_id: str, rows: Iterable[tuple]) -> Rows:
    """The rows, every value in its column, the columns new fields need added first."""
    connection = session.connection()
    copy = connection.dialect.name == "postgresql"
    built = Rows(schema, connection.dialect.name)
    keyed = schema.key_column is not None
    for row in rows:
        data = row[-2].decode()
        if keyed:
            key, ordinal, position = row[0], row[1], row[2]
            own = [_copy_string(key) if copy else key, run_id, ordinal, position]
        else:
            key, position = f"{row[0]}:{row[1]}", row[1]
            own = [key, run_id, position]
        if copy:
            own = [str(v) if type(v) is int else v for v in own]
            data = data.replace("\\", "\\\\")
        built.add(own + [data], row[-1])
    if built.pending:
        catalog.lock(session, schema.table)
        schema = catalog.read_schema(connection, schema.table)
        schema = catalog.add_columns(session, schema, built.wanted_bases(schema), run_id)
        schema = catalog.add_columns(session, schema, built.wanted_variants(schema), run_id)
        built.fill(schema)
    return built


def insert(connection, built: Rows, target: str = "") -> int:
    """The rows into the table (or into ``target``, a name as SQL writes it); how many."""
    target = target or quoted(built.schema.table)
    columns = ", ".join(quoted(c) for c in built.columns())
    if connection.dialect.name != "postgresql":
        marks = ", ".join("?" * len(built.columns()))
        connection.exec_driver_sql(f"INSERT INTO {target} ({columns}) VALUES ({marks})",
                                   [tuple(row) for row in built.rows])
        return len(built.rows)
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(f"COPY {target} ({columns}) FROM STDIN") as copy:
        for low in range(0, len(built.rows), COPY_BATCH_ROWS):
            copy.write("".join("\t".join(row) + "\n"
                               for row in built.rows[low:low + COPY_BATCH_ROWS]))
    return len(built.rows)


def upsert(connection, built: Rows, condition: str) -> int:
    """One row per key: insert the new keys, replace the stored rows ``condition`` allows;
    returns how many keys are new."""
    table, key = quoted(built.schema.table), quoted(built.schema.key_column)
    columns = [quoted(c) for c in built.columns()]
    listed = ", ".join(columns)
    replaced = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns[1:])
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {INCOMING}")
        connection.exec_driver_sql(f"CREATE TEMPORARY TABLE {INCOMING.split('.')[1]} ON COMMIT "
                                   f"DROP AS SELECT {listed} FROM {table} WITH NO DATA")
        insert(connection, built, INCOMING)
        result = connection.exec_driver_sql(
            f"INSERT INTO {table} AS t ({listed}) SELECT {listed} FROM {INCOMING} "
            f"ON CONFLICT ({key}) DO UPDATE SET {replaced} WHERE {condition} RETURNING (xmax = 0)")
        return sum(1 for (new,) in result if new)
    marks = ", ".join("?" * len(columns))
    rows = [tuple(row) for row in built.rows]
    inserted = connection.exec_driver_sql(
        f"INSERT INTO {table} ({listed}) VALUES ({marks}) ON CONFLICT ({key}) DO NOTHING",
        rows).rowcount
    # SQLite can't tell an upsert's inserts from its updates: what is new went in first, and a
    # row just inserted never satisfies the condition.
    incoming = ", ".join(f"? AS {c}" for c in columns)
    stored = condition.replace("EXCLUDED.", "i.")
    connection.exec_driver_sql(
        f"UPDATE {table} AS t SET {replaced.replace('EXCLUDED.', 'i.')} FROM (SELECT "
        f"{incoming}) AS i WHERE t.{key} = i.{key} AND ({stored})", rows)
    return inserted


def resolve_errors(connection, built: Rows, table: str) -> None:
    """The errors rows of the keys the table now holds from this write, resolved when the
    stored record came after the failed one (``store.keyed.ERROR_IS_OLDER``)."""
    from ..store.keyed import ERROR_IS_OLDER

    key, run, ordinal, position = (quoted(c) for c in built.schema.key_columns()[:4])
    postgres = connection.dialect.name == "postgresql"
    older = ERROR_IS_OLDER.format(ordinal="(e.message->>'ordinal')::bigint" if postgres
                                  else "json_extract(e.message, '$.ordinal')")
    older = older.replace("i.run_id", f"i.{run}").replace("i.ordinal", f"i.{ordinal}") \
        .replace("i.position", f"i.{position}")
    now = "now()" if postgres else "CURRENT_TIMESTAMP"
    mark = "%s" if postgres else "?"
    run_id = built.rows[0][1] if built.rows else None
    keys = [_plain_key(row[0], postgres) for row in built.rows]
    for low in range(0, len(keys), KEYS_PER_STATEMENT):
        part = keys[low:low + KEYS_PER_STATEMENT]
        connection.exec_driver_sql(
            f"UPDATE errors AS e SET resolved_at = {now} FROM {quoted(table)} AS i "
            f"WHERE e.table_name = {mark} AND e.source_key = i.{key} AND e.resolved_at IS NULL "
            f"AND i.{key} IN ({', '.join([mark] * len(part))}) AND i.{run} = {mark} AND {older}",
            (table, *part, run_id))


def _plain_key(text: str, copied: bool) -> str:
    """A key as written into the row (COPY-escaped on Postgres) back to its value."""
    if not copied or "\\" not in text:
        return text
    return (text.replace("\\\\", "\x00").replace("\\t", "\t").replace("\\n", "\n")
            .replace("\\r", "\r").replace("\x00", "\\"))


def key_holders(connection, table: str, key_column: str, keys: list) -> dict:
    """key -> (run id, ordinal, position) of the record the table holds for it."""
    holders = {}
    for low in range(0, len(keys), KEYS_PER_STATEMENT):
        part = keys[low:low + KEYS_PER_STATEMENT]
        mark = "%s" if connection.dialect.name == "postgresql" else "?"
        rows = connection.exec_driver_sql(
            f"SELECT {quoted(key_column)}, {quoted(names.RUN_ID)}, {quoted(names.ORDINAL)}, "
            f"{quoted(names.POSITION)} FROM {quoted(table)} WHERE {quoted(key_column)} IN "
            f"({', '.join([mark] * len(part))})", tuple(part)).all()
        holders.update({r[0]: (r[1], r[2], r[3]) for r in rows})
    return holders
