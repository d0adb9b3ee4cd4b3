"""Dataset tables (``ingest load --table NAME``): typed columns that plain SQL can query, new
fields adding columns durably and concurrently, values that don't fit landing in variant
columns, keys, crashes and workers; on SQLite and Postgres."""

import json
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import (REPO, Parking, finish_on_workers, kill_9, run_ingest, start_ingest,
                      wait_until, write_records)
from conftest import cli_load as load


def columns(backend, table: str) -> dict:
    """column -> (type, variant_of, added_by) from the catalog."""
    rows = backend.query("SELECT name, type, variant_of, added_by FROM ingest_columns "
                         "WHERE table_name = :t", t=table)
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def users(count: int, start: int = 0) -> list:
    return [{"id": n, "name": {"first": f"F{n}", "last": f"L{n}"},
             "dob": {"date": f"19{50 + n % 50}-03-0{1 + n % 9}T10:00:00Z", "age": 20 + n % 50},
             "email": f"u{n}@example.com", "tags": ["x", n]} for n in range(start, start + count)]


# -- what a user sees first ------------------------------------------------------------------------
def test_two_datasets_into_two_tables_that_plain_sql_queries(cli, backend, workdir):
    write_records(workdir / "users.json", users(60))
    orders = [{"order_id": 10_000 + n, "user": n % 60, "total": 10.5 + n, "paid": n % 3 == 0,
               "placed_at": "2026-11-30T12:00:00+01:00"} for n in range(40)]
    write_records(workdir / "orders.ndjson", orders, "ndjson")

    first = load(cli, backend, workdir / "users.json", "--table", "users")
    second = load(cli, backend, workdir / "orders.ndjson", "--table", "orders")

    assert (first["table"], first["tasks"], second["table"], second["tasks"]) == \
        ("users", 60, "orders", 40)
    assert backend.scalar("SELECT count(*) FROM users WHERE dob__age > 30") == \
        sum(1 for u in users(60) if u["dob"]["age"] > 30)
    assert backend.scalar("SELECT count(*) FROM orders o JOIN users u ON u.id = o.user_ "
                          "WHERE o.paid AND u.name__first = 'F3'") == 1
    assert columns(backend, "users")["dob__date"][0] == "timestamp"
    assert {name: kind for name, (kind, *_) in columns(backend, "orders").items()} == {
        "order_id": "bigint", "user_": "bigint", "total": "double", "paid": "bool",
        "placed_at": "timestamp"}
    assert columns(backend, "users")["tags"][0] == "json"
    assert backend.scalar("SELECT count(*) FROM tasks") == 0  # nothing went to the demo's table
    stored = backend.scalar("SELECT data FROM users WHERE id = 7")
    assert (stored if isinstance(stored, dict) else json.loads(stored)) == users(60)[7]


def test_ingest_schema_and_errors_per_table(cli, sqlite_backend, workdir):
    records = users(5) + [{"id": "not json-able key", "bad": None}]
    write_records(workdir / "users.json", records)
    load(cli, sqlite_backend, workdir / "users.json", "--table", "users", "--fail-task", "2")

    shown = cli("schema", env=sqlite_backend.env())
    as_json = json.loads(cli("schema", "users", "--json", env=sqlite_backend.env()).stdout)
    errors = json.loads(cli("errors", "--table", "users", "--json", env=sqlite_backend.env()).stdout)
    none = json.loads(cli("errors", "--table", "tasks", "--json", env=sqlite_backend.env()).stdout)
    missing = cli("schema", "nope", env=sqlite_backend.env())

    assert "table users: 5 rows" in shown.output and "dob__age" in shown.output
    table = as_json[0]
    assert table["table"] == "users" and table["rows"] == 5 and table["key"] is None
    by_name = {c["name"]: c for c in table["columns"]}
    assert by_name["name__first"]["path"] == ["name", "first"]
    # ids are integers and once a string: a field with strings is text, its integers a variant
    assert by_name["id"]["type"] == "text"
    assert by_name["id__v_bigint"] == {**by_name["id__v_bigint"], "type": "bigint",
                                       "variant_of": "id"}
    assert [e["error_type"] for e in errors] == ["InjectedFailure"] and none == []
    assert missing.exit_code == 3 and "no dataset table nope" in missing.output


