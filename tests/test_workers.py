"""``ingest load --workers N`` and ``ingest worker --processes N``: helper processes that load
chunks beside the command, restarted when they die, gone when the command is."""

import json
import os
import signal
from pathlib import Path

import pytest

from conftest import kill_9, output_of, people, run_ingest, start_ingest, wait_until, write_records

pytestmark = pytest.mark.slow  # real processes, started and killed

HELPER = "local-helper-1"  # the executor id of a command's first helper


def held_by(parking, process, *executors) -> list:
    """Wait until each of ``executors`` holds a parked chunk; one marker of each."""
    return [parking.wait_parked(executor=name, process=process)[0] for name in executors]


def children_of(pid: int) -> set:
    """Live child processes of ``pid`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = process_stat(int(entry.name))
            if stat and stat[1] == pid and stat[0] != "Z":
                found.add(int(entry.name))
    return found


def process_stat(pid: int):
    """(state, parent pid) of a process, None if there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    stat = process_stat(pid)
    return stat is not None and stat[0] != "Z"


def executors_of(backend, workdir, run_id: str) -> set:
    status = run_ingest("status", run_id, "--json", env=backend.env(), cwd=workdir)
    return {c["executor"] for c in json.loads(status.stdout)["chunks"]}


def test_two_workers_load_exactly_once_and_leave_no_process(backend, workdir, parking):
    data = write_records(workdir / "p.ndjson", people(600), "ndjson")
    process = start_ingest("load", data, "--workers", "2", "--chunk-size", "20", "--json",
                           cwd=workdir, env={**backend.env(), **parking.env()})
    helpers = wait_until(lambda: children_of(process.pid), 30, "a helper process")
    held_by(parking, process, "local", HELPER)  # both hold a chunk: both load
    parking.release()
    out, err = process.communicate(timeout=120)

    assert process.returncode == 0, err
    summary = json.loads(out)
    assert (summary["tasks"], summary["workers"]) == (600, 2)
    backend.assert_each_record_once(600, 0)
    assert executors_of(backend, workdir, summary["run_id"]) == {"local", "local-helper-1"}
    assert not any(alive(pid) for pid in helpers)


def test_a_helper_killed_mid_run_is_restarted_and_its_chunks_recovered(backend, workdir, parking):
    data = write_records(workdir / "p.ndjson", people(600), "ndjson")
    process = start_ingest("load", data, "--workers", "2", "--chunk-size", "20",
                           cwd=workdir, env={**backend.env(), **parking.env(chunks="2-")})
    wait_until(lambda: backend.rows_so_far() >= 40, 60, "the first rows", process=process)
    [held] = held_by(parking, process, HELPER)  # the helper holds a chunk, uncommitted
    helper = held["pid"]
    assert helper in children_of(process.pid)
    os.kill(helper, signal.SIGKILL)
    parking.release()
    out, err = process.communicate(timeout=120)

    assert process.returncode == 0, err
    assert f"pid {helper}) exited with -9; restarting it" in err
    backend.assert_each_record_once(600, 0)
    assert not children_of(process.pid)


def test_the_parent_killed_mid_run_takes_its_helpers_with_it_then_the_same_command(backend, workdir,
                                                                                  parking):
    data = write_records(workdir / "p.ndjson", people(600), "ndjson")
    command = ("load", data, "--workers", "2", "--chunk-size", "20")
    process = start_ingest(*command, cwd=workdir, env={**backend.env(), **parking.env(chunks="2-")})
    helpers = wait_until(lambda: children_of(process.pid), 30, "a helper process")
    wait_until(lambda: backend.rows_so_far() >= 40, 60, "the first rows", process=process)
    held_by(parking, process, "local", HELPER)
    assert kill_9(process) == -9  # mid-run: both hold a chunk
    parking.release()  # a helper draining its chunk need not wait for the park timeout
    wait_until(lambda: not any(alive(pid) for pid in helpers), 45, "the helpers to exit")

    again = run_ingest(*command, env=backend.env(), cwd=workdir, timeout=180)
    assert again.returncode == 0, again.stderr
    backend.assert_each_record_once(600, 0)


