"""Stress test: kill -9 a running ``ingest load`` at random moments, rerun it, and check
that every record ended as exactly one row.

    python benchmarks/stress_kill.py --rounds 20 --backend both
    python benchmarks/stress_kill.py --rounds 10 --files 2000     # a folder of 2,000 files

Each round loads a fresh dataset into fresh databases, kills the load with SIGKILL at a
random moment (before, during or after the chunk commits), runs the same command again
and checks: exit 0, tasks + errors == records, no duplicate source key, and the expected
number of error rows. Prints one line per round and a final ``STRESS ok N/N`` line.
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import psycopg

PG = os.environ.get("INGEST_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


def ingest(*args, env, cwd, **kwargs):
    return [sys.executable, "-m", "durable_ingest.cli", *map(str, args)], dict(env=env, cwd=cwd, **kwargs)


def make_dataset(path: str, records: int, files: int = 1) -> None:
    """One NDJSON file, or a folder of ``files`` NDJSON files sharing the records."""
    if files > 1:
        os.makedirs(path)
    for part in range(files):
        target = os.path.join(path, f"part-{part:06d}.ndjson") if files > 1 else path
        with open(target, "w") as out:
            for i in range(part, records, files):
                out.write(json.dumps({"id": i, "name": f"user {i}", "tags": ["a", {"b": "c"}]}) + "\n")


def counts(backend: str, url: str) -> tuple:
    if backend == "sqlite":
        import sqlite3

        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return tuple(conn.execute(q).fetchone()[0] for q in (
                "SELECT count(*) FROM tasks", "SELECT count(*) FROM errors",
                "SELECT count(DISTINCT source_key) FROM tasks"))
    with psycopg.connect(url) as conn:
        return tuple(conn.execute(q).fetchone()[0] for q in (
            "SELECT count(*) FROM tasks", "SELECT count(*) FROM errors",
            "SELECT count(DISTINCT source_key) FROM tasks"))


def one_round(backend: str, records: int, rng: random.Random, workdir: str, files: int = 1) -> str:
    data = os.path.join(workdir, "data" if files > 1 else "data.ndjson")
    make_dataset(data, records, files)
    name = f"di_stress_{uuid.uuid4().hex[:10]}"
    url = f"sqlite:///{workdir}/app.sqlite" if backend == "sqlite" else f"{PG}/{name}"
    env = {**os.environ, "DATABASE_URL": url, "INGEST_FAULT_CHUNK_DELAY_SEC": "0.1"}
    if backend == "sqlite":
        env["DBOS_SYSTEM_DATABASE_URL"] = f"sqlite:///{workdir}/sys.sqlite"
    # Injected failures are by position within a file: two records of the one file, or none.
    failing = ("--fail-task", "5", "--fail-task", str(records - 1)) if files == 1 else ()
    expected_errors = 2 if files == 1 else 0
    args = ("load", data, "--chunk-size", "100", *failing, "--json")
    try:
        cmd, kw = ingest(*args, env=env, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        process = subprocess.Popen(cmd, **kw)
        kill_after = rng.uniform(0.5, 4.0)
        time.sleep(kill_after)
        finished_first = process.poll() is not None
        process.send_signal(signal.SIGKILL)
        process.wait()
        cmd, kw = ingest(*args, env=env, cwd=workdir, capture_output=True, text=True, timeout=600)
        try:
            again = subprocess.run(cmd, **kw)
        except subprocess.TimeoutExpired:
            return "FAIL rerun did not finish within 600 s"
        if again.returncode != 0:
            return f"FAIL rerun exit {again.returncode}: {again.stderr.strip()[-300:]}"
        tasks, errors, distinct = counts(backend, url)
        good = records - expected_errors
        ok = (tasks, errors, distinct) == (good, expected_errors, good)
        note = "finished before the kill" if finished_first else f"killed at {kill_after:.2f} s"
        return f"{'ok  ' if ok else 'FAIL'} {backend:8} {note}: tasks {tasks} errors {errors} distinct {distinct}"
    finally:
        if backend == "postgres":
            with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
                for db in (name, f"{name}_dbos_sys"):
                    conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--files", type=int, default=1, help="spread the records over a folder of N files")
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args()
    rng = random.Random(options.seed)
    backends = ["sqlite", "postgres"] if options.backend == "both" else [options.backend]
    passed = 0
    for round_number in range(options.rounds):
        workdir = tempfile.mkdtemp(prefix="ingest-stress-")
        try:
            line = one_round(backends[round_number % len(backends)], options.records, rng, workdir,
                             options.files)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        passed += line.startswith("ok")
        print(f"round {round_number + 1:2}: {line}", flush=True)
    print(f"STRESS {'ok' if passed == options.rounds else 'FAILED'} {passed}/{options.rounds}")
    return 0 if passed == options.rounds else 1


if __name__ == "__main__":
    sys.exit(main())