# -- evolution ----------------------------------------------------------------------------------------
def test_a_new_field_in_the_second_of_three_files_adds_a_column(cli, backend, workdir):
    folder = workdir / "landing"
    folder.mkdir()
    write_records(folder / "a.json", users(10))
    write_records(folder / "b.json", [{**u, "vip": True} for u in users(10, 10)])
    write_records(folder / "c.json", users(10, 20))

    summary = load(cli, backend, folder, "--table", "users", "--chunk-size", "10")

    assert summary["tasks"] == 30
    assert columns(backend, "users")["vip"][:2] == ("bool", None)
    rows = backend.query("SELECT id, vip FROM users ORDER BY id")
    assert [bool(v) if v is not None else None for _, v in rows] == \
        [None] * 10 + [True] * 10 + [None] * 10
    again = load(cli, backend, workdir / "landing", "--table", "users")
    assert again["already_loaded"] and backend.scalar("SELECT count(*) FROM users") == 30


def test_a_value_that_does_not_fit_lands_in_a_variant_column(cli, backend, workdir):
    records = [{"id": n, "age": 30 + n, "joined": "2020-01-0%dT00:00:00Z" % (n + 1),
                "score": n / 2} for n in range(8)]
    records[5]["age"] = "unknown"
    records[6]["joined"] = "last tuesday"
    records[7]["score"] = 2**60 + 1  # a double can't hold it: a bigint variant
    write_records(workdir / "people.ndjson", records, "ndjson")

    # The first chunk (records 0-3) makes the columns; the second brings the other kinds.
    load(cli, backend, workdir / "people.ndjson", "--table", "people", "--chunk-size", "4",
         "--concurrency", "1")

    kinds = columns(backend, "people")
    assert kinds["age"][:2] == ("text", None)  # a field with strings is a text field
    assert kinds["age__v_bigint"][:2] == ("bigint", "age")  # its integers, as written
    assert kinds["joined"][:2] == ("text", None)  # a text column takes the timestamps' text
    assert kinds["score__v_bigint"][:2] == ("bigint", "score")
    assert not {"joined__v_timestamp", "joined__v_text", "age__v_text"} & set(kinds)
    row = backend.query("SELECT age, age__v_bigint FROM people WHERE id = 5")[0]
    assert (row[0], row[1]) == ("unknown", None)
    assert backend.scalar("SELECT joined FROM people WHERE id = 6") == "last tuesday"
    assert backend.scalar("SELECT joined FROM people WHERE id = 1") == "2020-01-02T00:00:00Z"
    assert backend.scalar("SELECT score__v_bigint FROM people WHERE id = 7") == 2**60 + 1
    assert backend.scalar("SELECT count(*) FROM people WHERE age__v_bigint > 31") == 5


def test_a_number_beyond_64_bits_lands_exactly_in_a_decimal_variant(cli, sqlite_backend, workdir):
    (workdir / "n.ndjson").write_text('{"n": 1}\n{"n": 2}\n{"n": 123456789012345678901234567}\n')

    load(cli, sqlite_backend, workdir / "n.ndjson", "--table", "numbers", "--chunk-size", "2",
         "--concurrency", "1")

    assert columns(sqlite_backend, "numbers")["n__v_decimal"][:2] == ("decimal", "n")
    assert sqlite_backend.scalar("SELECT n__v_decimal FROM numbers WHERE n IS NULL") == \
        "123456789012345678901234567"


# -- schemas do not depend on timing -------------------------------------------------------------
def mixed(count: int = 40) -> list:
    """Records whose fields change kind from one chunk of 10 to the next: every chunk brings
    something that changes a field's columns, whichever commits first."""
    records = []
    for n in range(count):
        chunk = n // 10
        record = {"id": n, "code": f"C{n}" if chunk == 2 else n,
                  "price": n + 0.5 if chunk in (1, 3) else n,
                  "when": f"day {n}" if chunk == 3 else f"2026-01-{1 + n % 28:02d}T10:00:00Z",
                  "big": 2**60 + n if chunk == 3 else n * 1.25 if chunk == 1 else n,
                  "flag": n % 2 == 0 if chunk == 1 else n,
                  "n": 10**30 + n if chunk == 0 else n}
        if chunk == 3:
            record["late"] = {"x": n}
        if chunk == 0:
            record["early"] = True
        records.append(record)
    return records


