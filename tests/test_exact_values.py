"""Exact values through the real ``ingest load`` (in-process, SQLite and Postgres): what
lands is what the source said, or an ``errors`` row that says why and keeps the record's
text (``errors.source``).

A property test writes dataset files as text (integers of any size, long decimals,
exponents, escapes, astral characters, nesting) and compares what is stored, read back as
text (``data::text`` on Postgres: no float parsing on the way) and parsed exactly, with an
exact parse of each record's text. Then the cases one by one: NUL, numbers beyond Postgres
and invalid JSON keep their text in ``errors.source``; ``ingest retry`` redrives a 30-digit
integer exactly; a file of one object is one record (file, gzip, stdin); ``--key`` on a
25-digit integer; a transform's Decimals and big ints stored exactly, its NaN refused; a
dataset table's decimal column.
"""

import gzip
import http.server
import json
import random
import textwrap
import threading
import uuid
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import answer_json, cli_load


# -- reading back --------------------------------------------------------------------------------
def exact(text: str):
    """The value of a JSON text, numbers exact (ints as int, the others as Decimal)."""
    return json.loads(text, parse_float=Decimal)


def stored_rows(backend, run_id: str, table: str = "tasks") -> dict:
    """position -> the stored data of a run, parsed exactly from its text."""
    data = "data::text" if backend.name == "postgres" else "data"
    rows = backend.query(f"SELECT position, {data} FROM {table} WHERE run_id = :r", r=run_id)
    return {position: exact(text) for position, text in rows}


def error_rows(backend, run_id: str) -> dict:
    """position -> (error type, message, errors.source) of a run's errors rows."""
    rows = backend.query("SELECT position, message, source FROM errors WHERE run_id = :r", r=run_id)
    return {p: (m if isinstance(m, dict) else json.loads(m), s) for p, m, s in rows}


def same(ours, theirs, where="$") -> None:
    """Equal JSON values: numbers by value (1.10 and 1.1, 1E2 and 100 are one number)."""
    if isinstance(theirs, dict):
        assert type(ours) is dict and ours.keys() == theirs.keys(), where
        for key in theirs:
            same(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(theirs, list):
        assert type(ours) is list and len(ours) == len(theirs), where
        for index, (mine, other) in enumerate(zip(ours, theirs)):
            same(mine, other, f"{where}[{index}]")
    elif type(theirs) in (int, Decimal):
        assert type(ours) in (int, Decimal) and Decimal(ours) == Decimal(theirs), (where, ours, theirs)
    else:
        assert type(ours) is type(theirs) and ours == theirs, (where, ours, theirs)


def load(cli, backend, *args, code=0) -> dict:
    return cli_load(cli, backend, *args, "--no-progress", code=code)


# -- generated documents -------------------------------------------------------------------------
EDGE_INTS = ["0", "-0", "9007199254740993", "9223372036854775807", "9223372036854775808",
             "18446744073709551616", "-9223372036854775809", "123456789012345678901234567890"]
EXPONENTS = [0, 1, 2, 5, 16, 22, 300, 308, 309, 323, 324, 330, 400]
ESCAPES = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n",
           "\r": "\\r", "\t": "\\t"}
CHARACTERS = 'aé€"\\/\n\t\x01\x1f\x7f \u2028\ufeff\U0001F600\U0001D11E}, {'


