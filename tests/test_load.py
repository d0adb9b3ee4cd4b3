"""``ingest load`` end to end, through the CLI, on SQLite and on Postgres."""

import json
import sqlite3

import pytest

from conftest import people, write_records


def load_json(cli, backend, *args):
    result = cli("load", *args, "--json", env=backend.env())
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_demo_task_50_fails_and_everything_else_lands(cli, backend, workdir):
    data = write_records(workdir / "users.json", people(120))

    summary = load_json(cli, backend, data, "--transform", "uppercase", "--fail-task", "50")

    assert summary["records"] == 120
    assert (summary["tasks"], summary["errors"]) == (119, 1)
    assert backend.counts() == (119, 1)
    [message] = backend.error_messages()
    assert message["title"] == "task 50"
    assert message["position"] == 50
    assert message["error_type"] == "InjectedFailure"
    assert "task 50 failed on purpose" in message["error"]
    assert message["attempts"] == 3
    assert message["record"] is None  # the record's text is kept once: errors.source
    [source] = backend.query("SELECT source FROM errors")[0]
    assert json.loads(source)["name"]["first"] == "first50"  # the original, untransformed
    assert summary["retries"] == 2


def test_records_are_stored_as_read_by_default(cli, backend, workdir):
    """identity is the default: e-mails, UUIDs and URLs keep their case (the demo's
    uppercase once made a file's "a" into "A")."""
    records = [{"name": "a", "email": "Ann@Example.org", "uuid": "3f1c-ab", "url": "https://x.io/Q"}]
    data = write_records(workdir / "array.json", records)

    summary = load_json(cli, backend, data)

    assert (summary["tasks"], summary["errors"]) == (1, 0)
    [(stored,)] = backend.query("SELECT data FROM tasks")
    assert (stored if isinstance(stored, dict) else json.loads(stored)) == records[0]


def test_a_run_recorded_as_uppercase_keeps_it_and_a_bare_rerun_is_told(cli, backend, workdir):
    """A run records its transform by name: the demo's run stays uppercase, and the same
    command without --transform (now identity) is refused, naming both."""
    data = write_records(workdir / "users.json", people(3))
    first = load_json(cli, backend, data, "--transform", "uppercase")

    again = cli("load", data, env=backend.env())

    assert again.exit_code == 2, again.output
    assert f"loaded by run {first['run_id']} with other options (--transform: uppercase, not " \
        "identity)" in again.output
    assert backend.counts() == (3, 0)


def test_transform_uppercases_values_not_keys(cli, backend, workdir):
    data = write_records(workdir / "users.json", people(3))
    load_json(cli, backend, data, "--transform", "uppercase")

    row = backend.query("SELECT title, data FROM tasks WHERE position = 1")[0]
    record = row[1] if isinstance(row[1], dict) else json.loads(row[1])
    assert row[0] == "task 1"
    assert record["name"] == {"title": "MS", "first": "FIRST1", "last": "LAST-1"}
    assert record["location"]["city"] == "ZÜRICH"
    assert record["tags"] == ["A", {"b": "C"}]
    assert (record["age"], record["ok"], record["none"]) == (1, True, None)


@pytest.mark.slow  # over 2 s
def test_second_identical_run_adds_nothing_and_says_so(cli, backend, workdir):
    data = write_records(workdir / "users.json", people(30))
    first = load_json(cli, backend, data, "--fail-task", "5")

    again = cli("load", data, "--fail-task", "5", env=backend.env())

    assert again.exit_code == 0
    assert "already loaded by run " + first["run_id"] in again.output
    assert backend.counts() == (29, 1)


@pytest.mark.parametrize("shape", ["envelope", "array", "ndjson"])
def test_every_shape_loads_the_same_records(cli, sqlite_backend, workdir, shape):
    data = write_records(workdir / f"users.{shape}", people(25), shape)

    summary = load_json(cli, sqlite_backend, data, "--chunk-size", "4")

    assert (summary["tasks"], summary["errors"], summary["chunks"]) == (25, 0, 7)
    positions = [r[0] for r in sqlite_backend.query("SELECT position FROM tasks ORDER BY position")]
    assert positions == list(range(25))


def test_stdin_is_read_with_a_dash(cli, sqlite_backend, workdir):
    text = "".join(json.dumps(r) + "\n" for r in people(12))

    result = cli("load", "-", "--json", env=sqlite_backend.env(), input=text)

    assert result.exit_code == 0, result.output
    assert sqlite_backend.counts() == (12, 0)


def test_format_option_overrides_detection(cli, sqlite_backend, workdir):
    # A one-line NDJSON file looks like a document: this one an envelope of two records;
    # --format ndjson says it is one record.
    data = workdir / "one.txt"
    data.write_text(json.dumps({"id": 1, "results": [{"a": 1}, {"a": 2}]}) + "\n")
    assert cli("load", data, env=sqlite_backend.env()).exit_code == 0
    assert sqlite_backend.counts() == (2, 0)
    assert cli("load", data, "--format", "ndjson", "--label", "as-ndjson",
               env=sqlite_backend.env()).exit_code == 0
    assert sqlite_backend.counts() == (3, 0)


