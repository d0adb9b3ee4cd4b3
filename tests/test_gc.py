"""``ingest gc`` and ``ingest worker --retention`` (issue 30, retention), with real processes
on real SQLite and Postgres: what goes (DBOS history, spooled copies), what stays (the data,
the claims, a summary row per run), and that it is safe during a load and when killed."""

import json
import signal
import sys
import urllib.request

import pytest
import sqlalchemy as sa

from conftest import (REPO, cli_load, kill_9, output_of, people, run_ingest, start_ingest,
                      wait_until, write_records)

HISTORY_TABLES = ("workflow_status", "operation_outputs", "workflow_input", "workflow_output",
                  "workflow_events", "workflow_events_history", "streams")


def history_rows(backend, cwd, run_id: str) -> int:
    """Rows of the run and of every workflow under its ID in DBOS's system tables."""
    url = backend.system_url_for(cwd).replace("postgresql://", "postgresql+psycopg://", 1)
    schema = "" if url.startswith("sqlite") else "dbos."
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return sum(connection.execute(sa.text(
                f"SELECT count(*) FROM {schema}{table} WHERE workflow_uuid = :run "
                f"OR workflow_uuid LIKE :children"), {"run": run_id, "children": f"{run_id}-%"}
            ).scalar() for table in HISTORY_TABLES)
    finally:
        engine.dispose()


def ingest_json(backend, cwd, *args, code=0, env=None, input=None):
    result = run_ingest(*args, "--json", env={**backend.env(), **(env or {})}, cwd=cwd,
                        input=input)
    assert result.returncode == code, result.stderr
    return json.loads(result.stdout)


def runs_by_id(backend, cwd) -> dict:
    return {r["run_id"]: r for r in ingest_json(backend, cwd, "status")}


COUNTS = ("state", "files", "records", "tasks", "errors", "resolved", "retries", "started_at",
          "duration_s", "dataset", "table")


def counts_of(run: dict) -> dict:
    return {name: run[name] for name in COUNTS}


@pytest.mark.slow
def test_gc_deletes_the_history_and_spool_of_old_runs_and_keeps_what_reruns_need(backend, workdir):
    data = write_records(workdir / "a.json", people(120))
    piped = "".join(json.dumps(r) + "\n" for r in people(30, 500))
    loaded = ingest_json(backend, workdir, "load", data, "--chunk-size", "50")["run_id"]
    stdin_run = ingest_json(backend, workdir, "load", "-", input=piped)["run_id"]
    spooled = list((workdir / ".ingest-spool").glob("stdin-*.data"))
    before = runs_by_id(backend, workdir)
    assert len(spooled) == 1 and history_rows(backend, workdir, loaded) > 10

    young = ingest_json(backend, workdir, "gc", "--older-than", "1h")
    dry = ingest_json(backend, workdir, "gc", "--older-than", "0s", "--dry-run")
    assert (young["runs"], young["workflows"], young["files"]) == (0, 0, 0)
    assert (dry["runs"], dry["files"], dry["bytes"]) == (2, 1, spooled[0].stat().st_size)
    assert dry["workflows"] >= 5 and spooled[0].exists() and runs_by_id(backend, workdir) == before

    done = ingest_json(backend, workdir, "gc", "--older-than", "0s")

    assert (done["runs"], done["workflows"], done["files"]) == (2, dry["workflows"], 1)
    assert history_rows(backend, workdir, loaded) == history_rows(backend, workdir, stdin_run) == 0
    assert not spooled[0].exists()
    after = runs_by_id(backend, workdir)
    assert {r: counts_of(v) for r, v in after.items()} == \
        {r: counts_of(v) for r, v in before.items()}
    assert all(run["history_removed"] for run in after.values())
    text = run_ingest("status", env=backend.env(), cwd=workdir).stdout
    assert f"{loaded}  done (gc)" in text and "ingest gc removed its history" in text
    detail = ingest_json(backend, workdir, "status", loaded)
    assert (detail["tasks"], detail["history_removed"], detail["chunks"]) == (120, True, [])
    # The claims stay: the same inputs are still "already loaded", nothing is written twice.
    again = ingest_json(backend, workdir, "load", data)
    piped_again = ingest_json(backend, workdir, "load", "-", input=piped)
    assert (again["run_id"], again["already_loaded"]) == (loaded, True)
    assert (piped_again["run_id"], piped_again["already_loaded"]) == (stdin_run, True)
    backend.assert_each_record_once(150, 0)
    # The rerun of stdin spooled its copy again: no run needs it, the next gc takes it.
    assert ingest_json(backend, workdir, "gc", "--older-than", "0s")["files"] == 1
    assert not list((workdir / ".ingest-spool").glob("stdin-*.data"))