def shown_schema(cli, backend, table: str) -> list:
    """``ingest schema TABLE --json``'s columns, in order, without runs and times."""
    shown = cli("schema", table, "--json", env=backend.env())
    assert shown.exit_code == 0, shown.output
    return [(c["name"], c["type"], c["path"], c["variant_of"])
            for c in json.loads(shown.stdout)[0]["columns"]]


def landed(backend, table: str) -> dict:
    """position -> {column: value} of the typed columns' values, each checked against the
    record in ``data``: exactly the value at its field's path, one column per value."""
    from decimal import Decimal

    catalog = backend.query("SELECT name, type, path FROM ingest_columns WHERE table_name = :t "
                            "ORDER BY number", t=table)
    listed = ", ".join(f'"{name}"' for name, _, _ in catalog)
    cast = "::text" if backend.name == "postgres" else ""
    found = {}
    for position, data, *values in backend.query(
            f"SELECT _position, data{cast}, {listed} FROM {table} ORDER BY _position"):
        record, placed = json.loads(data), {}
        for (name, kind, path), value in zip(catalog, values):
            if value is None:
                continue
            field = record
            for key in json.loads(path):
                field = field[key]
            placed[".".join(json.loads(path))] = placed.get(".".join(json.loads(path)), 0) + 1
            if kind == "decimal":
                assert Decimal(str(value)) == Decimal(str(field)), (name, value, field)
            elif kind == "json":
                assert (value if isinstance(value, list) else json.loads(value)) == field
            else:
                assert value == field and (type(field) is not bool or kind == "bool"), \
                    (name, value, field)
            found.setdefault(position, {})[name] = value
        assert all(count == 1 for count in placed.values()), (position, placed)
    return found


def load_in_order(backend, workdir, source, table: str, order: list) -> None:
    """Load ``source`` into ``table`` at --concurrency 8 with every chunk parked, then let
    the chunks commit one by one in ``order``."""
    parking = Parking(workdir / f"park-{table}")
    process = start_ingest("load", source, "--table", table, "--chunk-size", "10",
                           "--concurrency", "8", "--json",
                           env={**backend.env(), **parking.env(chunks="all")}, cwd=workdir)
    parking.wait_parked(process=process, count=len(order))

    def committed(count: int):
        def check() -> bool:
            try:
                return backend.scalar(f"SELECT count(*) FROM {table}") >= count
            except Exception:  # not created yet
                return False
        return check

    for done, index in enumerate(order, 1):
        parking.release(index)
        wait_until(committed(10 * done), 60, f"chunk {index} of {table}", process=process)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err


@pytest.mark.slow
@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_the_same_input_gets_the_same_columns_whichever_chunk_commits_first(
        request, db, cli, workdir):
    backend = request.getfixturevalue(f"{db}_backend")
    source = write_records(workdir / "mixed.ndjson", mixed(), "ndjson")

    load(cli, backend, source, "--table", "one_by_one", "--chunk-size", "10",
         "--concurrency", "1")
    load_in_order(backend, workdir, source, "last_first", [3, 2, 1, 0])
    load_in_order(backend, workdir, source, "middle_first", [2, 0, 3, 1])

    schemas = [shown_schema(cli, backend, t) for t in ("one_by_one", "last_first", "middle_first")]
    assert schemas[0] == schemas[1] == schemas[2]
    assert schemas[0] == [
        ("big", "double", ["big"], None), ("big__v_bigint", "bigint", ["big"], "big"),
        ("code", "text", ["code"], None), ("code__v_bigint", "bigint", ["code"], "code"),
        ("early", "bool", ["early"], None),
        ("flag", "bigint", ["flag"], None), ("flag__v_bool", "bool", ["flag"], "flag"),
        ("id", "bigint", ["id"], None), ("late__x", "bigint", ["late", "x"], None),
        ("n", "bigint", ["n"], None), ("n__v_decimal", "decimal", ["n"], "n"),
        ("price", "double", ["price"], None), ("when_", "text", ["when"], None)]
    values = [landed(backend, t) for t in ("one_by_one", "last_first", "middle_first")]
    assert values[0] == values[1] == values[2] and len(values[0]) == 40
    assert values[0][5]["big"] == 5.0 and values[0][35]["big__v_bigint"] == 2**60 + 35
    assert values[0][3]["when_"] == "2026-01-04T10:00:00Z"  # the text as written