class Writer:
    """JSON text with its choices (numbers, escapes, nesting) made by a seeded random."""

    def __init__(self, seed: int):
        self.rnd = random.Random(seed)

    def number(self) -> str:
        rnd = self.rnd
        if rnd.random() < 0.2:
            return rnd.choice(EDGE_INTS)
        sign = "-" if rnd.random() < 0.3 else ""
        whole = str(rnd.randrange(10 ** rnd.randint(1, 30)))
        if rnd.random() < 0.4:
            return sign + whole
        text = sign + whole
        if rnd.random() < 0.8:
            text += "." + "".join(rnd.choices("0123456789", k=rnd.randint(1, 40)))
        if rnd.random() < 0.4:
            exponent = rnd.choice(EXPONENTS)
            text += rnd.choice("eE") + rnd.choice(["", "+", "-"]) + "0" * rnd.randint(0, 1) + str(exponent)
        return text

    def string(self) -> str:
        chars = self.rnd.choices(CHARACTERS, k=self.rnd.randint(0, 8))
        return '"' + "".join(self.character(c) for c in chars) + '"'

    def character(self, c: str) -> str:
        if c not in '"\\' and c >= " " and self.rnd.random() < 0.5:
            return c
        if c in ESCAPES and self.rnd.random() < 0.6:
            return ESCAPES[c]
        code = ord(c)
        units = [code] if code < 0x10000 else [0xD800 + ((code - 0x10000) >> 10), 0xDC00 + (code & 0x3FF)]
        return "".join(("\\u{:04x}" if self.rnd.random() < 0.5 else "\\u{:04X}").format(u) for u in units)

    def value(self, depth: int) -> str:
        choice = self.rnd.random()
        if depth > 3 or choice < 0.45:
            return self.number()
        if choice < 0.7:
            return self.string()
        if choice < 0.75:
            return self.rnd.choice(["true", "false", "null"])
        if choice < 0.85:
            return "[" + ", ".join(self.value(depth + 1) for _ in range(self.rnd.randint(0, 3))) + "]"
        return self.object(depth + 1, self.rnd.randint(0, 3))

    def object(self, depth: int, size: int) -> str:
        keys = {f"k{n}{self.string()[1:-1]}" for n in range(size)}
        return "{" + ", ".join(f'"{key}": {self.value(depth)}' for key in sorted(keys)) + "}"

    def record(self) -> str:
        """A record; now and then one nested deep, or one no database can hold."""
        draw = self.rnd.random()
        if draw < 0.05:
            return '{"deep": ' + "[" * 60 + self.number() + "]" * 60 + "}"
        if draw < 0.08:
            return '{"nul": "a\\u0000b", "n": %s}' % self.number()
        if draw < 0.11:
            return '{"n": %s, "huge": 1e200000}' % self.number()
        if draw < 0.13:
            return '{"lone": "\\udc00", "n": %s}' % self.number()
        return self.object(1, self.rnd.randint(1, 6))


def expected_error(text: str):
    """The error type a record's text must get, or None: it lands in tasks."""
    if "1e200000" in text:
        return "NumberOutOfRange"
    if "\\udc00" in text:
        return "LoneSurrogate"
    if "\\u0000" in text:
        return "NulCharacter"
    return None


def dataset_text(shape: str, records: list) -> str:
    if shape == "ndjson":
        return "".join(f" {r}\r\n" if n % 3 == 0 else f"{r}\n" for n, r in enumerate(records))
    array = "[\n  " + ",\n  ".join(records) + "\n]"
    return array if shape == "array" else '{"info": {"n": 1e400}, "results": ' + array + "}"


@st.composite
def datasets(draw):
    shape = draw(st.sampled_from(["ndjson", "array", "envelope"]))
    writer = Writer(draw(st.integers(0, 2**32)))
    return shape, [writer.record() for _ in range(draw(st.integers(20, 40)))]


