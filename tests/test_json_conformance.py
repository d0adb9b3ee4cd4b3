"""The loader accepts exactly the JSON that a strict parser accepts (RFC 8259).

Each value case (valid, and each way to break a grammar rule) is put in a dataset file the
four ways users give them: a bare array ``[{"v": CASE}]``, an NDJSON line ``{"v": CASE}``,
an envelope ``{"results": [{"v": CASE}]}`` and a file of one object ``{"v": CASE}`` (one
record); file cases break the file around its
records (trailing commas, BOMs, comments, extra data, truncation). The reference is
``json.loads`` with NaN and Infinity refused, on the bytes decoded as strict UTF-8 (one
leading UTF-8 BOM stripped: the README accepts it). Then:

- a document (array, envelope, one object) that the reference accepts is scanned, and ``read_chunk``
  gives its records; one it refuses is refused by ``scan`` (``InputError``);
- an NDJSON file is scanned whatever its lines hold (a bad line is a per-record error by
  design, but not a line of invalid UTF-8); each line the reference accepts is read as a
  record, each other non-blank line as a ``RecordProblem``.

Valid JSON that holds no storable value is a record problem, not a bad file: a lone
surrogate escape (``"\\ud800"``: RFC 8259's grammar admits it, no database can store it)
and nesting past the parser's recursion limit. ``codec.loads`` is held to the same cases.
"""

import json
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from durable_ingest import codec
from durable_ingest.errors import InputError
from durable_ingest.sources.read import RecordProblem, read_chunk
from durable_ingest.sources.scan import scan

DEEP = 5000  # levels: past every recursive parser here (about 1,000)