@pytest.mark.slow
@pytest.mark.parametrize("db, key", [("sqlite", ()), ("postgres", ()),
                                     ("sqlite", ("--key", "id")), ("postgres", ("--key", "id"))])
def test_three_identical_loads_at_concurrency_8_make_three_identical_tables(
        request, db, key, cli, workdir):
    backend = request.getfixturevalue(f"{db}_backend")
    records = [{**r, "id": n} for n, r in enumerate(mixed() * 5)]
    source = write_records(workdir / "mixed.ndjson", records, "ndjson")

    for table in ("first", "second", "third"):
        load(cli, backend, source, "--table", table, "--chunk-size", "10", "--concurrency", "8",
             *key)

    schemas = [shown_schema(cli, backend, t) for t in ("first", "second", "third")]
    assert schemas[0] == schemas[1] == schemas[2]
    assert [landed(backend, t) for t in ("second", "third")] == [landed(backend, "first")] * 2


# -- names --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, why", [
    ("Users", "lower-case letters"), ("1users", "not starting with a digit"),
    ("users; drop table tasks", "lower-case letters"), ("tasks", "the demo's table"),
    ("order", "reserved by SQL"), ("ingest_columns", "ingest's own"), ("", "lower-case"),
    ("x" * 64, "at most 63"), ("pg_users", "reserved"),
])
def test_a_table_name_that_is_not_a_plain_identifier_is_refused_before_anything(
        cli, sqlite_backend, workdir, name, why):
    write_records(workdir / "users.json", users(3))

    result = cli("load", workdir / "users.json", "--table", name, env=sqlite_backend.env())

    assert result.exit_code == 2, result.output
    assert why in result.output and len(result.output.strip().splitlines()) == 1
    assert not (workdir / "app.sqlite").exists()  # nothing created


def test_field_names_become_safe_snake_case_columns(cli, sqlite_backend, workdir):
    record = {"firstName": "a", "first_name": "b", "Zip Code": "8000", "data": 1, "Café": "c",
              "2fa": True, "deep": {"HTTPServer": {"x": 1}}}
    write_records(workdir / "odd.json", [record])

    load(cli, sqlite_backend, workdir / "odd.json", "--table", "odd")

    names = set(columns(sqlite_backend, "odd"))
    assert names == {"first_name", "first_name_2", "zip_code", "data_", "cafe", "_2fa",
                     "deep__http_server__x"}
    assert sqlite_backend.scalar("SELECT first_name_2 FROM odd") in ("a", "b")


def test_fields_named_like_sql_keywords_get_columns_plain_sql_needs_not_quote(cli, backend, workdir):
    records = [{"select": n, "order": f"o{n}", "from": {"user": "ann", "index": n}, "values": [n],
                "order_": "clash", "Group": True} for n in range(3)]
    write_records(workdir / "odd.json", records)

    summary = load(cli, backend, workdir / "odd.json", "--table", "odd", "--key", "order")

    assert (summary["tasks"], summary["errors"]) == (3, 0)
    assert set(columns(backend, "odd")) == {"select_", "from__user", "from__index", "values_",
                                            "order__2", "group_"}
    assert backend.query("SELECT order_, select_, from__user, group_ FROM odd WHERE select_ > 0 "
                         "ORDER BY select_") == [("o1", 1, "ann", True), ("o2", 2, "ann", True)]
    assert backend.scalar("SELECT order__2 FROM odd WHERE order_ = 'o0'") == "clash"