def test_retries_rescue_flaky_records(cli, backend, workdir):
    data = write_records(workdir / "users.json", people(200))

    summary = load_json(cli, backend, data, "--flaky-rate", "0.3", "--max-attempts", "5",
                        "--seed", "7", "--retry-interval", "0.01", "--chunk-size", "50")

    assert summary["retries"] > 40  # about 30% of 200 failed at least once
    assert (summary["tasks"], summary["errors"]) == (200, 0)
    assert backend.counts() == (200, 0)


def test_one_attempt_sends_flaky_records_to_errors(cli, sqlite_backend, workdir):
    data = write_records(workdir / "users.json", people(100))

    summary = load_json(cli, sqlite_backend, data, "--flaky-rate", "0.2", "--max-attempts", "1")

    assert summary["retries"] == 0
    assert summary["errors"] > 5
    assert sqlite_backend.counts() == (100 - summary["errors"], summary["errors"])
    assert {m["error_type"] for m in sqlite_backend.error_messages()} == {"TransientFailure"}
    assert {m["attempts"] for m in sqlite_backend.error_messages()} == {1}


@pytest.mark.slow  # two loads, about 2 s
def test_flaky_failures_are_reproducible_with_a_seed(cli, sqlite_backend, workdir):
    data = write_records(workdir / "users.json", people(100))
    args = ("--flaky-rate", "0.2", "--max-attempts", "1", "--seed", "3")
    first = load_json(cli, sqlite_backend, data, *args, "--label", "a")
    second = load_json(cli, sqlite_backend, data, *args, "--label", "b")

    assert first["errors"] == second["errors"]
    by_run = sqlite_backend.query("SELECT run_id, position FROM errors ORDER BY run_id, position")
    positions = {}
    for run_id, position in by_run:
        positions.setdefault(run_id, []).append(position)
    assert len(positions) == 2 and len({tuple(p) for p in positions.values()}) == 1


@pytest.mark.slow  # two loads, about 2 s
def test_label_loads_the_same_file_again_as_a_new_dataset(cli, sqlite_backend, workdir):
    data = write_records(workdir / "users.json", people(10))
    first = load_json(cli, sqlite_backend, data)
    second = load_json(cli, sqlite_backend, data, "--label", "again")

    assert first["run_id"] != second["run_id"]
    assert sqlite_backend.counts() == (20, 0)


def test_several_paths_load_as_one_run(cli, sqlite_backend, workdir):
    a = write_records(workdir / "a.json", people(5))
    b = write_records(workdir / "b.ndjson", people(7, start=100), "ndjson")

    result = cli("load", a, b, "--json", env=sqlite_backend.env())

    assert result.exit_code == 0, result.output
    [summary] = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert (summary["records"], summary["files_loaded"], summary["chunks"]) == (12, 2, 1)
    assert sqlite_backend.counts() == (12, 0)


@pytest.mark.slow  # over 2 s
def test_many_chunks_and_workers_write_each_record_once(cli, backend, workdir):
    data = write_records(workdir / "users.ndjson", people(300), "ndjson")

    summary = load_json(cli, backend, data, "--chunk-size", "7", "--concurrency", "4",
                        "--fail-task", "0", "--fail-task", "299", "--retry-interval", "0")

    assert summary["chunks"] == 43
    assert backend.counts() == (298, 2)
    distinct = backend.scalar("SELECT count(DISTINCT source_key) FROM tasks")
    assert distinct == 298


def test_summary_line_for_people(cli, sqlite_backend, workdir):
    data = write_records(workdir / "users.json", people(10))

    result = cli("load", data, "--fail-task", "3", env=sqlite_backend.env())

    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("run ingest-")
    assert "records 10 | tasks 9 | errors 1 | retries 2 | elapsed" in lines[1]
    assert lines[1].endswith("records/s")


def test_fail_on_errors_sets_exit_code_4_and_says_why(cli, sqlite_backend, workdir):
    data = write_records(workdir / "users.json", people(10))

    result = cli("load", data, "--fail-task", "3", "--fail-on-errors", env=sqlite_backend.env())

    assert result.exit_code == 4
    assert sqlite_backend.counts() == (9, 1)
    why = result.stderr.strip().splitlines()[-1]
    assert why.startswith("exit 4: 1 of 10 records ended in errors, more than --fail-on-errors "
                          "allows; `ingest errors ingest-")


def test_a_load_where_no_record_landed_is_never_exit_0(cli, sqlite_backend, workdir):
    data = write_records(workdir / "users.json", people(6))

    result = cli("load", data, "--flaky-rate", "1.0", "--retry-interval", "0",
                 env=sqlite_backend.env())

    assert result.exit_code == 4
    assert sqlite_backend.counts() == (0, 6)
    assert "exit 4: no record loaded, all 6 ended in errors; `ingest errors" in result.stderr
    assert "`ingest retry ingest-" in result.stderr


