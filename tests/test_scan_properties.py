"""Property: ``scan`` then ``read_chunk`` of every planned chunk gives exactly the records
``json.loads`` finds in the same file, in order, at positions 0..n-1.

Documents are generated as text, not dumped by ``json``: every string character is written
raw or escaped (``\\u00e9``, surrogate pairs for astral characters, ``\\"``, ``\\\\``, ``\\/``),
whitespace between tokens varies, and strings are biased towards the characters that
delimit records (``}, {``) so the scanner's fast path meets false boundaries. Some records are
padded so that files cross the scanner's block (``sources.common.BLOCK_BYTES``).
"""

import json
import random
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from durable_ingest.sources.common import BLOCK_BYTES, MAX_RECORD_BYTES
from durable_ingest.sources.read import RecordProblem, read_chunk
from durable_ingest.sources.scan import scan

TRICKY = '{}[],:"\\/ \t\n\r\x00\x1f\x7fé€\u2028\U0001F600\U0001D11E'
TEXT = st.text(alphabet=st.one_of(st.sampled_from(TRICKY), st.characters(codec="utf-8")), max_size=8)
SCALARS = st.one_of(
    st.none(), st.booleans(), TEXT,
    st.integers(-(1 << 63), (1 << 63) - 1),  # orjson's range (the limit in docs/sources.md)
    st.floats(allow_nan=False, allow_infinity=False),
)
# Nested three levels deep, built by hand: st.recursive retries a lot, and that is slow.
NESTED = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(TEXT, SCALARS, max_size=3))
VALUES = st.one_of(SCALARS, st.lists(NESTED, max_size=3), st.dictionaries(TEXT, NESTED, max_size=3))
OBJECTS = st.dictionaries(TEXT, VALUES, max_size=3)
NOT_OBJECTS = st.one_of(SCALARS, st.lists(VALUES, max_size=2))
# A long string, as (unit, bytes): files with one or a few cross the 1 MiB block.
# Under MAX_RECORD_BYTES / 3 (escapes can triple it): an NDJSON line over the limit is a
# RecordTooLarge problem, not a record.
PADDING_UNITS = st.sampled_from(["x", "é", "\U0001F600", "}, {", 'a"b\\', "€ \u2028"])
PADDING = {"ndjson": st.tuples(PADDING_UNITS, st.integers(BLOCK_BYTES // 8, MAX_RECORD_BYTES // 4)),
           "document": st.tuples(PADDING_UNITS, st.integers(BLOCK_BYTES // 8, BLOCK_BYTES * 5 // 4))}

SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                 "\t": "\\t", "/": "\\/"}
WHITESPACE = ["", " ", "  ", "\t", "\n", "\r\n", " \n\t "]
LINE_WHITESPACE = ["", " ", "\t", " \t "]  # NDJSON: a record stays on its line


class Writer:
    """Writes JSON text with choices (escapes, whitespace) made by a seeded random."""

    def __init__(self, rnd: random.Random, whitespace: list):
        self.rnd, self.whitespace = rnd, whitespace

    def ws(self) -> str:
        return self.rnd.choice(self.whitespace)

    def value(self, value) -> str:
        if isinstance(value, str):
            return self.string(value)
        if isinstance(value, dict):
            items = [f"{self.string(k)}{self.ws()}:{self.ws()}{self.value(v)}" for k, v in value.items()]
            return self.container("{", items, "}")
        if isinstance(value, list):
            return self.container("[", [self.value(v) for v in value], "]")
        return json.dumps(value)  # null, true, false, numbers

    def container(self, opening: str, items: list, closing: str) -> str:
        if not items:
            return opening + self.ws() + closing
        separator = f"{self.ws()},{self.ws()}"
        return f"{opening}{self.ws()}{separator.join(items)}{self.ws()}{closing}"

    def string(self, text: str) -> str:
        if len(text) > 1000:  # padding: written in bulk
            return json.dumps(text, ensure_ascii=self.rnd.random() < 0.5)
        return '"' + "".join(self.character(c) for c in text) + '"'

    def character(self, c: str) -> str:
        must_escape = c in '"\\' or c < " "
        if not must_escape and self.rnd.random() < 0.6:
            return c
        if c in SHORT_ESCAPES and self.rnd.random() < 0.5:
            return SHORT_ESCAPES[c]
        hex4 = "\\u{:04x}" if self.rnd.random() < 0.5 else "\\u{:04X}"
        code = ord(c)
        if code < 0x10000:
            return hex4.format(code)
        code -= 0x10000
        return hex4.format(0xD800 + (code >> 10)) + hex4.format(0xDC00 + (code & 0x3FF))


def write_dataset(shape: str, records: list, rnd: random.Random, extra: tuple = ({}, {})) -> str:
    """The text of a dataset file holding ``records``; ``extra``: an envelope's other keys,
    before and after "results"."""
    write = Writer(rnd, LINE_WHITESPACE if shape == "ndjson" else WHITESPACE)
    if shape == "ndjson":
        lines = []
        for record in records:
            if rnd.random() < 0.2:
                lines.append(write.ws())  # a blank line
            lines.append(write.ws() + write.value(record) + write.ws())
        newline = rnd.choice(["\n", "\r\n"])
        return newline.join(lines) + rnd.choice(["", "\n", "\n\n", "\n \n"])
    array = write.container("[", [write.value(r) for r in records], "]")
    if shape == "array":
        return write.ws() + array + write.ws()
    before, after = extra
    members = [f"{write.string(k)}{write.ws()}:{write.ws()}{write.value(v)}" for k, v in before.items()]
    members.append(f'{write.string("results")}{write.ws()}:{write.ws()}{array}')
    members += [f"{write.string(k)}{write.ws()}:{write.ws()}{write.value(v)}" for k, v in after.items()]
    return write.ws() + write.container("{", members, "}") + write.ws()


def padding(unit: str, size: int) -> str:
    """A string of about ``size`` bytes of UTF-8."""
    return unit * (size // len(unit.encode("utf-8")) + 1)


@st.composite
def datasets(draw):
    """(shape, file text, records, chunk size): a dataset file in one of the three shapes."""
    shape = draw(st.sampled_from(["array", "envelope", "ndjson"]))
    count = draw(st.integers(2 if shape == "ndjson" else 0, 16))
    records = []
    for position in range(count):
        # NDJSON's first line must be an object, or the file is taken for something else.
        if (position or shape != "ndjson") and draw(st.integers(0, 9)) == 0:
            records.append(draw(NOT_OBJECTS))
            continue
        record = draw(OBJECTS)
        if draw(st.integers(0, 14)) == 0:
            record["padding"] = padding(*draw(PADDING["ndjson" if shape == "ndjson" else "document"]))
        records.append(record)
    keys = TEXT.filter(lambda k: k != "results")
    before = draw(st.dictionaries(keys, VALUES, max_size=2)) if shape == "envelope" else {}
    after = {k: v for k, v in draw(st.dictionaries(keys, VALUES, max_size=2)).items()
             if k not in before} if shape == "envelope" else {}
    # The writer's many small choices come from one seed: as hypothesis draws they would be
    # thousands per example, and slow.
    text = write_dataset(shape, records, random.Random(draw(st.integers(0, 2**32), label="seed")),
                         (before, after))
    chunk_size = draw(st.integers(1, count + 1))
    return shape, text, records, chunk_size


def over_one_block(shape: str, chunk_size: int, seed: int):
    """A dataset that surely crosses the 1 MiB block, with records cut by it."""
    records = [{"id": i, "name": "Zoë \U0001F600 }, {", "tags": ["a", {"b": "\\/"}]} for i in range(12)]
    for i, unit in ((2, "é}, {"), (5, "\U0001F600x"), (8, "x"), (10, '"\\')):
        records[i]["padding"] = padding(unit, BLOCK_BYTES // 4 + 1000)
    if shape != "ndjson":
        records[7] = [1, {"not": "an object"}]
    extra = ({"info": {"seed": "x"}}, {"version": "1.0"})
    return shape, write_dataset(shape, records, random.Random(seed), extra), records, chunk_size


def parsed(shape: str, text: str) -> list:
    """The records as ``json.loads`` reads the same text."""
    if shape == "ndjson":
        return [json.loads(line) for line in text.split("\n") if line.strip()]
    document = json.loads(text)
    return document if shape == "array" else document["results"]


JSON_TYPES = {type(None): "null", bool: "boolean", int: "number", float: "number", str: "string",
              list: "array"}


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(dataset=datasets())
@example(dataset=over_one_block("array", 5, seed=1))
@example(dataset=over_one_block("envelope", 1, seed=2))
@example(dataset=over_one_block("ndjson", 13, seed=3))
def test_scan_then_read_every_chunk_gives_what_json_loads_gives(dataset):
    shape, text, records, chunk_size = dataset
    expected = parsed(shape, text)
    assert len(expected) == len(records)  # the generator wrote what it meant to

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("data.ndjson" if shape == "ndjson" else "data.json")
        path.write_bytes(text.encode("utf-8"))
        plan = scan(str(path), chunk_size)
        got = []
        for start, end, first, count in plan.chunks:
            chunk = list(read_chunk(plan.path, plan.shape, start, end, first))
            assert len(chunk) == count, (start, end, first, count)
            got.extend(chunk)

    assert plan.shape == shape
    assert plan.records == len(expected)
    assert [c[2] for c in plan.chunks] == list(range(0, len(expected), chunk_size))
    assert all(c[3] == chunk_size for c in plan.chunks[:-1])
    assert [position for position, _ in got] == list(range(len(expected)))
    for position, (value, (_, record)) in enumerate(zip(expected, got)):
        if isinstance(value, dict):
            assert record == value, position
        else:
            assert record == RecordProblem(
                "NotAnObject", f"record is {JSON_TYPES[type(value)]}, not a JSON object"), position


def test_the_fixed_examples_cross_the_block():
    """The explicit examples above are there to cross the scanner's block: check they do."""
    for shape in ("array", "envelope", "ndjson"):
        assert len(over_one_block(shape, 1, seed=0)[1].encode("utf-8")) > BLOCK_BYTES
