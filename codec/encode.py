"""Writing JSON exactly (``dumps``, orjson): a ``Decimal`` as its own digits, an int beyond
64 bits by a slower exact path for just that value; NaN, infinities and types JSON has no
place for are refused. Also the NUL rule (Postgres JSONB can't store a NUL character, so no
database gets one): ``stored_json`` (what a row stores) and ``storable`` (what an errors row
keeps of a record)."""

import re
from decimal import Decimal
from typing import Any

import orjson

from ..errors import NulCharacter
from ..errors import NumberOutOfRange as NumberNotStorable
from .decode import loads
from .numbers import (PG_DIGITS_BEFORE, _INT64_MIN, _UINT64_MAX, _count_if_beyond,
                      _dumped_problems, number_problem)

NUL_REASON = "record contains a NUL character (\\u0000), which Postgres JSONB cannot store"
# orjson writes NUL as \u0000; an escaped backslash before "u0000" (\\u0000) is no NUL.


_NUL = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


def has_nul(data: bytes) -> bool:
    """Whether orjson's JSON text holds a NUL character."""
    return b"\\u0000" in data and _NUL.search(data) is not None


def stored_json(value, *, nan_check: bool = True) -> bytes:
    """The JSON a row stores, exact for every number (``dumps``); a ``RecordError`` naming
    the field if no database could hold it: ``NumberOutOfRange``, ``NulCharacter``."""
    data, problem = dumps_checked(value, nan_check=nan_check)
    if problem is not None:
        raise NumberNotStorable(problem)
    if has_nul(data):
        raise NulCharacter(NUL_REASON)
    return data


def storable(record: Any) -> Any:
    """The record as JSONB can hold it, numbers exact: NUL characters become U+FFFD; None
    for a record JSON can't hold (NaN, a datetime, too deep) or with a number beyond
    Postgres. Its Decimals need ``json_text`` as the engine's JSON serializer."""
    if record is None:
        return None
    try:
        text, problem = dumps_checked(record)
    except (TypeError, ValueError, RecursionError):  # nested deeper than orjson writes (254 levels)
        return None
    if problem is not None:
        return None
    if has_nul(text):
        text = _NUL.sub(rb"\1\\ufffd", text)
    return loads(text)


def json_text(value) -> str:
    """A JSON column's text, for the app engine's ``json_serializer``: exact for every
    number (the stdlib's would refuse a Decimal), UTF-8 unescaped."""
    return dumps(value).decode()


# datetimes and dataclasses go to _fragment, which refuses them: loads would give back a string
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def dumps(value, *, nan_check: bool = True) -> bytes:
    """The JSON text of ``value``, exact for every number; TypeError or ValueError for a
    value JSON can't hold (NaN, an infinity, a set, a datetime, a key that isn't a str...).

    orjson writes a NaN or infinite float as null, so they are looked for when the text has
    a null, at a cost close to orjson's own; ``nan_check=False`` skips that, for a value
    whose floats all came from ``loads`` (which never makes one)."""
    try:
        data = orjson.dumps(value, default=_fragment, option=_OPTIONS)
    except orjson.JSONEncodeError as exc:
        if "64-bit" not in str(exc):
            raise (exc.__cause__ or exc) from None  # our own ValueError, or orjson's TypeError
        try:
            written = _big_ints_written(value, 0)
        except ValueError:  # an int longer than the int↔str limit
            raise ValueError(number_problem(value)) from None
        data = orjson.dumps(written, default=_fragment, option=_OPTIONS)
    if nan_check and b"null" in data and _has_non_finite(value):
        raise ValueError(number_problem(value))
    return data


def dumps_checked(value, *, nan_check: bool = True) -> tuple:
    """(``dumps(value)``, ``number_problem(value)``), the walk made only for a value that
    holds a number beyond Postgres."""
    before = next(_dumped_problems)
    data = dumps(value, nan_check=nan_check)
    if next(_dumped_problems) - before == 1:
        return data, None
    return data, number_problem(value)


def _fragment(item):
    """orjson's default hook: a finite Decimal as its digits; anything else is refused."""
    if isinstance(item, Decimal):
        if not item.is_finite():
            raise ValueError(f"{item} is not a JSON number")
        text = str(item)
        _count_if_beyond(item, text, _dumped_problems)
        # "12345678901234567890123e0" is read as a Decimal: write it so that it is read again
        # as one (a non-integer), not as an int
        return orjson.Fragment(text + ".0" if text.lstrip("-").isdigit() else text)
    raise TypeError(f"{type(item).__name__} is not a JSON type")


def _big_ints_written(value, depth: int):
    """``value`` with every int beyond orjson's 64 bits as a Fragment of its digits."""
    if depth > 254:  # orjson would refuse it as well
        raise TypeError("Recursion limit reached: JSON output nests at most 254 levels")
    if isinstance(value, dict):
        return {key: _big_ints_written(child, depth + 1) for key, child in value.items()}
    if isinstance(value, (list, tuple)):
        return [_big_ints_written(child, depth + 1) for child in value]
    if isinstance(value, int) and not _INT64_MIN <= value <= _UINT64_MAX:
        text = str(int(value))  # ValueError beyond the int↔str limit
        if len(text.lstrip("-")) > PG_DIGITS_BEFORE:  # only with set_int_max_str_digits(0)
            next(_dumped_problems)
        return orjson.Fragment(text)
    return value


def _has_non_finite(value) -> bool:
    """Whether a float inside ``value`` is NaN or infinite (a tight walk: no paths)."""
    stack = [(value,)]
    while stack:
        item = stack.pop()
        for child in item.values() if isinstance(item, dict) else item:
            kind = type(child)
            if kind is str or kind is int or child is None:
                continue
            if isinstance(child, float):
                if child - child != 0.0:  # inf - inf and nan - nan are nan
                    return True
            elif isinstance(child, (dict, list, tuple)):
                stack.append(child)
    return False
