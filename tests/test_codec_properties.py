"""Properties of ``durable_ingest.codec``: ``loads`` finds the numbers the exact parse finds
(``json.loads(text, parse_float=Decimal, parse_int=int)``), and ``dumps`` writes them back
unchanged, on generated JSON texts.

The texts are generated as text, not dumped by a library: integers of up to 4,300 digits
(and the 64-bit edges), decimals with long fractions, exponents tiny and huge (``1e-400``,
``1e400``, ``1e131072``, leading zeros as in ``1e05``), negative zero, strings written raw or
escaped (``\\n``, ``\\u0000``, ``\\"``, astral characters as surrogate-pair escapes), and values
nested up to 60 levels in arrays and objects. Then unit tests of the refusals,
``number_problem`` and ``key_text``.
"""

import json
import math
import random
from decimal import Decimal

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from durable_ingest import codec

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- the comparer ------------------------------------------------------------------------------
def same(ours, exact, where="$", mode="loads") -> None:
    """Assert ``ours`` is ``exact`` (the stdlib's exact parse): same structure, keys and
    strings; integers still ints; other numbers equal as Decimal. ``mode`` says what made
    ``ours``: "loads" (codec.loads of the same text: a float only where the float is the
    number, else the written text's own Decimal), "again" (codec.loads of what dumps wrote:
    still a float or a Decimal, of the same value) or "exact" (an exact parse: numbers equal)."""
    if isinstance(exact, dict):
        assert type(ours) is dict, where
        assert list(ours) == list(exact), where
        for key in exact:
            same(ours[key], exact[key], f"{where}.{key}", mode)
    elif isinstance(exact, list):
        assert type(ours) is list and len(ours) == len(exact), where
        for index, (mine, theirs) in enumerate(zip(ours, exact)):
            same(mine, theirs, f"{where}[{index}]", mode)
    elif type(exact) is int:
        assert type(ours) is int and ours == exact, where
    elif type(exact) is Decimal:
        assert type(ours) in (float, Decimal), where
        if mode == "loads" and type(ours) is Decimal:
            assert str(ours) == str(exact), (where, ours, exact)
            nearest = float(exact)
            assert not (math.isfinite(nearest) and Decimal(repr(nearest)) == exact), (where, exact)
        mine = Decimal(repr(ours)) if type(ours) is float else ours
        assert mine == exact and (type(ours) is Decimal or math.isfinite(ours)), (where, ours, exact)
    else:
        assert type(ours) is type(exact) and ours == exact, (where, ours, exact)


def exact_parse(text: str):
    return json.loads(text, parse_float=Decimal, parse_int=int)


# -- generated texts ---------------------------------------------------------------------------
EDGE_INTS = [str(n) for n in (0, -1, 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64,
                              -(2**63), -(2**63) - 1, -(2**64))] + ["-0"]


@st.composite
def digit_runs(draw, min_size=1, max_size=40):
    """Digits, short or (rarely) thousands long: long runs come from a seeded random."""
    if draw(st.integers(0, 9)) == 0:
        size, seed = draw(st.integers(max_size, 4299)), draw(st.integers(0, 2**32))
        return "".join(random.Random(seed).choices("0123456789", k=size))
    return draw(st.text("0123456789", min_size=min_size, max_size=max_size))


@st.composite
def int_texts(draw):
    if draw(st.booleans()):
        return draw(st.sampled_from(EDGE_INTS))
    digits = draw(digit_runs()).lstrip("0") or "0"
    return ("-" if draw(st.booleans()) else "") + digits[:4300]


EXPONENTS = st.one_of(st.integers(0, 30), st.sampled_from(
    [300, 307, 308, 309, 320, 323, 324, 325, 330, 400, 1000, 16383, 16384, 131071, 131072, 999999]))


