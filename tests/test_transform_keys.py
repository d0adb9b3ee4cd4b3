"""Your own transform (``--transform``) and your own keys (``--key``, ``--on-conflict``)."""

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from conftest import kill_9, output_of, people, run_ingest, start_ingest, wait_until, write_records

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def users(count: int, start: int = 0, version: str = "v1") -> list:
    """People with a login.uuid (``u<i>``) and a version mark, to see which record won."""
    return [{**p, "login": {"uuid": f"u{start + i}", "password": "hunter2"}, "version": version}
            for i, p in enumerate(people(count, start))]


def load(cli, backend, *args, code=0):
    result = cli("load", *args, "--json", "--no-progress", env=backend.env())
    assert result.exit_code == code, result.output
    return json.loads(result.stdout) if code in (0, 3, 4) and result.stdout.strip() else result


def stored(backend) -> dict:
    """source_key -> data of every tasks row."""
    rows = backend.query("SELECT source_key, data FROM tasks")
    return {k: d if isinstance(d, dict) else json.loads(d) for k, d in rows}


def module(workdir: Path, name: str, source: str) -> None:
    (workdir / f"{name}.py").write_text(textwrap.dedent(source))


# -- --transform ---------------------------------------------------------------------------------
def test_a_transform_from_a_file_path_redacts_and_drops(cli, backend, workdir):
    data = write_records(workdir / "u.json", [{**u, "picture": {"large": "x"}} for u in users(5)])
    summary = load(cli, backend, data, "--transform", f"{EXAMPLES / 'redact.py'}:redact")

    assert (summary["tasks"], summary["errors"], summary["skipped"]) == (5, 0, 0)
    rows = stored(backend).values()
    assert all("picture" not in r and r["login"] == {"uuid": r["login"]["uuid"]} for r in rows)
    assert {r["name"]["first"] for r in rows} == {f"first{i}" for i in range(5)}  # not uppercased


def test_a_transform_from_a_module_in_the_working_directory_skips_with_none(cli, backend, workdir):
    module(workdir, f"shapes_{backend.name}", """
        def adults(record):
            if record["age"] < 3:
                return None
            return {"who": record["name"]["first"], "age": record["age"]}
    """)
    summary = load(cli, backend, write_records(workdir / "p.json", people(10)),
                   "--transform", f"shapes_{backend.name}:adults")

    assert (summary["records"], summary["tasks"], summary["skipped"], summary["errors"]) == (10, 7, 3, 0)
    assert sorted(r["age"] for r in stored(backend).values()) == list(range(3, 10))
    status = json.loads(cli("status", summary["run_id"], "--json", env=backend.env()).stdout)
    assert (status["tasks"], status["skipped"], status["errors"]) == (7, 3, 0)


def test_identity_stores_records_as_read(cli, sqlite_backend, workdir):
    load(cli, sqlite_backend, write_records(workdir / "p.json", people(3)), "--transform", "identity")
    assert sorted(r["name"]["first"] for r in stored(sqlite_backend).values()) == ["first0", "first1", "first2"]


def test_exceptions_are_retried_then_stored_with_the_original_type(cli, backend, workdir):
    module(workdir, f"picky_{backend.name}", """
        import os
        attempts = {}

        def shape(record):
            age = record["age"]
            attempts[age] = attempts.get(age, 0) + 1
            if age == 1 and attempts[age] < 3:
                raise ConnectionError("lookup service timed out")  # rescued on attempt 3
            if age == 2:
                raise LookupError(f"no such person: {record['name']['first']}")
            if age == 3:
                return ["not", "a", "dict"]
            return record
    """)
    summary = load(cli, backend, write_records(workdir / "p.json", people(5)),
                   "--transform", f"picky_{backend.name}:shape", "--max-attempts", "3", "--retry-interval", "0")

    assert (summary["tasks"], summary["errors"]) == (3, 2)
    errors = {m["position"]: m for m in backend.error_messages()}
    assert (errors[2]["error_type"], errors[2]["error"], errors[2]["attempts"]) == (
        "LookupError", "no such person: first2", 3)
    assert errors[3]["error_type"] == "BadTransformResult" and errors[3]["attempts"] == 1
    assert errors[3]["error"] == (f"transform picky_{backend.name}:shape returned list, not a dict "
                                  "(or None to skip the record)")