@pytest.mark.slow
def test_retry_works_for_a_collected_run_and_its_counts_survive_the_next_gc(backend, workdir):
    data = write_records(workdir / "a.json", people(40))
    run_id = ingest_json(backend, workdir, "load", data, "--fail-task", "7")["run_id"]
    assert ingest_json(backend, workdir, "gc", "--older-than", "0s")["runs"] == 1

    retried = ingest_json(backend, workdir, "retry", run_id)
    shown = ingest_json(backend, workdir, "status", run_id)
    collected_again = ingest_json(backend, workdir, "gc", "--older-than", "0s")
    listed = runs_by_id(backend, workdir)[run_id]

    assert (retried["retried"], retried["tasks"]) == (1, 1)
    for run in (shown, listed):
        assert (run["tasks"], run["errors"], run["resolved"], run["history_removed"]) == \
            (40, 0, 1, True)
    assert (collected_again["runs"], collected_again["workflows"]) == (0, 1)  # the redrive
    assert history_rows(backend, workdir, run_id) == 0
    assert backend.counts() == (40, 1)  # the error row is kept, resolved
    assert backend.scalar("SELECT count(*) FROM errors WHERE resolved_at IS NOT NULL") == 1


@pytest.mark.slow
def test_gc_during_a_load_leaves_it_alone_and_it_finishes_exactly_once(backend, workdir,
                                                                      parking):
    old = ingest_json(backend, workdir, "load", write_records(workdir / "a.json", people(20)))
    big = write_records(workdir / "b.ndjson", people(300, 1000), "ndjson")
    loading = start_ingest("load", big, "--chunk-size", "100", "--json", cwd=workdir,
                           env={**backend.env(), **parking.env(chunks="1")})
    parking.wait_parked(index=1, process=loading)
    running = [r for r in runs_by_id(backend, workdir).values() if r["run_id"] != old["run_id"]]
    assert [r["state"] for r in running] == ["running"]
    history = history_rows(backend, workdir, running[0]["run_id"])

    collected = ingest_json(backend, workdir, "gc", "--older-than", "0s")

    assert (collected["runs"], collected["run_ids"]) == (1, [old["run_id"]])
    assert history_rows(backend, workdir, running[0]["run_id"]) >= history
    parking.release()
    stdout, stderr = loading.communicate(timeout=120)
    assert loading.returncode == 0, stderr
    assert json.loads(stdout)["tasks"] == 300
    backend.assert_each_record_once(320, 0)
    assert runs_by_id(backend, workdir)[running[0]["run_id"]]["state"] == "done"