@st.composite
def decimal_texts(draw):
    """A number with a fraction or an exponent (or both), as a writer of JSON might put it."""
    whole = ("-" if draw(st.booleans()) else "") + (draw(digit_runs(max_size=20)).lstrip("0") or "0")
    text = whole
    fraction = draw(st.one_of(st.none(), digit_runs(max_size=40)))
    if fraction is not None:
        text += "." + fraction
    if fraction is None or draw(st.booleans()):
        sign = draw(st.sampled_from(["", "+", "-"]))
        zeros = "0" * draw(st.integers(0, 2))
        text += draw(st.sampled_from("eE")) + sign + zeros + str(draw(EXPONENTS))
    return text


CHARACTERS = st.one_of(
    st.sampled_from('"\\/\n\r\t\b\f\x00\x1f\x7f aé€\u2028\ufeff\U0001F600\U0001D11E'),
    st.characters(codec="utf-8"))
SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n",
                 "\r": "\\r", "\t": "\\t"}


def escaped(char: str, rnd: random.Random) -> str:
    """``char`` as a JSON string writes it: raw when it may be, else (or by choice) escaped."""
    must = char in '"\\' or char < " "
    if not must and rnd.random() < 0.5:
        return char
    if char in SHORT_ESCAPES and rnd.random() < 0.7:
        return SHORT_ESCAPES[char]
    code = ord(char)
    units = [code] if code < 0x10000 else [0xD800 + ((code - 0x10000) >> 10), 0xDC00 + (code & 0x3FF)]
    hexes = [f"{unit:04x}" for unit in units]
    return "".join("\\u" + (h.upper() if rnd.random() < 0.5 else h) for h in hexes)


@st.composite
def string_texts(draw):
    text = draw(st.text(CHARACTERS, max_size=12))
    rnd = random.Random(draw(st.integers(0, 2**32)))
    return '"' + "".join(escaped(char, rnd) for char in text) + '"'


LEAVES = st.one_of(int_texts(), decimal_texts(), string_texts(),
                   st.sampled_from(["true", "false", "null"]))
TREES = st.recursive(
    LEAVES.map(lambda text: ("leaf", text)),
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(lambda items: ("array", items)),
        st.lists(st.tuples(string_texts(), children), max_size=4).map(lambda items: ("object", items))),
    max_leaves=12)


@st.composite
def documents(draw):
    """A JSON text: a tree, wrapped in up to 60 levels of arrays and objects."""
    tree = draw(TREES)
    rnd = random.Random(draw(st.integers(0, 2**32)))
    key = draw(string_texts())
    for _ in range(draw(st.one_of(st.integers(0, 4), st.integers(40, 60)))):
        tree = ("array", [tree]) if rnd.random() < 0.5 else ("object", [(key, tree)])
    return render(tree, rnd)


def render(tree, rnd: random.Random) -> str:
    def ws() -> str:
        return rnd.choice(["", "", " ", "\n", "\t", "\r\n  "])

    kind, body = tree
    if kind == "leaf":
        return body
    if kind == "array":
        items = [ws() + render(child, rnd) + ws() for child in body]
        return "[" + ",".join(items) + "]" if items else "[" + ws() + "]"
    items = [f"{ws()}{key}{ws()}:{ws()}{render(child, rnd)}{ws()}" for key, child in body]
    return "{" + ",".join(items) + "}" if items else "{" + ws() + "}"


# -- properties --------------------------------------------------------------------------------
@SETTINGS
@given(documents())
@example('{"big": 123456789012345678901234567890, "long": 0.1234567890123456789}')
@example("[1e400, -1e400, 1e-400, -0.0, -0, 0e-999999, 1E2, 1.10, 5e-324, 2.5e-324]")
@example('["\\u0000", "\\ud83d\\ude00", "\\"", "\\n", "\U0001F600"]')
@example("-" + "9" * 4300)  # 4,301 characters: msgspec refuses it, Python reads it
def test_loads_is_the_exact_parse(text):
    same(codec.loads(text.encode()), exact_parse(text))