# (id, the JSON text put where a record's value goes)
VALUES = [
    # literals
    ("true", b"true"), ("false", b"false"), ("null", b"null"),
    ("True", b"True"), ("TRUE", b"TRUE"), ("nul", b"nul"), ("tru", b"tru"), ("nulll", b"nulll"),
    ("None", b"None"), ("undefined", b"undefined"),
    ("NaN", b"NaN"), ("Infinity", b"Infinity"), ("-Infinity", b"-Infinity"), ("-NaN", b"-NaN"),
    # numbers
    ("0", b"0"), ("-0", b"-0"), ("int", b"123"), ("negative", b"-42"), ("fraction", b"1.5"),
    ("neg-fraction", b"-0.5"), ("exp", b"1e5"), ("EXP", b"1E5"), ("exp-plus", b"1e+5"),
    ("exp-minus", b"1e-5"), ("exp-leading-zero", b"1E-05"), ("zero-exp", b"0e0"),
    ("neg-zero-float", b"-0.0"), ("frac-exp", b"1.0e+10"),
    ("int-64-edge", b"18446744073709551615"), ("int-beyond-64", b"18446744073709551616"),
    ("int-below-i64", b"-9223372036854775809"), ("int-30-digits", b"123456789012345678901234567890"),
    ("int-400-digits", b"9" * 400), ("int-2^53+1", b"9007199254740993"),
    ("exp-400", b"1e400"), ("exp-minus-400", b"-1e400"), ("tiny-1e-400", b"1e-400"),
    ("long-decimal", b"0.1234567890123456789"), ("min-subnormal", b"5e-324"),
    ("max-double", b"1.7976931348623157e308"), ("below-subnormal", b"2.4e-324"),
    ("leading-zero", b"01"), ("neg-leading-zero", b"-01"), ("double-zero", b"00"),
    ("dot-no-fraction", b"1."), ("no-int-part", b".5"), ("neg-no-int-part", b"-.5"),
    ("plus-sign", b"+1"), ("exp-no-digits", b"1e"), ("exp-sign-no-digits", b"1e+"),
    ("EXP-minus-no-digits", b"1E-"), ("minus-alone", b"-"), ("double-minus", b"--1"),
    ("dot-exp", b"1.e5"), ("hex", b"0x10"), ("underscore", b"1_000"), ("fraction-exp", b"1e5.5"),
    ("two-dots", b"0.0.1"), ("arabic-digit", "\u0661".encode()), ("fullwidth-digit", "\uff11".encode()),
    ("two-numbers", b"1 2"),
    # strings
    ("empty-string", b'""'), ("string", b'"a"'), ("raw-utf8", '"é€😀"'.encode()),
    ("escape-u", b'"\\u00e9"'), ("escape-quote", b'"\\""'), ("escape-backslash", b'"\\\\"'),
    ("escape-slash", b'"\\/"'), ("escape-controls", b'"\\b\\f\\n\\r\\t"'), ("escape-nul", b'"\\u0000"'),
    ("escape-pair", b'"\\uD83D\\uDE00"'), ("escape-pair-lower", b'"\\ud83d\\ude00"'),
    ("raw-del", b'"\x7f"'), ("raw-u2028", '"\u2028\u2029"'.encode()), ("raw-bom-in-string", '"\ufeff"'.encode()),
    ("raw-nul", b'"\x00"'), ("raw-x01", b'"\x01"'), ("raw-x1f", b'"\x1f"'), ("raw-tab", b'"a\tb"'),
    ("raw-newline", b'"a\nb"'), ("raw-cr", b'"a\rb"'),
    ("escape-x", b'"\\x41"'), ("escape-a", b'"\\a"'), ("escape-U", b'"\\U0001F600"'),
    ("escape-single-quote", b'"\\\'"'), ("escape-u-short", b'"\\u12"'), ("escape-u-bad-hex", b'"\\u12G4"'),
    ("escape-u-end", b'"\\u"'), ("escape-at-end", b'"\\"'), ("unterminated", b'"abc'),
    ("single-quotes", b"'a'"), ("unquoted", b"abc"),
    ("lone-high", b'"\\ud800"'), ("lone-low", b'"\\udc00"'), ("lone-high-then-char", b'"\\ud800x"'),
    ("high-then-non-low", b'"\\ud800\\u0041"'), ("reversed-pair", b'"\\ude00\\ud83d"'),
    ("two-highs", b'"\\ud83d\\ud83d"'), ("lone-high-key", b'{"\\udbff": 1}'),
    ("invalid-utf8", b'"\xff"'), ("overlong-utf8", b'"\xc0\xaf"'), ("encoded-surrogate", b'"\xed\xa0\x80"'),
    ("truncated-utf8", b'"\xe2\x82"'),
    # arrays
    ("empty-array", b"[]"), ("array", b"[1,2]"), ("array-spaces", b"[ 1 , 2 ]"), ("nested-arrays", b"[[[]]]"),
    ("array-trailing-comma", b"[1,]"), ("array-leading-comma", b"[,1]"), ("array-double-comma", b"[1,,2]"),
    ("array-missing-comma", b"[1 2]"), ("array-only-comma", b"[,]"), ("array-unclosed", b"[1"),
    ("array-wrong-close", b"[1}"), ("array-colon", b"[1:2]"),
    # objects
    ("empty-object", b"{}"), ("object", b'{"a":1}'), ("object-two", b'{"a":1,"b":[true]}'),
    ("nested-objects", b'{"a":{"b":{}}}'), ("duplicate-keys", b'{"a":1,"a":2}'), ("empty-key", b'{"":1}'),
    ("object-trailing-comma", b'{"a":1,}'), ("object-only-comma", b"{,}"), ("key-no-value", b'{"a"}'),
    ("key-colon-no-value", b'{"a":}'), ("missing-colon", b'{"a" 1}'), ("unquoted-key", b"{a:1}"),
    ("single-quoted-key", b"{'a':1}"), ("number-key", b"{1:2}"), ("object-missing-comma", b'{"a":1 "b":2}'),
    ("semicolon", b'{"a":1;"b":2}'), ("double-colon", b'{"a"::1}'), ("object-wrong-close", b'{"a":1]'),
    ("object-unclosed", b'{"a":1'), ("null-key", b"{null:1}"),
    # whitespace
    ("ws-space", b" 1 "), ("ws-tab", b"\t1\t"), ("ws-crlf", b"\r\n1\r\n"), ("ws-inside", b"[ 1 ,\t{ \"a\" :\r\n2 } ]"),
    ("ws-formfeed", b"\x0c1"), ("ws-vtab", b"\x0b1"), ("ws-nbsp", "\u00a01".encode()),
    ("ws-u2028", "\u20281".encode()), ("ws-ideographic", "\u30001".encode()), ("ws-bom", "\ufeff1".encode()),
    ("ws-nul", b"\x001"),
    # comments
    ("block-comment", b"/* c */ 1"), ("line-comment", b"1 // c\n"), ("hash-comment", b"# c\n1"),
    # nesting
    ("nested-100", b"[" * 100 + b"]" * 100), ("nested-500-objects", b'{"a":' * 500 + b"1" + b"}" * 500),
    ("nested-deep", b"[" * DEEP + b"]" * DEEP), ("nested-deep-objects", b'{"a":' * DEEP + b"1" + b"}" * DEEP),
    ("nested-deep-unclosed", b"[" * DEEP), ("nested-deep-unbalanced", b"[" * DEEP + b"]" * (DEEP - 1) + b"}"),
    ("nested-deep-trailing-comma", b"[" * DEEP + b"1,]" + b"]" * (DEEP - 1)),
    ("nested-deep-nan", b"[" * DEEP + b"NaN" + b"]" * DEEP),
    ("nested-deep-leading-zero", b'{"a":' * DEEP + b"01" + b"}" * DEEP),
    ("nested-deep-missing-colon", b'{"a":' * (DEEP - 1) + b'{"a" 1' + b"}" * DEEP),
    ("nested-deep-raw-control", b"[" * DEEP + b'"\x01"' + b"]" * DEEP),
    # extra data
    ("two-strings", b'"a" "b"'), ("two-objects", b"{} {}"), ("value-then-garbage", b"1 x"),
]

