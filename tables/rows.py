"""A chunk's records as rows of a dataset table: every scalar field in its typed column
(nested objects flattened, lists as JSON), each value written exactly as it is.

``Rows`` walks the records once. A value whose column the table has is written at once;
the others (a new field, a value that fits neither its column nor an existing variant) are
kept aside with their type: ``wanted`` says which kinds of values each field needs a column
for, and once the schema has them ``fill`` writes the kept values. A row's columns keep their
places while the schema changes under it (a column is known by its field and type, which a
rename keeps; new ones come after).

The walk is the hot path of a typed load. Each field remembers, per Python type of its
values, the column they went to and a writer for it; the writer itself checks what the type
alone does not settle (an integer within 64 bits, a string that is a timestamp) and answers
``MISFIT`` otherwise, so that a value is looked at once in the common case. Values of a
variant column always take the exact path (``_place``).
"""

from decimal import Decimal

from .catalog import Schema
from .names import DATA
from .shapes import compile_shape
from .types import (BIGINT, BOOL, DECIMAL, DOUBLE, EXACT_IN_DOUBLE, INT64, JSON, TEXT, TIMESTAMP,
                    copy_text, is_timestamp, kind_of, sqlite_value, type_of)

NULL = "\\N"  # COPY's null
COMPILE_AFTER = 32  # records placed by the general walk before a walk of their shape is compiled
MAX_COMPILES = 8  # per chunk: records of many shapes take the general walk
MISFIT = object()  # what a field's cached writer answers for a value its column can't hold


class _Field:
    """A field path met in records: its children (for an object), whether it is the table's
    key (written from the key, not from the record), and per Python type of its values the
    base column they go to, as (column index, writer); the first such type also in
    ``kind``, ``index`` and ``writer``, one attribute away (most fields have one type)."""

    __slots__ = ("path", "children", "fast", "key", "kind", "index", "writer", "types", "plain")

    def __init__(self, path: tuple, key: bool):
        self.path, self.children, self.key = path, {}, key
        self.forget()

    def cache(self, kind: type, index: int, writer, column_type: str, plain) -> None:
        """Values of ``kind`` go to column ``index`` (of ``column_type``), through ``writer``
        (which checks what the type does not settle; ``plain`` does not check)."""
        self.fast[kind] = (index, writer)
        self.types[kind], self.plain[kind] = column_type, plain
        if self.kind is None:
            self.kind, self.index, self.writer = kind, index, writer

    def forget(self) -> None:
        self.fast, self.types, self.plain = {}, {}, {}
        self.kind = self.index = self.writer = None