@pytest.mark.slow
def test_gc_killed_halfway_leaves_runs_whole_and_the_next_gc_finishes(backend, workdir, parking):
    data = write_records(workdir / "a.json", people(30))
    piped = "".join(json.dumps(r) + "\n" for r in people(10, 100))
    ingest_json(backend, workdir, "load", data, "--fail-task", "3")
    ingest_json(backend, workdir, "load", "-", input=piped)
    before = runs_by_id(backend, workdir)
    gcing = start_ingest("gc", "--older-than", "0s", cwd=workdir,
                         env={**backend.env(), **parking.env(at="gc")})
    parking.wait_parked(process=gcing)
    assert not list((workdir / ".ingest-spool").glob("stdin-*.data"))  # files before history
    # Loads of the same inputs meanwhile: still "already loaded".
    assert ingest_json(backend, workdir, "load", data, "--fail-task", "3")["already_loaded"]
    assert ingest_json(backend, workdir, "load", "-", input=piped)["already_loaded"]

    assert kill_9(gcing) == -9
    halfway = runs_by_id(backend, workdir)
    assert backend.scalar("SELECT count(*) FROM ingest_runs") == 2  # rows first
    assert len(list((workdir / ".ingest-spool").glob("stdin-*.data"))) == 1  # spooled again
    assert all(history_rows(backend, workdir, run) > 0 for run in before)  # history last
    assert {r: counts_of(v) for r, v in halfway.items()} == \
        {r: counts_of(v) for r, v in before.items()}
    assert not any(run["history_removed"] for run in halfway.values())

    again = ingest_json(backend, workdir, "gc", "--older-than", "0s")

    after = runs_by_id(backend, workdir)
    assert (again["runs"], again["rows_written"]) == (2, 0)
    assert all(history_rows(backend, workdir, run) == 0 for run in before)
    assert {r: counts_of(v) for r, v in after.items()} == \
        {r: counts_of(v) for r, v in before.items()}
    assert all(run["history_removed"] for run in after.values())
    assert not list((workdir / ".ingest-spool").glob("stdin-*.data"))


@pytest.mark.slow
def test_the_ui_lists_a_collected_run(sqlite_backend, workdir):
    run_id = ingest_json(sqlite_backend, workdir, "load",
                         write_records(workdir / "a.json", people(25)))["run_id"]
    ingest_json(sqlite_backend, workdir, "gc", "--older-than", "0s")
    ui = start_ingest("ui", "--port", "0", cwd=workdir, env=sqlite_backend.env())
    try:
        url = ui.stderr.readline().split(" on ")[1].split()[0]
        listed = json.loads(urllib.request.urlopen(url + "api/runs", timeout=30).read())
        page = urllib.request.urlopen(url, timeout=30).read().decode()
        run_page = urllib.request.urlopen(f"{url}fragment/runs/{run_id}", timeout=30).read().decode()
    finally:
        kill_9(ui)
    assert [(r["run_id"], r["state"], r["tasks"], r["history_removed"]) for r in listed] == \
        [(run_id, "done", 25, True)]
    assert run_id in page and "ingest gc removed its history" in page
    assert "history removed by ingest gc" in run_page


@pytest.mark.parametrize("duration", ["3x", "", "-1d", "1w", "d"])
def test_a_bad_duration_is_one_line_and_exit_2(cli, workdir, duration):
    for args, off in ((("gc", "--older-than", duration), ""),
                      (("worker", "--retention", duration), ", or off")):
        result = cli(*args)
        assert result.exit_code == 2
        assert result.output.strip().splitlines() == [
            f"Error: {args[1]} {duration!r} is not a duration: give a number and a unit, "
            f"s, m, h or d (30d, 12h, 15m, 0s){off}"]
    assert list(workdir.iterdir()) == []


def test_gc_where_nothing_ever_ran_creates_nothing(cli, workdir):
    result = cli("gc", "--json")
    assert result.exit_code == 0 and json.loads(result.output)["runs"] == 0
    assert list(workdir.iterdir()) == []