@pytest.mark.parametrize("spec, says", [
    ("nosuchmodule:f", "cannot import nosuchmodule: ModuleNotFoundError: No module named 'nosuchmodule'"),
    ("shapes1:missing", "shapes1 has no missing"),
    ("shapes2:CONSTANT", "CONSTANT in shapes2 is int, not a function"),
    ("broken:f", "cannot import broken: SyntaxError"),
    ("nofile.py:f", "no such file"),
    ("shapes", "expected MODULE:FUNCTION"),
])
def test_a_transform_that_cannot_be_used_exits_2_before_any_work(cli, sqlite_backend, workdir, spec, says):
    # A module name per case: these loads share one interpreter, and Python imports a name once.
    for name in ("shapes1", "shapes2"):
        module(workdir, name, "CONSTANT = 1\n")
    module(workdir, "broken", "def f(:\n")
    result = cli("load", write_records(workdir / "p.json", people(2)), "--transform", spec,
                 env=sqlite_backend.env())

    assert result.exit_code == 2
    assert says in result.output and len(result.output.strip().splitlines()) == 1
    assert not (workdir / "app.sqlite").exists()


def test_a_rejected_record_goes_to_errors_without_retries(cli, sqlite_backend, workdir):
    records = people(4)
    records[1]["email"], records[2]["email"] = "nobody", "tester@example.test"
    for r in records[::3]:
        r["email"] = f"{r['name']['first']}@example.com"
    summary = load(cli, sqlite_backend, write_records(workdir / "p.json", records),
                   "--transform", f"{EXAMPLES / 'validate.py'}:check_person")

    assert (summary["tasks"], summary["skipped"], summary["errors"], summary["retries"]) == (2, 1, 1, 0)
    [error] = sqlite_backend.error_messages()
    assert (error["error_type"], error["error"]) == ("Rejected", "email 'nobody' is not an address")


# -- --key ---------------------------------------------------------------------------------------
def test_keys_deduplicate_within_a_file_across_files_and_across_runs(cli, backend, workdir):
    first = write_records(workdir / "a.ndjson", users(3) + users(2, version="v2"), "ndjson")
    summary = load(cli, backend, first, "--key", "login.uuid")
    assert (summary["records"], summary["tasks"], summary["skipped"]) == (5, 3, 2)
    assert {k: r["version"] for k, r in stored(backend).items()} == {"u0": "v1", "u1": "v1", "u2": "v1"}

    folder = workdir / "landing"
    folder.mkdir()
    write_records(folder / "1.json", users(2, 2, version="v3"))  # u2 (stored), u3
    write_records(folder / "2.json", users(2, 3, version="v4"))  # u3 (in 1.json), u4
    summary = load(cli, backend, folder, "--key", "login.uuid")
    assert (summary["records"], summary["tasks"], summary["skipped"], summary["updated"]) == (4, 2, 2, 0)
    assert {k: r["version"] for k, r in stored(backend).items()} == {
        "u0": "v1", "u1": "v1", "u2": "v1", "u3": "v3", "u4": "v4"}
    assert backend.scalar("SELECT count(*) FROM tasks") == 5


@pytest.mark.slow  # over 2 s
def test_update_keeps_the_newest_record_of_each_key(cli, backend, workdir):
    load(cli, backend, write_records(workdir / "a.json", users(4)), "--key", "login.uuid")
    folder = workdir / "landing"
    folder.mkdir()
    write_records(folder / "1.ndjson", users(2, version="v2") + users(1, 5, version="v2"), "ndjson")
    write_records(folder / "2.ndjson", users(1, version="v3") + users(1, version="v4"), "ndjson")
    summary = load(cli, backend, folder, "--key", "login.uuid", "--on-conflict", "update",
                   "--chunk-size", "1", "--concurrency", "4")

    assert (summary["records"], summary["tasks"], summary["updated"], summary["skipped"]) == (5, 1, 4, 0)
    assert {k: r["version"] for k, r in stored(backend).items()} == {
        "u0": "v4", "u1": "v2", "u2": "v1", "u3": "v1", "u5": "v2"}


