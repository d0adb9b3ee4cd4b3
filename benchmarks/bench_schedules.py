"""Benchmark: schedules fired by several ``ingest worker`` processes sharing one Postgres: how
long from a tick to the start of its run (median and max), and how many runs each tick
starts (it must be exactly one).

    python benchmarks/bench_schedules.py                 # 3 workers, a tick every 2 s, 30 ticks
    python benchmarks/bench_schedules.py --workers 3 --every 5 --ticks 20
    python benchmarks/bench_schedules.py --smoke         # seconds; used by the test suite

A schedule with a seconds cron (``*/EVERY * * * * *``) watches a landing folder; a new small
file lands between ticks, so every tick has something new and starts a run. Latency is the
run's workflow creation time minus the tick's time (the tick is in the tick workflow's ID);
it includes DBOS's jitter (up to 10 % of the interval, at most 10 s) and the tick's planning
(the folder scanned again). The baseline is the interval itself: the last line is ``RATIO
<median latency / interval>`` (lower is better; below 0.1 + 2 s / interval the promise holds).
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import BenchError, Postgres, ingest_command, log, server_and_out_options  # noqa: E402
from bench_files import postgres_env, prepare  # noqa: E402


def run(args, env: dict, cwd: Path) -> None:
    done = subprocess.run([*ingest_command(), *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)
    if done.returncode != 0:
        raise BenchError(f"ingest {' '.join(args)}: {done.stderr.strip()[-500:]}")


def fire(env: dict, cwd: Path, workers: int, every: int, ticks: int) -> None:
    landing = cwd / "landing"
    landing.mkdir()
    run(["schedule", "add", "bench", f"*/{every} * * * * *", str(landing)], env, cwd)
    started = [subprocess.Popen([*ingest_command(), "worker", "--worker-id", f"w{n}"], env=env,
                                cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for n in range(1, workers + 1)]
    try:
        for number in range(ticks):  # a file lands mid-interval: each tick has something new
            time.sleep(every - time.time() % every + every / 2)
            (landing / f"f{number:04d}.ndjson").write_text(json.dumps({"n": number}) + "\n")
            log(f"file {number + 1}/{ticks} landed")
        time.sleep(every * 1.5 + 1)
    finally:
        for worker in started:
            worker.terminate()
        for worker in started:
            worker.wait(timeout=120)


def measured(pg: Postgres, names: list) -> tuple:
    """(latencies in s, runs per tick) of every tick that started a run."""
    app, system = names
    with pg.psycopg.connect(pg.url(app)) as conn:
        runs = conn.execute("SELECT run_id, tick FROM ingest_schedule_runs").fetchall()
    with pg.psycopg.connect(pg.url(system)) as conn:
        created = dict(conn.execute(
            "SELECT workflow_uuid, created_at FROM dbos.workflow_status "
            "WHERE name = 'ingest_dataset'").fetchall())
    latencies = [created[run_id] / 1000 - tick.timestamp() for run_id, tick in runs]
    per_tick: dict = {}
    for _, tick in runs:
        per_tick[tick] = per_tick.get(tick, 0) + 1
    return latencies, per_tick


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--every", type=int, default=2, help="seconds between ticks")
    parser.add_argument("--ticks", type=int, default=30)
    parser.add_argument("--smoke", action="store_true")
    server_and_out_options(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.workers, args.every, args.ticks = 2, 2, 3
    pg = Postgres(args.pg)
    log(f"Postgres {pg.version()}; {args.workers} workers, a tick every {args.every} s, "
        f"{args.ticks} files")
    try:
        with pg.fresh("app", "sys") as names, tempfile.TemporaryDirectory() as work:
            env = postgres_env(pg, names)
            prepare(env, Path(work))
            fire(env, Path(work), args.workers, args.every, args.ticks)
            latencies, per_tick = measured(pg, names)
    except BenchError as exc:
        log(f"benchmark failed: {exc}")
        return 1
    if not latencies:
        log("benchmark failed: no tick started a run")
        return 1
    median, worst = statistics.median(latencies), max(latencies)
    print(f"{args.workers} workers, cron */{args.every} s: {len(latencies)} runs from "
          f"{len(per_tick)} ticks, runs per tick: {sorted(set(per_tick.values()))}")
    print(f"tick to run start: median {median:.2f} s, max {worst:.2f} s "
          f"(allowed: 2 s + jitter up to {min(args.every / 10, 10):.1f} s)")
    print(f"RATIO {median / args.every:.2f}")
    return 0 if set(per_tick.values()) == {1} else 1


if __name__ == "__main__":
    sys.exit(main())
