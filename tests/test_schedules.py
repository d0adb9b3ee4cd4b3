"""Schedules (issue 30): `ingest schedule add/list/pause/resume/delete/run`, ticks fired by
real `ingest worker` processes, exactly one run per tick across workers, a worker killed in
the middle of a scheduled run, missed ticks caught up once, on SQLite and Postgres."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from conftest import (REPO, kill_9, output_of, people, run_ingest, start_ingest, wait_until,
                      write_records)

EVERY_SECOND = "* * * * * *"
BIN = Path(sys.executable).parent


def schedules(cli, backend) -> list:
    listed = cli("schedule", "list", "--json", env=backend.env())
    assert listed.exit_code == 0, listed.output
    return json.loads(listed.stdout)


def add(cli, backend, *args, code=0) -> str:
    added = cli("schedule", "add", *args, env=backend.env())
    assert added.exit_code == code, added.output
    return added.output


def scheduled_runs(backend) -> list:
    """(run id, schedule) of every run a tick started."""
    try:
        return [tuple(r) for r in backend.query(
            "SELECT run_id, schedule FROM ingest_schedule_runs ORDER BY tick")]
    except Exception:  # not migrated yet
        return []


def status_of(backend, workdir) -> list:
    status = run_ingest("status", "--json", env=backend.env(), cwd=workdir)
    assert status.returncode == 0, status.stderr
    return json.loads(status.stdout)


def held_scheduled_run(cli, backend, workdir, parking, records: int, chunk_size: int):
    """A landing folder with one file of ``records``, a schedule firing every second over it,
    and a worker ``w1`` whose first scheduled run holds its first chunk (parked)."""
    landing = workdir / "landing"
    landing.mkdir()
    write_records(landing / "f000.ndjson", people(records), "ndjson")
    add(cli, backend, "landing", EVERY_SECOND, "landing", "--chunk-size", str(chunk_size))
    worker = start_ingest("worker", "--worker-id", "w1", cwd=workdir,
                          env={**backend.env(), **parking.env(chunks="0")})
    parking.wait_parked(index=0, process=worker)
    return landing, worker


def tick_statuses(backend, workdir) -> set:
    """The statuses of the schedules' tick workflows in the system database."""
    import sqlalchemy as sa

    url = backend.system_url_for(workdir)
    table = "workflow_status" if url.startswith("sqlite") else "dbos.workflow_status"
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as connection:
            return {status for (status,) in connection.execute(sa.text(
                f"SELECT status FROM {table} WHERE name = 'scheduled_load'"))}
    finally:
        engine.dispose()


def stop(*workers) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.communicate(timeout=60)


# -- adding, checked as `ingest load` checks a load ----------------------------------------------
@pytest.mark.parametrize("args, says", [
    (("s", "x y", "landing"), "cron 'x y': expected 5 fields"),
    (("s", "61 * * * *", "landing"), "cron '61 * * * *'"),
    (("s", "* * * * *", "missing"), "missing: no such file or folder"),
    (("s", "* * * * *", "landing", "--transform", "nosuch:fn"), "cannot import nosuch"),
    (("s", "* * * * *", "landing", "--table", "bad name"), "--table"),
    (("s", "* * * * *", "landing", "--tz", "Mars/Base"), "not an IANA time zone"),
    (("s", "* * * * *", "-"), "a schedule can't read stdin"),
    (("s", "* * * * *", "landing", "--detach"), "--detach"),
    (("bad name", "* * * * *", "landing"), "schedule name 'bad name'"),
    (("ingest-gc", "* * * * *", "landing"), "schedule name 'ingest-gc'"),
])
def test_a_bad_schedule_is_refused_in_one_line_and_nothing_is_stored(cli, sqlite_backend,
                                                                      workdir, args, says):
    (workdir / "landing").mkdir()
    output = add(cli, sqlite_backend, *args, code=2)

    assert says in output and len(output.strip().splitlines()) == 1, output
    assert "Traceback" not in output
    assert schedules(cli, sqlite_backend) == []