class Rows:
    """The rows of a chunk for one table, built column by column as the schema allows."""

    def __init__(self, schema: Schema, dialect: str):
        self.copy = dialect == "postgresql"
        self.null = NULL if self.copy else None
        self.fields: dict = {}  # key -> _Field, the records' top level
        self.pending: list = []  # (row, field, value type, value) not written yet
        self.rows: list = []
        self.datas: list = []  # each row's ``data``, apart: COPY bytes on Postgres
        self.key_path = tuple(schema.key_path.split(".")) if schema.key_path else None
        self.slots: list = []  # (path, type) of each typed column, in the rows' order
        self.moves: list = []  # fields whose values ``catalog.settle`` moves at the end
        self.use(schema)

    def use(self, schema: Schema) -> None:
        """Write into the columns of ``schema`` from now on (it may have new ones, and
        renamed ones: each keeps its place in the rows)."""
        self.schema = schema
        self.fixed = len(schema.key_columns())
        known = set(self.slots)
        self.slots += [(c.path, c.type) for c in schema.columns if (c.path, c.type) not in known]
        self.width = self.fixed + len(self.slots)
        self.names = [schema.fields[path][kind].name if kind in schema.fields.get(path, {})
                      else None for path, kind in self.slots]
        self.index = {name: self.fixed + n for n, name in enumerate(self.names)
                      if name is not None}
        self.writers = {c.name: copy_text(c.type) if self.copy else sqlite_value(c.type)
                        for c in schema.columns}
        for field in self._all_fields(self.fields):
            field.forget()
        self.compiled, self.walked, self.compiles = None, 0, 0

    def add(self, own: list, record: dict, data) -> None:
        """A record's row: ``own`` are its values of the table's own columns (key or source
        key, run, [ordinal,] position), ``data`` its JSON, already written."""
        row = own + [self.null] * (self.width - self.fixed)
        self.rows.append(row)
        self.datas.append(data)
        mark = len(self.pending)
        if self.compiled is None or not self.compiled(record, row):
            del self.pending[mark:]  # what a compiled walk kept aside before it gave up
            self._walk(record, self.fields, (), row)
            self._learn(record)

    def _learn(self, record: dict) -> None:
        """After some records the general walk placed, compile a walk for the shape of the
        last one (see ``shapes``); a few times per chunk at most."""
        self.walked += 1
        if self.walked % COMPILE_AFTER == 0 and self.compiles < MAX_COMPILES:
            self.compiles += 1
            self.compiled = compile_shape(record, self.fields, self.copy, MISFIT, self._place)

    def _walk(self, record: dict, fields: dict, prefix: tuple, row: list) -> None:
        for key, value in record.items():
            field = fields.get(key)
            if field is None:
                path = prefix + (key,)
                field = fields[key] = _Field(path, path == self.key_path)
            kind = type(value)
            if kind is field.kind:
                text = field.writer(value)
                if text is not MISFIT:
                    row[field.index] = text
                    continue
            elif kind is dict:
                if value:
                    self._walk(value, field.children, field.path, row)
                continue
            else:
                target = field.fast.get(kind)
                if target is not None:
                    text = target[1](value)
                    if text is not MISFIT:
                        row[target[0]] = text
                        continue
            if value is not None and not field.key:
                self._place(field, kind, value, row)

    def _place(self, field: _Field, kind: type, value, row: list) -> None:
        """The exact path: the value's column by its type, or kept aside for a new column.
        A base column's writer is cached for the value's Python type. (An object where a
        compiled walk expected a value is walked.)"""
        if kind is dict:
            if value:
                self._walk(value, field.children, field.path, row)
            return
        value_type = type_of(value)
        column = self.schema.column_for(field.path, value_type, value)
        if column is None:
            self.pending.append((row, field, value_type, value))
            return
        index, writer = self.index[column.name], self.writers[column.name]
        row[index] = writer(value)
        if column.variant_of is None and kind not in field.fast and \
                self.schema.one_column_for(field.path, kind):
            field.cache(kind, index, _guarded(writer, column.type, kind), column.type, writer)

    def wanted(self, schema: Schema) -> dict:
        """path -> the kinds (``types.kind_of``) of the kept values that have no column in
        ``schema``."""
        wanted: dict = {}
        for _, field, value_type, value in self.pending:
            if schema.column_for(field.path, value_type, value) is None:
                wanted.setdefault(field.path, set()).add(kind_of(value_type, value))
        return wanted

    def fill(self, schema: Schema) -> None:
        """Write the kept values into the columns ``schema`` now has (those beyond the column
        limit stay in ``data`` only)."""
        self.use(schema)
        for row in self.rows:
            if len(row) < self.width:
                row.extend([self.null] * (self.width - len(row)))
        pending, self.pending = self.pending, []
        for row, field, value_type, value in pending:
            column = schema.column_for(field.path, value_type, value)
            if column is not None:
                row[self.index[column.name]] = self.writers[column.name](value)

    def take(self) -> tuple:
        """(rows, their data) built so far, handed over (all their values placed)."""
        taken = self.rows, self.datas
        self.rows, self.datas = [], []
        return taken

    def close(self) -> None:
        """Let the rows go: a compiled walk refers back to this object (``place``), a cycle
        the tuned collector would leave for long."""
        self.compiled, self.rows, self.datas, self.pending, self.fields = None, [], [], [], {}

    def columns(self) -> list:
        """The names of the columns of a row and its data, in order."""
        return self.schema.key_columns() + self.names + [DATA]

    @staticmethod
    def _all_fields(fields: dict):
        for field in fields.values():
            yield field
            yield from Rows._all_fields(field.children)


def _guarded(writer, column_type: str, kind: type):
    """``writer`` for values of Python type ``kind`` in a base column of ``column_type``,
    checking what the type alone does not settle: ``MISFIT`` for a value the column can't
    hold (it then takes the exact path, to a variant)."""
    if kind is int and column_type == BIGINT:
        low, high = INT64
    elif kind is int and column_type == DOUBLE:
        low, high = -EXACT_IN_DOUBLE, EXACT_IN_DOUBLE
    elif kind is str and column_type == TIMESTAMP:
        return lambda value: writer(value) if is_timestamp(value) else MISFIT
    elif (kind, column_type) in _SETTLED:
        return writer
    else:
        return lambda value: MISFIT
    return lambda value: writer(value) if low <= value <= high else MISFIT


# (Python type, column type) pairs where every value of the type fits the column.
_SETTLED = {(str, TEXT), (float, DOUBLE), (bool, BOOL), (list, JSON), (Decimal, DECIMAL)}
