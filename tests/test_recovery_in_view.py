"""Recovery in plain sight (issue 35): a command that finishes another run this machine left
unfinished says so first and reports it; a command with nothing to do leaves such a run
exactly as it was and returns at once; an interrupted run's duration stops with it; the
"already loaded" lines name the file given and the run's counts as they are today."""

import json
import time

import pytest

from conftest import kill_9, people, run_ingest, start_ingest, write_records


def interrupt_a_load(backend, workdir, parking, records: int = 400) -> tuple:
    """A load of ``records`` killed -9 with chunks 1-4 in and the rest held: (its file,
    its run id)."""
    data = write_records(workdir / "big.ndjson", people(records), "ndjson")
    process = start_ingest("load", data, "--chunk-size", "40", "--concurrency", "1",
                           cwd=workdir, env={**backend.env(), **parking.env(chunks="5-")})
    parking.wait_parked(index=5, process=process)
    assert kill_9(process) == -9  # chunk 5 held: the run was still running
    return data, run_of(backend, workdir, "big.ndjson")


def run_of(backend, workdir, name: str) -> dict:
    listed = json.loads(run_ingest("status", "--json", env=backend.env(), cwd=workdir).stdout)
    return next(r for r in listed if r["dataset"].endswith(name))


def chunk_dispatches(backend, workdir, run_id: str) -> list:
    detail = run_ingest("status", run_id, "--json", "--chunks", env=backend.env(), cwd=workdir)
    return [(c["chunk"], c["state"], c["recovery_attempts"]) for c in json.loads(detail.stdout)["chunks"]]


@pytest.mark.slow
def test_a_command_with_nothing_to_do_leaves_an_interrupted_run_as_it_was(sqlite_backend,
                                                                          workdir, parking):
    tiny = write_records(workdir / "tiny.json", people(5), "array")
    assert run_ingest("load", tiny, env=sqlite_backend.env(), cwd=workdir).returncode == 0
    _, big = interrupt_a_load(sqlite_backend, workdir, parking)
    before = chunk_dispatches(sqlite_backend, workdir, big["run_id"])

    began = time.monotonic()
    again = run_ingest("load", tiny, env=sqlite_backend.env(), cwd=workdir)
    took = time.monotonic() - began

    assert again.returncode == 0, again.stderr
    assert "already loaded by run" in again.stdout
    assert (f"run {big['run_id']} was interrupted ({big['tasks']:,} of 400 records loaded): "
            f"`ingest resume {big['run_id']}` finishes it") in again.stderr
    after = run_of(sqlite_backend, workdir, "big.ndjson")
    assert (after["state"], after["tasks"]) == ("interrupted", big["tasks"])
    assert chunk_dispatches(sqlite_backend, workdir, big["run_id"]) == before
    assert took < 25, f"nothing to do took {took:.1f} s"  # it used to drain for 30 s
    assert run_ingest("resume", big["run_id"], env=sqlite_backend.env(),
                      cwd=workdir).returncode == 0
    sqlite_backend.assert_each_record_once(405, 0)


@pytest.mark.slow
def test_a_command_with_work_says_it_finishes_an_interrupted_run_first(backend, workdir, parking):
    _, big = interrupt_a_load(backend, workdir, parking)
    tiny = write_records(workdir / "tiny.json", people(5, start=1000), "array")

    result = run_ingest("load", tiny, env=backend.env(), cwd=workdir)

    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == (f"finishing interrupted run {big['run_id']} ({big['tasks']:,} of 400 "
                        f"records) first")
    assert lines[1] == f"finished {big['run_id']}: records 400 | tasks 400 | errors 0"
    assert "records 5 | tasks 5 | errors 0" in result.stdout
    assert run_of(backend, workdir, "big.ndjson")["state"] == "done"
    backend.assert_each_record_once(405, 0)


@pytest.mark.slow
def test_an_interrupted_runs_duration_stops_when_it_stopped(sqlite_backend, workdir, parking):
    _, big = interrupt_a_load(sqlite_backend, workdir, parking)
    time.sleep(1.5)
    later = run_of(sqlite_backend, workdir, "big.ndjson")
    assert later["state"] == "interrupted"
    assert later["duration_s"] == big["duration_s"]


def test_already_loaded_names_the_file_given_and_todays_counts(cli, sqlite_backend, workdir):
    first = workdir / "orders.ndjson"
    write_records(first, people(20), "ndjson")
    copy = workdir / "orders-copy.ndjson"
    copy.write_bytes(first.read_bytes())
    env = sqlite_backend.env()
    loaded = cli("load", str(first), "--fail-task", "3", "--max-attempts", "1", "--json", env=env)
    run_id = json.loads(loaded.stdout.strip().splitlines()[-1])["run_id"]
    assert cli("retry", run_id, env=env).exit_code == 0  # without the fault, task 3 loads

    again = cli("load", str(copy), "--fail-task", "3", "--max-attempts", "1", env=env)

    assert again.exit_code == 0, again.output
    assert f"{copy}: already loaded by run {run_id}; nothing to do" in again.output
    assert "records 20 | tasks 20 | errors 0" in again.output


def test_the_progress_of_a_run_taken_up_counts_its_whole_size_and_this_commands_rate(capsys):
    from durable_ingest.commands.progress import Progress

    bar = Progress(300_000).resumed_at(35_000)
    bar.started -= 10  # ten seconds into this command's part
    bar.update(55_000)

    line = capsys.readouterr().err
    assert "records: 55,000/300,000 (18%)" in line
    assert "| 2,000/s |" in line  # 20,000 records in 10 s, not 55,000
    assert "ETA 12" in line  # 245,000 left at 2,000/s


@pytest.mark.slow
def test_a_run_left_unfinished_in_the_earlier_history_is_finished_there_not_started_again(
        workdir, parking):
    """Before the run history of a --database-url SQLite database moved beside it, it was
    the working directory's durable_ingest.sqlite: a run left unfinished there must not be
    started again in the new history (its files are claimed: the rest would never load)."""
    from conftest import Backend

    url = f"sqlite:///{workdir / 'data' / 'app.sqlite'}"
    (workdir / "data").mkdir()
    earlier = workdir / "durable_ingest.sqlite"
    before = Backend("sqlite", url, f"sqlite:///{earlier}")  # as the earlier versions kept it
    _, big = interrupt_a_load(before, workdir, parking)

    now = Backend("sqlite", url)
    moved = f"{earlier} (before the history moved beside the database)"
    there = f"DBOS_SYSTEM_DATABASE_URL=sqlite:///{earlier}"

    def load_with(backend):
        return run_ingest("load", "big.ndjson", "--chunk-size", "40", env=backend.env(),
                          cwd=workdir)

    refused = load_with(now)
    assert (refused.returncode, refused.stderr.strip()) == (2, (
        f"Error: run {big['run_id']} of these inputs was left unfinished with its run history "
        f"in {moved}: finish it there: {there} ingest resume {big['run_id']}"))
    finished = run_ingest("resume", big["run_id"], env=before.env(), cwd=workdir)
    assert finished.returncode == 0, finished.stderr
    again = load_with(now)
    assert (again.returncode, again.stderr.strip()) == (2, (
        f"Error: these inputs were loaded by run {big['run_id']}, whose run history is in "
        f"{moved}: to go on with that history, set {there}"))
    kept = load_with(before)
    assert kept.returncode == 0 and "already loaded by run " + big["run_id"] in kept.stdout
    now.assert_each_record_once(400, 0)
