"""Benchmark: a landing folder as it really is (issue 33).

    python benchmarks/bench_landing.py                   # 100 runs x 1,000 records; 10,000 .gz
    python benchmarks/bench_landing.py --runs 20 --gz-files 2000 --postgres
    python benchmarks/bench_landing.py --smoke           # seconds; used by the test suite
    python benchmarks/bench_landing.py --in-worker --postgres   # part 1 as a schedule's ticks

1. **A growing file.** One NDJSON file grows by ``--per-run`` records before each of
   ``--runs`` runs of the same command (each loads only the tail); against loading the final
   file once, into a fresh database, in the same run of this script. Also timed, interleaved
   with the runs: the same command over the unchanged file (nothing to do), to show how much
   of the total is the fixed cost of starting a command. Every record is checked to be stored exactly once, at
   positions 0..N-1.
2. **A rerun over loaded .gz files.** ``--gz-files`` gzip files are loaded, their decompressed
   copies deleted from the spool, and the folder loaded again: the rerun must decompress
   nothing (no new copy in the spool). Timed beside listing the folder (walk and stat every
   file) and a ``--full-check`` rerun, which reads and decompresses every file.

The last line is ``RATIO <growing file's runs / the final file once>``.
"""

import argparse
import gzip
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import (BenchError, Postgres, child_env, ingest_command, log, measure,  # noqa: E402
                   server_and_out_options)


def load(path: Path, env: dict, cwd: Path, *extra: str) -> tuple:
    run = measure([*ingest_command(), "load", str(path), "--json", "--no-progress", *extra],
                  env=env, cwd=cwd)
    return run.seconds, run.result()


def record_lines(start: int, count: int) -> str:
    return "".join(json.dumps({"id": i, "name": f"person {i}", "tags": ["a", "b"]}) + "\n"
                   for i in range(start, start + count))


