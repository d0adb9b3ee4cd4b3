"""Reading JSON exactly (``loads``, msgspec): integers of any size as ``int``; a number with
a fraction or an exponent as a ``float`` when the float's shortest text is the number
written, else as the ``Decimal`` of the written text. Refusals are ``JSONError``s of four
kinds, each saying why and where."""

import json
import math
import sys
from decimal import Decimal, InvalidOperation
from typing import Optional

import msgspec

from .numbers import (PG_LIMITS, _SURROGATE, _count_if_beyond, _loaded_problems, _shown, _walk,
                      number_problem, where)

# -- refusals ---------------------------------------------------------------------------------
class JSONError(ValueError):
    """Bytes ``loads`` turns into no value; the message says why, and where."""


class InvalidJSON(JSONError):
    """Not JSON as RFC 8259 defines it."""


class LoneSurrogate(JSONError):
    """A string with a ``\\uD800``-``\\uDFFF`` escape that is not half of a pair."""


class NumberOutOfRange(JSONError):
    """An integer over the int↔str limit, or an exponent beyond ``Decimal``'s."""


class NestedTooDeep(JSONError):
    """Nested deeper than the parser's recursion limit."""

# -- reading ----------------------------------------------------------------------------------
def _number(text: str):
    """msgspec's float_hook: the float when it is the written number, else the Decimal."""
    if len(text) < 17 and "e" not in text and "E" not in text:
        return float(text)  # at most 15 digits, no exponent: always the number written
    value = float(text)
    if repr(value) == text:
        return value
    try:
        exact = Decimal(text)
    except InvalidOperation:  # an exponent beyond ±10**18: _refused finds where
        raise ValueError(text) from None
    if math.isfinite(value) and Decimal(repr(value)) == exact:
        return value
    _count_if_beyond(exact, text, _loaded_problems)
    return exact


_DECODER = msgspec.json.Decoder(float_hook=_number)


def loads(data):
    """The value of one JSON text (bytes, or str); ``JSONError`` if there is none."""
    try:
        return _DECODER.decode(data)
    except (msgspec.DecodeError, UnicodeEncodeError) as exc:  # a str with a lone surrogate
        return _refused(data, exc)
    except RecursionError:
        raise NestedTooDeep("JSON nested deeper than the parser's recursion limit") from None


def loads_checked(data) -> tuple:
    """(value, ``number_problem(value)``), the walk made only for a value that holds a
    number beyond Postgres (ints from loads never are)."""
    before = next(_loaded_problems)
    value = loads(data)
    if next(_loaded_problems) - before == 1:
        return value, None
    return value, number_problem(value)


class _Refused:
    """A number the stdlib's parse met that no value holds exactly here."""

    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason


def _refused(data, exc: ValueError):
    """Why msgspec refused ``data``, by the stdlib's parse of it (strict, no NaN): its own
    syntax error, or the field with the refused number or lone surrogate. The value, if
    msgspec refused only an integer Python reads (its limit counts the sign, and ignores
    ``sys.set_int_max_str_digits``)."""
    try:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8")
        value = json.loads(text, parse_int=_int_or_refused, parse_float=_number_or_refused,
                           parse_constant=_no_constant)
    except RecursionError:
        raise NestedTooDeep("JSON nested deeper than the parser's recursion limit") from None
    except ValueError as stdlib:  # JSONDecodeError, UnicodeDecodeError, a constant
        mine = isinstance(exc, msgspec.ValidationError)
        raise InvalidJSON(f"not valid JSON: {stdlib if mine else exc}") from None
    for path, item in _walk(value):
        if type(item) is _Refused:
            raise NumberOutOfRange(f"{where(path)}: {item.reason}")
        surrogate = _surrogate_in(path, item)
        if surrogate:
            raise LoneSurrogate(surrogate)
    return value


def _int_or_refused(text: str):
    try:
        return int(text)
    except ValueError:
        limit = sys.get_int_max_str_digits()
        return _Refused(f"an integer of {len(text.lstrip('-'))} digits is longer than "
                        f"Python's int↔str limit ({limit} digits)")


def _number_or_refused(text: str):
    try:
        return _number(text)
    except ValueError:
        return _Refused(f"{_shown(text)} has an exponent beyond what Decimal holds "
                        f"(±10**18), and beyond {PG_LIMITS}")


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


_LONE = "a lone surrogate escape (\\u{:04x}) is no Unicode character; neither database can store it"


def _surrogate_in(path: tuple, item) -> Optional[str]:
    """The message for a lone surrogate in ``item`` (a string, or a dict's keys), else None."""
    if isinstance(item, dict):
        for key in item:
            found = _SURROGATE.search(key)
            if found:
                return f"{where(path + (key,))} (its name): {_LONE.format(ord(found.group()))}"
    elif isinstance(item, str):
        found = _SURROGATE.search(item)
        if found:
            return f"{where(path)}: {_LONE.format(ord(found.group()))}"
    return None