# 1.6 MB, over the scanner's 1 MiB block; %s is where one more record may go, in the second.
LARGE = b"[" + (b'{"v":"' + b"x" * 100 + b'"},') * 15000 + b'{"v":1}%s' + b',{"v":2}' * 5000 + b"]"

# (id, shape, the whole file): the file around the records
FILES = [
    ("array", "array", b'[{"v":1},{"v":2}]'),
    ("array-empty", "array", b"[]"),
    ("array-trailing-comma", "array", b'[{"v":1},]'),
    ("array-missing-comma", "array", b'[{"v":1} {"v":2}]'),
    ("array-double-comma", "array", b'[{"v":1},,{"v":2}]'),
    ("array-truncated", "array", b'[{"v":1},{"v":2}'),
    ("array-truncated-in-record", "array", b'[{"v":1},{"v":'),
    ("array-truncated-in-string", "array", b'[{"v":1},{"v":"ab'),
    ("array-extra-value", "array", b'[{"v":1}] [{"v":2}]'),
    ("array-extra-garbage", "array", b'[{"v":1}]x'),
    ("array-extra-close", "array", b'[{"v":1}]]'),
    ("array-trailing-line-comment", "array", b'[{"v":1}] // done'),
    ("array-leading-comment", "array", b'/* c */ [{"v":1}]'),
    ("array-comment-between", "array", b'[{"v":1}, /* c */ {"v":2}]'),
    ("array-bom", "array", b'\xef\xbb\xbf[{"v":1}]'),
    ("array-two-boms", "array", b'\xef\xbb\xbf\xef\xbb\xbf[{"v":1}]'),
    ("array-bom-between", "array", b'[{"v":1},\xef\xbb\xbf{"v":2}]'),
    ("array-whitespace", "array", b' \r\n\t[ {"v":1} ,\n{"v":2} ]\n\n'),
    ("array-formfeed-between", "array", b'[{"v":1},\x0c{"v":2}]'),
    ("array-nul-after", "array", b'[{"v":1}]\x00'),
    ("array-of-nan", "array", b'[{"v":1},NaN]'),
    ("array-records-then-number", "array", b'[{"v":1},{"v":2}1]'),
    ("array-bad-in-second", "array", b'[{"v":1},{"v":01}]'),
    ("array-utf8-error-late", "array", b'[{"v":1},{"v":"\xff"}]'),
    ("array-fast-run-trailing-comma", "array", b"[" + b'{"v":1},' * 200 + b"]"),
    ("array-fast-run-bad-number", "array", b"[" + b'{"v":1},' * 200 + b'{"v":-}]'),
    ("envelope", "envelope", b'{"results":[{"v":1}],"info":{"seed":"x"}}'),
    ("envelope-info-first", "envelope", b'{"info":{"n":1},"results":[{"v":1}]}'),
    ("envelope-trailing-comma", "envelope", b'{"results":[{"v":1}],}'),
    ("envelope-missing-comma", "envelope", b'{"results":[{"v":1}] "info":{}}'),
    ("envelope-missing-colon", "envelope", b'{"results" [{"v":1}]}'),
    ("envelope-info-nan", "envelope", b'{"results":[{"v":1}],"info":{"a":NaN}}'),
    ("envelope-info-trailing-comma", "envelope", b'{"results":[{"v":1}],"info":{"a":[1,]}}'),
    ("envelope-info-leading-zero", "envelope", b'{"results":[{"v":1}],"info":01}'),
    ("envelope-info-lone-surrogate", "envelope", b'{"results":[{"v":1}],"info":"\\ud800"}'),
    ("envelope-info-huge-number", "envelope", b'{"results":[{"v":1}],"info":1e400}'),
    ("envelope-extra-close", "envelope", b'{"results":[{"v":1}]}}'),
    ("envelope-extra-value", "envelope", b'{"results":[{"v":1}]} {}'),
    ("envelope-truncated", "envelope", b'{"results":[{"v":1}]'),
    ("envelope-truncated-after-comma", "envelope", b'{"results":[{"v":1}],'),
    ("envelope-single-quoted-key", "envelope", b'{"results":[{"v":1}],\'info\':1}'),
    ("envelope-duplicate-results", "envelope", b'{"results":[{"v":1}],"results":[{"v":2},{"v":3}]}'),
    ("envelope-bom", "envelope", b'\xef\xbb\xbf{"results":[{"v":1}]}'),
    ("envelope-comment", "envelope", b'{"results":[{"v":1}] /* c */}'),
    ("envelope-escaped-results-key", "envelope", b'{"\\u0072esults":[{"v":1},{"v":2}]}'),
    ("envelope-results-empty", "envelope", b'{"results":[],"info":{}}'),
    ("object", "object", b'{"info": {"n": 1}, "v": [1, 2]}'),
    ("object-empty", "object", b"{}"),
    ("object-results-number", "object", b'{"results": 5}'),
    ("object-results-null", "object", b'{"info": 1, "results": null}'),
    ("object-results-list-then-number", "object", b'{"results": [{"v": 1}, {"v": 2}], "results": 5}'),
    ("object-results-large-list-then-number", "object", b'{"results": ' + LARGE % b"" + b', "results": 5}'),
    ("envelope-results-number-then-list", "envelope", b'{"results": 5, "results": [{"v": 1}]}'),
    ("object-truncated", "object", b'{"a": 1'),
    ("object-extra-data", "object", b'{"a": 1} x'),
    ("object-trailing-comma", "object", b'{"a": 1,}'),
    ("array-utf16", "array", '[{"v":1}]'.encode("utf-16")),
    ("array-large", "array", LARGE % b""),
    ("array-large-trailing-comma", "array", (LARGE % b"")[:-1] + b",]"),
    ("array-large-bad-late", "array", LARGE % b',{"v":01}'),
    ("array-large-nan-late", "array", LARGE % b',{"v":NaN}'),
    ("array-large-control-late", "array", LARGE % b',{"v":"\x01"}'),
    ("ndjson", "ndjson", b'{"v":1}\n{"v":2}\n'),
    ("ndjson-no-final-newline", "ndjson", b'{"v":1}\n{"v":2}'),
    ("ndjson-crlf", "ndjson", b'{"v":1}\r\n{"v":2}\r\n'),
    ("ndjson-blank-lines", "ndjson", b'\n{"v":1}\n\n  \n{"v":2}\n\t\n'),
    ("ndjson-bom", "ndjson", b'\xef\xbb\xbf{"v":1}\n{"v":2}\n'),
    ("ndjson-bom-second-line", "ndjson", b'{"v":1}\n\xef\xbb\xbf{"v":2}\n'),
    ("ndjson-formfeed-line", "ndjson", b'{"v":1}\n\x0c\n{"v":2}\n'),
    ("ndjson-vtab-line", "ndjson", b'{"v":1}\n\x0b\n{"v":2}\n'),
    ("ndjson-two-on-a-line", "ndjson", b'{"v":1} {"v":2}\n'),
    ("ndjson-comment-line", "ndjson", b'{"v":1}\n// c\n{"v":2}\n'),
    ("ndjson-trailing-comma", "ndjson", b'{"v":1},\n{"v":2}\n'),
    ("ndjson-truncated", "ndjson", b'{"v":1}\n{"v":'),
    ("ndjson-cr-only", "ndjson", b'{"v":1}\r{"v":2}\r'),
]