def growing(env_of, runs: int, per_run: int, idle_runs: int) -> dict:
    """Part 1 in one database (``env_of(work)``: the environment of a fresh one)."""
    with tempfile.TemporaryDirectory() as tail_dir, tempfile.TemporaryDirectory() as once_dir:
        work, log_file = Path(tail_dir), Path(tail_dir) / "events.ndjson"
        env = env_of(work, "tail")
        total, idle, every = 0.0, [], max(1, runs // max(idle_runs, 1))
        for number in range(runs):
            with open(log_file, "a") as f:
                f.write(record_lines(number * per_run, per_run))
            seconds, result = load(log_file, env, work)
            if result["records"] != per_run:
                raise BenchError(f"run {number}: {result['records']} records, expected {per_run}")
            total += seconds
            if idle_runs and number % every == 0:  # interleaved: the same machine's load
                idle.append(load(log_file, env, work)[0])
        idle = sum(idle) / max(len(idle), 1)
        stored = check_once(env, work, runs * per_run)
        final = Path(once_dir) / "events.ndjson"
        final.write_bytes(log_file.read_bytes())
        once, result = load(final, env_of(Path(once_dir), "once"), Path(once_dir))
    return {"runs": runs, "per_run": per_run, "total_s": total, "once_s": once,
            "idle_s": idle, "stored": stored, "ratio": total / once,
            "beyond_ratio": max(total - idle * runs, 0.0) / max(once - idle, 1e-9)}


def growing_in_a_worker(env_of, runs: int, per_run: int) -> dict:
    """Part 1 as a service does it: the runs are ticks of a schedule in a running ``ingest
    worker`` (triggered one after the other, as ``ingest schedule run`` does, through DBOS's
    client: no command starts per run), against one tick over the final file in a fresh
    database and worker. Timed from the append (or trigger) until every row is stored."""
    with tempfile.TemporaryDirectory() as tail_dir, tempfile.TemporaryDirectory() as once_dir:
        work = Path(tail_dir)
        env = env_of(work, "wtail")
        total = in_a_worker(env, work, runs, per_run)
        stored = check_once(env, work, runs * per_run)
        final = Path(once_dir) / "events.ndjson"
        final.write_bytes((work / "events.ndjson").read_bytes())
        once = in_a_worker(env_of(Path(once_dir), "wonce"), Path(once_dir), 1, 0, runs * per_run)
    return {"runs": runs, "per_run": per_run, "total_s": total, "once_s": once,
            "stored": stored, "ratio": total / once}


def in_a_worker(env: dict, work: Path, runs: int, per_run: int, present: int = 0) -> float:
    """Seconds the ``runs`` ticks took (each after ``per_run`` records were appended), in a
    worker started (and ready) before the clock starts."""
    import subprocess

    from dbos import DBOSClient

    log_file = work / "events.ndjson"
    log_file.touch()
    added = subprocess.run([*ingest_command(), "schedule", "add", "tail", "0 0 1 1 *",
                            str(log_file)], env=env, cwd=work, capture_output=True, text=True)
    if added.returncode != 0:
        raise BenchError(f"schedule add: {added.stderr.strip()}")
    worker = subprocess.Popen([*ingest_command(), "worker", "--worker-id", "bench"], env=env,
                              cwd=work, stderr=subprocess.PIPE, text=True)
    client = DBOSClient(system_database_url=env["DBOS_SYSTEM_DATABASE_URL"])
    try:
        while "ready" not in (worker.stderr.readline() or "ready"):
            pass
        began = time.perf_counter()
        for number in range(runs):
            if per_run:
                with open(log_file, "a") as f:
                    f.write(record_lines(number * per_run, per_run))
            tick = client.trigger_schedule("tail").get_result(polling_interval_sec=0.01)
            if tick["outcome"] != "started":
                raise BenchError(f"tick {number}: {tick['outcome']} ({tick['reason']})")
            client.retrieve_workflow(tick["run_id"]).get_result(polling_interval_sec=0.01)
        elapsed = time.perf_counter() - began
        wait_for_rows(env, present + runs * per_run, worker)
        return elapsed
    finally:
        client.destroy()
        worker.terminate()
        worker.wait(timeout=120)


def wait_for_rows(env: dict, rows: int, worker, timeout: float = 300) -> None:
    url, deadline = env["DATABASE_URL"], time.monotonic() + timeout
    while True:
        try:
            if url.startswith("sqlite:///"):
                with sqlite3.connect(f"file:{url[len('sqlite:///'):]}?mode=ro", uri=True) as db:
                    count = db.execute("SELECT count(*) FROM tasks").fetchone()[0]
            else:
                import psycopg

                with psycopg.connect(url) as db:
                    count = db.execute("SELECT count(*) FROM tasks").fetchone()[0]
        except (sqlite3.Error, ImportError):
            count = 0
        if count >= rows:
            return
        if worker.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"the worker stored {count} of {rows} rows")
        time.sleep(0.005)


def check_once(env: dict, work: Path, records: int) -> int:
    """Every record once, at positions 0..records-1 (SQLite: read here; Postgres: the
    ``--json`` counts already said it)."""
    url = env["DATABASE_URL"]
    if not url.startswith("sqlite:///"):
        return records
    with sqlite3.connect(url[len("sqlite:///"):]) as db:
        count, distinct, low, high = db.execute(
            "SELECT count(*), count(DISTINCT source_key), min(position), max(position) "
            "FROM tasks").fetchone()
    if (count, distinct, low, high) != (records, records, 0, records - 1):
        raise BenchError(f"stored {count} rows ({distinct} keys, positions {low}-{high}), "
                         f"expected {records} at 0-{records - 1}")
    return count


def gz_rerun(env_of, files: int, per_file: int) -> dict:
    """Part 2 in one database."""
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        folder = work / "landing"
        for number in range(files):
            sub = folder / f"d{number % 100:02d}"
            sub.mkdir(parents=True, exist_ok=True)
            with gzip.open(sub / f"part-{number:05d}.ndjson.gz", "wt") as f:
                f.write(record_lines(number * per_file, per_file))
        env = env_of(work, "gz")
        first, result = load(folder, env, work)
        spool = work / ".ingest-spool"
        for copy in spool.glob("gunzip-*"):
            copy.unlink()
        rerun, again = load(folder, env, work)
        copies = len(list(spool.glob("gunzip-*")))
        began = time.perf_counter()
        listed = sum(len([os.stat(os.path.join(root, n)) for n in names])
                     for root, _, names in os.walk(folder))
        listing = time.perf_counter() - began
        full, _ = load(folder, env, work, "--full-check")
    if again["files_already_loaded"] != files or copies:
        raise BenchError(f"rerun: {again['files_already_loaded']} files already loaded, "
                         f"{copies} decompressed copies (expected {files} and 0)")
    return {"files": files, "first_s": first, "rerun_s": rerun, "listing_s": listing,
            "full_check_s": full, "copies_after_rerun": copies, "listed": listed,
            "tasks": result["tasks"]}


