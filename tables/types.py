"""The types of dataset columns, how a value's type is told, which values a column takes,
and how a value is written to it, on Postgres (COPY text) and on SQLite (a bound value).

Types: ``bigint`` (integers of 64 bits), ``double`` (floats), ``decimal`` (exact numbers: an
integer beyond 64 bits, a decimal beyond a double), ``bool``, ``text``, ``timestamp`` (an
RFC 3339 date-time with a zone and at most microseconds: Postgres keeps it as the same
instant; SQLite keeps the text as written) and ``json`` (lists). A column takes the values of
its type, and two others it holds exactly: a ``double`` column the integers up to 2^53, a
``text`` column the timestamps' text, when the field has both kinds. Any other value goes to
a variant column of its own type (``__v_text``). Nothing is coerced: every value lands as
written. Which columns a field has, and which one carries its name, depends only on the
kinds of values it has had, never on the order chunks met them (``layout``).
"""

import calendar
import re
from decimal import Decimal
from typing import Optional

import orjson

BIGINT, DOUBLE, DECIMAL, BOOL, TEXT, TIMESTAMP, JSON = (
    "bigint", "double", "decimal", "bool", "text", "timestamp", "json")
TYPES = (BIGINT, DOUBLE, DECIMAL, BOOL, TEXT, TIMESTAMP, JSON)
SQL_TYPES = {
    "postgresql": {BIGINT: "bigint", DOUBLE: "double precision", DECIMAL: "numeric",
                   BOOL: "boolean", TEXT: "text", TIMESTAMP: "timestamp with time zone",
                   JSON: "jsonb"},
    # TEXT affinity for decimal: SQLite would round a NUMERIC column's long digits to a REAL.
    "sqlite": {BIGINT: "INTEGER", DOUBLE: "REAL", DECIMAL: "DECIMAL_TEXT", BOOL: "BOOLEAN",
               TEXT: "TEXT", TIMESTAMP: "TIMESTAMP", JSON: "JSON"},
}
INT64 = (-(1 << 63), (1 << 63) - 1)
EXACT_IN_DOUBLE = 1 << 53
# RFC 3339 date-times that Postgres's timestamptz takes as written: year 0001 on, a zone
# offset within +-15:59 (Postgres refuses more), at most microseconds (it would round more).
_RFC3339 = re.compile(r"(?!0000)\d{4}-(?:0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt ]"
                      r"(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?"
                      r"(?:[Zz]|[+-](?:0\d|1[0-5]):[0-5]\d)")
NUMBERS = (BIGINT, DOUBLE, DECIMAL)


def type_of(value):
    """The type a value asks for; None for null (no column needed)."""
    kind = type(value)
    if kind is str:
        return TIMESTAMP if is_timestamp(value) else TEXT
    if kind is int:
        return BIGINT if INT64[0] <= value <= INT64[1] else DECIMAL
    if kind is float:
        return DOUBLE
    if kind is bool:
        return BOOL
    if kind is list:
        return JSON
    if kind is Decimal:
        return DECIMAL
    return None if value is None else TEXT


def is_timestamp(text: str) -> bool:
    """An RFC 3339 date-time with a zone and at most microseconds, a real one (no 30 Feb)."""
    if not 20 <= len(text) <= 32 or text[4:5] != "-":
        return False
    match = _RFC3339.fullmatch(text)
    if match is None:
        return False
    if match.group(1) > "28":  # days 29-31 exist in some months of some years
        year, month = int(text[:4]), int(text[5:7])
        return int(match.group(1)) <= calendar.monthrange(year, month)[1]
    return True


# -- which column a value goes to, and which columns a field has ------------------------------
# A field's values are sorted into kinds: the types above, with integers split by whether a
# double holds them exactly (``INT53``, not a column type). The columns a field has are a
# function of the SET of kinds it has had (``layout``), and so is the column each value goes
# to (``column_type_for``): never of the order in which chunks met them.
INT53 = "int53"
# Which of a field's columns carries its own name (the others are ``__v_TYPE`` variants):
# the first of these it has. Text first: every scalar has a text form, so a field that has
# strings is a text field; then numbers, widest first; then bool, then lists.
PRECEDENCE = (TEXT, TIMESTAMP, DOUBLE, BIGINT, DECIMAL, BOOL, JSON)


