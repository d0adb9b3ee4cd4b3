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


def start_load(backend, data, cwd, *extra, env=None):
    return start_ingest("load", data, "--chunk-size", CHUNK, "--fail-task", "7", "--json", *extra,
                        env={**backend.env(), **(env or {})}, cwd=cwd)


def start_parked_load(backend, data, cwd, parking, chunk: int, *extra):
    """A load whose chunks from ``chunk`` on park at their start (see ``held_at``)."""
    return start_load(backend, data, cwd, *extra, env=parking.env(chunks=f"{chunk}-"))


def held_at(process, backend, parking, chunk: int, timeout: float = 60) -> int:
    """Wait until the load of ``start_parked_load`` holds ``chunk``, every chunk before it
    committed; the rows: ``chunk * CHUNK``."""
    parking.wait_parked(index=chunk, process=process, timeout=timeout)
    rows = chunk * CHUNK
    if rows:
        wait_until(rows_at_least(backend, rows), timeout, f"chunks 0-{chunk - 1} committed",
                   interval=0.02, process=process)
    assert backend.rows_so_far() == rows
    return rows


def rows_at_least(backend, rows: int):
    """A predicate for wait_until: the rows seen once there are at least ``rows``."""
    return lambda: (seen := backend.rows_so_far()) >= rows and seen


def kill_when(process, backend, parking, chunk: int) -> int:
    """Kill -9 the load of ``start_parked_load`` while it holds ``chunk``; the rows it left."""
    rows = held_at(process, backend, parking, chunk)
    assert kill_9(process) == -9
    return rows


def run_recorded(backend, cwd) -> bool:
    """Whether the run's own workflow (not a chunk's) is in DBOS's system database."""
    return any("-chunk-" not in w for w in backend.workflow_ids(cwd) if w.startswith("ingest-"))


def assert_exactly_once(backend, records=RECORDS, errors=1):
    backend.assert_each_record_once(records, errors)


@pytest.mark.parametrize("kill_at_chunk", [0, 2, 8])
def test_kill_9_then_same_command_resumes_exactly_once(backend, workdir, parking, kill_at_chunk):
    data = write_records(workdir / "u.ndjson", people(RECORDS), "ndjson")
    process = start_parked_load(backend, data, workdir, parking, kill_at_chunk)
    before = kill_when(process, backend, parking, kill_at_chunk)  # chunks from it on held
    runs = {w for w in backend.workflow_ids(workdir) if w.startswith("ingest-") and w.count("-") == 1}
    ids_before = {r[0] for r in backend.query("SELECT id FROM tasks")} if before else set()

    again = run_ingest("load", data, "--chunk-size", CHUNK, "--fail-task", "7", "--json",
                       env=backend.env(), cwd=workdir)

    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["already_loaded"] is False
    assert runs == {summary["run_id"]}  # the killed run resumed, not a new one
    assert (summary["tasks"], summary["errors"]) == (RECORDS - 1, 1)
    assert_exactly_once(backend)
    assert ids_before <= {r[0] for r in backend.query("SELECT id FROM tasks")}  # kept, not redone


def test_ingest_resume_finishes_a_killed_run_without_the_command(sqlite_backend, workdir, parking):
    data = write_records(workdir / "u.ndjson", people(RECORDS), "ndjson")
    process = start_parked_load(sqlite_backend, data, workdir, parking, 2)
    kill_when(process, sqlite_backend, parking, 2)

    resumed = run_ingest("resume", "--json", env=sqlite_backend.env(), cwd=workdir)

    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.splitlines()[-1])["records"] == RECORDS
    assert_exactly_once(sqlite_backend)