def sqlite_env(work: Path, name: str) -> dict:
    return child_env(DATABASE_URL=f"sqlite:///{work / (name + '.sqlite')}",
                     DBOS_SYSTEM_DATABASE_URL=f"sqlite:///{work / (name + '-sys.sqlite')}")


def postgres_env_of(pg: Postgres, stack: list):
    def env_of(work: Path, name: str) -> dict:
        context = pg.fresh(f"{name}app", f"{name}sys")
        app, system = context.__enter__()
        stack.append(context)
        return child_env(DATABASE_URL=pg.url(app), DBOS_SYSTEM_DATABASE_URL=pg.url(system))
    return env_of


def report_worker(database: str, grow: dict) -> None:
    print(f"{database}, in a worker: {grow['runs']} ticks x {grow['per_run']:,} records "
          f"appended: {grow['total_s']:.1f} s in all ({grow['stored']:,} records, each once); "
          f"one tick over the final file: {grow['once_s']:.2f} s; ratio {grow['ratio']:.2f}x")


def report(database: str, grow: dict, gz: dict) -> None:
    print(f"{database}: {grow['runs']} runs x {grow['per_run']:,} records appended: "
          f"{grow['total_s']:.1f} s in all ({grow['stored']:,} records, each once); the final "
          f"file once: {grow['once_s']:.2f} s; ratio {grow['ratio']:.1f}x; a run with nothing "
          f"new: {grow['idle_s']:.2f} s ({grow['idle_s'] * grow['runs']:.1f} s for {grow['runs']}); "
          f"beyond that fixed cost: {grow['beyond_ratio']:.2f}x")
    print(f"{database}: {gz['files']:,} loaded .gz files: first load {gz['first_s']:.1f} s, "
          f"rerun {gz['rerun_s']:.2f} s ({gz['copies_after_rerun']} decompressed), listing "
          f"them {gz['listing_s']:.2f} s, --full-check rerun {gz['full_check_s']:.2f} s")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--per-run", type=int, default=1000)
    parser.add_argument("--idle-runs", type=int, default=20)
    parser.add_argument("--gz-files", type=int, default=10_000)
    parser.add_argument("--per-gz", type=int, default=2)
    parser.add_argument("--postgres", action="store_true", help="also on Postgres")
    parser.add_argument("--in-worker", action="store_true",
                        help="part 1 only, as ticks of a schedule in a running worker")
    server_and_out_options(parser)
    parser.add_argument("--smoke", action="store_true", help="tiny: 4 runs, 20 .gz files")
    args = parser.parse_args(argv)
    if args.smoke:
        args.runs, args.per_run, args.idle_runs, args.gz_files = 4, 50, 1, 20
    return ratio_of_each_database(args, in_a_worker_part if args.in_worker else both_parts)


def both_parts(args, database: str, env_of) -> float:
    grow, gz = growing(env_of, args.runs, args.per_run, args.idle_runs), \
        gz_rerun(env_of, args.gz_files, args.per_gz)
    report(database, grow, gz)
    return grow["ratio"]


def in_a_worker_part(args, database: str, env_of) -> float:
    grow = growing_in_a_worker(env_of, args.runs, args.per_run)
    report_worker(database, grow)
    return grow["ratio"]


def ratio_of_each_database(args, part) -> int:
    """``part`` on SQLite and (``--postgres``) Postgres; the RATIO line, the highest."""
    ratios, stack = [], []
    try:
        ratios.append(part(args, "sqlite", sqlite_env))
        if args.postgres:
            ratios.append(part(args, "postgres", postgres_env_of(Postgres(args.pg), stack)))
    except BenchError as exc:
        log(f"bench_landing: {exc}")
        return 1
    finally:
        for context in reversed(stack):
            context.__exit__(None, None, None)
    print(f"RATIO {max(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