def kind_of(value_type: str, value) -> str:
    """The kind of a value of ``value_type``: its type, or ``INT53`` for an integer that a
    double holds exactly."""
    if value_type == BIGINT and -EXACT_IN_DOUBLE <= value <= EXACT_IN_DOUBLE:
        return INT53
    return value_type


def layout(kinds: set) -> set:
    """The column types of a field that has had values of these kinds: each kind its own,
    except that a ``text`` column takes the timestamps and a ``double`` column the integers
    up to 2^53 (both exactly) when the field has one."""
    types = {kind for kind in kinds if kind in (DECIMAL, BOOL, JSON)}
    if TEXT in kinds or TIMESTAMP in kinds:
        types.add(TEXT if TEXT in kinds else TIMESTAMP)
    if DOUBLE in kinds:
        types.add(DOUBLE)
    if BIGINT in kinds or (INT53 in kinds and DOUBLE not in kinds):
        types.add(BIGINT)
    return types


def base_type(types) -> str:
    """The type of the column that carries the field's own name."""
    return next(t for t in PRECEDENCE if t in types)


# A column hinted with ``--column FIELD=TYPE`` carries the field's name and takes every
# kind it holds exactly; the field's other kinds are laid out as usual, beside it.
HOLDS = {DECIMAL: {INT53, BIGINT, DOUBLE, DECIMAL}, DOUBLE: {INT53, DOUBLE},
         BIGINT: {INT53, BIGINT}, TEXT: {TEXT, TIMESTAMP}, TIMESTAMP: {TIMESTAMP},
         BOOL: {BOOL}, JSON: {JSON}}


def hinted_layout(kinds: set, hint: Optional[str]) -> set:
    """``layout``, with the hinted column (when the field has a hint) taking what it holds."""
    if hint is None:
        return layout(kinds)
    return {hint} | layout(set(kinds) - HOLDS[hint] - {hint})


def column_type_for(value_type: str, value, types, hint: Optional[str] = None) -> Optional[str]:
    """The type of the column (of a field with columns of ``types``, and perhaps a hint)
    that takes this value; None if the field lacks it."""
    if hint is not None and hint in types and kind_of(value_type, value) in HOLDS[hint]:
        return hint
    if value_type == TIMESTAMP:
        found = TEXT if TEXT in types else TIMESTAMP
    elif value_type == BIGINT and DOUBLE in types and \
            -EXACT_IN_DOUBLE <= value <= EXACT_IN_DOUBLE:
        found = DOUBLE
    else:
        found = value_type
    return found if found in types else None


# -- writing a value ---------------------------------------------------------------------------
def copy_text(column_type: str):
    """A function writing a value of the column in COPY's text format."""
    return _COPY[column_type]


def _copy_string(value: str) -> str:
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return (value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
                .replace("\r", "\\r"))
    return value


def _copy_number(value) -> str:
    return repr(value) if type(value) is float else str(value)


def _copy_json(value) -> str:
    # orjson's JSON has no raw tab, newline or carriage return: only backslashes to escape.
    return json_text(value).replace("\\", "\\\\")


_COPY = {BIGINT: str, DOUBLE: _copy_number, DECIMAL: _copy_number,
         BOOL: lambda value: "t" if value else "f", TEXT: _copy_string, TIMESTAMP: str,
         JSON: _copy_json}


def sqlite_value(column_type: str):
    """A function turning a value of the column into what SQLite stores."""
    return _SQLITE[column_type]


def _identity(value):
    return value


_SQLITE = {BIGINT: _identity, DOUBLE: float, DECIMAL: _copy_number, BOOL: int, TEXT: _identity,
           TIMESTAMP: _identity, JSON: lambda value: json_text(value)}


def json_text(value) -> str:
    """A list's JSON, exact for every number (its NaNs were refused when the record was)."""
    from ..codec import dumps

    return dumps(value, nan_check=False).decode()


def sql_type(dialect: str, column_type: str) -> str:
    return SQL_TYPES[dialect][column_type]


def sample(value) -> str:
    """A value as shown in a message: short."""
    text = orjson.dumps(value, default=str).decode() if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."
