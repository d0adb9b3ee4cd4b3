"""Operating loads: status, error triage, redrive, progress, and scale-out workers."""

import json
import os
import pty
import re
import select
import signal

import pytest

from conftest import kill_9, people, run_ingest, start_ingest, wait_until, write_records


def load(cli, backend, data, *args, code=0):
    result = cli("load", data, "--json", *args, env=backend.env())
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


@pytest.mark.slow  # over 2 s
def test_status_lists_runs_newest_first_and_shows_chunks(cli, backend, workdir):
    first = load(cli, backend, write_records(workdir / "a.json", people(30)), "--chunk-size", "10")
    second = load(cli, backend, write_records(workdir / "b.json", people(12, 50)),
                  "--chunk-size", "5", "--fail-task", "2", "--label", "nightly")

    runs = json.loads(cli("status", "--json", env=backend.env()).stdout)
    detail = json.loads(cli("status", second["run_id"], "--json", env=backend.env()).stdout)
    table = cli("status", env=backend.env()).output
    summed = cli("status", second["run_id"], env=backend.env()).output
    every = cli("status", second["run_id"], "--chunks", env=backend.env()).output

    assert [r["run_id"] for r in runs] == [second["run_id"], first["run_id"]]
    assert runs[0] | {"duration_s": 0, "records_per_s": 0, "started_at": 0, "dataset": ""} == {
        "run_id": second["run_id"], "dataset": "", "state": "done", "files": 1, "records": 12,
        "tasks": 11, "updated": 0, "skipped": 0, "errors": 1, "resolved": 0, "retries": 2, "started_at": 0, "duration_s": 0,
        "records_per_s": 0, "pages": None, "table": "tasks", "label": "nightly",
        "history_removed": False, "schedule": None, "incremental": None}
    assert runs[1]["label"] == ""
    assert [(c["chunk"], c["records"], c["state"], c["recoveries"]) for c in detail["chunks"]] == [
        (0, "0-4", "SUCCESS", 0), (1, "5-9", "SUCCESS", 0), (2, "10-11", "SUCCESS", 0)]
    assert detail["chunks"][0]["errors"] == 1 and detail["chunks"][0]["retry_state"] == "SUCCESS"
    assert detail["chunk_summary"] | {"slowest": []} == {
        "total": 3, "by_state": {"SUCCESS": 3}, "slowest": [], "failed": [], "failed_total": 0,
        "recoveries": 0}
    assert [s["chunk"] for s in detail["chunk_summary"]["slowest"]] != []
    [second_row] = [line for line in table.splitlines() if line.startswith(second["run_id"])]
    assert second_row.split()[1] == "done" and second_row.split()[-3:-1] == ["tasks", "nightly"]
    assert "table" in table.splitlines()[0] and "label" in table.splitlines()[0]
    assert "chunks 3: SUCCESS 3" in summed and "10-11" not in summed
    assert f"every chunk: ingest status {second['run_id']} --chunks" in summed
    assert "recoveries" in every and "10-11" in every


def test_status_of_an_unknown_run_and_of_no_runs(cli, sqlite_backend, workdir):
    assert "no runs yet" in cli("status", env=sqlite_backend.env()).output
    unknown = cli("status", "ingest-nope", env=sqlite_backend.env())
    assert unknown.exit_code == 3 and "no run ingest-nope" in unknown.output


@pytest.mark.slow
def test_status_is_live_while_a_run_is_going(backend, workdir, parking):
    data = write_records(workdir / "u.ndjson", people(300), "ndjson")
    process = start_ingest("load", data, "--chunk-size", "30", "--concurrency", "1", cwd=workdir,
                           env={**backend.env(), **parking.env(chunks=5)})
    parking.wait_parked(index=5, process=process)  # chunks 0-4 committed, 5 held before its own

    [run_id] = [w for w in backend.workflow_ids(workdir) if w.count("-") == 1]  # not a chunk's
    looked = run_ingest("status", run_id, "--json", env=backend.env(), cwd=workdir)  # one look
    parking.release()
    process.communicate(timeout=120)

    assert looked.returncode == 0, looked.stderr
    detail = json.loads(looked.stdout)
    assert (detail["state"], detail["tasks"], detail["errors"]) == ("running", 150, 0)
    assert [(c["chunk"], c["state"]) for c in detail["chunks"]] == \
        [(n, "SUCCESS") for n in range(5)] + [(5, "PENDING")] + [(n, "ENQUEUED") for n in range(6, 10)]
    assert process.returncode == 0


