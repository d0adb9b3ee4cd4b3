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

Also here, from before: ``dumps_exact``, ``stored_json`` and ``storable`` (orjson's text,
exact for integers beyond 64 bits) and the NUL rule (Postgres JSONB can't store a NUL
character, so no database gets one).
"""

import itertools
import json
import math
import re
import sys
from decimal import Decimal, InvalidOperation
from typing import Any, Iterator, Optional

import msgspec
import orjson

from .errors import NulCharacter

NUL_REASON = "record contains a NUL character (\\u0000), which Postgres JSONB cannot store"
# orjson writes NUL as \u0000; an escaped backslash before "u0000" (\\u0000) is no NUL.


_NUL = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


def dumps_exact(value) -> bytes:
    """orjson's JSON; the stdlib's for the rare integer over 64 bits, which orjson refuses."""
    try:
        return orjson.dumps(value)
    except TypeError as exc:
        if "64-bit" not in str(exc):
            raise
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def has_nul(data: bytes) -> bool:
    """Whether orjson's JSON text holds a NUL character."""
    return b"\\u0000" in data and _NUL.search(data) is not None


def stored_json(value) -> bytes:
    """The JSON a ``tasks`` row stores; NulCharacter if Postgres JSONB could not hold it."""
    data = dumps_exact(value)
    if has_nul(data):
        raise NulCharacter(NUL_REASON)
    return data


def storable(record: Any) -> Any:
    """The record as JSONB can hold it: NUL characters become U+FFFD."""
    if record is None:
        return None
    try:
        text = dumps_exact(record)
    except (TypeError, ValueError, RecursionError):  # nested deeper than orjson writes (254 levels)
        return None
    if has_nul(text):
        return orjson.loads(_NUL.sub(rb"\1\\ufffd", text))
    return orjson.loads(text)


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


# Postgres numeric, as measured on Postgres 15: digits before the point, and after it as
# written (1.000 has 3; 0e-16384 is refused though it is zero).
PG_DIGITS_BEFORE, PG_DIGITS_AFTER = 131072, 16383
PG_LIMITS = f"what Postgres numeric holds ({PG_DIGITS_BEFORE} digits before the point, {PG_DIGITS_AFTER} after)"
_INT64_MIN, _UINT64_MAX = -(1 << 63), (1 << 64) - 1  # orjson's integers
# Every number beyond Postgres that loads reads (or dumps writes) takes one number from
# these: two readings around a call tell whether it met any. next() is atomic under the GIL,
# so another thread's call can only add numbers (a needless check), never hide one.
_loaded_problems = itertools.count()
_dumped_problems = itertools.count()


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


def _count_if_beyond(number: Decimal, text: str, counter) -> None:
    # A short text with a small exponent is within Postgres's limits: no digit counting
    if (len(text) > 200 or not -200 < number.adjusted() < 200) and _decimal_reason(number):
        next(counter)


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


_SURROGATE = re.compile("[\ud800-\udfff]")
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


# -- writing ----------------------------------------------------------------------------------
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


# -- numbers the databases can't store --------------------------------------------------------
def number_problem(value) -> Optional[str]:
    """None, or one line naming the first number in ``value`` (document order) that no JSON
    text or no Postgres numeric holds: ``field items[3].price: 1e200000 is beyond ...``."""
    for path, item in _walk(value):
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        reason = _number_reason(item)
        if reason:
            return f"{where(path)}: {reason}"
    return None


def _number_reason(item) -> Optional[str]:
    if isinstance(item, float):
        return None if math.isfinite(item) else f"{item} is not a JSON number"
    if isinstance(item, Decimal):
        return _decimal_reason(item)
    if isinstance(item, int) and not isinstance(item, bool) and item.bit_length() > 2000:
        return _int_reason(item)
    return None