# -- keys ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_key_upserts_update_the_typed_columns(cli, backend, workdir):
    write_records(workdir / "v1.json", users(20))
    write_records(workdir / "v2.json", [{**u, "email": f"new{u['id']}@example.com", "tags": None}
                                        for u in users(20)[10:]] + users(5, 20))

    load(cli, backend, workdir / "v1.json", "--table", "accounts", "--key", "id")
    skipped = load(cli, backend, workdir / "v2.json", "--table", "accounts", "--key", "id")
    updated = load(cli, backend, workdir / "v2.json", "--table", "accounts", "--key", "id",
                   "--on-conflict", "update", "--label", "again")
    other_key = cli("load", workdir / "v1.json", "--table", "accounts", "--key", "email",
                    env=backend.env())

    assert (skipped["tasks"], skipped["skipped"]) == (5, 10)
    assert (updated["tasks"], updated["updated"]) == (0, 15)
    assert backend.scalar("SELECT count(*) FROM accounts") == 25
    assert backend.scalar("SELECT email FROM accounts WHERE id = '12'") == "new12@example.com"
    assert backend.scalar("SELECT tags FROM accounts WHERE id = '12'") is None  # replaced whole
    assert backend.scalar("SELECT email FROM accounts WHERE id = '3'") == "u3@example.com"
    assert other_key.exit_code == 2 and "created with --key id" in other_key.output


# -- crashes and workers ------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_kill_9_while_files_add_columns_then_the_same_command(request, db, workdir, parking):
    backend = request.getfixturevalue(f"{db}_backend")
    folder = workdir / "landing"
    folder.mkdir()
    for n in range(6):  # each file brings a field of its own
        write_records(folder / f"f{n}.json", [{**u, f"extra_{n}": n} for u in users(40, 40 * n)])
    args = ("load", folder, "--table", "users", "--chunk-size", "40", "--concurrency", "1",
            "--json")
    first = start_ingest(*args, env={**backend.env(), **parking.env(chunks="2-")}, cwd=workdir)

    def some_rows() -> bool:
        try:
            return backend.scalar("SELECT count(*) FROM users") >= 80
        except Exception:  # not created yet
            return False

    parking.wait_parked(index=2, process=first)
    wait_until(some_rows, 60, "two chunks committed", process=first)
    assert kill_9(first) == -9  # chunks 0 and 1 in, 2 held before it adds its column
    assert backend.scalar("SELECT count(*) FROM users") == 80
    again = run_ingest(*args, env=backend.env(), cwd=workdir)

    assert again.returncode == 0, again.stderr
    assert backend.scalar("SELECT count(*) FROM users") == 240
    assert backend.scalar("SELECT count(DISTINCT _source_key) FROM users") == 240
    assert {f"extra_{n}" for n in range(6)} <= set(columns(backend, "users"))
    for n in range(6):
        assert backend.scalar(f"SELECT count(extra_{n}) FROM users") == 40


@pytest.mark.slow
def test_two_workers_finding_the_same_new_field_add_its_column_once(postgres_backend, workdir):
    folder = workdir / "landing"
    folder.mkdir()
    for n in range(12):  # every file has the same new fields: any chunk may add them first
        write_records(folder / f"f{n:02d}.json",
                      [{**u, "late": {"flag": True, "note": "x"}} for u in users(25, 25 * n)])
    env = {**postgres_backend.env(), "INGEST_FAULT_CHUNK_DELAY_SEC": "0.05"}
    detached = run_ingest("load", folder, "--table", "users", "--chunk-size", "25", "--detach",
                          "--json", env=env, cwd=workdir)
    assert detached.returncode == 0, detached.stderr
    run_id = json.loads(detached.stdout)["run_id"]

    finish_on_workers(run_id, env, workdir, workers=2)

    assert postgres_backend.scalar("SELECT count(*) FROM users") == 300
    catalog = postgres_backend.query("SELECT name, count(*) FROM ingest_columns "
                                     "WHERE table_name = 'users' GROUP BY name")
    assert all(count == 1 for _, count in catalog)
    assert {"late__flag", "late__note"} <= {name for name, _ in catalog}
    executors = postgres_backend.scalar("SELECT count(DISTINCT _run_id) FROM users")
    assert executors == 1 and postgres_backend.scalar("SELECT count(late__flag) FROM users") == 300