@pytest.mark.slow
def test_worker_retention_collects_once_per_tick_across_workers(postgres_backend, workdir):
    backend = postgres_backend
    run_id = ingest_json(backend, workdir, "load",
                         write_records(workdir / "a.json", people(10)))["run_id"]
    env = {**backend.env(), "INGEST_RETENTION_CRON": "*/2 * * * * *"}
    workers = [start_ingest("worker", "--worker-id", f"w{n}", "--retention", "0s", env=env,
                            cwd=workdir) for n in (1, 2)]
    ticks: dict = {}  # tick workflow id -> executors seen running it

    def look() -> bool:
        for workflow_id, executor in backend_ticks(backend, workdir):
            ticks.setdefault(workflow_id, set()).add(executor)
        collected = runs_by_id(backend, workdir)[run_id]["history_removed"]
        return collected and len(ticks) >= 3

    try:
        wait_until(look, 120, lambda: f"3 ticks and the run collected; ticks {ticks}",
                   interval=0.2, process=workers[0])
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        errors = [output_of(worker, 60)[1] for worker in workers]
    assert all("retention: every hour, ingest gc --older-than 0s" in e for e in errors), errors
    assert all(len(executors) == 1 and executors <= {"w1", "w2"} for executors in ticks.values())
    moments = [t.removeprefix("sched-ingest-gc-") for t in ticks]
    assert len(set(moments)) == len(moments) and all(t.startswith("sched-ingest-gc-") for t in ticks)
    assert system_rows(backend, workdir, "SELECT schedule_name FROM dbos.workflow_schedules") == \
        [("ingest-gc",)]
    stopping = start_ingest("worker", "--worker-id", "w3", "--retention", "off", env=env,
                            cwd=workdir)
    wait_until(lambda: not system_rows(backend, workdir, "SELECT 1 FROM dbos.workflow_schedules"),
               60, "the schedule deleted", process=stopping)
    stopping.send_signal(signal.SIGTERM)
    assert "retention: off (the ingest-gc schedule is deleted)" in output_of(stopping, 60)[1]


def backend_ticks(backend, cwd) -> list:
    """(workflow id, executor) of the retention ticks a process took, in the system database
    now (an enqueued one has no executor yet)."""
    return system_rows(backend, cwd, "SELECT workflow_uuid, executor_id FROM "
                       "dbos.workflow_status WHERE name = 'collect_garbage' "
                       "AND status <> 'ENQUEUED'")


def system_rows(backend, cwd, sql: str) -> list:
    url = backend.system_url_for(cwd).replace("postgresql://", "postgresql+psycopg://", 1)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sa.text(sql))]
    finally:
        engine.dispose()


def test_a_command_with_urls_keeps_its_newest_run_so_the_next_is_a_new_one(cli, sqlite_backend,
                                                                             workdir):
    sys.path.insert(0, str(REPO / "benchmarks"))
    from page_server import PageServer

    env = sqlite_backend.env()
    with PageServer(pages=2, records=10) as server:
        first = cli_load(cli, sqlite_backend, server.page_url, "--pages", "1-2")
        second = cli_load(cli, sqlite_backend, server.page_url, "--pages", "1-2")
        collected = json.loads(cli("gc", "--older-than", "0s", "--json", env=env).output)
        third = cli_load(cli, sqlite_backend, server.page_url, "--pages", "1-2")

    assert (collected["runs"], collected["run_ids"], collected["kept"]) == (1, [first["run_id"]], 1)
    assert len({first["run_id"], second["run_id"], third["run_id"]}) == 3
    assert third["pages"]["already"] == 2 and third["tasks"] == 0
    # The newest run still names the pages' spooled copies (the same bytes, the same files).
    assert len(list((workdir / ".ingest-spool").glob("page-*.data"))) == 2
    sqlite_backend.assert_each_record_once(20, 0)


def test_a_run_older_than_the_summary_rows_gets_its_row_from_its_dbos_output(cli,
                                                                              sqlite_backend,
                                                                              workdir):
    env = sqlite_backend.env()
    loaded = cli_load(cli, sqlite_backend, write_records(workdir / "a.json", people(15)),
                      "--fail-task", "2", "--table", "people", "--label", "old")
    before = json.loads(cli("status", "--json", env=env).output)
    engine = sa.create_engine(sqlite_backend.url)  # as if it finished before migration 0009
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM ingest_runs"))
    engine.dispose()

    collected = json.loads(cli("gc", "--older-than", "0s", "--json", env=env).output)
    after = json.loads(cli("status", "--json", env=env).output)

    assert (collected["runs"], collected["rows_written"]) == (1, 1)
    assert [counts_of(r) | {"label": r["label"]} for r in after] == \
        [counts_of(r) | {"label": "old"} for r in before]
    assert after[0]["history_removed"] and loaded["errors"] == 1
    assert json.loads(cli("retry", loaded["run_id"], "--json", env=env).output)["tasks"] == 1
