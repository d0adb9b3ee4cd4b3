"""Transformed records into a dataset table (``--table NAME``), in the chunk's transaction:
typed columns added first where new fields need them (``catalog``), then the rows (COPY on
Postgres, one executemany on SQLite), or, under the records' own keys, an upsert decided by
``--on-conflict`` exactly as ``tasks``'s is (``store.keyed``).

A row is ``(fingerprint, position, JSON bytes, record)``, or with a key ``(key, ordinal,
position, JSON bytes, record)``: the JSON is the ``data`` column, the record is flattened into
the typed ones.
"""

import itertools
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
    catalog.lock(session, table, shared=True)  # to commit: no rename between this read and our rows
    schema = catalog.read_schema(connection, table)
    if not schema.exists:
        schema = catalog.create_table(session, table, key_path, run_id)
    if not key_path:
        return counts(stream(session, schema, run_id, rows), 0, on_conflict, key_path)
    rows, duplicates = one_per_key(rows, on_conflict)
    built = build(session, schema, run_id, rows)
    try:
        if not built.rows:
            return counts(0, duplicates, on_conflict, key_path)
        inserted = upsert(connection, built, replace_condition(
            on_conflict, redrive, (names.RUN_ID, names.ORDINAL, names.POSITION)))
        resolve_errors(connection, built, table)
        catalog.settle(session, built.schema, built.moves)
        return counts(inserted, len(built.rows) + duplicates - inserted, on_conflict, key_path)
    finally:
        built.close()


def counts(inserted: int, existing: int, on_conflict: str, key_path: str) -> dict:
    if key_path and on_conflict == UPDATE:
        return {"tasks": inserted, "updated": existing, "skipped": 0}
    return {"tasks": inserted, "updated": 0, "skipped": existing}


def stream(session, schema: Schema, run_id: str, rows: Iterable[tuple]) -> int:
    """Rows keyed by position, a batch at a time: each batch's new columns added before it
    is sent, and on Postgres one COPY for as long as the columns stay the same, so the server
    parses a batch while the next is built; returns how many rows."""
    connection = session.connection()
    built = Rows(schema, connection.dialect.name)
    own = _own_values(connection.dialect.name == "postgresql", False, run_id)
    data = _data_value(connection.dialect.name == "postgresql")
    written, copy = 0, Copier(connection)
    rows = iter(rows)
    try:
        while True:
            for row in itertools.islice(rows, COPY_BATCH_ROWS):
                built.add(own(row), row[-1], data(row[-2]))
            if not built.rows:
                copy.close()  # the values to move are moved after the last COPY
                catalog.settle(session, built.schema, built.moves)
                return written
            if built.pending:
                copy.close()  # the schema changes between two COPY commands, never in one
                evolve(session, built, run_id)
            written += copy.send(built)
    finally:
        copy.close()
        built.close()


def build(session, schema: Schema, run_id: str, rows: Iterable[tuple]) -> Rows:
    """All the rows, every value in its column, the columns new fields need added first."""
    connection = session.connection()
    built = Rows(schema, connection.dialect.name)
    copy = connection.dialect.name == "postgresql"
    own, data = _own_values(copy, schema.key_column is not None, run_id), _data_value(copy)
    for row in rows:
        built.add(own(row), row[-1], data(row[-2]))
    if built.pending:
        evolve(session, built, run_id)
    return built


def evolve(session, built: Rows, run_id: str) -> None:
    """Change the schema as the kept values need (under the table's lock, the catalog read
    again under it), then place those values; the values to move are moved by
    ``catalog.settle`` once every row is written."""
    table = built.schema.table
    catalog.lock(session, table)
    schema = catalog.read_schema(session.connection(), table)
    change = catalog.evolve(session, schema, built.wanted(schema), run_id)
    built.moves.extend(change.moves)
    built.fill(change.schema)


class Copier:
    """The rows of ``Rows`` into its table, a batch at a time: COPY on Postgres (one, open for
    as long as the columns stay the same), executemany on SQLite."""

    def __init__(self, connection):
        self.connection, self.copy, self.context, self.columns = connection, None, None, None

    def send(self, built: Rows) -> int:
        (rows, datas), columns = built.take(), built.columns()
        if self.connection.dialect.name != "postgresql":
            return insert(self.connection, columns, quoted(built.schema.table), rows, datas)
        if columns != self.columns:
            self.close()
            listed = ", ".join(quoted(c) for c in columns)
            cursor = self.connection.connection.driver_connection.cursor()
            self.context = cursor.copy(f"COPY {quoted(built.schema.table)} ({listed}) FROM STDIN")
            self.copy, self.columns = self.context.__enter__(), columns
        self.copy.write(copy_lines(rows, datas))
        return len(rows)

    def close(self) -> None:
        if self.context is not None:
            context, self.context, self.copy, self.columns = self.context, None, None, None
            context.__exit__(None, None, None)


def _own_values(copy: bool, keyed: bool, run_id: str):
    """A function giving a row's values of the table's own columns (key or source key, run,
    [ordinal,] position), as COPY text on Postgres."""
    if copy and keyed:
        return lambda row: [_copy_string(row[0]), run_id, str(row[1]), str(row[2])]
    if copy:
        return lambda row: [f"{row[0]}:{row[1]}", run_id, str(row[1])]
    if keyed:
        return lambda row: [row[0], run_id, row[1], row[2]]
    return lambda row: [f"{row[0]}:{row[1]}", run_id, row[1]]


def _data_value(copy: bool):
    """A function giving a row's ``data`` (its JSON bytes) as written: COPY bytes on Postgres
    (orjson's JSON has no raw tab or newline: only backslashes to escape), text on SQLite."""
    if copy:
        return lambda data: data.replace(b"\\", b"\\\\")
    return bytes.decode


def copy_lines(rows: list, datas: list) -> bytes:
    """COPY text of rows whose ``data`` comes last, apart (bytes: never decoded)."""
    return b"".join([("\t".join(row) + "\t").encode() + data + b"\n"
                     for row, data in zip(rows, datas)])


def insert(connection, columns: list, target: str, rows: list, datas: list) -> int:
    """``rows`` with their ``datas`` into ``target`` (a name as SQL writes it: COPY on
    Postgres, an executemany on SQLite); how many."""
    listed = ", ".join(quoted(c) for c in columns)
    if connection.dialect.name != "postgresql":
        marks = ", ".join("?" * len(columns))
        connection.exec_driver_sql(f"INSERT INTO {target} ({listed}) VALUES ({marks})",
                                   [(*row, data) for row, data in zip(rows, datas)])
        return len(rows)
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(f"COPY {target} ({listed}) FROM STDIN") as copy:
        for low in range(0, len(rows), COPY_BATCH_ROWS):
            high = low + COPY_BATCH_ROWS
            copy.write(copy_lines(rows[low:high], datas[low:high]))
    return len(rows)


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
        insert(connection, built.columns(), INCOMING, built.rows, built.datas)
        result = connection.exec_driver_sql(
            f"INSERT INTO {table} AS t ({listed}) SELECT {listed} FROM {INCOMING} "
            f"ON CONFLICT ({key}) DO UPDATE SET {replaced} WHERE {condition} RETURNING (xmax = 0)")
        return sum(1 for (new,) in result if new)
    marks = ", ".join("?" * len(columns))
    rows = [(*row, data) for row, data in zip(built.rows, built.datas)]
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
