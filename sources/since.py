"""Incremental loads' values (``--incremental FIELD``): the value at FIELD of each record,
typed and compared (``value_of``, ``is_higher``), the highest of the records a chunk stored
(``Highest``), and the value a run leaves for the next one (``new_value``).

A value is an ``instant`` (a string that starts ``YYYY-MM-DD`` and that ISO-8601 reads; one
without a timezone is UTC), a ``number`` (a JSON number, compared exactly, as a Decimal) or
``text`` (any other string, compared by code points). A record whose field is missing, null,
a boolean, an object or a list has no value: it loads, and moves nothing.

Values of different types never compare. The highest is kept per type, and a run moves the
stored value only within that value's type (records of another type load, and move nothing);
a first run with no stored value takes the type of its ``--since-initial`` if its records have
values of that type, else the most specific type they had: instants, then numbers, then text. A value is kept as the source wrote it: a string's text,
a number's digits (a float in its shortest exact form: ``1.10`` is kept as ``1.1``).
"""

import re
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Optional

INSTANT, NUMBER, TEXT = "instant", "number", "text"
SINCE_PLACEHOLDER = "{since}"  # in a URL input: where the value goes
SPECIFIC_FIRST = (INSTANT, NUMBER, TEXT)

_DATE_FIRST = re.compile(r"\d{4}-\d{2}-\d{2}")
_JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def instant_of(text: str) -> Optional[datetime]:
    """The instant an ISO-8601 string names (a naive one as UTC), or None."""
    if not _DATE_FIRST.match(text):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def value_of(record, parts: tuple) -> Optional[tuple]:
    """``(type, text)`` of the value at the path ``parts`` of ``record``, or None."""
    value = record
    for part in parts:
        if type(value) is not dict or part not in value:
            return None
        value = value[part]
    kind = type(value)
    if kind is str:
        return (INSTANT if instant_of(value) is not None else TEXT, value)
    if kind is int:
        return NUMBER, str(value)
    if kind is float and value == value and value not in (float("inf"), float("-inf")):
        return NUMBER, repr(value)
    if kind is Decimal and value.is_finite():
        return NUMBER, str(value)
    return None


def typed(text: str) -> tuple:
    """``(type, text)`` of a value typed on the command line (``--since-initial``)."""
    if instant_of(text) is not None:
        return INSTANT, text
    if _JSON_NUMBER.fullmatch(text):
        return NUMBER, text
    return TEXT, text


def order_of(kind: str, text: str):
    """What a value compares by, within its type."""
    if kind == INSTANT:
        return instant_of(text)
    if kind == NUMBER:
        try:
            return Decimal(text)
        except InvalidOperation:  # never stored so: only by hand
            return Decimal("-Infinity")
    return text


def is_higher(kind: str, text: str, than: str) -> bool:
    """Whether ``text`` is above ``than``, both values of type ``kind``."""
    return order_of(kind, text) > order_of(kind, than)


class Highest:
    """The highest value of each type among some records (a chunk's stored ones, a run's
    chunks): ``{type: text}``, as ``ChunkResult.highest`` carries it."""

    def __init__(self, found: Optional[dict] = None):
        self.found: dict = {}
        self.merge(found)

    def add(self, value: Optional[tuple]) -> None:
        if value is not None:
            kind, text = value
            if kind not in self.found or is_higher(kind, text, self.found[kind]):
                self.found[kind] = text

    def merge(self, found: Optional[dict]) -> "Highest":
        for value in (found or {}).items():
            self.add(value)
        return self

    def as_dict(self) -> Optional[dict]:
        return dict(self.found) or None


def new_value(used: tuple, found: Optional[dict], given: bool = False) -> tuple:
    """The value a run leaves: the highest of ``found`` of the type of the value it
    started from (``used``; ``()``: none, then the most specific type found), if higher;
    else ``used``. A ``given`` value (``--since-initial``, typed on a command line, where
    ``0`` may stand for text ids) decides the type only if the records have values of it."""
    found = found or {}
    if used and (not given or used[0] in found or not found):
        kind, text = used
        higher = found.get(kind)
        return (kind, higher) if higher is not None and is_higher(kind, higher, text) else used
    for kind in SPECIFIC_FIRST:
        if kind in found:
            return kind, found[kind]
    return ()