def test_a_code_upgrade_between_crash_and_restart_does_not_strand_the_run(sqlite_backend, workdir,
                                                                          parking):
    data = write_records(workdir / "u.ndjson", people(RECORDS), "ndjson")
    process = start_parked_load(sqlite_backend, data, workdir, parking, 2)
    kill_when(process, sqlite_backend, parking, 2)
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
def test_postgres_restart_mid_load_completes_exactly_once(postgres_backend, workdir, parking):
    if not shutil.which("pg_ctlcluster") or os.geteuid() != 0:
        skip_unless_ci("needs pg_ctlcluster as root")  # under CI: a failure, not a skip
    data = write_records(workdir / "u.ndjson", people(RECORDS), "ndjson")
    process = start_parked_load(postgres_backend, data, workdir, parking, 3)
    held_at(process, postgres_backend, parking, 3)  # 150 rows, the rest to come
    pg_ctl("restart")
    parking.release()
    out, err = process.communicate(timeout=300)

    if process.returncode != 0:  # allowed: a clear one-line failure, then a rerun completes
        assert process.returncode == 1 and len(err.strip().splitlines()) == 1, err
        again = run_ingest("load", data, "--chunk-size", CHUNK, "--fail-task", "7",
                           env=postgres_backend.env(), cwd=workdir)
        assert again.returncode == 0, again.stderr
    assert_exactly_once(postgres_backend)


def test_failed_chunks_are_reported_then_resumed_by_a_fork(sqlite_backend, workdir, parking):
    data = write_records(workdir / "u.ndjson", people(RECORDS), "ndjson")
    scanned, original = data.stat(), data.read_bytes()
    process = start_parked_load(sqlite_backend, data, workdir, parking, 1, "--concurrency", "1")
    kill_at = held_at(process, sqlite_backend, parking, 1)  # chunk 0 in, 1 not read yet
    data.write_bytes(original.replace(b'"first', b'"First', 1))  # edited: same size, other bytes
    parking.release()
    out, err = process.communicate(timeout=300)

    assert kill_at >= CHUNK and process.returncode == 1, err
    message = err.strip()
    assert len(message.splitlines()) == 1
    assert "failed (InputChanged: " in message and "changed since it was scanned" in message
    assert "ingest resume ingest-" in message
    loaded = sum(sqlite_backend.counts())
    assert CHUNK <= loaded < RECORDS

    data.write_bytes(original)  # the cause is fixed
    os.utime(data, ns=(scanned.st_atime_ns, scanned.st_mtime_ns))
    run_id = message.split("ingest resume ")[1].strip()
    resumed = run_ingest("resume", run_id, "--json", env=sqlite_backend.env(), cwd=workdir)

    assert resumed.returncode == 0, resumed.stderr
    assert_exactly_once(sqlite_backend)



def test_a_chunk_parked_at_commit_has_written_its_rows_but_not_committed_them(backend, workdir,
                                                                              parking):
    data = write_records(workdir / "u.ndjson", people(RECORDS), "ndjson")
    process = start_load(backend, data, workdir, "--concurrency", "1",
                         env=parking.env(chunks=1, at="commit"))
    [marker] = parking.wait_parked(index=1, process=process)
    tasks_while_held = backend.counts()[0]
    parking.release()
    out, err = process.communicate(timeout=120)

    assert (marker["stage"], marker["executor"], marker["pid"]) == ("commit", "local", process.pid)
    assert tasks_while_held == CHUNK - 1  # chunk 0's but record 7 (retrying); 1's not committed
    assert process.returncode == 0, err
    assert_exactly_once(backend)


def test_a_park_never_released_ends_the_process_after_its_timeout(sqlite_backend, workdir, parking):
    data = write_records(workdir / "u.ndjson", people(RECORDS), "ndjson")
    process = start_load(sqlite_backend, data, workdir,
                         env={**parking.env(chunks=0), "INGEST_FAULT_PARK_TIMEOUT_SEC": "1"})
    process.communicate(timeout=120)

    assert process.returncode == 87  # loudly, rather than hanging
    assert [m["index"] for m in parking.parked()] == [0]


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
               "--max-attempts", attempts, "--retry-interval", "1", "--backoff", "1", "--json")
    process = start_ingest(*command, env=backend.env(), cwd=workdir)
    # Its rounds sleep 4 x 1 s: a retry workflow recorded leaves seconds before the end.
    wait_until(lambda: any("-retry-" in w for w in backend.workflow_ids(workdir)), 60,
               "a retry workflow", interval=0.02, process=process)
    assert kill_9(process) == -9
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