def test_add_list_pause_resume_delete(cli, sqlite_backend, workdir):
    (workdir / "landing").mkdir()
    said = add(cli, sqlite_backend, "hourly", "0 * * * *", "landing", "--table", "people",
               "--tz", "Europe/Paris")
    assert "schedule hourly added: 0 * * * * (Europe/Paris), next tick" in said
    assert "exists" in add(cli, sqlite_backend, "hourly", "0 * * * *", "landing", code=2)

    [listed] = schedules(cli, sqlite_backend)
    assert listed["inputs"] == [str(workdir / "landing")]  # stored absolute
    assert (listed["cron"], listed["tz"], listed["table"]) == ("0 * * * *", "Europe/Paris", "people")
    assert listed["next_tick"].endswith(":00:00+01:00") or listed["next_tick"].endswith(":00:00+02:00")
    assert (listed["paused"], listed["runs"], listed["skipped"], listed["last_run"]) == (False, 0, 0, None)
    text = cli("schedule", "list", env=sqlite_backend.env()).output
    assert "hourly" in text and "active" in text and "no run yet" in text

    assert cli("schedule", "pause", "hourly", env=sqlite_backend.env()).exit_code == 0
    assert schedules(cli, sqlite_backend)[0]["paused"] is True
    assert schedules(cli, sqlite_backend)[0]["next_tick"] is None
    assert cli("schedule", "resume", "hourly", env=sqlite_backend.env()).exit_code == 0
    assert schedules(cli, sqlite_backend)[0]["paused"] is False
    deleted = cli("schedule", "delete", "hourly", env=sqlite_backend.env())
    assert deleted.exit_code == 0 and "schedule hourly deleted" in deleted.output
    assert schedules(cli, sqlite_backend) == []


@pytest.mark.parametrize("verb", ["pause", "resume", "delete", "run"])
def test_an_unknown_schedule_is_one_line(cli, sqlite_backend, workdir, verb):
    result = cli("schedule", verb, "nope", env=sqlite_backend.env())

    assert result.exit_code == 2
    assert result.output.strip() == ("Error: no schedule named 'nope': `ingest schedule list` "
                                     "shows them")


def test_credentials_are_never_stored(cli, sqlite_backend, workdir):
    add(cli, sqlite_backend, "api", "0 * * * *", "https://user:s3cret@api.example.com/u?page={page}",
        "--pages", "1-", "--header", "X-Token: t0ken-value")

    [listed] = schedules(cli, sqlite_backend)
    assert listed["inputs"] == ["https://api.example.com/u?page={page}"]
    for path in workdir.glob("*.sqlite*"):  # the system database holds the schedule
        data = path.read_bytes()
        assert b"s3cret" not in data and b"t0ken-value" not in data, path