def _decimal_reason(number: Decimal) -> Optional[str]:
    if not number.is_finite():
        return f"{number} is not a JSON number"
    after = max(0, -number.as_tuple().exponent)
    before = number.adjusted() + 1 if number else 0
    if before <= PG_DIGITS_BEFORE and after <= PG_DIGITS_AFTER:
        return None
    text = str(number).replace("E+", "e").replace("E", "e")
    if len(text) > 40:
        text = f"{text[:16]}…{text[-8:]} (digits before the point: {max(before, 0)}, after: {after})"
    return f"{text} is beyond {PG_LIMITS}"


def _int_reason(number: int) -> Optional[str]:
    limit = sys.get_int_max_str_digits()
    if limit and abs(number) >= 10**limit:
        return (f"an integer of more than {limit} digits is longer than Python's int↔str "
                "limit (sys.set_int_max_str_digits)")
    if abs(number) >= 10**PG_DIGITS_BEFORE:
        return f"an integer of more than {PG_DIGITS_BEFORE} digits is beyond {PG_LIMITS}"
    return None


def _walk(value) -> Iterator[tuple]:
    """(path, item) for ``value`` and all inside it, in document order, without recursion
    (the parser lets records nest about 1,000 levels); a path is a tuple of keys and indexes."""
    stack = [((), value)]
    while stack:
        path, item = stack.pop()
        yield path, item
        if isinstance(item, dict):
            stack.extend((path + (key,), child) for key, child in reversed(item.items()))
        elif isinstance(item, (list, tuple)):
            stack.extend((path + (index,), item[index]) for index in range(len(item) - 1, -1, -1))


_PLAIN_KEY = re.compile(r'[^.\[\]"\\\s\x00-\x1f\ud800-\udfff]{1,60}')


def where(path: tuple) -> str:
    """``field location.postcode``, ``field items[3].price``; ``the value`` for no path. A key
    that a dotted path can't show plainly is quoted: ``field ["a.b"]``."""
    if not path:
        return "the value"
    parts = []
    for part in path:
        if type(part) is int:
            parts.append(f"[{part}]")
        elif _PLAIN_KEY.fullmatch(part):
            parts.append(f".{part}" if parts else part)
        else:
            shown = part if len(part) <= 60 else part[:60] + "…"
            parts.append(f"[{json.dumps(shown, ensure_ascii=bool(_SURROGATE.search(shown)))}]")
    return "field " + "".join(parts)


def _shown(text: str) -> str:
    return text if len(text) <= 40 else f"{text[:20]}…{text[-12:]} ({len(text)} characters)"


# -- keys -------------------------------------------------------------------------------------
def key_text(value) -> str:
    """A number's text as a record key: an int's digits; a float as orjson writes it (the
    key of before); a Decimal by its value, in that same style, so 1.10 and 1.1 are one key
    (and a float and a Decimal of one value would be too). TypeError for any other type."""
    kind = type(value)
    if kind is int:
        return str(value)
    if kind is float:
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a JSON number")
        return orjson.dumps(value).decode()
    if kind is Decimal:
        return _decimal_key(value)
    raise TypeError(f"a key number is an int, float or Decimal, not {kind.__name__}")


def _decimal_key(number: Decimal) -> str:
    """orjson's float style: positional from 1e-5 to below 1e16 (``0.00001``, ``12.0``),
    else ``1.5e-7``, ``1e+400``; trailing zeros dropped."""
    if not number.is_finite():
        raise ValueError(f"{number} is not a JSON number")
    sign, digit_tuple, exponent = number.as_tuple()
    written = "".join(map(str, digit_tuple))
    digits = written.rstrip("0")
    minus = "-" if sign else ""
    if not digits:
        return minus + "0.0"
    point = len(written) + exponent  # digits before the point, counted from the first
    if -5 < point <= 16:
        if point <= 0:
            return f"{minus}0.{'0' * -point}{digits}"
        if point >= len(digits):
            return f"{minus}{digits}{'0' * (point - len(digits))}.0"
        return f"{minus}{digits[:point]}.{digits[point:]}"
    mantissa = digits[0] + (f".{digits[1:]}" if len(digits) > 1 else "")
    return f"{minus}{mantissa}e{'+' if point > 0 else '-'}{abs(point - 1)}"
