"""Bad input through ``ingest load``: whole files that can't be loaded (exit 3, one line,
nothing written), bad records (each one `errors` row, the rest loads) and bad options
(exit 2 before any work)."""

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tracemalloc

import psycopg
import pytest

from conftest import PG_SERVER, people, skip_unless_ci, write_records
from durable_ingest.sources import common, read, scan, spool
from durable_ingest.transform import MAX_DEPTH

EXPECTED = 'expected an array of objects, NDJSON, a {"results": [...]} envelope or one object'
RECORDS = json.dumps(people(4)).encode()
ENVELOPE = json.dumps({"results": people(4), "info": {"seed": "t"}}).encode()


def load_json(cli, backend, *args):
    result = cli("load", *args, "--json", env=backend.env())
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.strip().splitlines()]


def sqlite_files(workdir) -> list:
    return sorted(p.name for p in workdir.rglob("*.sqlite*"))


def assert_rejected(result, workdir, message: str) -> None:
    """Exit 3 with exactly one line, `Error: <message>`, and no database touched."""
    assert result.exit_code == 3, result.output
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"Error: {message}"]
    assert sqlite_files(workdir) == []


# -- whole files that can't be loaded -----------------------------------------------------
CUT_ARRAY = RECORDS[: len(RECORDS) // 2]
CUT_ENVELOPE = ENVELOPE[: len(ENVELOPE) // 2]
LATIN1_ARRAY = '[{"a": 1}, {"city": "Zürich"}]'.encode("latin-1")
LATIN1_ENVELOPE = '{"results": [{"city": "Zürich"}]}'.encode("latin-1")
LATIN1_NDJSON = '{"a": 1}\n{"city": "Zürich"}\n'.encode("latin-1")
BAD_FILES = {
    # name: (content, the message after "<name>: ")
    "empty": (b"", "is empty; nothing to load, check that it is the right file"),
    "whitespace": (b" \n\t\r\n  ", "holds only whitespace; nothing to load, check that it is the right file"),
    "bom-only": (b"\xef\xbb\xbf\n", "holds only whitespace; nothing to load, check that it is the right file"),
    "not-json": (b"<html>oops</html>", "is not valid JSON (it starts with b'<html>oops</html>'); " + EXPECTED),
    "bad-key": (b"{not json}", "is not valid JSON at byte 1 (expected a key in double quotes); fix the file "
                               "there, or pass --format ndjson if it holds one record per line"),
    "bad-comma": (b'[{"a": 1},, {"b": 2}]', "is not valid JSON at byte 10 (Expecting value); fix the file "
                                            "there, or pass --format ndjson if it holds one record per line"),
    "nan": (b'[{"a": NaN}]', "is not valid JSON at byte 1 (NaN is not valid JSON); fix the file there, "
                             "or pass --format ndjson if it holds one record per line"),
    "extra-data": (b'[{"a": 1}] [{"b": 2}]', "has more data after the JSON document, at byte 11; remove it, "
                                             "or pass --format ndjson if the file holds one record per line"),
    "cut-array": (CUT_ARRAY, f"ends in the middle of the JSON document (at byte {len(CUT_ARRAY)}); the file "
                             "looks truncated: copy or download it again"),
    "cut-envelope": (CUT_ENVELOPE, f"ends in the middle of the JSON document (at byte {len(CUT_ENVELOPE)}); "
                                   "the file looks truncated: copy or download it again"),
    "cut-in-string": (b'[{"a": "no end', "ends in the middle of the JSON document (at byte 14); the file looks "
                                         "truncated: copy or download it again"),
    "number": (b"42\n", "holds a single JSON number, not records; " + EXPECTED),
    "string": (b'"just a string"', "holds a single JSON string, not records; " + EXPECTED),
    "null": (b"null", "holds a single JSON null, not records; " + EXPECTED),
    "true": (b"true", "holds a single JSON boolean, not records; " + EXPECTED),
    "cut-object": (b'{"id": 1, "name": "x', "ends in the middle of the JSON document (at byte 20); the file "
                                              "looks truncated: copy or download it again"),
    "latin1-array": (LATIN1_ARRAY, f"is not valid UTF-8 at byte {LATIN1_ARRAY.index(0xFC)}; re-encode "
                     "the file as UTF-8 (iconv -t UTF-8)"),
    "latin1-envelope": (LATIN1_ENVELOPE, f"is not valid UTF-8 at byte {LATIN1_ENVELOPE.index(0xFC)}; "
                        "re-encode the file as UTF-8 (iconv -t UTF-8)"),
    "latin1-ndjson": (LATIN1_NDJSON, f"line 2 is not valid UTF-8 (byte {LATIN1_NDJSON.index(0xFC)}); "
                      "re-encode the file as UTF-8 (iconv -t UTF-8)"),
    "utf16": ('[{"a": 1}]'.encode("utf-16"), "is UTF-16 encoded; re-encode it as UTF-8 "
              "(iconv -f UTF-16 -t UTF-8)"),
    "not-really.json.gz": (RECORDS, "is named .gz but is not gzip-compressed; rename it without .gz if it "
                           "is plain JSON, or fetch the compressed file again"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_file_is_rejected_in_one_line_and_nothing_is_written(cli, sqlite_backend, workdir, name):
    content, message = BAD_FILES[name]
    (workdir / name).write_bytes(content)

    result = cli("load", name, env=sqlite_backend.env())

    assert_rejected(result, workdir, f"{name}: {message}")


def test_missing_path(cli, sqlite_backend, workdir):
    result = cli("load", "nowhere.json", env=sqlite_backend.env())

    assert_rejected(result, workdir, "nowhere.json: no such file; check the path")


def test_directory(cli, sqlite_backend, workdir):
    (workdir / "data").mkdir()

    result = cli("load", "data", env=sqlite_backend.env())

    assert_rejected(result, workdir, "data: is a directory without .json, .ndjson or .jsonl files")


@pytest.mark.slow  # as root: the load runs in a subprocess
def test_unreadable_file(cli, sqlite_backend, workdir):
    """chmod 000 stops anyone but root. As root (the usual container), the CLI runs in a
    subprocess without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH, so the mode applies to it."""
    path = write_records(workdir / "secret.json", people(3))
    path.chmod(0)
    if os.geteuid() != 0:
        result = cli("load", path.name, env=sqlite_backend.env())
        assert_rejected(result, workdir, "secret.json: permission denied; make the file readable")
        return
    setpriv = shutil.which("setpriv")
    if not setpriv:
        # CI runs as root: it needs setpriv (util-linux), or this test fails there
        skip_unless_ci("running as root and setpriv (util-linux) is missing: root reads any file")
    drop = "-dac_override,-dac_read_search"
    result = subprocess.run(
        [setpriv, f"--bounding-set={drop}", f"--inh-caps={drop}",
         sys.executable, "-m", "durable_ingest.cli", "load", path.name],
        cwd=workdir, env={**os.environ, **sqlite_backend.env()}, capture_output=True, text=True,
        timeout=60,
    )
    if "setpriv:" in result.stderr:
        skip_unless_ci(f"cannot drop capabilities here: {result.stderr.strip()}")
    assert result.returncode == 3, result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == ["Error: secret.json: permission denied; make the file readable"]
    assert sqlite_files(workdir) == []


def test_bad_stdin_is_called_stdin(cli, sqlite_backend, workdir):
    result = cli("load", "-", env=sqlite_backend.env(), input="")

    assert_rejected(result, workdir, "stdin: is empty; nothing to load, check that it is the right file")


def test_one_bad_path_among_several_is_reported_and_the_rest_loads(cli, backend, workdir):
    """A bad file must not stop the others: they load, it gets one errors row and a line."""
    good = write_records(workdir / "good.json", people(5))
    more = write_records(workdir / "more.ndjson", people(5, start=5), "ndjson")
    (workdir / "bad.json").write_bytes(CUT_ARRAY)

    result = cli("load", good, "bad.json", more, env=backend.env())

    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        f"bad input: bad.json: ends in the middle of the JSON document (at byte {len(CUT_ARRAY)}); "
        "the file looks truncated: copy or download it again"
    ]
    assert backend.counts() == (10, 1)
    [message] = backend.error_messages()
    assert (message["error_type"], message["path"], message["title"]) == ("BadFile", "bad.json", "bad.json")


CSV = b"id,name,total\n1,Ann,10.50\n2,Bob,3\n"
SCRIPT = "python3 -c 'import csv, json, sys; [print(json.dumps(r)) for r in csv.DictReader(sys.stdin{})]'"
TAB = ', delimiter="\\t"'


@pytest.mark.parametrize("name, content, kind, command", [
    ("orders.csv", CSV, "CSV", SCRIPT.format("") + " < orders.csv > orders.ndjson"),  # by its name
    ("orders.txt", CSV, "CSV", SCRIPT.format("") + " < orders.txt > orders.ndjson"),  # its first line
    ("orders.tsv", CSV.replace(b",", b"\t"), "TSV", SCRIPT.format(TAB) + " < orders.tsv > orders.ndjson"),
    ("my export.json", b"email\tname\na@x.io\tA\n", "TSV",
     SCRIPT.format(TAB) + " < 'my export.json' > 'my export.ndjson'"),
])
def test_a_csv_file_is_named_as_csv_in_one_line(cli, sqlite_backend, workdir, name, content, kind,
                                                command):
    (workdir / name).write_bytes(content)

    result = cli("load", name, env=sqlite_backend.env())

    assert_rejected(result, workdir, f"{name}: looks like {kind}, which ingest does not read; "
                                     f"convert it to NDJSON (e.g. {command}) and load that")


def test_a_gzipped_csv_file_is_named_as_csv_with_a_command_that_reads_it(cli, sqlite_backend, workdir):
    (workdir / "orders.csv.gz").write_bytes(gzip.compress(CSV))

    result = cli("load", "orders.csv.gz", env=sqlite_backend.env())

    assert_rejected(result, workdir, "orders.csv.gz (decompressed): looks like CSV, which ingest "
                    "does not read; convert it to NDJSON (e.g. gzip -dc orders.csv.gz | "
                    + SCRIPT.format("") + " > orders.ndjson) and load that")


def test_a_csv_file_among_json_gets_its_errors_row_and_the_rest_loads(cli, backend, workdir):
    good = write_records(workdir / "good.json", people(3))
    (workdir / "orders.csv").write_bytes(CSV)

    result = cli("load", good, "orders.csv", env=backend.env())

    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        "bad input: orders.csv: looks like CSV, which ingest does not read; "
        f"convert it to NDJSON (e.g. {SCRIPT.format('')} < orders.csv > orders.ndjson) and load that"]
    assert backend.counts() == (3, 1)
    [message] = backend.error_messages()
    assert (message["error_type"], message["path"]) == ("BadFile", "orders.csv")
    assert message["error"].startswith("orders.csv: looks like CSV")


def test_inputs_of_which_none_can_load_write_nothing(cli, backend, workdir):
    (workdir / "empty").mkdir()

    result = cli("load", "missing.json", "empty", env=backend.env())

    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        "Error: missing.json: no such file; check the path (and 1 more bad inputs)"]
    if backend.name == "postgres":  # DBOS never started: its system database was not created
        name = backend.url.rsplit("/", 1)[1]
        with psycopg.connect(f"{PG_SERVER}/postgres") as conn:  # neither database was created
            assert conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                (f"{name}%",)).fetchall() == []
    else:
        assert sqlite_files(workdir) == []


