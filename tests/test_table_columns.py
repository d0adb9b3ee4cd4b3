"""Column type hints of dataset tables (``ingest load --table NAME --column FIELD=TYPE``): the
column is created with the hinted type, kept in the catalog for later loads, shown by
``ingest schema``, compared when a command attaches to a run; hints that can't work are
refused in one line (exit 2) before anything is written."""

import json
from decimal import Decimal

import pytest

from conftest import cli_load as load, write_records

TYPES = "bigint, double, decimal, bool, text, timestamp, json"


def columns(backend, table: str) -> dict:
    rows = backend.query("SELECT name, type, variant_of FROM ingest_columns WHERE table_name = :t",
                         t=table)
    return {name: (kind, variant_of) for name, kind, variant_of in rows}


def orders(count: int, start: int = 0) -> list:
    return [{"id": n, "total": [0.1, 0.2, 19.99][n % 3], "customer": {"zip": 8000 + n}}
            for n in range(start, start + count)]


def test_total_decimal_makes_sums_exact_and_keeps_the_written_digits(cli, backend, workdir):
    data = write_records(workdir / "orders.ndjson", orders(30), "ndjson")

    summary = load(cli, backend, data, "--table", "orders", "--column", "total=decimal",
                   "--column", "customer.zip=text")

    assert (summary["tasks"], summary["errors"]) == (30, 0)
    assert columns(backend, "orders")["total"] == ("decimal", None)
    # A zip is a number: text does not take it (nothing is coerced), its variant does.
    assert columns(backend, "orders")["customer__zip"] == ("text", None)
    assert columns(backend, "orders")["customer__zip__v_bigint"] == ("bigint", "customer__zip")
    if backend.name == "postgres":
        assert backend.scalar("SELECT sum(total) FROM orders") == Decimal("202.90")
        assert backend.scalar("SELECT sum(total) FROM orders WHERE id < 2") == Decimal("0.3")
    else:  # DECIMAL_TEXT: the digits as written
        assert backend.query("SELECT total, typeof(total) FROM orders ORDER BY id LIMIT 3") == [
            ("0.1", "text"), ("0.2", "text"), ("19.99", "text")]


def test_without_a_hint_the_same_totals_are_a_double(cli, backend, workdir):
    data = write_records(workdir / "orders.ndjson", orders(2), "ndjson")

    load(cli, backend, data, "--table", "orders")

    assert columns(backend, "orders")["total"] == ("double", None)
    assert backend.scalar("SELECT sum(total) FROM orders") == 0.30000000000000004


def test_a_hint_is_kept_for_later_loads_and_shown_by_schema(cli, sqlite_backend, workdir):
    """The first load has no total yet: its hint waits in the catalog, and a later load
    without --column creates the column as hinted; a value that doesn't fit it goes to a
    variant column."""
    write_records(workdir / "first.json", [{"id": 1}])
    write_records(workdir / "later.json", [{"id": 2, "total": 5}, {"id": 3, "total": "n/a"}])

    load(cli, sqlite_backend, workdir / "first.json", "--table", "orders", "--column", "total=decimal")
    later = load(cli, sqlite_backend, workdir / "later.json", "--table", "orders")
    shown = cli("schema", "orders", env=sqlite_backend.env())
    as_json = json.loads(cli("schema", "orders", "--json", env=sqlite_backend.env()).stdout)

    assert later["tasks"] == 2
    assert columns(sqlite_backend, "orders") == {
        "id": ("bigint", None), "total": ("decimal", None), "total__v_text": ("text", "total")}
    assert sqlite_backend.query("SELECT total, total__v_text FROM orders WHERE id > 1 ORDER BY id") \
        == [("5", None), (None, "n/a")]
    [line] = [line for line in shown.stdout.splitlines() if line.split()[0] == "total"]
    assert line.split()[1] == "decimal" and line.endswith("total (hinted: --column)")
    assert {c["name"]: c["hinted"] for c in as_json[0]["columns"]} == {
        "id": False, "total": True, "total__v_text": False}


def test_a_hint_against_an_existing_column_is_refused_in_one_line(cli, sqlite_backend, workdir):
    write_records(workdir / "a.json", orders(3))
    write_records(workdir / "b.json", orders(3, start=3))
    load(cli, sqlite_backend, workdir / "a.json", "--table", "orders")

    refused = cli("load", workdir / "b.json", "--table", "orders", "--column", "total=decimal",
                  env=sqlite_backend.env())

    assert refused.exit_code == 2
    assert refused.output.strip().splitlines() == [
        "Error: --column total=decimal: table orders has total as column total of type double "
        "already, and a column's type never changes; drop --column total, or load into a new "
        "--table"]
    assert sqlite_backend.scalar("SELECT count(*) FROM orders") == 3
    assert columns(sqlite_backend, "orders")["total"] == ("double", None)


@pytest.mark.parametrize("args, message", [
    (("--table", "orders", "--column", "total"), "--column total: expected FIELD=TYPE (a field or a "
     f"dotted path, e.g. total=decimal), TYPE one of {TYPES}"),
    (("--table", "orders", "--column", "total=money"), "--column total=money: expected FIELD=TYPE "
     f"(a field or a dotted path, e.g. total=decimal), TYPE one of {TYPES}"),
    (("--table", "orders", "--column", "a..b=text"), "--column a..b=text: expected FIELD=TYPE "
     f"(a field or a dotted path, e.g. total=decimal), TYPE one of {TYPES}"),
    (("--column", "total=decimal"), "--column is for a dataset table: add --table NAME"),
    (("--table", "orders", "--key", "id", "--column", "id=bigint"),
     "--column id=bigint: id is the table's key (--key); its column is always text"),
    (("--table", "orders", "--column", "total=decimal", "--column", "total=double"),
     "--column total: given as decimal and as double; give one"),
])
def test_a_malformed_hint_is_refused_before_anything(cli, sqlite_backend, workdir, args, message):
    data = write_records(workdir / "orders.json", orders(3))

    refused = cli("load", data, *args, env=sqlite_backend.env())

    assert refused.exit_code == 2
    assert refused.output.strip().splitlines() == [f"Error: {message}"]
    assert not list(workdir.glob("*.sqlite"))


def test_a_rerun_with_other_hints_is_refused_naming_them(cli, backend, workdir):
    data = write_records(workdir / "orders.json", orders(4))
    detached = cli("load", data, "--table", "orders", "--column", "total=decimal", "--detach",
                   "--json", env=backend.env())  # no worker runs it
    run_id = json.loads(detached.stdout)["run_id"]

    bare = cli("load", data, "--table", "orders", env=backend.env())
    other = cli("load", data, "--table", "orders", "--column", "total=text", env=backend.env())

    assert bare.exit_code == 2 and other.exit_code == 2
    assert f"run {run_id} of these inputs was started with other options (--column: " \
        "total=decimal, not none)" in bare.output
    assert "(--column: total=decimal, not total=text)" in other.output