def test_numbers_and_strings_are_one_key_and_bad_keys_go_to_errors(cli, backend, workdir):
    records = [{"id": 1, "v": "a"}, {"id": "1", "v": "b"}, {"id": 2.5, "v": "c"}, {"v": "no id"},
               {"id": {"nested": 1}, "v": "d"}, {"id": True, "v": "e"}, {"id": "", "v": "f"}]
    summary = load(cli, backend, write_records(workdir / "ids.json", records, "array"), "--key", "id")

    assert (summary["tasks"], summary["skipped"], summary["errors"]) == (2, 1, 4)
    assert sorted(stored(backend)) == ["1", "2.5"]
    reasons = sorted((m["error_type"], m["error"]) for m in backend.error_messages())
    assert reasons == [("MissingKey", "id is a boolean, not a string or number"),
                       ("MissingKey", "id is an empty string"),
                       ("MissingKey", "id is an object, not a string or number"),
                       ("MissingKey", "record has no id")]


def test_a_keyed_error_rescued_by_a_later_run_is_resolved(cli, backend, workdir):
    module(workdir, f"gate_{backend.name}", """
        import os
        def shape(record):
            if record["age"] == 1 and not os.path.exists("open"):
                raise PermissionError("gate closed")
            return record
    """)
    load(cli, backend, write_records(workdir / "a.json", users(3)), "--key", "login.uuid",
         "--transform", f"gate_{backend.name}:shape", "--max-attempts", "1")
    assert [(m["source_key"], m["error_type"]) for m in backend.error_messages()] == [("u1", "PermissionError")]

    (workdir / "open").touch()
    summary = load(cli, backend, write_records(workdir / "b.json", users(2, version="v2")),
                   "--key", "login.uuid", "--transform", f"gate_{backend.name}:shape")
    assert (summary["tasks"], summary["skipped"]) == (1, 1)
    assert backend.query("SELECT source_key FROM errors WHERE resolved_at IS NULL") == []
    assert sorted(stored(backend)) == ["u0", "u1", "u2"]


def test_on_conflict_without_a_key_is_a_usage_error(cli, sqlite_backend, workdir):
    result = cli("load", write_records(workdir / "p.json", people(1)), "--on-conflict", "update",
                 env=sqlite_backend.env())
    assert result.exit_code == 2 and "--on-conflict needs --key" in result.output


# -- the run's transform everywhere ---------------------------------------------------------------
@pytest.mark.slow
def test_resume_and_retry_use_the_runs_transform(cli, sqlite_backend, workdir, parking):
    """The transform is recorded in the run: a chunk that could not import it fails with
    that line, and `ingest resume`, run from another directory once it is fixed, finishes it."""
    module(workdir, "shapes", "def tag(record):\n    return {**record, 'tagged': True}\n")
    data = write_records(workdir / "p.json", people(6))
    process = start_ingest("load", data, "--transform", "shapes:tag", "--chunk-size", "2",
                           "--max-attempts", "1", cwd=workdir,
                           env={**sqlite_backend.env(), **parking.env(chunks="1-")})
    parking.wait_parked(index=1, process=process)
    wait_until(lambda: sqlite_backend.rows_so_far() >= 2, 60, "the first chunk", process=process)
    assert kill_9(process) == -9
    assert sqlite_backend.rows_so_far() == 2  # chunks 1 and 2 are left to the resume
    (workdir / "shapes.py").rename(workdir / "elsewhere.py")  # the transform is gone

    broken = run_ingest("resume", env=sqlite_backend.env(), cwd=workdir)
    assert broken.returncode == 2, broken.stderr
    assert "--transform shapes:tag: cannot import shapes" in broken.stderr

    (workdir / "elsewhere.py").rename(workdir / "shapes.py")
    fixed = run_ingest("resume", "--json", env=sqlite_backend.env(), cwd=workdir)
    assert fixed.returncode == 0, fixed.stderr
    assert sqlite_backend.counts() == (6, 0)
    assert all(r["tagged"] for r in stored(sqlite_backend).values())