@SETTINGS
@given(documents())
@example("[1e400, 1e-400, 0.1234567890123456789, 123456789012345678901234567890, -0.0]")
@example("[87425473459527629989e0, 1.5e1, -12345678901234567890123.4e1]")
def test_dumps_writes_back_what_loads_read(text):
    value = codec.loads(text.encode())
    written = codec.dumps(value)
    again = codec.loads(written)
    same(again, exact_parse(text), mode="again")
    assert codec.dumps(again) == written  # and from there on, the same text
    same(exact_parse(written.decode()), exact_parse(text), mode="exact")  # what a database is given


@SETTINGS
@given(st.lists(decimal_texts(), min_size=1, max_size=5))
def test_loads_checked_finds_what_number_problem_finds(texts):
    data = ("[" + ",".join(texts) + "]").encode()
    value, problem = codec.loads_checked(data)
    assert problem == codec.number_problem(value)
    written, problem_written = codec.dumps_checked(value)
    assert problem_written == problem


@SETTINGS
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_decimal_is_keyed_as_the_float_of_its_value(number):
    assert codec.key_text(Decimal(repr(number))) == codec.key_text(number)
    assert codec.key_text(Decimal(repr(number)) * 1) == codec.key_text(number)


@SETTINGS
@given(decimal_texts())
def test_equal_decimals_share_a_key(text):
    number = Decimal(text)
    sign, digits, exponent = number.as_tuple()
    padded = Decimal((sign, digits + (0, 0), exponent - 2))  # 1.5 -> 1.500
    assert padded == number and codec.key_text(padded) == codec.key_text(number)
    assert Decimal(codec.key_text(number)) == number


# -- loads: what it gives and refuses ----------------------------------------------------------
def test_loads_types():
    value = codec.loads(b'{"i": 12345678901234567890123, "f": 1.5, "d": 0.1000000000000000055511151231257827,'
                        b' "t": 1e400, "z": 1e-400, "e": 1E2, "n": -0.0}')
    assert value == {"i": 12345678901234567890123, "f": 1.5, "d": Decimal("0.1000000000000000055511151231257827"),
                     "t": Decimal("1e400"), "z": Decimal("1e-400"), "e": 100.0, "n": 0.0}
    assert [type(v) for v in value.values()] == [int, float, Decimal, Decimal, Decimal, float, float]
    assert math.copysign(1, value["n"]) == -1


@pytest.mark.parametrize("text", [
    b"NaN", b"[Infinity]", b"-Infinity", b"[1,]", b'{"a":1,}', b"01", b"1.", b".5", b"+1", b"1e",
    b"-", b"[1 2]", b'{"a" 1}', b"'a'", b"[1]//c", b"/*c*/1", b"\xef\xbb\xbf1", b"[1] x", b'"\x01"',
    b'"\\x"', b'"\\u12"', b"[", b"tru", b"", b"\x0c1", b'"\xff"', b'"\xed\xa0\x80"', b"{1:2}",
    b'"\\U0001F600"', b"0x10", b"1_000", b"[1,,2]", b'{"a":1 "b":2}', b'["\t"]',
])
def test_loads_refuses_what_rfc_8259_refuses(text):
    with pytest.raises(codec.InvalidJSON):
        codec.loads(text)


@pytest.mark.parametrize("text, path", [
    (b'{"a": "\\ud800"}', "field a"), (b'{"a": ["x", "\\udc00y"]}', "field a[1]"),
    (b'{"a": "\\ud800\\u0041"}', "field a"), (b'{"\\ud83d": 1}', 'field ["\\ud83d"] (its name)'),
    ('{"a": "\ud800"}', "field a"),  # a str holding the surrogate itself
])
def test_loads_refuses_lone_surrogates_naming_the_field(text, path):
    with pytest.raises(codec.LoneSurrogate, match=r"^" + __import__("re").escape(path) + ": a lone surrogate"):
        codec.loads(text)


def test_loads_refuses_numbers_no_value_holds():
    with pytest.raises(codec.NumberOutOfRange, match=r"^field items\[1\]\.n: an integer of 4301 digits"):
        codec.loads(b'{"items": [1, {"n": ' + b"9" * 4301 + b"}]}")
    with pytest.raises(codec.NumberOutOfRange, match=r"^field x: 1e1000000000000000000 has an exponent"):
        codec.loads(b'{"x": 1e1000000000000000000}')
    with pytest.raises(codec.InvalidJSON):  # a syntax error after the long integer
        codec.loads(b"[" + b"9" * 4301 + b",]")


