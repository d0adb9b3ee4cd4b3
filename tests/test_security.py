"""Secrets stay out of the output, and hostile strings are data, never SQL or COPY syntax."""

import json

import pytest

from conftest import PG_SERVER, run_ingest, write_records
from durable_ingest.database import redact
from durable_ingest.errors import scrub

PASSWORD = "p%a@s:w"
ENCODED = "p%25a%40s%3Aw"  # PASSWORD, percent-encoded for a URL
PG_HOST_PORT = PG_SERVER.rsplit("@", 1)[1]


def assert_one_line_failure_without_password(result) -> str:
    assert result.returncode == 1, result.stderr
    for stream in (result.stdout, result.stderr):
        assert PASSWORD not in stream
        assert ENCODED not in stream
        assert "a@s:w" not in stream and "a%40s" not in stream
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: ") and "Traceback" not in result.stderr
    return line


@pytest.mark.slow
@pytest.mark.parametrize("how", ["option", "environment"])
def test_password_is_not_shown_when_postgres_is_unreachable(workdir, how):
    url = f"postgresql://ingest:{ENCODED}@127.0.0.1:1/ingest"
    data = write_records(workdir / "users.json", [{"id": 1}])
    args, env = ((["--database-url", url], None) if how == "option" else ([], {"DATABASE_URL": url}))

    result = run_ingest("load", data, *args, env=env, cwd=workdir, timeout=60)

    line = assert_one_line_failure_without_password(result)
    assert line.startswith("Error: cannot connect to postgresql+psycopg://ingest:***@127.0.0.1:1/ingest: ")


@pytest.mark.slow
def test_password_is_not_shown_when_postgres_refuses_the_user(postgres_backend, workdir):
    database = postgres_backend.url.rsplit("/", 1)[1]
    url = f"postgresql://no_such_user:{ENCODED}@{PG_HOST_PORT}/{database}"
    data = write_records(workdir / "users.json", [{"id": 1}])

    result = run_ingest("load", data, env={"DATABASE_URL": url}, cwd=workdir, timeout=60)

    line = assert_one_line_failure_without_password(result)
    assert f"no_such_user:***@{PG_HOST_PORT}/{database}" in line
    assert 'role "no_such_user" does not exist' in line


def assert_one_line_failure_without(result, *secrets) -> str:
    assert result.returncode == 1, result.stderr
    for stream in (result.stdout, result.stderr):
        for secret in secrets:
            assert secret not in stream
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: ") and "Traceback" not in result.stderr
    return line


def command(name: str, workdir) -> list:
    """An ingest command that needs the database: a load of a tiny file, migrate or status."""
    if name == "load":
        return ["load", write_records(workdir / "users.json", [{"id": 1}])]
    return [name]


MALFORMED_SECRET = "s3cr3t-Pa55"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["load", "migrate", "status"])
@pytest.mark.parametrize("url", [f"postgres:{MALFORMED_SECRET}@127.0.0.1:1/ingest",  # no scheme
                                 f"postgresql:/ingest:{MALFORMED_SECRET}@127.0.0.1:1/ingest"])
def test_password_of_a_malformed_url_is_not_shown(workdir, name, url):
    result = run_ingest(*command(name, workdir), "--database-url", url, cwd=workdir, timeout=60)

    line = assert_one_line_failure_without(result, MALFORMED_SECRET, "3cr3t", "Pa55")
    assert line == ("Error: '***@127.0.0.1:1/ingest' is not a database URL; expected "
                    "sqlite:///FILE or postgresql://USER:PASSWORD@HOST:PORT/DATABASE")


PERCENT_ENCODED = "p%40ss%3Aw%25rd"  # p@ss:w%rd


@pytest.mark.slow
@pytest.mark.parametrize("name", ["load", "migrate", "status"])
def test_percent_encoded_password_is_not_shown(workdir, name):
    url = f"postgresql://ingest:{PERCENT_ENCODED}@127.0.0.1:1/ingest"

    result = run_ingest(*command(name, workdir), "--database-url", url, cwd=workdir, timeout=60)

    line = assert_one_line_failure_without(result, PERCENT_ENCODED, "p@ss:w%rd", "ss%3A", "ss:w")
    assert line.startswith("Error: cannot connect to postgresql+psycopg://ingest:***@127.0.0.1:1/ingest")