# -- ticks in workers ----------------------------------------------------------------------------
@pytest.mark.slow
def test_a_worker_runs_each_tick_once_and_skips_ticks_while_the_last_run_goes(
        backend, workdir, parking, cli):
    landing, worker = held_scheduled_run(cli, backend, workdir, parking, 30, 10)

    # Ticks come every second while the run goes: skipped, none starts a second run.
    wait_until(lambda: schedules(cli, backend)[0]["skipped"] >= 2, 30, "two skipped ticks",
               process=worker, interval=0.3)
    assert len(scheduled_runs(backend)) == 1
    parking.release()
    wait_until(lambda: sum(backend.counts()) == 30, 60, "the first run's 30 rows", process=worker,
               interval=0.2)

    write_records(landing / "b.ndjson", people(20, start=30), "ndjson")
    wait_until(lambda: sum(backend.counts()) == 50, 60, "the new file's rows", process=worker,
               interval=0.2)
    wait_until(lambda: schedules(cli, backend)[0]["last_outcome"] == "unchanged", 30,
               "a tick that finds nothing new", process=worker, interval=0.3)
    stop(worker)

    backend.assert_each_record_once(50, 0)
    runs = scheduled_runs(backend)
    assert len(runs) == len({r for r, _ in runs}) == 2
    [listed] = schedules(cli, backend)
    assert listed["runs"] == 2 and listed["last_run"]["state"] == "SUCCESS"
    assert listed["last_run"]["records"] == 20
    shown = {run["run_id"]: run for run in status_of(backend, workdir)}
    assert {shown[r]["schedule"]["name"] for r, _ in runs} == {"landing"}
    text = run_ingest("status", runs[0][0], env=backend.env(), cwd=workdir).stdout
    assert "started by schedule landing, tick" in text

    # gc deletes the finished ticks and the runs' history; what the ticks did stays counted,
    # and each run still names its schedule.
    before = schedules(cli, backend)[0]
    collected = cli("gc", "--older-than", "0s", "--json", env=backend.env())
    assert collected.exit_code == 0, collected.output
    assert "SUCCESS" not in tick_statuses(backend, workdir)  # (a tick in flight stays)
    after = schedules(cli, backend)[0]
    assert {k: after[k] for k in ("runs", "skipped", "unchanged")} == \
        {k: before[k] for k in ("runs", "skipped", "unchanged")}
    shown = {run["run_id"]: run for run in status_of(backend, workdir)}
    assert {shown[r]["schedule"]["name"] for r, _ in runs} == {"landing"}


@pytest.mark.slow
def test_pause_resume_and_run_now_reach_a_running_worker(sqlite_backend, workdir, cli):
    backend = sqlite_backend
    landing = workdir / "landing"
    landing.mkdir()
    write_records(landing / "a.ndjson", people(5), "ndjson")
    add(cli, backend, "yearly", "0 0 1 1 *", "landing")  # no tick soon: only `run` starts one
    worker = start_ingest("worker", "--worker-id", "w1", cwd=workdir,
                          env={**backend.env(), "INGEST_SCHEDULE_POLL_SEC": "0.5"})
    ran = cli("schedule", "run", "yearly", env=backend.env())
    assert ran.exit_code == 0 and "tick sched-yearly-trigger-" in ran.output
    wait_until(lambda: backend.rows_so_far() == 5, 60, "the triggered run", process=worker,
               interval=0.2)

    add(cli, backend, "often", EVERY_SECOND, "landing", "--label", "often")
    def often_ticks() -> set:
        return {w for w in backend.workflow_ids(workdir) if w.startswith("sched-often-")}

    wait_until(often_ticks, 30, "the new schedule's first tick", process=worker, interval=0.2)
    assert cli("schedule", "pause", "often", env=backend.env()).exit_code == 0
    # A paused schedule's thread stops within the worker's poll (0.5 s here): after that,
    # no tick is fired (ticks fired before may still be running: they are not new ones).
    time.sleep(2)
    fired = often_ticks()
    time.sleep(3)
    assert often_ticks() == fired
    assert cli("schedule", "resume", "often", env=backend.env()).exit_code == 0
    wait_until(lambda: often_ticks() - fired, 30, "a tick after resume", process=worker,
               interval=0.2)
    stop(worker)
    assert backend.counts() == (10, 0)  # the --label run is another dataset: 5 + 5


