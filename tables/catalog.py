"""The catalog of dataset tables (``ingest_tables``, ``ingest_columns``) and the DDL that
follows it: a table created on first use, columns added as new fields appear.

Schema changes are made inside the transaction of the chunk that needs them, together with
its rows and DBOS's checkpoint: a crash loses both or neither. A chunk takes its table's
``lock`` (an advisory transaction lock on Postgres, the write lock on SQLite) before it reads
the schema it writes with, and holds it to its commit: two chunks, or two workers, that find
the same new field add its column once, and no chunk writes by a column name that another
has just renamed.

The schema is a function of the set of kinds of values each field has had (``types.layout``),
so it does not depend on which chunk commits first. A kind that changes a field's layout
changes it by renames (the column that carries the field's name may become a ``__v_TYPE``
variant and another take its name) and, where a wider column now takes values that sit in a
narrower one (timestamps in ``text``, integers up to 2^53 in ``double``), by moving them
exactly (``settle``) and dropping the emptied column. Columns are numbered by field path,
then by type (``PRECEDENCE``: the column carrying the name first).
"""

import hashlib
import json
from dataclasses import dataclass, field
from typing import Optional

from sqlalchemy import delete, func, select, update

from ..errors import UsageError
from ..models import DatasetColumn, DatasetHint, DatasetTable
from . import names
from .names import quoted
from .types import (BIGINT, DOUBLE, EXACT_IN_DOUBLE, PRECEDENCE, TEXT, TIMESTAMP, TYPES,
                    base_type, column_type_for, hinted_layout, sql_type)

MAX_COLUMNS = 1000  # typed columns per table; later fields stay in ``data`` only


@dataclass(frozen=True)
class Column:
    name: str
    path: tuple  # the field's keys, from the record's top
    type: str
    variant_of: Optional[str] = None


@dataclass
class Schema:
    """A dataset table as the catalog knows it; ``exists`` False before its first load."""

    table: str
    key_path: Optional[str] = None
    key_column: Optional[str] = None
    exists: bool = False
    columns: list = field(default_factory=list)
    hints: dict = field(default_factory=dict)  # path -> the type --column asked for

    def __post_init__(self):
        self.bases = {c.path: c for c in self.columns if c.variant_of is None}
        self.fields: dict = {}  # path -> {type: Column}
        for column in self.columns:
            self.fields.setdefault(column.path, {})[column.type] = column

    @property
    def names(self) -> set:
        taken = {c.name for c in self.columns} | set(names.SYSTEM_COLUMNS)
        return taken | ({self.key_column} if self.key_column else set())

    def column_for(self, path: tuple, value_type: str, value) -> Optional[Column]:
        """The column a value of this field goes to, if the table has it yet."""
        columns = self.fields.get(path)
        if columns is None:
            return None
        found = column_type_for(value_type, value, columns, self.hints.get(path))
        return None if found is None else columns[found]

    def one_column_for(self, path: tuple, kind: type) -> bool:
        """Whether every value of Python type ``kind`` that the field's base column takes
        goes there (a cache of the base column per type is right): not so in a table made
        before types.layout, whose ``bigint`` or ``timestamp`` base has a ``double`` or
        ``text`` variant that takes some of them."""
        columns, base = self.fields.get(path, {}), self.bases.get(path)
        if base is None or path in self.hints:  # a hinted field's values take the exact path
            return False
        wider = {int: DOUBLE, str: TEXT}.get(kind)
        return wider is None or wider not in columns or base.type == wider

    def key_columns(self) -> list:
        """The table's own columns but ``data`` (written last), in the order rows have them."""
        first = [self.key_column, names.RUN_ID, names.ORDINAL] if self.key_column \
            else [names.SOURCE_KEY, names.RUN_ID]
        return first + [names.POSITION]


def read_schema(connection, table: str) -> Schema:
    """The table's schema (a connection or a session; ``exists`` False if there is none)."""
    entry = connection.execute(select(DatasetTable.key_path, DatasetTable.key_column)
                               .where(DatasetTable.name == table)).first()
    hints = hints_in(connection, table)
    if entry is None:
        return Schema(table, hints=hints)
    rows = connection.execute(
        select(DatasetColumn.name, DatasetColumn.path, DatasetColumn.type,
               DatasetColumn.variant_of)
        .where(DatasetColumn.table_name == table).order_by(DatasetColumn.number)).all()
    columns = [Column(r.name, tuple(json.loads(r.path)), r.type, r.variant_of) for r in rows]
    return Schema(table, entry.key_path, entry.key_column, True, columns, hints)