def test_a_url_input_into_a_table(cli, backend):
    sys.path.insert(0, str(REPO / "benchmarks"))
    from page_server import PageServer

    with PageServer(pages=3, records=20) as server:
        summary = load(cli, backend, server.page_url, "--pages", "1-", "--table", "people")

    assert (summary["records"], summary["tasks"], summary["table"]) == (60, 60, "people")
    assert backend.scalar("SELECT count(*) FROM people WHERE dob__age >= 0") == 60
    assert "location__postcode" in columns(backend, "people")


# -- the compiled walk places every value where the general walk does --------------------------
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                     st.floats(allow_nan=False, allow_infinity=False),
                     st.sampled_from(["x", "a\tb", "back\\slash", "2020-01-01T00:00:00Z",
                                      "2021-02-30T00:00:00Z", "é"]),
                     st.lists(st.integers(), max_size=2))
_records = st.dictionaries(st.sampled_from(["a", "b", "c", "D e"]), st.one_of(
    _scalars, st.dictionaries(st.sampled_from(["x", "y"]), _scalars, max_size=2)), max_size=4)


def schema_of(records: list, dialect: str):
    """The schema a table would have after these records: their columns, as the catalog
    would plan them."""
    from durable_ingest.tables.catalog import Schema, plan
    from durable_ingest.tables.rows import Rows

    built = Rows(Schema("t", exists=True), dialect)
    for n, record in enumerate(records):
        built.add([str(n), "run", str(n)], record, b"{}")
    return plan(built.schema, built.wanted(built.schema)).schema


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_records, min_size=1, max_size=80), st.lists(_records, max_size=20),
       st.sampled_from(["postgresql", "sqlite"]))
def test_the_compiled_walk_places_values_as_the_general_walk_does(seen, later, dialect):
    from durable_ingest.tables import rows as rows_module

    schema = schema_of(seen, dialect)  # the table knows the fields of ``seen``, not of ``later``

    def walk(compiles: int) -> list:
        rows_module.MAX_COMPILES = compiles
        built = rows_module.Rows(schema, dialect)
        for n, record in enumerate(seen * 40 + later):  # enough records to compile a walk
            built.add([str(n), "run", str(n)], record, b"{}")
        # Values kept aside for new columns: the same ones (a compiled walk visits a record's
        # fields in the order of the shape it was compiled for), and every row the same.
        kept = sorted((tuple(row), field.path, kind, repr(value))
                      for row, field, kind, value in built.pending)
        return kept + [tuple(row) for row in built.rows]

    try:
        assert walk(8) == walk(0)
    finally:
        rows_module.MAX_COMPILES = 8


@pytest.mark.slow
def test_status_and_the_ui_name_the_table_a_run_wrote(cli, sqlite_backend, workdir):
    from test_ui import fetch, start_ui

    write_records(workdir / "users.json", users(12))
    run_id = load(cli, sqlite_backend, workdir / "users.json", "--table", "users")["run_id"]

    detail = json.loads(cli("status", run_id, "--json", env=sqlite_backend.env()).stdout)
    files = json.loads(cli("status", run_id, "--files", "1", "--json",
                           env=sqlite_backend.env()).stdout)
    process, url = start_ui(sqlite_backend, workdir)
    try:
        page = fetch(f"{url}runs/{run_id}")
    finally:
        kill_9(process)

    assert detail["table"] == "users" and files["files"][0]["tasks"] == 12
    assert "<b id=table>users</b>" in page


@pytest.mark.slow
@pytest.mark.parametrize("key", [(), ("--key", "id")])
def test_ingest_retry_moves_rescued_records_into_the_table(cli, sqlite_backend, workdir, key):
    write_records(workdir / "users.json", users(10))
    run_id = load(cli, sqlite_backend, workdir / "users.json", "--table", "users", *key,
                  "--fail-task", "4")["run_id"]

    retried = cli("retry", run_id, "--json", env=sqlite_backend.env())

    assert json.loads(retried.stdout)["tasks"] == 1
    assert sqlite_backend.scalar("SELECT count(*) FROM users") == 10
    assert sqlite_backend.scalar("SELECT name__first FROM users WHERE _position = 4") == "F4"
    assert sqlite_backend.query("SELECT table_name, resolved_at IS NOT NULL FROM errors") == \
        [("users", 1)]