# -- the reference -----------------------------------------------------------------------------
PARSER_DEPTH = 1000  # levels a record may nest and still be read (the parsers' recursion limit)


def _refuse(name):
    raise ValueError(f"{name} is not JSON")


def strict_parse(data: bytes):
    """The reference: the value, or ValueError. The recursion limit is raised for the call,
    so that it can tell whether a value nested 5,000 levels deep is JSON."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 4 * DEEP))
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_refuse)
    finally:
        sys.setrecursionlimit(old)


def kind_of(record) -> str:
    """"record", or "problem" for valid JSON that is no record (not an object) or that holds
    nothing storable (a lone surrogate, nesting deeper than a parser goes)."""
    if type(record) is not dict or has_surrogate(record) or depth(record) > PARSER_DEPTH:
        return "problem"
    return "record"


def expected_item(data: bytes) -> str:
    """What reading one record's text should give: "record", "problem" or "invalid"."""
    try:
        return kind_of(strict_parse(data))
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, a constant
        return "invalid"


def has_surrogate(value) -> bool:
    return any(isinstance(text, str) and any("\ud800" <= c <= "\udfff" for c in text)
               for text, _ in nodes(value))


def depth(value) -> int:
    return max(level for _, level in nodes(value))


def nodes(value):
    """(item, level) for every value and key inside ``value``, without recursion."""
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        yield item, level
        if isinstance(item, dict):
            stack.extend((key, level + 1) for key in item)
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, level + 1) for child in item)