def check_key(schema: Schema, key_path: str) -> None:
    """A table keeps the key it was created with: rows keyed by position and rows keyed by a
    field never meet, and neither do two keys."""
    if not schema.exists or (schema.key_path or "") == key_path:
        return
    had = f"--key {schema.key_path}" if schema.key_path else "no --key"
    asked = f"--key {key_path}" if key_path else "no --key"
    raise UsageError(f"table {schema.table} was created with {had}; load into it with the same, "
                     f"or into another --table (this load has {asked})")


# -- column hints (--column FIELD=TYPE) -----------------------------------------------------------
def hints_of(specs: tuple, table: Optional[str], key: Optional[str]) -> tuple:
    """``--column`` values as ``((path, type), ...)``, sorted; a ``UsageError`` (exit 2) for
    one without --table, malformed, of an unknown type, on the key or given twice."""
    if specs and not table:
        raise UsageError("--column is for a dataset table: add --table NAME")
    found = {}
    for spec in specs:
        path, equals, type_name = spec.partition("=")
        path, type_name = path.strip(), type_name.strip().lower()
        if not equals or not all(path.split(".")) or type_name not in TYPES:
            raise UsageError(f"--column {ascii(spec)[1:-1][:80]}: expected FIELD=TYPE (a field "
                             f"or a dotted path, e.g. total=decimal), TYPE one of "
                             f"{', '.join(TYPES)}")
        if key and path == key:
            raise UsageError(f"--column {spec}: {path} is the table's key (--key); its column "
                             "is always text")
        if found.get(path, type_name) != type_name:
            raise UsageError(f"--column {path}: given as {found[path]} and as {type_name}; "
                             "give one")
        found[path] = type_name
    return tuple(sorted(found.items()))


def hints_in(connection, table: str) -> dict:
    """The table's hints: field path (a tuple of keys) -> type."""
    return {tuple(json.loads(r.path)): r.type for r in connection.execute(
        select(DatasetHint.path, DatasetHint.type).where(DatasetHint.table_name == table))}


def check_table(engine, table: str, key: str, hints: tuple = ()) -> None:
    """``UsageError`` if the dataset table exists with another key than a load's, or with a
    column of another type than one of its ``--column`` hints (before any work)."""
    with engine.connect() as connection:
        schema = read_schema(connection, table)
    check_key(schema, key)
    check_hints(schema, hints)


def check_hints(schema: Schema, hints: tuple) -> None:
    """A hint can't change a column the table has: ``UsageError`` naming it and the ways on."""
    for path, type_name in hints:
        column = contradicted(schema, (path, type_name))
        if column is not None:
            raise UsageError(
                f"--column {path}={type_name}: table {schema.table} has {path} as column "
                f"{column.name} of type {column.type} already, and a column's type never changes; "
                f"drop --column {path}, or load into a new --table")


def contradicted(schema: Schema, hint: tuple) -> Optional[Column]:
    """The table's column of the hint's field, if it has one of another type."""
    column = schema.bases.get(tuple(hint[0].split(".")))
    return column if column is not None and column.type != hint[1] else None


def keep_hints(session, table: str, hints: tuple, run_id: str) -> None:
    """Record the run's hints for the table (a newer one of a field replaces the older: its
    column does not exist yet, ``check_hints`` made sure)."""
    for path, type_name in hints:
        key = json.dumps(path.split("."))
        kept = session.get(DatasetHint, (table, key))
        if kept is None:
            session.add(DatasetHint(table_name=table, path=key, type=type_name, added_by=run_id))
        elif kept.type != type_name:
            kept.type, kept.added_by = type_name, run_id
    session.flush()