@pytest.mark.slow  # each example is a real load
@settings(max_examples=6, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(dataset=datasets())
def test_what_lands_is_what_the_source_said(cli, backend, workdir, dataset):
    shape, records = dataset
    path = workdir / f"{uuid.uuid4().hex}.{'ndjson' if shape == 'ndjson' else 'json'}"
    path.write_text(dataset_text(shape, records), encoding="utf-8")

    summary = load(cli, backend, path, "--transform", "identity", "--label", path.stem)

    tasks, errors = stored_rows(backend, summary["run_id"]), error_rows(backend, summary["run_id"])
    assert (summary["records"], len(tasks) + len(errors)) == (len(records), len(records))
    for position, text in enumerate(records):
        want = expected_error(text)
        if want is None:
            assert position in tasks, (position, text, errors.get(position))
            same(tasks[position], exact(text), f"record {position}")
        else:
            message, source = errors[position]
            assert (message["error_type"], source) == (want, text)


# -- errors.source -------------------------------------------------------------------------------
@pytest.mark.slow
def test_errors_source_keeps_the_records_text(cli, backend, workdir):
    """A NUL (JSONB can't hold it), a number beyond Postgres, invalid JSON: each errors row
    keeps the record's text as it was, and says why naming the field."""
    lines = ['{"id": 0}', '{"id": 1, "name": "a\\u0000b"}', '{"id": 2, "price": 1.5e200000}',
             '{"id": 3, "oops": [1, 2,]}', '  {"id": 4, "n": 12345678901234567890123}  ',
             '{"id": 5, "raw": "\x00"}']
    (workdir / "bad.ndjson").write_text("\n".join(lines) + "\n")

    summary = load(cli, backend, "bad.ndjson")

    assert (summary["tasks"], summary["errors"]) == (2, 4)
    errors = error_rows(backend, summary["run_id"])
    assert {p: (m["error_type"], s) for p, (m, s) in errors.items()} == {
        1: ("NulCharacter", lines[1]), 2: ("NumberOutOfRange", lines[2]),
        3: ("InvalidJSON", lines[3]), 5: ("InvalidJSON", '{"id": 5, "raw": "\\u0000"}')}
    assert errors[2][0]["error"].startswith("field price: 1.5e200000 is beyond what Postgres numeric holds")
    assert errors[1][0]["record"] is None  # the text is kept once: source
    same(stored_rows(backend, summary["run_id"])[4], {"id": 4, "n": 12345678901234567890123})


@pytest.mark.slow
def test_a_document_records_text_is_kept_too(cli, sqlite_backend, workdir):
    text = '[{"id": 0},\n  {"id": 1, "s": "\\ud800"} ,{"id": 2, "deep": %s}]' % ("[" * 2000 + "]" * 2000)
    (workdir / "doc.json").write_text(text)

    summary = load(cli, sqlite_backend, "doc.json", "--chunk-size", "2")

    errors = error_rows(sqlite_backend, summary["run_id"])
    assert {p: (m["error_type"], s) for p, (m, s) in errors.items()} == {
        1: ("LoneSurrogate", '{"id": 1, "s": "\\ud800"}'),
        2: ("NestingTooDeep", '{"id": 2, "deep": %s}' % ("[" * 2000 + "]" * 2000))}


def write_transform(workdir, name: str, source: str) -> str:
    path = workdir / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return f"{path}:shape"


@pytest.mark.slow  # a load and a retry
def test_retry_rescues_a_30_digit_integer_exactly(cli, backend, workdir):
    gate = write_transform(workdir, "gate", """
        import os
        def shape(record):
            if not os.path.exists("open"):
                raise PermissionError("gate closed")
            return record
    """)
    (workdir / "big.ndjson").write_text('{"id": 123456789012345678901234567890, "x": 0.1000000000000000000001}\n')
    summary = load(cli, backend, "big.ndjson", "--transform", gate, "--max-attempts", "1",
                   code=4)  # its one record failed: no record loaded
    assert (summary["tasks"], summary["errors"]) == (0, 1)

    (workdir / "open").touch()
    retried = cli("retry", summary["run_id"], "--json", env=backend.env())

    assert retried.exit_code == 0, retried.output
    assert json.loads(retried.stdout)["tasks"] == 1
    [data] = stored_rows(backend, summary["run_id"]).values()
    assert data["id"] == 123456789012345678901234567890
    assert data["x"] == Decimal("0.1000000000000000000001")


# -- one object, one record ----------------------------------------------------------------------
ONE = {"id": 7, "results": "not a list", "big": 98765432109876543210, "nested": {"a": [1, 2]}}


@pytest.mark.parametrize("how", ["file", "gzip", "stdin"])
def test_a_file_of_one_object_is_one_record(cli, sqlite_backend, workdir, how):
    text = json.dumps(ONE, indent=2)
    if how == "file":
        (workdir / "one.json").write_text(text)
        summary = load(cli, sqlite_backend, "one.json")
    elif how == "gzip":
        (workdir / "one.json.gz").write_bytes(gzip.compress(text.encode()))
        summary = load(cli, sqlite_backend, "one.json.gz")
    else:
        result = cli("load", "-", "--json", env=sqlite_backend.env(), input=text)
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout.strip().splitlines()[-1])

    assert (summary["records"], summary["tasks"], summary["errors"]) == (1, 1, 0)
    assert list(stored_rows(sqlite_backend, summary["run_id"]).values()) == [ONE]  # as read