def expected(shape: str, data: bytes):
    """("refused",) or ("read", [item kind per record]) for the file ``data``."""
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    if shape == "ndjson":
        lines = body.split(b"\n")
        if expected_item(lines[-1]) == "invalid":  # an unfinished last line: held back
            lines.pop()
        lines = [line for line in lines if line.strip(b" \t\r")]
        try:
            [line.decode("utf-8") for line in lines]
        except UnicodeDecodeError:
            return ("refused",)
        return ("read", ["record" if expected_item(line) == "record" else "problem" for line in lines])
    try:
        document = strict_parse(body)
    except ValueError:
        return ("refused",)
    if shape == "object":
        return ("read", [kind_of(document)])
    records = document if shape.startswith("array") else document["results"]
    return ("read", [kind_of(record) for record in records])


# -- the loader --------------------------------------------------------------------------------
def loaded(tmp_path: Path, shape: str, data: bytes):
    """What scan and read_chunk make of the file: ("refused",) or ("read", [kinds])."""
    path = tmp_path / ("data.ndjson" if shape == "ndjson" else "data.json")
    path.write_bytes(data)
    try:
        plan = scan(str(path), 1000, "ndjson" if shape == "ndjson" else None, "", None)
    except InputError:
        return ("refused",)
    assert plan.shape == shape.split("-")[0]
    kinds = []
    for start, end, first, count in plan.chunks:
        for _, record in read_chunk(plan.path, plan.shape, start, end, first):
            kinds.append("problem" if isinstance(record, RecordProblem) else "record")
    return ("read", kinds)


