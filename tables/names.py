"""Names in dataset tables: the table name a user gives (checked, never trusted: no SQL is
built from unchecked text), and the column a record's field becomes: lower snake case, with
nested objects joined by a double underscore (``location__city``, dlt's convention), and
never a name plain SQL would have to quote (``order`` is ``order_``)."""

import hashlib
import re
import unicodedata
from typing import Optional

from ..errors import UsageError

MAX_IDENTIFIER_BYTES = 63  # Postgres cuts longer names (NAMEDATALEN - 1)
NESTING = "__"
VARIANT = "__v_"  # location__postcode__v_text holds the values that don't fit location__postcode
# The columns every dataset table has; a field of the same name gets a trailing underscore.
SOURCE_KEY, RUN_ID, ORDINAL, POSITION, LOADED_AT, DATA = (
    "_source_key", "_run_id", "_ordinal", "_position", "_loaded_at", "data")
SYSTEM_COLUMNS = (SOURCE_KEY, RUN_ID, ORDINAL, POSITION, LOADED_AT, DATA)
# The app database's own tables: not a dataset's name.
OWN_TABLES = ("tasks", "errors", "sources", "contents", "alembic_version", "ingest_tables",
              "ingest_columns", "ingest_incoming", "ingest_table_incoming", "ingest_column_hints")
# Keywords SQLite takes unquoted nowhere a column name can be, that Postgres reserves not
# (each of SQLite's keywords tried as a column in SELECT, WHERE and ORDER BY).
SQLITE_KEYWORDS = frozenset((
    "add", "alter", "autoincrement", "commit", "delete", "drop", "escape", "exists", "index",
    "insert", "nothing", "raise", "set", "transaction", "update", "values"))
_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NOT_WORD = re.compile(r"[^a-z0-9]+")


def check_table_name(name: str) -> str:
    """``name`` if it is a plain identifier that is not ours; else a ``UsageError`` that says
    why, in one line (the name is shown escaped: it may hold anything)."""
    shown = ascii(name)[1:-1][:80]
    if not _TABLE_NAME.fullmatch(name):
        raise UsageError(f"--table {shown}: a table name is lower-case letters, digits and "
                         "underscores, not starting with a digit (e.g. users, orders_2026)")
    if len(name.encode()) > MAX_IDENTIFIER_BYTES:
        raise UsageError(f"--table {shown[:40]}...: at most {MAX_IDENTIFIER_BYTES} characters")
    if name in OWN_TABLES:
        what = ("the demo's table of JSON records, where records go without --table"
                if name == "tasks" else "a table of ingest's own")
        raise UsageError(f"--table {name}: {name} is {what}; choose another name")
    if name.startswith(("pg_", "sqlite_")) or is_keyword(name):
        raise UsageError(f"--table {name}: {name} is reserved by SQL or the database, so plain "
                         f"SQL would have to quote it; choose another name (e.g. {name}s)")
    return name


def is_keyword(name: str) -> bool:
    from sqlalchemy.dialects.postgresql.base import RESERVED_WORDS

    return name in RESERVED_WORDS


def needs_quoting(name: str) -> bool:
    """A name one of the databases would take only in double quotes, as a column."""
    return is_keyword(name) or name in SQLITE_KEYWORDS


def column_name(key: str) -> str:
    """One key of a record as a column name: ``firstName`` -> ``first_name``, ``Zip Code``
    -> ``zip_code``, ``Café`` -> ``cafe``; a key with no letter or digit (in ASCII) gets a
    name from its hash, one starting with a digit an underscore first."""
    ascii_key = unicodedata.normalize("NFKD", key).encode("ascii", "ignore").decode()
    words = _NOT_WORD.sub("_", _CAMEL.sub("_", ascii_key).lower()).strip("_")
    if not words:
        return "_" + hashlib.sha256(key.encode()).hexdigest()[:6]
    return "_" + words if words[0].isdigit() else words


def joined(names: tuple) -> str:
    """The column of a nested field: its keys' names joined by ``__``, short enough for
    Postgres (a long one keeps a hash of the whole, so two never meet). A table's own
    column's name, or an SQL keyword (``order``, ``user``), gets a trailing underscore."""
    name = NESTING.join(names)
    if name in SYSTEM_COLUMNS or needs_quoting(name):
        name += "_"
    return shortened(name)


def variant_name(column: str, type_name: str) -> str:
    return shortened(f"{column}{VARIANT}{type_name}")


def shortened(name: str) -> str:
    if len(name.encode()) <= MAX_IDENTIFIER_BYTES:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return name.encode()[:MAX_IDENTIFIER_BYTES - 9].decode(errors="ignore") + "_" + digest


def numbered(name: str, taken: set) -> str:
    """``name``, or ``name_2``, ``name_3``... if another field's column has it already."""
    if name not in taken:
        return name
    number = 2
    while shortened(f"{name}_{number}") in taken:
        number += 1
    return shortened(f"{name}_{number}")


def key_column(key_path: str) -> Optional[str]:
    """The column of a table's key (``login.uuid`` -> ``login__uuid``)."""
    return joined(tuple(column_name(part) for part in key_path.split("."))) if key_path else None


def quoted(identifier: str) -> str:
    """An identifier made by this module (or checked by it) in double quotes, for SQL."""
    assert '"' not in identifier and "\x00" not in identifier
    return f'"{identifier}"'
