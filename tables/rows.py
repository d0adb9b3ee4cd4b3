"""A chunk's records as rows of a dataset table: every scalar field in its typed column
(nested objects flattened, lists as JSON), each value written exactly as it is.

``Rows`` walks the records once. A value whose column the table has is written at once;
the others (a new field, a value that fits neither its column nor an existing variant) are
kept aside with their type: ``wanted_bases`` and ``wanted_variants`` say which columns to
add, and once they are there ``fill`` writes the kept values. The walk caches, per field path and type, where its values
go, so that the common case (known fields, fitting values) costs a dictionary lookup and a
conversion per value.
"""

from .catalog import Schema
from .types import copy_text, new_column_type, sqlite_value, type_of

NULL = "\\N"  # COPY's null


class _Field:
    """A field path met in records: its children (for an object) and where each type of its
    values goes: (column index, writer), or False where the table has no column yet."""

    __slots__ = ("path", "children", "targets")

    def __init__(self, path: tuple):
        self.path, self.children, self.targets = path, {}, {}


class Rows:
    """The rows of a chunk for one table, built column by column as the schema allows."""

    def __init__(self, schema: Schema, dialect: str):
        self.copy = dialect == "postgresql"
        self.null = NULL if self.copy else None
        self.fields: dict = {}  # key -> _Field, the records' top level
        self.pending: list = []  # (row, field, value type, value) not written yet
        self.rows: list = []
        self.skip = tuple(schema.key_path.split(".")) if schema.key_path else None
        self.use(schema)

    def use(self, schema: Schema) -> None:
        """Write into the columns of ``schema`` from now on (it may have new ones)."""
        self.schema = schema
        self.fixed = len(schema.key_columns())
        self.width = self.fixed + len(schema.columns)
        self.index = {c.name: self.fixed + n for n, c in enumerate(schema.columns)}
        self.writers = [None] * self.fixed + [
            copy_text(c.type) if self.copy else sqlite_value(c.type) for c in schema.columns]
        for field in self._all_fields(self.fields):
            field.targets = {}

    def add(self, own: list, record: dict) -> None:
        """A record's row: ``own`` are its values of the table's own columns (key or source
        key, run, [ordinal,] position, data), already written."""
        row = own + [self.null] * (self.width - self.fixed)
        self.rows.append(row)
        self._walk(record, self.fields, (), row)

    def _walk(self, record: dict, fields: dict, prefix: tuple, row: list) -> None:
        for key, value in record.items():
            field = fields.get(key)
            if field is None:
                field = fields[key] = _Field(prefix + (key,))
            if type(value) is dict:
                if value:
                    self._walk(value, field.children, field.path, row)
                continue
            if value is None or field.path == self.skip:
                continue
            value_type = type_of(value)
            target = field.targets.get(value_type)
            if target is None:
                target = field.targets[value_type] = self._target(field, value_type, value)
            if target:
                text = target[1](value)
                if text is not _MISFIT:
                    row[target[0]] = text
                    continue
                target = self._target(field, value_type, value, cache=False)
                if target:
                    row[target[0]] = target[1](value)
                    continue
            self.pending.append((row, field, value_type, value))

    def _target(self, field: _Field, value_type: str, value, cache: bool = True):
        """(index, writer) of the column this value goes to, or False (none yet). A double
        column's writer refuses integers beyond 2^53 (``_MISFIT``): they go to a variant."""
        column = self.schema.column_for(field.path, value_type, value)
        if column is None:
            return False
        writer = self.writers[self.index[column.name]]
        if cache and column.type == "double" and value_type == "bigint":
            writer = _exact_in_double(writer)
        return self.index[column.name], writer

    def wanted_bases(self, schema: Schema) -> list:
        """New fields' columns: ``(path, type, None)``, the type from the values seen."""
        seen: dict = {}
        for _, field, value_type, _ in self.pending:
            if field.path not in schema.bases:
                seen.setdefault(field.path, []).append(value_type)
        return [(path, new_column_type(types), None) for path, types in seen.items()]

    def wanted_variants(self, schema: Schema) -> list:
        """Variant columns for the kept values that fit neither their field's column nor a
        variant the table has: ``(path, type, base column)``."""
        wanted: dict = {}
        for _, field, value_type, value in self.pending:
            base = schema.bases.get(field.path)
            if base is not None and schema.column_for(field.path, value_type, value) is None:
                wanted.setdefault((field.path, value_type), base.name)
        return [(path, value_type, base) for (path, value_type), base in wanted.items()]

    def fill(self, schema: Schema) -> None:
        """Write the kept values into the columns ``schema`` now has (those beyond the column
        limit stay in ``data`` only)."""
        self.use(schema)
        for row in self.rows:
            if len(row) < self.width:
                row.extend([self.null] * (self.width - len(row)))
        for row, field, value_type, value in self.pending:
            column = schema.column_for(field.path, value_type, value)
            if column is not None:
                row[self.index[column.name]] = self.writers[self.index[column.name]](value)
        self.pending = []

    def columns(self) -> list:
        """The names of the row's columns, in order."""
        return self.schema.key_columns() + [c.name for c in self.schema.columns]

    @staticmethod
    def _all_fields(fields: dict):
        for field in fields.values():
            yield field
            yield from Rows._all_fields(field.children)


_MISFIT = object()


def _exact_in_double(writer):
    def write(value):
        return writer(value) if -(1 << 53) <= value <= 1 << 53 else _MISFIT
    return write