@pytest.mark.slow
def test_a_worker_runs_the_transform_recorded_in_the_run(postgres_backend, workdir):
    module(workdir, "shapes", "def tag(record):\n    return {**record, 'tagged': 'by worker'}\n")
    data = write_records(workdir / "p.json", people(8))
    queued = run_ingest("load", data, "--transform", "shapes:tag", "--detach", "--json",
                        env=postgres_backend.env(), cwd=workdir)
    assert queued.returncode == 0, queued.stderr
    run_id = json.loads(queued.stdout)["run_id"]

    elsewhere = workdir / "worker"
    elsewhere.mkdir()
    worker = start_ingest("worker", cwd=elsewhere, env=postgres_backend.env())
    try:
        wait_until(lambda: postgres_backend.rows_so_far() == 8, 60, "the worker's rows")
    finally:
        worker.send_signal(2)
        output_of(worker)
    assert {r["tagged"] for r in stored(postgres_backend).values()} == {"by worker"}
    status = run_ingest("status", run_id, "--json", env=postgres_backend.env(), cwd=workdir)
    assert json.loads(status.stdout)["tasks"] == 8


@pytest.mark.slow
def test_retry_redrives_keyed_errors_through_the_runs_transform(cli, backend, workdir):
    module(workdir, f"odd_gate_{backend.name}", """
        import os
        def shape(record):
            if record["age"] % 2 and not os.path.exists("open"):
                raise PermissionError("gate closed")
            return {**record, "shaped": True}
    """)
    summary = load(cli, backend, write_records(workdir / "a.json", users(4)), "--key", "login.uuid",
                   "--transform", f"odd_gate_{backend.name}:shape", "--max-attempts", "1")
    assert (summary["tasks"], summary["errors"]) == (2, 2)

    (workdir / "open").touch()
    retried = cli("retry", summary["run_id"], "--json", env=backend.env())
    assert retried.exit_code == 0, retried.output
    assert sorted(stored(backend)) == ["u0", "u1", "u2", "u3"]
    assert all(r["shaped"] for r in stored(backend).values())
    assert backend.query("SELECT count(*) FROM errors WHERE resolved_at IS NULL")[0][0] == 0