def test_errors_groups_by_type_and_message(cli, backend, workdir):
    data = write_records(workdir / "u.ndjson", people(40), "ndjson")
    with open(data, "a") as f:
        f.write("not json\n[1, 2]\n{broken\n")
    summary = load(cli, backend, data, "--fail-task", "3")

    groups = json.loads(cli("errors", summary["run_id"], "--json", env=backend.env()).stdout)
    text = cli("errors", env=backend.env()).output

    counts = {(g["error_type"], g["count"]) for g in groups}
    assert ("InvalidJSON", 1) in counts or ("InvalidJSON", 2) in counts
    assert ("NotAnObject", 1) in counts and ("InjectedFailure", 1) in counts
    assert sum(g["count"] for g in groups) == 4
    assert {g["sample_where"] for g in groups} >= {"line 4", "line 42"}
    assert "InjectedFailure: task N failed on purpose" in text
    limited = json.loads(cli("errors", "--limit", "1", "--json", env=backend.env()).stdout)
    assert len(limited) == 1


def test_errors_groups_one_mistake_whatever_its_offset_and_says_where_the_sample_is(
        cli, sqlite_backend, workdir):
    """20 lines, the same mistake (a trailing comma) at different byte offsets: one group,
    its sample located by file, line and run; the offsets stay in each row."""
    lines = [f'{{"name": "{"x" * (i % 3)}", "age": {i},}}' for i in range(20)]
    data = workdir / "people.ndjson"
    data.write_text("\n" + "\n".join(lines) + "\n")  # a blank first line: line != record
    run_id = load(cli, sqlite_backend, data, code=4)["run_id"]
    other = write_records(workdir / "other.ndjson", people(3), "ndjson")
    load(cli, sqlite_backend, other, "--fail-task", "1")

    [group] = json.loads(cli("errors", "--file", "people.ndjson", "--json",
                             env=sqlite_backend.env()).stdout)
    text = cli("errors", "--run", run_id, env=sqlite_backend.env()).output

    assert (group["error_type"], group["count"]) == ("InvalidJSON", 20)
    assert group["error"].endswith("trailing comma in object (byte N)")
    assert (group["sample_file"], group["sample_where"], group["sample_run"]) == (
        str(data), "line 2", run_id)
    assert "(byte 2" in group["sample_error"]
    assert text.splitlines() == [f"     20  InvalidJSON: {group['error']}",
                                 f"         e.g. {data} line 2 (run {run_id})"]
    [injected] = json.loads(cli("errors", "--type", "InjectedFailure", "--json",
                                env=sqlite_backend.env()).stdout)
    assert (injected["count"], injected["sample_file"]) == (1, str(other))
    assert json.loads(cli("errors", "--file", "nowhere.json", "--json",
                          env=sqlite_backend.env()).stdout) == []
    twice = cli("errors", run_id, "--run", "ingest-0123456789abcdef0123", env=sqlite_backend.env())
    assert twice.exit_code == 2 and "give the run once" in twice.output


def test_a_keyed_record_failing_twice_keeps_its_first_error_superseded(cli, backend, workdir):
    first = write_records(workdir / "one.ndjson", [{"id": "k", "v": 1}], "ndjson")
    second = write_records(workdir / "two.ndjson", [{"id": "k", "v": 2}], "ndjson")
    run_1 = load(cli, backend, first, "--key", "id", "--fail-task", "0", "--max-attempts", "1",
                 code=4)["run_id"]
    run_2 = load(cli, backend, second, "--key", "id", "--fail-task", "0", "--max-attempts", "1",
                 code=4)["run_id"]

    rows = backend.query("SELECT run_id, source_key, superseded_at IS NOT NULL, "
                         "resolved_at IS NOT NULL FROM errors ORDER BY id")
    assert rows == [(run_1, rows[0][1], True, True), (run_2, "k", False, False)]
    assert rows[0][1].startswith("k#superseded-")
    open_groups = json.loads(cli("errors", "--json", env=backend.env()).stdout)
    every = json.loads(cli("errors", "--all", "--json", env=backend.env()).stdout)
    assert [(g["count"], g["sample_run"]) for g in open_groups] == [(1, run_2)]
    assert sum(g["count"] for g in every) == 2
    retried = json.loads(cli("retry", run_1, "--json", env=backend.env()).stdout)
    assert retried["retried"] == 0  # a superseded failure is history, not redriven