@pytest.mark.parametrize("limit, code", [("1", 0), ("0", 4), ("10%", 0), ("5%", 4)])
def test_max_errors_is_a_count_or_a_percentage(cli, sqlite_backend, workdir, limit, code):
    data = write_records(workdir / "users.json", people(10))  # 1 of 10 fails: 10%

    result = cli("load", data, "--fail-task", "3", "--max-errors", limit, env=sqlite_backend.env())

    assert result.exit_code == code, result.output
    assert (f"more than --max-errors {limit} allows" in result.stderr) == (code == 4)


@pytest.mark.parametrize("given, says", [
    (("--max-errors", "lots"), "'lots' is neither a count (e.g. 10) nor a percentage"),
    (("--max-errors", "101%"), "nor a percentage from 0% to 100%"),
    (("--max-errors", "1", "--fail-on-errors"), "--fail-on-errors is --max-errors 0: give one"),
])
def test_max_errors_that_cannot_work_is_a_usage_error(cli, sqlite_backend, workdir, given, says):
    data = write_records(workdir / "users.json", people(2))

    result = cli("load", data, *given, env=sqlite_backend.env())

    assert result.exit_code == 2
    assert says in result.stderr


def test_zero_set_up_default_writes_local_sqlite_files(cli, workdir):
    data = write_records(workdir / "users.json", people(8))

    result = cli("load", data)

    assert result.exit_code == 0, result.output
    assert (workdir / "durable_ingest_app.sqlite").exists()
    assert (workdir / "durable_ingest.sqlite").exists()  # DBOS's own, where `dbos` looks


def test_two_sqlite_databases_in_one_folder_each_get_the_rows_and_keep_their_own_runs(cli, workdir):
    data = write_records(workdir / "users.json", people(6))

    first = cli("load", data, "--json", "--database-url", "sqlite:///a.sqlite")
    second = cli("load", data, "--json", "--database-url", "sqlite:///b.sqlite")

    assert first.exit_code == 0 and second.exit_code == 0, second.output
    assert json.loads(second.stdout)["already_loaded"] is False
    for name in ("a", "b"):
        with sqlite3.connect(workdir / f"{name}.sqlite") as connection:
            assert connection.execute("SELECT count(*) FROM tasks").fetchone() == (6,)
        assert (workdir / f"{name}_dbos_sys.sqlite").exists()
        runs = json.loads(cli("status", "--json", "--database-url", f"sqlite:///{name}.sqlite").stdout)
        assert len(runs) == 1
    assert not (workdir / "durable_ingest.sqlite").exists()


@pytest.mark.parametrize("command", [["load", "users.json"], ["status"], ["errors"]])
def test_a_sqlite_url_in_a_missing_folder_is_one_line_naming_it(cli, workdir, command):
    write_records(workdir / "users.json", people(2))

    result = cli(*command, "--database-url", "sqlite:///nonexist/dir/x.sqlite")

    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        "Error: the folder of sqlite:///nonexist/dir/x.sqlite does not exist: nonexist/dir; "
        "create it (mkdir -p) or give another --database-url / DATABASE_URL"]
    assert not (workdir / "nonexist").exists()


def test_status_points_at_runs_kept_in_the_working_directory_by_earlier_versions(cli, workdir):
    data = write_records(workdir / "users.json", people(3))
    assert cli("load", data).exit_code == 0  # the default: durable_ingest.sqlite here
    (workdir / "elsewhere").mkdir()

    result = cli("status", "--database-url", "sqlite:///elsewhere/data.sqlite")

    assert result.exit_code == 0
    assert "no runs yet" in result.stdout
    assert f"DBOS_SYSTEM_DATABASE_URL=sqlite:///{workdir / 'durable_ingest.sqlite'} ingest status" \
        in result.stdout


def test_one_object_with_its_records_under_one_key_loads_as_one_record_with_a_hint(
        cli, sqlite_backend, workdir):
    page = workdir / "page.json"
    page.write_text('{"data": [{"id": 1}, {"id": 2}, {"id": 3}], "has_more": false}')

    result = cli("load", "page.json", env=sqlite_backend.env())

    assert result.exit_code == 0, result.output
    assert "records 1 | tasks 1 | errors 0" in result.stdout
    assert ('hint: page.json is one object, loaded as one record; to load the 3 objects under '
            '"data" as records instead: --records data') in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("hint")]) == 1


def test_no_hint_for_an_object_with_two_lists_of_objects_or_none(cli, sqlite_backend, workdir):
    (workdir / "two.json").write_text('{"a": [{"id": 1}], "b": [{"id": 2}]}')
    (workdir / "none.json").write_text('{"a": [1, 2], "b": {"id": 2}}')

    for name in ("two.json", "none.json"):
        result = cli("load", name, env=sqlite_backend.env())
        assert result.exit_code == 0 and "hint" not in result.stderr, result.output