def test_resume_finishes_what_a_killed_commands_helpers_had_taken(postgres_backend, workdir,
                                                                  parking):
    data = write_records(workdir / "p.ndjson", people(240), "ndjson")
    process = start_ingest("load", data, "--workers", "3", "--chunk-size", "20", cwd=workdir,
                           env={**postgres_backend.env(), **parking.env(chunks="3-")})
    helpers = wait_until(lambda: len(children_of(process.pid)) == 2 and children_of(process.pid),
                         30, "two helper processes")
    wait_until(lambda: postgres_backend.rows_so_far() >= 60, 60, "rows from the helpers",
               process=process)
    held_by(parking, process, "local-helper-1", "local-helper-2")  # the helpers hold chunks
    assert kill_9(process) == -9
    parking.release()
    wait_until(lambda: not any(alive(pid) for pid in helpers), 45, "the helpers to exit")
    run_id = json.loads(run_ingest("status", "--json", env=postgres_backend.env(), cwd=workdir).stdout)[0]["run_id"]

    resumed = run_ingest("resume", run_id, env=postgres_backend.env(), cwd=workdir, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    postgres_backend.assert_each_record_once(240, 0)


def test_ctrl_c_drains_the_helpers_then_the_same_command_finishes(sqlite_backend, workdir, parking):
    data = write_records(workdir / "p.ndjson", people(240), "ndjson")
    command = ("load", data, "--workers", "2", "--chunk-size", "20")
    process = start_ingest(*command, cwd=workdir,
                           env={**sqlite_backend.env(), **parking.env(chunks="2-")},
                           start_new_session=True)
    helpers = wait_until(lambda: children_of(process.pid), 30, "a helper process")
    wait_until(lambda: sqlite_backend.rows_so_far() >= 40, 60, "the first rows", process=process)
    held_by(parking, process, "local", HELPER)  # mid-run: both hold a chunk
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    parking.release()  # the held chunks drain at once
    process.communicate(timeout=90)

    assert process.returncode != 0
    assert not any(alive(pid) for pid in helpers)
    again = run_ingest(*command, env=sqlite_backend.env(), cwd=workdir, timeout=180)
    assert again.returncode == 0, again.stderr
    sqlite_backend.assert_each_record_once(240, 0)


def test_a_worker_with_two_processes(postgres_backend, workdir, parking):
    data = write_records(workdir / "p.ndjson", people(200), "ndjson")
    worker = start_ingest("worker", "--worker-id", "w", "--processes", "2", cwd=workdir,
                          env={**postgres_backend.env(), **parking.env()})
    helpers = wait_until(lambda: children_of(worker.pid), 30, "the worker's helper")
    queued = run_ingest("load", data, "--chunk-size", "20", "--detach", "--json",
                        env=postgres_backend.env(), cwd=workdir)
    run_id = json.loads(queued.stdout)["run_id"]
    held_by(parking, worker, "w", "w-helper-1")  # both processes hold a chunk
    parking.release()
    wait_until(lambda: postgres_backend.rows_so_far() == 200, 90, "all rows", process=worker)
    worker.send_signal(signal.SIGTERM)
    out, err = output_of(worker, timeout=60)

    assert worker.returncode == 0, err
    postgres_backend.assert_each_record_once(200, 0)
    assert executors_of(postgres_backend, workdir, run_id) == {"w", "w-helper-1"}
    assert not any(alive(pid) for pid in helpers)


def test_workers_must_be_a_number_or_auto(sqlite_backend, workdir):
    result = run_ingest("load", write_records(workdir / "p.json", people(1)), "--workers", "lots",
                        env=sqlite_backend.env(), cwd=workdir)
    assert result.returncode == 2
    assert "--workers 'lots': expected a number from 1 to 256, or auto" in result.stderr



@pytest.mark.parametrize("url, share", [
    ("postgresql://u@127.0.0.1:5432/db", 0.5), ("postgresql://u@localhost/db", 0.5),
    ("postgresql://u@/db?host=/var/run/postgresql", 0.5), ("postgresql://u@db.example.com/db", 1),
    ("sqlite:///local.sqlite", 1)])
def test_auto_is_a_process_per_cpu_or_per_two_beside_a_local_postgres(url, share):
    from durable_ingest.commands.helper_processes import AUTO, processes_for, usable_cpus

    assert processes_for(AUTO, url) == max(1, int(usable_cpus() * share))
    assert processes_for(3, url) == 3