# -- crashes ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_kill_9_during_a_keyed_update_load_then_the_same_command(backend, workdir, parking):
    write_records(workdir / "old.json", users(300))
    first = run_ingest("load", "old.json", "--key", "login.uuid", "--json", env=backend.env(), cwd=workdir)
    assert first.returncode == 0, first.stderr
    first_run = json.loads(first.stdout)["run_id"]
    folder = workdir / "landing"
    folder.mkdir()
    for n in range(3):  # every key three more times; the last file's version must win
        write_records(folder / f"{n}.ndjson", users(300, version=f"new{n}"), "ndjson")
    command = ("load", "landing", "--key", "login.uuid", "--on-conflict", "update",
               "--chunk-size", "50", "--concurrency", "2")
    process = start_ingest(*command, cwd=workdir, env={**backend.env(), **parking.env(chunks="2-")})
    parking.wait_parked(index=2, process=process)
    wait_until(lambda: backend.scalar("SELECT count(*) FROM tasks WHERE run_id <> :r", r=first_run) > 0,
               60, "the first updates", process=process)
    assert kill_9(process) == -9  # chunks 0 and 1 in, the rest held

    again = run_ingest(*command, env=backend.env(), cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert backend.counts() == (300, 0)
    assert {r["version"] for r in stored(backend).values()} == {"new2"}


def test_a_key_too_long_to_index_goes_to_errors_and_the_rest_loads(cli, backend, workdir):
    records = [{"id": "a"}, {"id": "x" * 5000}, {"id": "b"}]
    summary = load(cli, backend, write_records(workdir / "ids.ndjson", records, "ndjson"), "--key", "id")

    assert (summary["tasks"], summary["errors"]) == (2, 1)
    [error] = backend.error_messages()
    assert (error["error_type"], error["error"]) == ("MissingKey", "id is longer than 1000 bytes, too long for a key")


def test_an_earlier_record_stored_does_not_resolve_a_later_ones_error(cli, backend, workdir):
    """Key a: position 0 loads, position 1 (the newer record, meant to win) is rejected. In
    whichever order the two chunks commit, its error stays open for ingest errors and retry."""
    records = [{"id": "a", "v": 1}, {"id": "a", "v": 2, "bad": True}]
    summary = load(cli, backend, write_records(workdir / "a.ndjson", records, "ndjson"), "--key", "id",
                   "--on-conflict", "update", "--chunk-size", "1", "--concurrency", "2",
                   "--transform", f"{EXAMPLES.parent / 'tests' / 'reject_bad.py'}:shape")

    assert (summary["tasks"], summary["errors"]) == (1, 1)
    assert backend.query("SELECT source_key FROM errors WHERE resolved_at IS NULL") == [("a",)]


@pytest.mark.slow
def test_retry_does_not_silently_drop_an_update_another_run_holds_off(cli, backend, workdir):
    load(cli, backend, write_records(workdir / "one.ndjson", [{"id": "k", "v": 1}], "ndjson"),
         "--key", "id", "--transform", "identity")
    second = load(cli, backend, write_records(workdir / "two.ndjson", [{"id": "k", "v": 2}], "ndjson"),
                  "--key", "id", "--on-conflict", "update", "--transform", "identity",
                  "--fail-task", "0", "--max-attempts", "1", code=4)  # its one record failed
    assert second["errors"] == 1

    retried = cli("retry", second["run_id"], "--json", env=backend.env())
    outcome = json.loads(retried.stdout)
    assert (outcome["tasks"], outcome["errors"]) == (0, 1)
    [message] = backend.error_messages()
    assert message["error_type"] == "KeyHeldByAnotherRun" and "--on-conflict update" in message["error"]
    assert [d["v"] for d in stored(backend).values()] == [1]


def test_a_rerun_with_another_transform_is_refused_naming_it_and_the_ways_on(cli, backend, workdir):
    data = write_records(workdir / "users.json", people(6))
    (workdir / "fix.py").write_text("def tag(record):\n    return {**record, 'tagged': True}\n")
    detached = cli("load", data, "--detach", "--json", env=backend.env())  # no worker runs it
    run_id = json.loads(detached.stdout)["run_id"]

    unfinished = cli("load", data, "--transform", "fix.py:tag", env=backend.env())

    assert unfinished.exit_code == 2, unfinished.output
    assert unfinished.output.strip().splitlines() == [
        f"Error: run {run_id} of these inputs was started with other options (--transform: "
        f"identity, not {workdir / 'fix.py'}:tag): finish it as started with: ingest resume "
        f"{run_id}; or add --label NAME to load them as a new run"]
    assert backend.rows_so_far() == 0

    assert load(cli, backend, data, "--chunk-size", "2", "--concurrency", "3")["tasks"] == 6
    finished = cli("load", data, "--transform", "fix.py:tag", "--max-attempts", "5",
                   env=backend.env())
    again = load(cli, backend, data, "--transform", "fix.py:tag", "--label", "tagged")

    assert finished.exit_code == 2, finished.output
    assert f"these inputs were loaded by run {run_id} with other options (--transform: " \
        f"identity, not {workdir / 'fix.py'}:tag; --max-attempts: 3, not 5): to load them " \
        "again with these, add --label NAME" in finished.output
    assert again["run_id"] != run_id and again["tasks"] == 6
    assert sum(1 for data in stored(backend).values() if data.get("tagged")) == 6


def test_a_rerun_with_other_speed_options_is_the_same_run(cli, sqlite_backend, workdir):
    data = write_records(workdir / "users.json", people(6))
    first = load(cli, sqlite_backend, data, "--chunk-size", "2")

    again = load(cli, sqlite_backend, data, "--chunk-size", "5", "--concurrency", "1",
                 "--retry-interval", "0.5")

    assert again["run_id"] == first["run_id"] and again["already_loaded"] is True
    assert sqlite_backend.counts() == (6, 0)