@pytest.mark.slow
def test_missed_ticks_make_one_catch_up_run(sqlite_backend, workdir, cli):
    """A daily tick 3 s from now passes with no worker: the worker started after it runs it
    once (its next tick is tomorrow: only the catch-up can start this run)."""
    from datetime import datetime, timedelta, timezone

    backend = sqlite_backend
    landing = workdir / "landing"
    landing.mkdir()
    tick = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=3)
    add(cli, backend, "daily", f"{tick.second} {tick.minute} {tick.hour} * * *", "landing")
    write_records(landing / "a.ndjson", people(7), "ndjson")
    wait_until(lambda: datetime.now(timezone.utc) > tick + timedelta(seconds=1), 10,
               "the tick to pass")
    worker = start_ingest("worker", "--worker-id", "w1", cwd=workdir, env=backend.env())
    wait_until(lambda: backend.rows_so_far() == 7, 60, "the catch-up run", process=worker,
               interval=0.2)
    worker.send_signal(signal.SIGTERM)
    _, stderr = output_of(worker, timeout=60)

    assert stderr.count(f"schedule daily: catching up on the tick of {tick.isoformat()}") == 1, stderr
    assert len(scheduled_runs(backend)) == 1
    backend.assert_each_record_once(7, 0)


@pytest.mark.slow
def test_a_worker_killed_in_a_scheduled_run_and_workers_sharing_postgres(
        postgres_backend, workdir, parking, cli):
    """Three workers, a 1-second cron over a landing folder that receives files; one worker is
    killed -9 while it holds a scheduled run's chunk, and restarted: every record once, no
    tick runs twice (one tick, one workflow), every run started by exactly one tick."""
    backend = postgres_backend
    landing, first = held_scheduled_run(cli, backend, workdir, parking, 10, 5)
    others = [start_ingest("worker", "--worker-id", f"w{n}", cwd=workdir, env=backend.env())
              for n in (2, 3)]
    assert kill_9(first) == -9
    restarted = start_ingest("worker", "--worker-id", "w1", cwd=workdir, env=backend.env())
    records = 10
    for number in range(1, 9):  # files keep landing while the ticks go on
        write_records(landing / f"f{number:03d}.ndjson", people(4, start=records), "ndjson")
        records += 4
        time.sleep(0.7)
    wait_until(lambda: backend.rows_so_far() == records, 90, f"{records} rows",
               interval=0.3, process=restarted)
    wait_until(lambda: all(run["state"] == "done" for run in status_of(backend, workdir)), 60,
               "every run done", interval=0.5)
    stop(restarted, *others)

    backend.assert_each_record_once(records, 0)
    runs = scheduled_runs(backend)
    assert len(runs) == len({r for r, _ in runs}) >= 2
    with psycopg.connect(backend.system_url_for(workdir)) as system:
        ticks = system.execute("SELECT status, count(*) FROM dbos.workflow_status "
                               "WHERE name = 'scheduled_load' GROUP BY status").fetchall()
    # Each tick is one workflow (its ID names it); none failed. The workers stopped with the
    # newest tick in flight or queued: the next worker to start takes it up.
    assert {status for status, _ in ticks} <= {"SUCCESS", "PENDING", "ENQUEUED"}, ticks
    [listed] = schedules(cli, backend)
    assert listed["runs"] == len(runs) and listed["failed"] == 0


@pytest.mark.slow
def test_dbos_start_starts_the_service(workdir):
    """`dbos start` (dbos-config.yaml) is the service: a worker that fires the schedules."""
    (workdir / "dbos-config.yaml").write_text((REPO / "dbos-config.yaml").read_text())
    write_records(workdir / "users.ndjson", people(12), "ndjson")
    added = run_ingest("schedule", "add", "demo", "0 0 1 1 *", "users.ndjson", cwd=workdir)
    assert added.returncode == 0, added.stderr
    service = subprocess.Popen([str(BIN / "dbos"), "start"], cwd=workdir,
                               env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        assert run_ingest("schedule", "run", "demo", cwd=workdir).returncode == 0

        def loaded() -> bool:
            status = run_ingest("status", "--json", cwd=workdir)
            runs = json.loads(status.stdout) if status.returncode == 0 else []
            return bool(runs) and runs[0]["state"] == "done" and runs[0]["tasks"] == 12

        wait_until(loaded, 120, "the scheduled run of dbos start's worker", interval=0.5,
                   process=service)
    finally:
        os.killpg(service.pid, signal.SIGTERM)
        service.communicate(timeout=60)
