"""Numbers the databases can't hold, and where they are: Postgres numeric's limits
(``number_problem``), a field's path as a message shows it (``where``) and a number's text
as a record key (``key_text``). The reader and the writer count, here, each number they
meet beyond those limits, so that a value is walked only when it holds one."""

import itertools
import json
import math
import re
import sys
from decimal import Decimal
from typing import Iterator, Optional

import orjson

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

def _count_if_beyond(number: Decimal, text: str, counter) -> None:
    # A short text with a small exponent is within Postgres's limits: no digit counting
    if (len(text) > 200 or not -200 < number.adjusted() < 200) and _decimal_reason(number):
        next(counter)


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


_SURROGATE = re.compile("[\ud800-\udfff]")
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
