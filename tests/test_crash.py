"""Nothing lost, nothing duplicated: real processes killed with SIGKILL, then restarted."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import (REPO, kill_9, people, run_ingest, skip_unless_ci, start_ingest, wait_until,
                      write_records)

pytestmark = pytest.mark.slow  # every test here starts, kills and restarts real processes

RECORDS = 600
CHUNK = 50
SLOW = {"INGEST_FAULT_CHUNK_DELAY_SEC": "0.25"}  # hidden hook: room to kill mid-chunk


def start_load(backend, data, cwd, *extra, env=None):
    return start_ingest("load", data, "--chunk-size", CHUNK, "--fail-task", "7", "--json", *extra,
                        env={**backend.env(), **SLOW, **(env or {})}, cwd=cwd)


def rows_at_least(backend, rows: int):
    """A predicate for wait_until: the rows seen once there are at least ``rows``."""
    return lambda: (seen := backend.rows_so_far()) >= rows and seen


def kill_when(process, backend, rows: int, timeout: float = 60) -> int:
    seen = wait_until(rows_at_least(backend, rows), timeout, f"{rows} rows before the kill point",
                      interval=0.02, process=process)
    kill_9(process)
    return seen


def run_recorded(backend, cwd) -> bool:
    """Whether the run's own workflow (not a chunk's) is in DBOS's system database."""
    return any("-chunk-" not in w for w in backend.workflow_ids(cwd) if w.startswith("ingest-"))


def assert_exactly_once(backend, records=RECORDS, errors=1):
    backend.assert_each_record_once(records, errors)


@pytest.mark.parametrize("kill_at_rows", [0, 120, 420])
def test_kill_9_then_same_command_resumes_exactly_once(backend, workdir, kill_at_rows):
    data = write_records(workdir / "u.ndjson", people(RECORDS), "ndjson")
    process = start_load(backend, data, workdir)
    if kill_at_rows == 0:  # the run has started (DBOS recorded it), likely before any commit
        wait_until(lambda: run_recorded(backend, workdir), 60, "the run's workflow row",
                   interval=0.02, process=process)
        kill_9(process)
        before = backend.rows_so_far()
    else:
        before = kill_when(process, backend, kill_at_rows)
    ids_before = {r[0] for r in backend.query("SELECT id FROM tasks")} if before else set()

    again = run_ingest("load", data, "--chunk-size", CHUNK, "--fail-task", "7", "--json",
                       env=backend.env(), cwd=workdir)

    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["already_loaded"] is False
    assert (summary["tasks"], summary["errors"]) == (RECORDS - 1, 1)
    assert_exactly_once(backend)
    assert ids_before <= {r[0] for r in backend.query("SELECT id FROM tasks")}  # kept, not redone


def test_ingest_resume_finishes_a_killed_run_without_the_command(sqlite_backend, workdir):
    data = write_records(workdir / "u.ndjson", people(RECORDS), "ndjson")
    process = start_load(sqlite_backend, data, workdir)
    kill_when(process, sqlite_backend, 100)

    resumed = run_ingest("resume", "--json", env=sqlite_backend.env(), cwd=workdir)

    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.splitlines()[-1])["records"] == RECORDS
    assert_exactly_once(sqlite_backend)


def test_a_code_upgrade_between_crash_and_restart_does_not_strand_the_run(sqlite_backend, workdir):
    data = write_records(workdir / "u.ndjson", people(RECORDS), "ndjson")
    process = start_load(sqlite_backend, data, workdir)
    kill_when(process, sqlite_backend, 100)
    upgraded = copy_of_the_code(workdir / "upgrade")
    integration = upgraded / "durable_ingest" / "integration.py"
    integration.write_text(integration.read_text() + "\n\ndef new_feature():\n    return 'v2'\n")

    again = run_ingest("load", data, "--chunk-size", CHUNK, "--fail-task", "7", "--json",
                       env={**sqlite_backend.env(), "PYTHONPATH": str(upgraded)}, cwd=workdir)

    assert again.returncode == 0, again.stderr
    assert_exactly_once(sqlite_backend)


def copy_of_the_code(target: Path) -> Path:
    package = target / "durable_ingest"
    shutil.copytree(REPO, package, ignore=shutil.ignore_patterns(
        ".git", ".venv", "tests", "benchmarks", "data", "*.sqlite", "__pycache__", "*.egg-info"))
    return target


def test_poison_chunk_is_given_up_then_resumed(backend, workdir):
    data = write_records(workdir / "u.ndjson", people(RECORDS), "ndjson")
    poison = {**backend.env(), "INGEST_FAULT_CRASH_CHUNKS": "2"}  # records 100-149
    outcomes = []
    for _ in range(8):
        result = run_ingest("load", data, "--chunk-size", CHUNK, "--fail-task", "7",
                            env=poison, cwd=workdir)
        outcomes.append(result.returncode)
        if result.returncode != 86:  # 86: the hook killed the process
            break

    assert outcomes[-1] == 1, outcomes
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    assert "incomplete: chunk 2 (records 100-149) was given up" in message
    assert "ingest resume ingest-" in message
    assert backend.counts() == (RECORDS - CHUNK - 1, 1)  # the rest is loaded

    run_id = message.split("ingest resume ")[1].strip()
    resumed = run_ingest("resume", run_id, "--json", env=backend.env(), cwd=workdir)

    assert resumed.returncode == 0, resumed.stderr
    assert_exactly_once(backend)


