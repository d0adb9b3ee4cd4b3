"""JSON as the app reads and stores it, exact for every number.

Reading (``loads``, msgspec): integers become ``int``, of any size up to Python's int↔str
limit (4,300 digits by default). A number with a fraction or an exponent becomes a ``float``
when the float's shortest text is the same number as the one written (``1.10`` -> 1.1,
``1E2`` -> 100.0); any other, such as ``0.1234567890123456789``, ``1e400`` or ``1e-400``,
becomes a ``decimal.Decimal`` of exactly the written text. So a user's transform meets a
``Decimal`` only where a float would have changed the number: ``Decimal`` arithmetic works
with ints (``d * 2``), not with floats (``float(d)`` rounds, as a float would have).

Refusals are ``JSONError`` (a ``ValueError``): ``InvalidJSON`` for anything RFC 8259 refuses
(NaN, trailing commas, comments, leading zeros, raw control characters, a BOM, extra data...)
and three kinds of JSON text that hold no value the databases could store, each naming the
field: ``LoneSurrogate`` (a ``\\ud800`` escape without its pair: RFC 8259's grammar admits it,
but it is no character, Postgres refuses it and UTF-8 can't carry it; the file's scanner
accepts it, so the record, not the file, goes to errors), ``NumberOutOfRange`` (an integer
longer than the int↔str limit, an exponent beyond ``Decimal``'s ±10**18) and
``NestedTooDeep`` (past the parser's recursion limit, about 1,000 levels).

Writing (``dumps``, orjson): a ``Decimal`` is written as its own digits (``.0`` added to an
integral one, so it is read back as a non-integer again), an int beyond 64 bits by a slower
exact path for just that value; NaN, infinities, sets, datetimes and anything else JSON has
no number or type for raise TypeError or ValueError.

``number_problem`` names the first number Postgres numeric can't hold (131,072 digits before
the point, 16,383 after, as written) or that is no JSON number; ``loads_checked`` and
``dumps_checked`` walk a value for it only when they met such a number.
``key_text`` is a number's text as a record key; a ``Decimal`` is keyed by its value, in the
style orjson writes floats in (``1e+400``; ``1.10`` and ``1.1`` are one key).

For the app: ``stored_json`` (what a row stores: exact, or a ``RecordError`` naming the
field, with the NUL rule: Postgres JSONB can't store a NUL character, so no database gets
one), ``storable`` (what an errors row keeps of a record) and ``json_text`` (the app
engine's JSON serializer, so that the Decimals ``storable`` keeps are written exactly).

The work is split by job: ``decode`` (reading), ``encode`` (writing, and the NUL rule) and
``numbers`` (the databases' limits, field paths and keys); this package is their one face.

May import: ``errors`` and the standard library; everything that reads or writes JSON
imports it.
"""

from .decode import (InvalidJSON, JSONError, LoneSurrogate, NestedTooDeep, NumberOutOfRange, loads,
                     loads_checked)
from .encode import (NUL_REASON, dumps, dumps_checked, has_nul, json_text, storable,
                     stored_json)
from .numbers import PG_DIGITS_AFTER, PG_DIGITS_BEFORE, PG_LIMITS, key_text, number_problem, where

__all__ = ["InvalidJSON", "JSONError", "LoneSurrogate", "NestedTooDeep", "NumberOutOfRange",
           "loads", "loads_checked", "NUL_REASON", "dumps", "dumps_checked", "json_text",
           "has_nul", "storable", "stored_json", "PG_DIGITS_AFTER", "PG_DIGITS_BEFORE",
           "PG_LIMITS", "key_text", "number_problem", "where"]