def test_loads_refuses_nesting_past_the_parser():
    assert codec.loads(b"[" * 500 + b"]" * 500) is not None
    with pytest.raises(codec.NestedTooDeep):
        codec.loads(b"[" * 5000 + b"]" * 5000)


def test_loads_checked_walks_only_records_with_a_number_beyond_postgres(monkeypatch):
    value, problem = codec.loads_checked(b'{"a": {"b": [1, 1e200000]}}')
    assert problem == ("field a.b[1]: 1e200000 is beyond what Postgres numeric holds "
                       "(131072 digits before the point, 16383 after)")
    monkeypatch.setattr(codec, "number_problem", None)  # a walk now fails
    assert codec.loads_checked(b'{"a": 1.5, "b": 123456789012345678901234567890}') == (
        {"a": 1.5, "b": 123456789012345678901234567890}, None)
    assert codec.loads_checked(b'{"a": 1e400, "b": 0.1234567890123456789}')[1] is None
    assert codec.dumps_checked({"a": Decimal("1e400"), "b": 10**400})[1] is None


# -- dumps -------------------------------------------------------------------------------------
def test_dumps_is_orjson_for_ordinary_values():
    record = {"name": "Zoë \U0001F600", "n": [1, -2, 1.5, -0.0, None, True], "nested": {"x": ""}}
    assert codec.dumps(record) == orjson.dumps(record)


def test_dumps_writes_decimals_and_big_ints_exactly():
    value = {"d": Decimal("1.10"), "t": Decimal("1E+400"), "i": 10**30, "n": -(10**30), "z": Decimal("-0"),
             "w": Decimal("12345678901234567890123")}
    assert codec.dumps(value) == b'{"d":1.10,"t":1E+400,"i":1000000000000000000000000000000,' \
                                 b'"n":-1000000000000000000000000000000,"z":-0.0,"w":12345678901234567890123.0}'
    assert codec.dumps([2**64 - 1, -(2**63)]) == b"[18446744073709551615,-9223372036854775808]"


@pytest.mark.parametrize("value, error", [
    (float("nan"), ValueError), ({"a": [1, float("inf")]}, ValueError), ({"a": -math.inf}, ValueError),
    ({"a": Decimal("NaN")}, ValueError), ({"a": Decimal("-Infinity")}, ValueError),
    ({"a": {1, 2}}, TypeError), ({"a": __import__("datetime").date(2024, 1, 1)}, TypeError),
    ({"a": __import__("datetime").datetime(2024, 1, 1)}, TypeError), ({1: 2}, TypeError),
    ({"a": "\ud800"}, TypeError), ({"a": b"bytes"}, TypeError), ({"a": 10**5000}, ValueError),
    ({"a": [10**30, float("nan")]}, ValueError),
])
def test_dumps_refuses_what_json_cannot_hold(value, error):
    with pytest.raises(error):
        codec.dumps(value)


def test_dumps_names_the_field_of_a_non_finite_float():
    with pytest.raises(ValueError, match=r"^field a\[1\]: inf is not a JSON number$"):
        codec.dumps({"a": [None, math.inf]})
    # for values whose floats came from loads: orjson's null, unchecked
    assert codec.dumps({"a": [None, math.nan]}, nan_check=False) == b'{"a":[null,null]}'


def test_dumps_checked_checks_only_values_with_a_decimal_or_a_big_int():
    assert codec.dumps_checked({"a": 1.5, "b": None}) == (b'{"a":1.5,"b":null}', None)
    assert codec.dumps_checked({"a": 10**30})[1] is None
    assert codec.dumps_checked({"a": [Decimal("1e-16384")]})[1] == (
        "field a[0]: 1e-16384 is beyond what Postgres numeric holds "
        "(131072 digits before the point, 16383 after)")