@pytest.mark.slow  # over 2 s
def test_retry_moves_fixed_records_to_tasks_and_keeps_the_audit_trail(cli, backend, workdir):
    data = write_records(workdir / "u.json", people(30))
    summary = load(cli, backend, data, "--fail-task", "4", "--fail-task", "20")
    run_id = summary["run_id"]

    still = cli("retry", run_id, "--fail-task", "20", "--json", env=backend.env())
    fixed = cli("retry", run_id, "--json", env=backend.env())
    again = cli("retry", run_id, env=backend.env())

    assert json.loads(still.stdout) | {"run_id": 0} == {"run_id": 0, "retried": 2, "tasks": 1, "errors": 1, "skipped": 0}
    assert json.loads(fixed.stdout) | {"run_id": 0} == {"run_id": 0, "retried": 1, "tasks": 1, "errors": 0, "skipped": 0}
    assert "nothing to retry" in again.output
    assert backend.counts() == (30, 2)  # error rows kept for audit...
    resolved = backend.query("SELECT title FROM errors WHERE resolved_at IS NOT NULL ORDER BY position")
    assert [r[0] for r in resolved] == ["task 4", "task 20"]  # ...and marked resolved
    message = [m for m in backend.error_messages() if m["position"] == 20][0]
    assert message["attempts"] == 4  # 3 in the load, 1 more in the first retry
    assert backend.scalar("SELECT count(DISTINCT source_key) FROM tasks") == 30
    assert json.loads(cli("errors", run_id, "--json", env=backend.env()).stdout) == []


@pytest.mark.slow  # over 2 s
def test_status_counts_agree_with_the_tables_after_a_redrive(cli, sqlite_backend, workdir):
    data = write_records(workdir / "u.json", people(30))
    run_id = load(cli, sqlite_backend, data, "--fail-task", "4", "--fail-task", "20")["run_id"]

    cli("retry", run_id, "--fail-task", "20", env=sqlite_backend.env())
    [run] = json.loads(cli("status", "--json", env=sqlite_backend.env()).stdout)
    unresolved = sqlite_backend.scalar("SELECT count(*) FROM errors WHERE resolved_at IS NULL")

    assert (run["tasks"], run["errors"], run["resolved"]) == (29, 1, 1)
    assert (run["tasks"], run["errors"]) == (sqlite_backend.counts()[0], unresolved)
    assert "1 error row(s) resolved by ingest retry" in cli("status", run_id, env=sqlite_backend.env()).output


def test_retry_of_an_unknown_run(cli, sqlite_backend, workdir):
    load(cli, sqlite_backend, write_records(workdir / "u.json", people(3)))
    result = cli("retry", "ingest-nope", env=sqlite_backend.env())
    assert result.exit_code == 3 and "no run ingest-nope" in result.output


@pytest.mark.slow
def test_progress_shows_on_a_terminal_only(sqlite_backend, workdir, monkeypatch):
    data = write_records(workdir / "u.ndjson", people(200), "ndjson")
    monkeypatch.delenv("CI", raising=False)
    env = {**sqlite_backend.env(), "INGEST_FAULT_CHUNK_DELAY_SEC": "0.3"}
    master, slave = pty.openpty()
    process = start_ingest("load", data, "--chunk-size", "20", "--concurrency", "1", env=env,
                           cwd=workdir, stderr=slave, text=False)
    os.close(slave)
    output = bytearray()

    def terminal_closed() -> bool:  # what the load wrote is read as it comes, to the end
        if not select.select([master], [], [], 0.1)[0]:
            return False
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the load closed its end
            return True
        output.extend(chunk)
        return not chunk

    wait_until(terminal_closed, 120, "the load to finish writing to its terminal", interval=0)
    process.wait(timeout=120)
    os.close(master)
    seen = bytes(output)
    assert process.returncode == 0
    assert b"records: " in seen and b"/200 (" in seen and b"ETA" in seen

    piped = run_ingest("load", data, "--label", "piped", env=env, cwd=workdir)
    assert "records: " not in piped.stderr


def start_worker(backend, workdir, worker_id, *extra, env=None):
    return start_ingest("worker", "--worker-id", worker_id, "--drain-timeout", "5", *extra,
                        env={**backend.env(), **(env or {})}, cwd=workdir)


def wait_done(backend, workdir, run_id, timeout=120):
    def done():
        result = run_ingest("status", run_id, "--json", env=backend.env(), cwd=workdir)
        if result.returncode == 0 and json.loads(result.stdout)["state"] == "done":
            return json.loads(result.stdout)
        return None

    return wait_until(done, timeout, f"run {run_id} to finish", interval=0.5)


def detach(backend, workdir, data, *extra) -> str:
    """Queue a run of ``data`` for workers; its run id."""
    queued = run_ingest("load", data, "--detach", "--json", *extra, env=backend.env(), cwd=workdir)
    assert queued.returncode == 0, queued.stderr
    return json.loads(queued.stdout)["run_id"]