# -- changing the schema -------------------------------------------------------------------------
def lock(session, table: str, shared: bool = False) -> None:
    """Hold the table's schema for the rest of this transaction: ``shared`` to write rows by
    the column names read under it (writers go on side by side; no rename comes between),
    else to change it. On Postgres, a writer that must change the schema asks for the
    exclusive lock while it holds the shared one: it waits for the other writers to commit
    (two such at once are a deadlock, which Postgres breaks and the chunk's transaction
    retries)."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        digest = hashlib.blake2b(f"durable-ingest|table|{table}".encode(), digest_size=8).digest()
        function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        connection.exec_driver_sql(f"SELECT {function}(%s)",
                                   (int.from_bytes(digest, "big", signed=True),))
    else:  # the first write takes SQLite's one write lock, until commit
        connection.exec_driver_sql("UPDATE ingest_tables SET name = name WHERE name = ?", (table,))


def create_table(session, table: str, key_path: str, run_id: str) -> Schema:
    """The table, created if it is not there yet (under the lock); its schema."""
    lock(session, table)
    schema = read_schema(session.connection(), table)
    check_key(schema, key_path)
    if schema.exists:
        return schema
    dialect = session.connection().dialect.name
    key_column = names.key_column(key_path)
    first = (f"{quoted(key_column)} text PRIMARY KEY, {quoted(names.RUN_ID)} text NOT NULL, "
             f"{quoted(names.ORDINAL)} bigint NOT NULL" if key_column else
             f"{quoted(names.SOURCE_KEY)} text PRIMARY KEY, {quoted(names.RUN_ID)} text NOT NULL")
    loaded_at = "timestamp with time zone NOT NULL DEFAULT now()" if dialect == "postgresql" \
        else "TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP"
    session.connection().exec_driver_sql(
        f"CREATE TABLE IF NOT EXISTS {quoted(table)} ({first}, "
        f"{quoted(names.POSITION)} bigint NOT NULL, {quoted(names.LOADED_AT)} {loaded_at}, "
        f"{quoted(names.DATA)} {sql_type(dialect, 'json')} NOT NULL)")
    session.add(DatasetTable(name=table, key_path=key_path or None, key_column=key_column,
                             created_by=run_id))
    session.flush()
    return Schema(table, key_path or None, key_column, True, hints=schema.hints)


def prepare(table: str, key_path: str, run_id: str, hints: tuple = ()) -> None:
    """A run's first step on its table (a datasource transaction): create it if needed and
    keep its column hints (those whose column came since the command checked them with
    another type are not kept: the column is what it is)."""
    from ..store.datasource import session

    schema = create_table(session(), table, key_path, run_id)
    keep_hints(session(), table, tuple(h for h in hints if not contradicted(schema, h)), run_id)


@dataclass
class Change:
    """What ``plan`` decided for a schema: its columns after, the renames and the additions,
    and the fields whose values ``settle`` moves once the chunk's rows are written."""

    schema: Schema
    renames: list = field(default_factory=list)  # (old name, new name, variant_of)
    added: list = field(default_factory=list)  # Column
    moves: list = field(default_factory=list)  # paths


def plan(schema: Schema, wanted: dict) -> Change:
    """The schema once the fields of ``wanted`` (path -> kinds of values that have no column
    yet) have had those kinds too: for each field, the columns of ``types.layout`` of all its
    kinds, the one of ``base_type`` carrying its name. A pure function, fields in path order."""
    taken, columns = schema.names, list(schema.columns)
    change = Change(schema)
    for path in sorted(wanted):
        have = schema.fields.get(path, {})
        kinds = set(wanted[path]) | set(have)  # a bigint column may hold any integer
        hint = schema.hints.get(path)
        target = hinted_layout(kinds, hint)
        new = [t for t in PRECEDENCE if t in target and t not in have]
        if not new or len(columns) + len(new) > MAX_COLUMNS:
            continue  # beyond the limit, the field's values stay in ``data`` only
        base, old = hint or base_type(target), schema.bases.get(path)
        stem = old.name if old is not None else \
            names.numbered(names.joined(tuple(names.column_name(key) for key in path)), taken)
        taken.add(stem)
        renamed = {}
        if old is not None and old.type != base:
            aside = names.numbered(names.variant_name(stem, old.type), taken)
            taken.add(aside)
            renamed[old.type] = Column(aside, path, old.type, stem)
            change.renames.append((stem, aside, stem))
            if base in have:
                taken.discard(have[base].name)
                renamed[base] = Column(stem, path, base, None)
                change.renames.append((have[base].name, stem, None))
        for type_name in new:
            name = stem if type_name == base else \
                names.numbered(names.variant_name(stem, type_name), taken)
            taken.add(name)
            column = Column(name, path, type_name, None if type_name == base else stem)
            change.added.append(column)
            columns.append(column)
        columns = [renamed.get(c.type, c) if c.path == path else c for c in columns]
        if (TEXT in new and TIMESTAMP in have) or (DOUBLE in new and BIGINT in have):
            change.moves.append(path)
    change.schema = Schema(schema.table, schema.key_path, schema.key_column, True,
                           ordered(columns), schema.hints)
    return change


def ordered(columns: list) -> list:
    """The columns in their stable order: by field path, then by type (``PRECEDENCE``)."""
    return sorted(columns, key=lambda c: (list(c.path), PRECEDENCE.index(c.type)))


def evolve(session, schema: Schema, wanted: dict, run_id: str) -> Change:
    """Change the table as ``plan`` says (under ``lock``, with ``schema`` read under it):
    renames first, then new columns, the catalog renumbered. Values to move are moved by
    ``settle``, after the chunk's rows."""
    change = plan(schema, wanted)
    if not change.renames and not change.added:
        return change
    connection = session.connection()
    dialect = connection.dialect.name
    table = quoted(schema.table)
    for old, new, variant_of in change.renames:
        connection.exec_driver_sql(f"ALTER TABLE {table} RENAME COLUMN {quoted(old)} TO "
                                   f"{quoted(new)}")
        session.execute(update(DatasetColumn).where(
            DatasetColumn.table_name == schema.table, DatasetColumn.name == old)
            .values(name=new, variant_of=variant_of))
    for column in change.added:
        connection.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {quoted(column.name)} "
                                   f"{sql_type(dialect, column.type)}")
        session.add(DatasetColumn(table_name=schema.table, name=column.name, number=0,
                                  path=json.dumps(list(column.path)), type=column.type,
                                  variant_of=column.variant_of, added_by=run_id))
    session.flush()
    renumber(session, change.schema)
    return change