def test_an_api_page_of_one_object_is_one_record(cli, sqlite_backend):
    body = b'{"id": 1, "big": 123456789012345678901234567890, "tags": ["a"]}'

    class OneObject(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            answer_json(self, body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OneObject)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        summary = load(cli, sqlite_backend, f"http://127.0.0.1:{server.server_port}/me",
                       "--transform", "identity")
    finally:
        server.shutdown()
        server.server_close()

    assert (summary["records"], summary["tasks"]) == (1, 1)
    assert list(stored_rows(sqlite_backend, summary["run_id"]).values()) == [exact(body.decode())]


@pytest.mark.slow
def test_an_object_with_a_results_list_is_an_envelope(cli, sqlite_backend, workdir):
    (workdir / "env.json").write_text('{"results": [{"a": 1}], "info": {}, "results": [{"b": 2}, {"c": 3}]}')
    (workdir / "rec.json").write_text('{"results": [{"a": 1}], "results": null}')

    summaries = [load(cli, sqlite_backend, name) for name in ("env.json", "rec.json")]

    assert [s["records"] for s in summaries] == [2, 1]  # the last "results" counts
    assert list(stored_rows(sqlite_backend, summaries[1]["run_id"]).values()) == [{"results": None}]


# -- keys and transforms -------------------------------------------------------------------------
@pytest.mark.slow  # two loads
def test_a_key_on_a_25_digit_integer(cli, backend, workdir):
    (workdir / "a.ndjson").write_text('{"id": 1234567890123456789012345, "v": 1}\n'
                                      '{"id": 1234567890123456789012346, "v": 2}\n')
    (workdir / "b.ndjson").write_text('{"id": 1234567890123456789012345, "v": 3}\n'
                                      '{"id": "1234567890123456789012345", "v": 4}\n')

    first = load(cli, backend, "a.ndjson", "--key", "id")
    second = load(cli, backend, "b.ndjson", "--key", "id")

    assert (first["tasks"], second["tasks"], second["skipped"]) == (2, 0, 2)
    keys = sorted(k for (k,) in backend.query("SELECT source_key FROM tasks"))
    assert keys == ["1234567890123456789012345", "1234567890123456789012346"]


def test_a_key_keeps_its_1000_byte_cap_for_numbers(cli, sqlite_backend, workdir):
    (workdir / "k.ndjson").write_text('{"id": 1}\n{"id": %s}\n' % ("7" * 1001))

    summary = load(cli, sqlite_backend, "k.ndjson", "--key", "id")

    [(message, _)] = error_rows(sqlite_backend, summary["run_id"]).values()
    assert (message["error_type"], message["error"]) == (
        "MissingKey", "id is a number longer than 1000 bytes, too long for a key")


def test_a_transform_sees_exact_values_and_its_own_are_stored_exactly(cli, sqlite_backend, workdir):
    spec = write_transform(workdir, "exacting", """
        from decimal import Decimal
        def shape(record):
            if record["id"] == 2:
                return {**record, "ratio": float("nan")}
            assert type(record["big"]) is int and type(record["fine"]) is Decimal
            assert type(record["plain"]) is float
            return {**record, "twice": record["big"] * 2, "third": Decimal(1) / Decimal(3),
                    "kinds": [type(v).__name__ for v in record.values()]}
    """)
    (workdir / "t.ndjson").write_text(
        '{"id": 1, "big": 123456789012345678901234567890, "fine": 0.12345678901234567890123, "plain": 2.5}\n'
        '{"id": 2, "big": 1, "fine": 1.5, "plain": 1}\n')

    summary = load(cli, sqlite_backend, "t.ndjson", "--transform", spec)

    [stored] = stored_rows(sqlite_backend, summary["run_id"]).values()
    assert stored["twice"] == 246913578024691357802469135780
    assert stored["fine"] == Decimal("0.12345678901234567890123")
    assert stored["third"] == Decimal(1) / Decimal(3)
    assert stored["kinds"] == ["int", "int", "Decimal", "float"]
    [(message, source)] = error_rows(sqlite_backend, summary["run_id"]).values()
    assert (message["error_type"], message["permanent"]) == ("NotStorable", True)
    assert "field ratio: nan is not a JSON number" in message["error"]
    assert source == '{"id": 2, "big": 1, "fine": 1.5, "plain": 1}'


# -- dataset tables ------------------------------------------------------------------------------
@pytest.mark.slow  # a typed load
def test_a_decimal_column_holds_numbers_exactly(cli, backend, workdir):
    (workdir / "d.ndjson").write_text(
        '{"id": 1, "amount": 123456789012345678901234567890}\n'
        '{"id": 2, "amount": 0.1000000000000000000000000001}\n'
        '{"id": 3, "amount": 1e400, "list": [1e-400, 2]}\n')

    summary = load(cli, backend, "d.ndjson", "--table", "money", "--transform", "identity")

    text = "::text" if backend.name == "postgres" else ""
    rows = backend.query(f"SELECT id, amount{text}, list{text} FROM money WHERE _run_id = :r "
                         "ORDER BY id", r=summary["run_id"])
    assert [Decimal(a) for _, a, _ in rows] == [
        Decimal("123456789012345678901234567890"), Decimal("0.1000000000000000000000000001"),
        Decimal("1e400")]
    if backend.name == "sqlite":  # a decimal column keeps the digits as text
        assert backend.scalar("SELECT typeof(amount) FROM money WHERE id = 1") == "text"
    same(exact(rows[2][2]), [Decimal("1e-400"), 2])


def test_one_object_over_the_document_record_limit_is_refused(workdir):
    from durable_ingest.errors import InputError
    from durable_ingest.sources import scan

    members = ", ".join(f'"m{n}": "{"x" * (1 << 20)}"' for n in range(17))
    (workdir / "huge.json").write_text("{" + members + "}")

    with pytest.raises(InputError, match="is one JSON object over 16 MiB, too large for one record"):
        scan.scan(str(workdir / "huge.json"), 10)
