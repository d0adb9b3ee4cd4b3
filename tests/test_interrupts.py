"""Stopping a load: Ctrl-C says how to finish, `status` tells an interrupted run from a
running one, a finished-after-interruption run reports its whole duration, and the commands
that only look or finish create nothing where nothing ever ran."""

import json
import signal
import time

import pytest

from conftest import kill_9, people, run_ingest, start_ingest, wait_until, write_records


def state_of(backend, workdir, run_id: str) -> str:
    result = run_ingest("status", run_id, "--json", env=backend.env(), cwd=workdir)
    return json.loads(result.stdout)["state"]


def run_id_of(backend, workdir) -> str:
    result = run_ingest("status", "--json", env=backend.env(), cwd=workdir)
    return json.loads(result.stdout)[0]["run_id"]


@pytest.mark.slow
def test_ctrl_c_names_the_run_and_how_to_finish_it(sqlite_backend, workdir, parking):
    data = write_records(workdir / "p.ndjson", people(200), "ndjson")
    process = start_ingest("load", data, "--chunk-size", "20", cwd=workdir,
                           env={**sqlite_backend.env(), **parking.env(chunks="1-")},
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    parking.wait_parked(index=1, process=process)
    wait_until(lambda: sqlite_backend.rows_so_far() >= 20, 60, "the first chunk", process=process)
    process.send_signal(signal.SIGINT)  # mid-run: chunk 0 in, the rest held
    _, stderr = process.communicate(timeout=60)
    run_id = run_id_of(sqlite_backend, workdir)

    assert process.returncode == 130
    assert stderr.strip() == (f"Error: interrupted: run {run_id} stops where it is (what is committed "
                              f"stays); finish it with the same command, or ingest resume {run_id}")
    assert state_of(sqlite_backend, workdir, run_id) == "interrupted"
    finished = run_ingest("resume", run_id, "--json", env=sqlite_backend.env(), cwd=workdir)
    assert finished.returncode == 0, finished.stderr
    sqlite_backend.assert_each_record_once(200, 0)


@pytest.mark.slow
def test_status_tells_running_from_interrupted_and_the_rate_covers_the_whole_run(backend, workdir,
                                                                               parking):
    data = write_records(workdir / "p.ndjson", people(600), "ndjson")
    process = start_ingest("load", data, "--chunk-size", "20", "--concurrency", "1", cwd=workdir,
                           env={**backend.env(), **parking.env(chunks="2-")})
    parking.wait_parked(index=2, process=process)
    wait_until(lambda: backend.rows_so_far() >= 40, 60, "two chunks", process=process)
    run_id = run_id_of(backend, workdir)
    assert state_of(backend, workdir, run_id) == "running"
    assert kill_9(process) == -9  # chunk 2 held: the run was still running
    killed_at = time.time()
    assert state_of(backend, workdir, run_id) == "interrupted"
    listed = json.loads(run_ingest("status", "--json", env=backend.env(), cwd=workdir).stdout)
    assert [r["state"] for r in listed] == ["interrupted"]
    before_kill = killed_at - listed[0]["started_at"]  # from the run's start, not the process's

    again = run_ingest("load", data, "--json", env=backend.env(), cwd=workdir)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    # The run's whole duration: from its first start (before the kill) to its end.
    assert summary["elapsed_s"] >= before_kill - 1.5
    assert summary["records_per_s"] == pytest.approx(600 / summary["elapsed_s"], rel=0.01)
    assert state_of(backend, workdir, run_id) == "done"


@pytest.mark.slow  # seven real processes
def test_looking_and_finishing_create_nothing_where_nothing_ran(workdir):
    for command in (["status"], ["errors"], ["resume"], ["status", "ingest-0123456789abcdef0123"],
                    ["resume", "ingest-0123456789abcdef0123"], ["retry", "ingest-0123456789abcdef0123"]):
        result = run_ingest(*command, cwd=workdir)
        assert result.returncode in (0, 3), result.stderr
        assert "Traceback" not in result.stderr
        assert sorted(p.name for p in workdir.iterdir()) == [], command
    assert run_ingest("resume", cwd=workdir).stdout.strip() == "no unfinished runs"
