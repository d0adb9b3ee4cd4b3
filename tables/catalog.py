"""The catalog of dataset tables (``ingest_tables``, ``ingest_columns``) and the DDL that
follows it: a table created on first use, columns added as new fields appear.

Schema changes are made inside the transaction of the chunk that needs them, together with
its rows and DBOS's checkpoint: a crash loses both or neither. They are serialised per table
(``lock``: an advisory transaction lock on Postgres, the write lock on SQLite), and the
catalog is read again under the lock, so two chunks, or two workers, that find the same new
field at once add its column once: the second finds it there and writes into it.
"""

import hashlib
import json
from dataclasses import dataclass, field
from typing import Optional

from sqlalchemy import func, select

from ..errors import UsageError
from ..models import DatasetColumn, DatasetHint, DatasetTable
from . import names
from .names import quoted
from .types import TYPES, fits, sql_type

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
        self.variants = {(c.path, c.type): c for c in self.columns if c.variant_of is not None}

    @property
    def names(self) -> set:
        taken = {c.name for c in self.columns} | set(names.SYSTEM_COLUMNS)
        return taken | ({self.key_column} if self.key_column else set())

    def column_for(self, path: tuple, value_type: str, value) -> Optional[Column]:
        """The column a value of this field goes to, if the table has it yet."""
        base = self.bases.get(path)
        if base is not None and fits(base.type, value_type, value):
            return base
        return self.variants.get((path, value_type))

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
def lock(session, table: str) -> None:
    """Hold the table's schema for the rest of this transaction."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        digest = hashlib.blake2b(f"durable-ingest|table|{table}".encode(), digest_size=8).digest()
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)",
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
    return Schema(table, key_path or None, key_column, True)


def prepare(table: str, key_path: str, run_id: str, hints: tuple = ()) -> None:
    """A run's first step on its table (a datasource transaction): create it if needed and
    keep its column hints (those whose column came since the command checked them with
    another type are not kept: the column is what it is)."""
    from ..store.datasource import session

    schema = create_table(session(), table, key_path, run_id)
    keep_hints(session(), table, tuple(h for h in hints if not contradicted(schema, h)), run_id)


def add_columns(session, schema: Schema, wanted: list, run_id: str) -> Schema:
    """Add the columns ``wanted`` (``(path, type, variant_of)``; None for a base column)
    that the table still lacks; returns the schema as it is now. Call under ``lock``, with
    ``schema`` read under it."""
    connection = session.connection()
    dialect = connection.dialect.name
    taken, columns = schema.names, list(schema.columns)
    for path, type_name, base in wanted:
        if len(columns) >= MAX_COLUMNS:
            break
        stem = names.joined(tuple(names.column_name(key) for key in path)) if base is None \
            else names.variant_name(base, type_name)
        column = Column(names.numbered(stem, taken), path, type_name, base)
        connection.exec_driver_sql(f"ALTER TABLE {quoted(schema.table)} ADD COLUMN "
                                   f"{quoted(column.name)} {sql_type(dialect, type_name)}")
        session.add(DatasetColumn(table_name=schema.table, name=column.name,
                                  number=len(columns), path=json.dumps(list(path)),
                                  type=type_name, variant_of=base, added_by=run_id))
        taken.add(column.name)
        columns.append(column)
    session.flush()
    return Schema(schema.table, schema.key_path, schema.key_column, True, columns)


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