CUT_BY_THE_WINDOW = ["true", "false", "null", "-12.5e+3", '"\\u00e9"', '"\\ud83d\\ude00"', '"é"', '"👋"',
                     "[" * 2000 + "]" * 2000]


@pytest.mark.parametrize("token", CUT_BY_THE_WINDOW, ids=lambda t: t[:12])
def test_valid_value_cut_by_the_read_window_is_not_called_truncated(workdir, token):
    """The scanner reads 1 MiB at a time: a value split across two reads is still valid."""
    raw = token.encode()
    for cut in sorted({1, len(raw) // 2, len(raw) - 1}):
        before = b'[{"id": 0}, {"pad": "'
        pad = common.BLOCK_BYTES - cut - len(before) - len(b'"}, {"v": ')
        data = workdir / "cut.json"
        data.write_bytes(before + b"x" * pad + b'"}, {"v": ' + raw + b"}]")
        assert data.read_bytes()[common.BLOCK_BYTES - cut:].startswith(raw)

        plan = scan.scan(str(data), 10)

        [(start, end, first, count)] = plan.chunks
        records = [r for _, r in read.read_chunk(plan.path, plan.shape, start, end, first)]
        assert count == 3 and len(records) == 3
        if len(raw) > 1000:
            assert records[2] == read.RecordProblem(
                "NestingTooDeep", f"record is nested deeper than {MAX_DEPTH} levels")
        else:
            assert records[2] == {"v": json.loads(raw)}


# -- a BOM and gzip are accepted ----------------------------------------------------------
@pytest.mark.slow  # three loads, over 2 s
def test_utf8_bom_is_accepted_in_every_shape(cli, sqlite_backend, workdir):
    paths = []
    for shape in ("envelope", "array", "ndjson"):
        path = write_records(workdir / f"bom.{shape}", people(3), shape)
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
        paths.append(path)

    summaries = load_json(cli, sqlite_backend, *paths)

    assert [(s["tasks"], s["errors"], s["files_loaded"]) for s in summaries] == [(9, 0, 3)]
    firsts = sqlite_backend.query("SELECT data FROM tasks WHERE position = 0")
    assert [json.loads(d)["name"]["first"] for (d,) in firsts] == ["first0"] * 3


@pytest.mark.slow  # two runs, about 2 s
def test_gzip_is_decompressed_to_the_spool_and_loaded(cli, sqlite_backend, workdir):
    plain = write_records(workdir / "users.ndjson", people(30), "ndjson")
    compressed = gzip.compress(plain.read_bytes())
    (workdir / "users.ndjson.gz").write_bytes(compressed)
    (workdir / "no-suffix.json").write_bytes(gzip.compress(json.dumps(people(4)).encode()))
    spool = workdir / "spool"

    result = cli("load", "users.ndjson.gz", "no-suffix.json", "--json", "--chunk-size", "7",
                 env={**sqlite_backend.env(), "INGEST_SPOOL_DIR": str(spool)})

    assert result.exit_code == 0, result.output
    [summary] = [json.loads(line) for line in result.stdout.splitlines()]
    # 30 records in pieces of 7 (the last of 2, packed with the 4 of the second file)
    assert (summary["records"], summary["tasks"], summary["errors"], summary["chunks"]) == (34, 34, 0, 5)
    copy = spool / f"gunzip-{hashlib.sha256(compressed).hexdigest()[:20]}.data"
    paths = sqlite_backend.query("SELECT path FROM sources WHERE name = 'users.ndjson.gz'")
    assert paths == [(str(copy),)]  # chunks read their byte ranges from the copy
    assert copy.read_bytes() == plain.read_bytes()
    assert sorted(p.name for p in spool.iterdir() if p.suffix == ".partial") == []
    assert sqlite_backend.counts() == (34, 0)


def test_gzip_of_plain_file_is_the_same_dataset(cli, sqlite_backend, workdir):
    """Same bytes once decompressed, same fingerprint: loading both writes nothing twice."""
    plain = write_records(workdir / "users.json", people(6))
    (workdir / "users.json.gz").write_bytes(gzip.compress(plain.read_bytes()))

    result = cli("load", plain, "users.json.gz", env=sqlite_backend.env())

    assert result.exit_code == 0, result.output
    assert "files: 1 new files loaded, 1 already loaded, 0 bad" in result.output
    assert sqlite_backend.counts() == (6, 0)


def corrupt_gzip(data: bytes) -> bytes:
    flipped = bytearray(data)
    flipped[-8] ^= 0xFF  # the CRC-32 in the trailer
    return bytes(flipped)


@pytest.mark.parametrize("damage, reason", [
    (lambda gz: gz[: len(gz) // 2], "Compressed file ended before the end-of-stream marker was reached"),
    (corrupt_gzip, "CRC check failed"),
    (lambda gz: gz[:10] + b"\xff" * 20 + gz[30:], "invalid"),
])
def test_corrupt_gzip_is_rejected(cli, sqlite_backend, workdir, damage, reason):
    data = gzip.compress(json.dumps(people(50)).encode())
    (workdir / "users.json.gz").write_bytes(damage(data))

    result = cli("load", "users.json.gz", env=sqlite_backend.env())

    assert result.exit_code == 3, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: users.json.gz: is a corrupt or truncated gzip file (")
    assert reason in line
    assert line.endswith("); fetch it again (gzip -t users.json.gz checks it)")
    assert list((workdir / ".ingest-spool").iterdir()) == []  # no partial copy left behind
    assert sqlite_files(workdir) == []


def test_gzip_of_bad_json_names_the_gz_file(cli, sqlite_backend, workdir):
    (workdir / "users.json.gz").write_bytes(gzip.compress(CUT_ENVELOPE))

    result = cli("load", "users.json.gz", env=sqlite_backend.env())

    assert_rejected(result, workdir, (
        f"users.json.gz (decompressed): ends in the middle of the JSON document (at byte "
        f"{len(CUT_ENVELOPE)}); the file looks truncated: copy or download it again"))
    assert list((workdir / ".ingest-spool").iterdir()) == []  # the useless copy is removed


def test_gunzip_is_streamed_in_bounded_memory_and_reused(workdir):
    line = b'{"pad": "' + b"z" * (1 << 20) + b'"}\n'
    (workdir / "big.ndjson.gz").write_bytes(gzip.compress(line * 24, compresslevel=1))

    tracemalloc.start()
    try:
        copy = spool.gunzip_to_spool("big.ndjson.gz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert os.path.getsize(copy) == len(line) * 24
    assert peak < 8 << 20  # 24 MiB decompressed, never held at once
    before = os.stat(copy).st_mtime_ns
    assert spool.gunzip_to_spool("big.ndjson.gz") == copy
    assert os.stat(copy).st_mtime_ns == before  # named by the compressed bytes: reused


# -- bad records: each one `errors` row, the rest loads -----------------------------------
NOT_OBJECTS = [{"id": 0}, 1, "a string", None, [1, 2], 2.5, True, {"id": 7}]


@pytest.mark.parametrize("shape", ["array", "envelope", "ndjson"])
def test_records_that_are_not_objects_go_to_errors(cli, sqlite_backend, workdir, shape):
    data = write_records(workdir / f"mixed.{shape}", NOT_OBJECTS, shape)

    [summary] = load_json(cli, sqlite_backend, data, "--chunk-size", "3")

    assert (summary["records"], summary["tasks"], summary["errors"]) == (8, 2, 6)
    assert sqlite_backend.counts() == (2, 6)
    messages = sqlite_backend.error_messages()
    assert [m["position"] for m in messages] == [1, 2, 3, 4, 5, 6]
    assert {m["error_type"] for m in messages} == {"NotAnObject"}
    assert [m["error"] for m in messages] == [
        f"record is {kind}, not a JSON object"
        for kind in ("number", "string", "null", "array", "number", "boolean")
    ]


def test_ndjson_lines_that_are_not_json_go_to_errors(cli, sqlite_backend, workdir):
    data = workdir / "lines.ndjson"
    data.write_text('{"id": 0}\n{"id": 1,\nnot json at all\n{"id": 3}\n{"id": 4}} \n{"id": 5}\n')

    [summary] = load_json(cli, sqlite_backend, data)

    assert (summary["records"], summary["tasks"], summary["errors"]) == (6, 3, 3)
    messages = sqlite_backend.error_messages()
    assert [(m["position"], m["error_type"]) for m in messages] == [
        (1, "InvalidJSON"), (2, "InvalidJSON"), (4, "InvalidJSON")]
    assert all(m["error"].startswith("line is not valid JSON: ") for m in messages)
    positions = [r[0] for r in sqlite_backend.query("SELECT position FROM tasks ORDER BY position")]
    assert positions == [0, 3, 5]


def test_invalid_first_line_is_a_record_error_with_format_ndjson(cli, sqlite_backend, workdir):
    data = workdir / "lines.txt"
    data.write_text('{"id": \n{"id": 1}\n')

    [summary] = load_json(cli, sqlite_backend, data, "--format", "ndjson")

    assert (summary["tasks"], summary["errors"]) == (1, 1)
    assert sqlite_backend.error_messages()[0]["error_type"] == "InvalidJSON"


def test_records_json_accepts_but_the_loader_cannot_store_go_to_errors(cli, sqlite_backend, workdir):
    """A lone surrogate or 1e200000 is valid JSON grammar that no database can hold (1e400
    is a number Postgres holds): one errors row each, naming the field, in a document as in
    NDJSON, and the chunk's other records load."""
    text = '{"id": 0}, {"s": "\\ud800"}, {"n": 1e200000}, {"id": 3, "big": 1e400}'
    (workdir / "odd.json").write_text(f"[{text}]")
    (workdir / "odd.ndjson").write_text(text.replace("}, {", "}\n{") + "\n")

    summaries = load_json(cli, sqlite_backend, "odd.json", "odd.ndjson")

    assert [(s["tasks"], s["errors"]) for s in summaries] == [(4, 4)]
    rows = sqlite_backend.query("SELECT position, message FROM errors ORDER BY run_id, position")
    assert sorted((p, json.loads(m)["error_type"], json.loads(m)["error"][:8]) for p, m in rows) == [
        (1, "LoneSurrogate", "field s:"), (1, "LoneSurrogate", "field s:"),
        (2, "NumberOutOfRange", "field n:"), (2, "NumberOutOfRange", "field n:")]


def nested(depth: int) -> str:
    """A record of ``depth`` nested objects (the record itself is level 1), as JSON text."""
    return '{"d": ' * (depth - 1) + '{"leaf": "x"}' + "}" * (depth - 1)


@pytest.mark.parametrize("shape", ["array", "ndjson"])
def test_records_nested_too_deep_go_to_errors(cli, sqlite_backend, workdir, shape):
    # 64 levels is the limit; 2000 is more than the JSON parsers recurse into.
    records = ['{"id": 0}', nested(MAX_DEPTH), nested(MAX_DEPTH + 1), nested(2000), '{"id": 4}']
    data = workdir / f"deep.{shape}"
    data.write_text("[" + ",".join(records) + "]" if shape == "array" else "\n".join(records))

    [summary] = load_json(cli, sqlite_backend, data, "--chunk-size", "2", "--transform", "uppercase")

    assert (summary["tasks"], summary["errors"]) == (3, 2)
    messages = sqlite_backend.error_messages()
    assert [(m["position"], m["error_type"]) for m in messages] == [(2, "NestingTooDeep"), (3, "NestingTooDeep")]
    assert messages[0]["error"] == f"record is nested deeper than {MAX_DEPTH} levels"
    assert messages[0]["record"] is None  # its text is kept once, in source, for triage
    sources = sqlite_backend.query("SELECT source FROM errors ORDER BY position")
    assert sources[0][0] == nested(MAX_DEPTH + 1)


def test_record_nested_300_levels_goes_to_errors(cli, sqlite_backend, workdir):
    data = workdir / "deep.ndjson"
    data.write_text('{"id": 0}\n' + nested(300) + "\n")

    result = cli("load", data, env=sqlite_backend.env())

    assert result.exit_code == 0, result.output
    assert sqlite_backend.counts() == (1, 1)


def test_ndjson_record_over_the_size_limit_goes_to_errors(cli, sqlite_backend, workdir):
    limit = common.MAX_RECORD_BYTES
    just_fits = '{"pad": "' + "f" * (limit - 11) + '"}'
    assert len(just_fits) == limit
    huge = '{"pad": "' + "h" * (3 * limit) + '"}'  # 3 MiB, in one line
    data = workdir / "big.ndjson"
    data.write_text("\n".join(['{"id": 0}', huge, just_fits, '{"id": 3}']) + "\n")

    [summary] = load_json(cli, sqlite_backend, data)

    assert (summary["records"], summary["tasks"], summary["errors"]) == (4, 3, 1)
    [message] = sqlite_backend.error_messages()
    assert (message["position"], message["error_type"]) == (1, "RecordTooLarge")
    start = len('{"id": 0}\n')
    assert message["error"] == (f"record is over the 1 MiB limit ({len(huge) + 1} bytes: bytes "
                                f"{start}-{start + len(huge) + 1} of {data})")
    assert message["record"] is None


def test_oversized_line_is_never_held_in_memory(workdir):
    """Scan and read a 40 MiB line: memory stays at a few read blocks, not the line."""
    data = workdir / "big.ndjson"
    with open(data, "wb") as out:
        out.write(b'{"id": 0}\n{"pad": "')
        for _ in range(40):
            out.write(b"h" * (1 << 20))
        out.write(b'"}\n{"id": 2}\n')

    tracemalloc.start()
    try:
        plan = scan.scan(str(data), 10)
        records = [r for start, end, first, _ in plan.chunks
                   for _, r in read.read_chunk(plan.path, plan.shape, start, end, first)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert [type(r).__name__ for r in records] == ["dict", "RecordProblem", "dict"]
    assert peak < 16 << 20


def test_duplicate_records_are_both_kept(cli, sqlite_backend, workdir):
    twin = people(1)[0]
    data = write_records(workdir / "twins.json", [twin, twin, {"other": 1}, twin])

    [summary] = load_json(cli, sqlite_backend, data)

    assert (summary["tasks"], summary["errors"]) == (4, 0)
    rows = sqlite_backend.query("SELECT position, source_key, data FROM tasks ORDER BY position")
    assert [r[0] for r in rows] == [0, 1, 2, 3]
    assert len({r[1] for r in rows}) == 4
    assert rows[0][2] == rows[1][2] == rows[3][2]


def test_blank_lines_in_ndjson_are_skipped_not_counted(cli, sqlite_backend, workdir):
    data = workdir / "gappy.ndjson"
    data.write_text('\n\n{"id": 0}\n   \n\t\n{"id": 1}\r\n\r\n\n{"id": 2}\n\n')

    [summary] = load_json(cli, sqlite_backend, data, "--chunk-size", "2")

    assert (summary["records"], summary["tasks"], summary["errors"]) == (3, 3, 0)
    rows = sqlite_backend.query("SELECT position, data FROM tasks ORDER BY position")
    assert [(p, json.loads(d)["id"]) for p, d in rows] == [(0, 0), (1, 1), (2, 2)]


# -- options are checked before any work --------------------------------------------------
@pytest.mark.parametrize("option, value, complaint", [
    ("--chunk-size", "0", "0 is not in the range 1<=x<=1000000"),
    ("--concurrency", "0", "0 is not in the range 1<=x<=64"),
    ("--concurrency", "65", "65 is not in the range 1<=x<=64"),
    ("--max-attempts", "0", "0 is not in the range 1<=x<=100"),
    ("--flaky-rate", "1.5", "1.5 is not in the range 0<=x<=1"),
    ("--flaky-rate", "-0.1", "-0.1 is not in the range 0<=x<=1"),
    ("--seed", "-1", "-1 is not in the range 0<=x<=4294967295"),
    ("--retry-interval", "-1", "-1.0 is not in the range 0<=x<=3600"),
])
def test_bad_option_is_a_usage_error_before_any_work(cli, workdir, option, value, complaint):
    data = write_records(workdir / "users.json", people(3))

    result = cli("load", data, option, value)

    assert result.exit_code == 2
    assert "Usage: " in result.stderr
    assert f"Error: Invalid value for '{option}': {complaint}." in result.stderr
    assert sqlite_files(workdir) == []  # not even the default database files