def renumber(session, schema: Schema) -> None:
    """The catalog's ``number`` of each column: its place in ``schema.columns``."""
    for number, column in enumerate(schema.columns):
        session.execute(update(DatasetColumn).where(
            DatasetColumn.table_name == schema.table, DatasetColumn.name == column.name)
            .values(number=number))


def settle(session, schema: Schema, paths: list) -> Schema:
    """After a chunk's rows: move the values that a wider column of their field now takes
    (timestamps into ``text``, integers up to 2^53 into ``double``), exactly, and drop the
    column they leave empty. Under ``lock``; returns the schema as it is now."""
    connection = session.connection()
    postgres = connection.dialect.name == "postgresql"
    table, dropped = quoted(schema.table), set()
    for path in sorted(set(paths)):
        columns = schema.fields.get(path, {})
        if TEXT in columns and TIMESTAMP in columns:
            text, stamp = quoted(columns[TEXT].name), quoted(columns[TIMESTAMP].name)
            if postgres:  # the text as written, from the record: timestamptz keeps the instant
                connection.exec_driver_sql(
                    f"UPDATE {table} SET {text} = {quoted(names.DATA)} #>> %s "
                    f"WHERE {stamp} IS NOT NULL", (list(path),))
            else:  # SQLite's timestamp column keeps the text as written
                connection.exec_driver_sql(
                    f"UPDATE {table} SET {text} = {stamp} WHERE {stamp} IS NOT NULL")
            dropped.add(columns[TIMESTAMP].name)
        if DOUBLE in columns and BIGINT in columns:
            double, bigint = quoted(columns[DOUBLE].name), quoted(columns[BIGINT].name)
            cast = "double precision" if postgres else "REAL"
            connection.exec_driver_sql(
                f"UPDATE {table} SET {double} = CAST({bigint} AS {cast}), {bigint} = NULL "
                f"WHERE {bigint} BETWEEN {-EXACT_IN_DOUBLE} AND {EXACT_IN_DOUBLE}")
            if connection.exec_driver_sql(
                    f"SELECT 1 FROM {table} WHERE {bigint} IS NOT NULL LIMIT 1").first() is None:
                dropped.add(columns[BIGINT].name)
    if not dropped:
        return schema
    for name in sorted(dropped):
        connection.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {quoted(name)}")
        session.execute(delete(DatasetColumn).where(DatasetColumn.table_name == schema.table,
                                                    DatasetColumn.name == name))
    schema = Schema(schema.table, schema.key_path, schema.key_column, True,
                    [c for c in schema.columns if c.name not in dropped], schema.hints)
    renumber(session, schema)
    return schema


def tables(connection, table: Optional[str] = None) -> list:
    """The dataset tables (or one), with their columns and who added them, for ``ingest
    schema``: [{name, key, created_by, created_at, columns: [...]}]."""
    query = select(DatasetTable.name, DatasetTable.key_path, DatasetTable.key_column,
                   DatasetTable.created_by, DatasetTable.created_at).order_by(DatasetTable.name)
    if table:
        query = query.where(DatasetTable.name == table)
    found = []
    for entry in connection.execute(query).all():
        hints = hints_in(connection, entry.name)
        columns = connection.execute(
            select(DatasetColumn.name, DatasetColumn.type, DatasetColumn.path,
                   DatasetColumn.variant_of, DatasetColumn.added_by, DatasetColumn.added_at)
            .where(DatasetColumn.table_name == entry.name).order_by(DatasetColumn.number)).all()
        found.append({"table": entry.name, "key": entry.key_path, "key_column": entry.key_column,
                      "created_by": entry.created_by, "created_at": _iso(entry.created_at),
                      "columns": [{"name": c.name, "type": c.type, "path": json.loads(c.path),
                                   "variant_of": c.variant_of, "added_by": c.added_by,
                                   "added_at": _iso(c.added_at),
                                   "hinted": not c.variant_of
                                   and hints.get(tuple(json.loads(c.path))) == c.type}
                                  for c in columns]})
    return found


def row_count(connection, table: str) -> int:
    from sqlalchemy import table as table_clause

    return connection.execute(select(func.count()).select_from(table_clause(table))).scalar()


def _iso(moment) -> Optional[str]:
    return moment.isoformat() if hasattr(moment, "isoformat") else moment