def test_two_loads_of_the_same_file_at_once_give_one_result(backend, workdir):
    data = write_records(workdir / "u.ndjson", people(RECORDS), "ndjson")
    first = start_load(backend, data, workdir, env={"INGEST_FAULT_CHUNK_DELAY_SEC": "0.05"})
    second = start_load(backend, data, workdir, env={"INGEST_FAULT_CHUNK_DELAY_SEC": "0.05"})
    outputs = [p.communicate(timeout=300) for p in (first, second)]

    assert [first.returncode, second.returncode] == [0, 0], outputs
    summaries = [json.loads(out) for out, _ in outputs]
    assert summaries[0]["run_id"] == summaries[1]["run_id"]
    assert {(s["tasks"], s["errors"]) for s in summaries} == {(RECORDS - 1, 1)}
    assert_exactly_once(backend)


def pg_ctl(action: str) -> None:
    version = max(os.listdir("/etc/postgresql"), key=lambda v: [int(p) for p in v.split(".") if p.isdigit()])
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action],
                   check=True, capture_output=True, timeout=120)


@pytest.mark.restarts_postgres  # alone on the server: no other test's connections drop
def test_postgres_restart_mid_load_completes_exactly_once(postgres_backend, workdir):
    if not shutil.which("pg_ctlcluster") or os.geteuid() != 0:
        skip_unless_ci("needs pg_ctlcluster as root")  # under CI: a failure, not a skip
    data = write_records(workdir / "u.ndjson", people(RECORDS), "ndjson")
    process = start_load(postgres_backend, data, workdir)
    wait_until(rows_at_least(postgres_backend, 150), 60, "150 rows before the restart",
               interval=0.02, process=process)
    pg_ctl("restart")
    out, err = process.communicate(timeout=300)

    if process.returncode != 0:  # allowed: a clear one-line failure, then a rerun completes
        assert process.returncode == 1 and len(err.strip().splitlines()) == 1, err
        again = run_ingest("load", data, "--chunk-size", CHUNK, "--fail-task", "7",
                           env=postgres_backend.env(), cwd=workdir)
        assert again.returncode == 0, again.stderr
    assert_exactly_once(postgres_backend)


def test_failed_chunks_are_reported_then_resumed_by_a_fork(sqlite_backend, workdir):
    data = write_records(workdir / "u.ndjson", people(RECORDS), "ndjson")
    scanned = data.stat()
    process = start_load(sqlite_backend, data, workdir, "--concurrency", "1")
    kill_at = kill_point_reached(process, sqlite_backend, CHUNK)
    os.utime(data, ns=(scanned.st_atime_ns, scanned.st_mtime_ns + 10**9))  # "edited"
    out, err = process.communicate(timeout=300)

    assert kill_at >= CHUNK and process.returncode == 1, err
    message = err.strip()
    assert len(message.splitlines()) == 1
    assert "failed (InputChanged: " in message and "changed since it was scanned" in message
    assert "ingest resume ingest-" in message
    loaded = sum(sqlite_backend.counts())
    assert CHUNK <= loaded < RECORDS

    os.utime(data, ns=(scanned.st_atime_ns, scanned.st_mtime_ns))  # the cause is fixed
    run_id = message.split("ingest resume ")[1].strip()
    resumed = run_ingest("resume", run_id, "--json", env=sqlite_backend.env(), cwd=workdir)

    assert resumed.returncode == 0, resumed.stderr
    assert_exactly_once(sqlite_backend)


def kill_point_reached(process, backend, rows: int, timeout: float = 60) -> int:
    return wait_until(rows_at_least(backend, rows), timeout, f"the load to get to {rows} rows",
                      interval=0.02, process=process)


def always_failing(records: int, rate: float, attempts: int, seed: int) -> int:
    """How many of ``records`` fail every one of ``attempts`` (the draws are deterministic)."""
    from durable_ingest.transform import Faults

    faults = Faults(flaky_rate=rate, seed=seed)

    def fails(position: int, attempt: int) -> bool:
        try:
            faults.check(position, attempt)
        except Exception:
            return True
        return False

    return sum(all(fails(p, a) for a in range(1, attempts + 1)) for p in range(records))


@pytest.mark.parametrize("rate", [0.6, 1.0])
def test_kill_9_during_retry_rounds_then_same_command_each_record_once(backend, workdir, rate):
    """Failed records travel to the retry rounds by reference and are read again from the
    input: killed while the rounds run (retry workflows recorded, their sleeps and rounds
    under way), the same command finishes them, every record once in tasks or errors."""
    records, attempts = 300, 5
    data = write_records(workdir / "u.ndjson", people(records), "ndjson")
    command = ("load", data, "--chunk-size", CHUNK, "--flaky-rate", rate, "--seed", "3",
               "--max-attempts", attempts, "--retry-interval", "0.4", "--backoff", "1", "--json")
    process = start_ingest(*command, env=backend.env(), cwd=workdir)
    wait_until(lambda: any("-retry-" in w for w in backend.workflow_ids(workdir)), 60,
               "a retry workflow", interval=0.02, process=process)
    kill_9(process)
    interrupted = json.loads(run_ingest("status", "--json", env=backend.env(), cwd=workdir).stdout)
    assert interrupted[0]["state"] != "done", interrupted[0]

    again = run_ingest(*command, env=backend.env(), cwd=workdir)

    failing = always_failing(records, rate, attempts, seed=3)
    assert again.returncode == (4 if failing == records else 0), again.stderr
    summary = json.loads(again.stdout)
    assert (summary["tasks"], summary["errors"]) == (records - failing, failing)
    backend.assert_each_record_once(records, errors=failing)
    texts = [json.loads(text) for (text,) in backend.query("SELECT source FROM errors")]
    assert all(text["name"]["first"].startswith("first") for text in texts)  # each with its text
    assert all(m["record"] is None for m in backend.error_messages())  # ...kept once