@pytest.mark.slow
def test_two_workers_share_a_detached_run_and_survive_a_kill(postgres_backend, workdir, parking):
    data = write_records(workdir / "u.ndjson", people(1200), "ndjson")
    run_id = detach(postgres_backend, workdir, data, "--chunk-size", "40", "--fail-task", "3")

    workers = {name: start_worker(postgres_backend, workdir, name, env=parking.env())
               for name in ("w1", "w2")}
    held = [parking.wait_parked(executor=name, process=workers[name])[0] for name in workers]
    for marker in held:  # one chunk of each worker goes on and commits...
        parking.release(marker["index"])
    wait_until(lambda: postgres_backend.rows_so_far() >= 40 * len(held), 120,
               "the released chunks' rows", interval=0.05, process=workers["w1"])
    released = {m["index"] for m in held}
    wait_until(lambda: [m for m in parking.parked() if m["executor"] == "w1"
                        and m["index"] not in released], 120, "w1 to hold another chunk",
               interval=0.02, process=workers["w1"])
    assert kill_9(workers["w1"]) == -9  # ...then w1 dies mid-run, holding a chunk...
    parking.release()
    workers["w1"] = start_worker(postgres_backend, workdir, "w1")  # ...and comes back
    detail = wait_done(postgres_backend, workdir, run_id)
    for process in workers.values():
        process.send_signal(signal.SIGTERM)
    outputs = {name: p.communicate(timeout=60) for name, p in workers.items()}

    assert all(p.returncode == 0 for p in workers.values()), outputs
    assert "stopped" in outputs["w2"][1]
    assert {c["executor"] for c in detail["chunks"]} == {"w1", "w2"}  # both did work
    assert postgres_backend.counts() == (1199, 1)
    assert postgres_backend.scalar("SELECT count(DISTINCT source_key) FROM tasks") == 1199
    assert (detail["tasks"], detail["errors"]) == (1199, 1)


@pytest.mark.slow
def test_a_dead_workers_run_is_finished_by_another_worker_taking_it_over(postgres_backend, workdir,
                                                                             parking):
    """`ingest worker --take-over DEAD_ID`: w1 dies holding the run and some of its chunks, and
    never comes back; w2 takes them over and the run finishes, every record exactly once."""
    records = 600
    data = write_records(workdir / "u.ndjson", people(records), "ndjson")
    run_id = detach(postgres_backend, workdir, data, "--chunk-size", "50", "--fail-task", "3")
    w1 = start_worker(postgres_backend, workdir, "w1", env=parking.env(chunks="4-"))
    parking.wait_parked(index=4, process=w1)
    wait_until(lambda: postgres_backend.rows_so_far() >= 200, 120, "w1 to commit chunks 0-3",
               interval=0.05, process=w1)
    assert kill_9(w1) == -9  # w1 dies mid-run, its workflows PENDING under its id
    assert postgres_backend.rows_so_far() == 200

    w2 = start_worker(postgres_backend, workdir, "w2", "--take-over", "w1")
    detail = wait_done(postgres_backend, workdir, run_id)
    w2.send_signal(signal.SIGTERM)
    _, stderr = w2.communicate(timeout=60)

    assert w2.returncode == 0, stderr
    [took_over] = [line for line in stderr.splitlines() if line.startswith("took over ")]
    assert took_over.endswith(" unfinished workflow(s) of w1")
    assert int(took_over.split()[2]) >= 1, took_over
    assert "w2" in {c["executor"] for c in detail["chunks"]}
    postgres_backend.assert_each_record_once(records, errors=1)
    assert (detail["tasks"], detail["errors"]) == (records - 1, 1)


@pytest.mark.slow
def test_a_worker_says_a_line_when_it_starts_and_finishes_a_run(sqlite_backend, workdir):
    data = write_records(workdir / "u.ndjson", people(30), "ndjson")
    run_id = detach(sqlite_backend, workdir, data, "--fail-task", "3")
    worker = start_worker(sqlite_backend, workdir, "w1")
    wait_done(sqlite_backend, workdir, run_id)
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=60)

    assert worker.returncode == 0, stderr
    lines = stderr.splitlines()
    assert f"run {run_id} started: {data} (30 records)" in lines
    [finished] = [line for line in lines if line.startswith(f"run {run_id} finished: ")]
    assert re.fullmatch(r"run \S+ finished: records 30 \| tasks 29 \| errors 1 in \d+\.\d s",
                        finished), finished
    assert "Error" not in stderr