@pytest.mark.parametrize("url, shown", [
    ("postgres:secret@db/x", "***@db/x"),
    ("user:secret@db", "***@db"),
    ("postgresql:/user:secret@db/x", "***@db/x"),
    ("postgres:secret", "postgres:***"),
    ("postgresql://user:secret/db", "postgresql://user:***"),  # no host: "secret" is no port
    ("postgresql://user:sec@ret@db/x", "postgresql://***@db/x"),  # an unencoded @
    ("postgresql://user:p%40ss%3Aw%25rd@db:5432/x", "postgresql://user:***@db:5432/x"),
    ("sqlite:///durable_ingest_app.sqlite", "sqlite:///durable_ingest_app.sqlite"),
    ("just-a-name", "just-a-name"),
])
def test_redact_masks_credentials_even_in_malformed_urls(url, shown):
    assert redact(url) == shown


def test_scrub_removes_every_form_of_the_password():
    url = f"postgresql+psycopg://ingest:{PERCENT_ENCODED}@db:5432/x"
    text = (f"decoded p@ss:w%rd, as written {PERCENT_ENCODED}, "
            "and another URL postgresql://other:hunter2@elsewhere/y")

    assert scrub(text, url) == ("decoded ***, as written ***, "
                                "and another URL postgresql://other:***@elsewhere/y")
    assert scrub("FATAL: secret rejected", "postgres:secret@db/x") == "FATAL: *** rejected"
    assert scrub("nothing to hide", "sqlite:///x.sqlite", "") == "nothing to hide"


HOSTILE = [
    {"title": "Robert'); DROP TABLE tasks; --", "note": "task 0"},
    {"quotes": "it's \"quoted\" and `ticked`", "sql": "' OR '1'='1'; DELETE FROM errors; --"},
    {"backslashes": "C:\\temp\\new\\table \\N \\. \\\\", "regex": "^\\d+\\s*$", "literal": "\\u0041"},
    {"emoji": "héllo 👋 wörld 🚀 ß", "cjk": "東京", "rtl": "שלום"},
    {"controls": "tab\there\nnew line\rreturn\u2028sep\u007fdel\u0001soh"},
    {"copy": "a\tb\nc\\.\n", "nested": [{"title": "task 99", "x": "o'k"}, ["\\", "\""]]},
    {"key'); DROP TABLE tasks; --": "value", "ключ": "значение", "": "empty key"},
]
WITH_NUL = [
    {"id": "nul", "text": "before\u0000after"},
    {"id": "nul-key", "k\u0000ey": "v"},
]


def upper_values(value):
    """The transform, written independently: string values uppercased, keys untouched."""
    if isinstance(value, str):
        return value.upper()
    if isinstance(value, dict):
        return {k: upper_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [upper_values(v) for v in value]
    return value


def as_json(value):
    return value if isinstance(value, (dict, list)) else json.loads(value)


def test_hostile_strings_round_trip_uppercased(cli, backend, workdir):
    data = write_records(workdir / "hostile.json", HOSTILE)

    result = cli("load", data, "--transform", "uppercase", env=backend.env())

    assert result.exit_code == 0, result.output
    rows = backend.query("SELECT position, title, data FROM tasks ORDER BY position")
    assert [r[0] for r in rows] == list(range(len(HOSTILE)))
    assert [r[1] for r in rows] == [f"task {i}" for i in range(len(HOSTILE))]  # not the record's
    assert [as_json(r[2]) for r in rows] == [upper_values(r) for r in HOSTILE]
    assert backend.counts() == (len(HOSTILE), 0)  # the "DROP TABLE" was data


def test_nul_characters_go_to_errors_with_a_replacement(cli, backend, workdir):
    data = write_records(workdir / "nul.ndjson", [{"id": "fine"}, *WITH_NUL], "ndjson")

    result = cli("load", data, env=backend.env())

    assert result.exit_code == 0, result.output
    assert backend.counts() == (1, 2)
    messages = backend.error_messages()
    assert [m["error_type"] for m in messages] == ["NulCharacter", "NulCharacter"]
    assert messages[0]["error"] == (
        "record contains a NUL character (\\u0000), which Postgres JSONB cannot store")
    assert [m["record"] for m in messages] == [None, None]  # the text is kept once: source
    sources = [json.loads(text) for (text,) in backend.query("SELECT source FROM errors ORDER BY position")]
    assert sources == [{"id": "nul", "text": "before\x00after"}, {"id": "nul-key", "k\x00ey": "v"}]


def test_backslash_u0000_text_in_a_key_is_not_a_nul(cli, sqlite_backend, workdir):
    record = {"C:\\u0000\\dir": "x"}  # a backslash, then the letters u0000: no NUL
    data = write_records(workdir / "paths.json", [record])

    result = cli("load", data, env=sqlite_backend.env())

    assert result.exit_code == 0, result.output
    assert sqlite_backend.counts() == (1, 0)