MANY = b'{"v": 1}, ' * 100  # records enough for the scanner's fast path (orjson runs)
SHAPES = {"array": b'[{"v": %s}]', "ndjson": b'{"v": %s}\n', "object": b'{"v": %s}',
          "envelope": b'{"results": [{"v": %s}], "info": {}}',
          "array-many": b"[" + MANY + b'{"v": %s}, ' + MANY + b'{"v": 1}]',
          "envelope-many": b'{"results": [' + MANY + b'{"v": %s}, ' + MANY + b'{"v": 1}], "info": {}}'}


def in_shape(shape: str, case: bytes) -> bytes:
    return SHAPES[shape] % case


def _params(cases):
    for case_id, shape, data in cases:
        yield pytest.param(shape, data, id=f"{shape}:{case_id}")


VALUE_FILES = [(case_id, shape, in_shape(shape, case))
               for case_id, case in VALUES for shape in SHAPES]


@pytest.mark.parametrize("shape, data", list(_params(VALUE_FILES + FILES)))
def test_the_loader_accepts_what_a_strict_parser_accepts(tmp_path, shape, data):
    assert loaded(tmp_path, shape, data) == expected(shape, data)


@pytest.mark.parametrize("case", [pytest.param(case, id=case_id) for case_id, case in VALUES])
def test_codec_loads_accepts_what_a_strict_parser_accepts(case):
    """What RFC 8259 refuses is InvalidJSON; valid JSON holding nothing storable is one of
    the other JSONErrors. A text nested past the parser is NestedTooDeep, valid or not: the
    parser stops before it can tell."""
    data = b'{"v": %s}' % case
    want = expected_item(data)
    if want == "record":
        assert codec.loads(data) is not None
        return
    refusals = {"invalid": codec.InvalidJSON, "problem": (codec.LoneSurrogate, codec.NestedTooDeep)}[want]
    with pytest.raises(codec.NestedTooDeep if depth_of_text(data) > PARSER_DEPTH else refusals):
        codec.loads(data)


def depth_of_text(data: bytes) -> int:
    """How deep brackets nest in ``data`` (strings ignored: enough for the cases here)."""
    level = deepest = 0
    for byte in data:
        level += byte in b"[{"
        level -= byte in b"]}"
        deepest = max(deepest, level)
    return deepest


NUMBERS = [(case_id, case) for case_id, case in VALUES
           if b"\n" not in case and expected_item(case) == "problem" and type(strict_parse(case)) in (int, float)]


@pytest.mark.parametrize("shape", ["array", "ndjson", "envelope", "object"])
@pytest.mark.parametrize("case", [pytest.param(case, id=case_id) for case_id, case in NUMBERS])
def test_numbers_are_read_exactly(tmp_path, shape, case):
    """The number read back is the number written (equal as a number; an int stays an int)."""
    (_, record), = loaded_records(tmp_path, shape, in_shape(shape, case))
    exact = json.loads(case, parse_float=Decimal, parse_int=int)
    got = record["v"]
    assert type(got) is int if type(exact) is int else type(got) in (float, Decimal)
    assert (Decimal(repr(got)) if type(got) is float else Decimal(got)) == exact


def loaded_records(tmp_path: Path, shape: str, data: bytes) -> list:
    path = tmp_path / ("data.ndjson" if shape == "ndjson" else "data.json")
    path.write_bytes(data)
    plan = scan(str(path), 1000, "ndjson" if shape == "ndjson" else None, "", None)
    return [item for start, end, first, _ in plan.chunks
            for item in read_chunk(plan.path, plan.shape, start, end, first)]