# -- number_problem ----------------------------------------------------------------------------
@pytest.mark.parametrize("value", [
    {"a": Decimal("1e131071")}, {"a": Decimal("9" * 131072)}, {"a": Decimal("1e-16383")},
    {"a": Decimal("0." + "1" * 16383)}, {"a": Decimal("0e99999")}, {"a": 10**4299}, {"a": 1.5},
    {"a": Decimal("-1.5e131071")}, {"a": [None, True, "1e999999", {"b": []}]}, 7, "x",
])
def test_number_problem_passes_what_postgres_holds(value):
    # Measured on Postgres 15 (SELECT '[...]'::jsonb): every one of these is stored.
    assert codec.number_problem(value) is None


@pytest.mark.parametrize("value, message", [
    ({"amount": Decimal("1e200000")}, "field amount: 1e200000 is beyond what Postgres numeric holds"),
    ({"a": Decimal("1e131072")}, "field a: 1e131072 is beyond"),
    ({"a": Decimal("1e-16384")}, "field a: 1e-16384 is beyond"),
    ({"a": Decimal("0e-16384")}, "field a: 0e-16384 is beyond"),
    ({"a": Decimal("1." + "0" * 16384)}, "field a: 1.00000000000000…00000000 (digits before the point: 1, after: 16384)"),
    ({"location": {"postcode": Decimal("NaN")}}, "field location.postcode: NaN is not a JSON number"),
    ({"items": [{}, {}, {}, {"price": float("inf")}]}, "field items[3].price: inf is not a JSON number"),
    ({"a.b": {"c d": [Decimal("1e-99999")]}}, 'field ["a.b"]["c d"][0]: 1e-99999 is beyond'),
    ({"n": 10**5000}, "field n: an integer of more than 4300 digits is longer than Python's int↔str limit"),
    ({"a": [Decimal("1e-99999"), Decimal("1e99999999")]}, "field a[0]: 1e-99999"),
    (Decimal("1e999999"), "the value: 1e999999 is beyond"),
])
def test_number_problem_names_the_first_number_postgres_refuses(value, message):
    assert codec.number_problem(value).startswith(message)


def test_number_problem_follows_the_int_str_limit():
    import sys

    old = sys.get_int_max_str_digits()
    try:
        sys.set_int_max_str_digits(0)
        assert codec.number_problem({"n": 10**5000}) is None
        assert codec.number_problem({"n": 10**131072}).startswith(
            "field n: an integer of more than 131072 digits is beyond what Postgres numeric holds")
    finally:
        sys.set_int_max_str_digits(old)


# -- key_text ----------------------------------------------------------------------------------
@pytest.mark.parametrize("value, text", [
    (1, "1"), (-0, "0"), (12345678901234567890123, "12345678901234567890123"), (1.0, "1.0"),
    (1e16, "1e+16"), (1e-7, "1e-7"), (0.00001, "0.00001"), (-0.0, "-0.0"),
    (Decimal("1.10"), "1.1"), (Decimal("1.1"), "1.1"), (Decimal("1e400"), "1e+400"),
    (Decimal("1E+400"), "1e+400"), (Decimal("10e399"), "1e+400"), (Decimal("1e-400"), "1e-400"),
    (Decimal("-0.12345678901234567890"), "-0.1234567890123456789"),
    (Decimal("12345678901234567.5"), "1.23456789012345675e+16"), (Decimal("100"), "100.0"),
    (Decimal("0.000012345678901234567"), "0.000012345678901234567"),
    (Decimal("0.0000012345678901234567"), "1.2345678901234567e-6"), (Decimal("-0E-5"), "-0.0"),
])
def test_key_text(value, text):
    assert codec.key_text(value) == text


@pytest.mark.parametrize("value, error", [
    (True, TypeError), ("1", TypeError), (None, TypeError), (float("nan"), ValueError),
    (Decimal("Infinity"), ValueError),
])
def test_key_text_refuses_what_is_no_number(value, error):
    with pytest.raises(error):
        codec.key_text(value)
