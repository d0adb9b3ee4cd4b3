"""Benchmark: ``ingest load --workers N`` (helper processes) against one process and against
the hand-written single-process COPY baseline, with the CPU each spends.

    python benchmarks/bench_workers.py                   # 100,000 records, N = 1, 2, auto
    python benchmarks/bench_workers.py --workers 1,2,4 --repeats 5
    python benchmarks/bench_workers.py --smoke           # seconds; used by the test suite

Every run loads the same generated NDJSON file on Postgres, in fresh databases set up by an
untimed tiny load (an existing installation); the baseline (``baseline_copy.py``) loads it
into a fresh table. Runs alternate (the order rotates each repeat); medians are reported:

- wall time of the whole command, process start to exit, and records/s;
- CPU seconds of the command's processes (user + sys, helpers included: they are its
  children) and of the whole machine during the run (``/proc/stat``); the difference is
  mostly Postgres (and whatever else runs: keep the machine quiet).

The last line is ``RATIO <workers 2 / workers 1, whole-command records/s>``.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import (BenchError, Postgres, child_env, dataset, ingest_command, log,  # noqa: E402
                   server_and_out_options)
from bench_files import postgres_env, prepare  # noqa: E402

HERE = Path(__file__).resolve().parent


def machine_cpu() -> float:
    """CPU seconds the whole machine has spent (user, nice, system, irq, softirq)."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()[1:]
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(fields[i]) for i in (0, 1, 2, 5, 6)) / ticks


def timed(command: list, env: dict, cwd: Path) -> dict:
    """Wall time, this command's CPU (its waited-for children included) and the machine's."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    machine = machine_cpu()
    began = time.perf_counter()
    proc = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - began
    machine = machine_cpu() - machine
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise BenchError(f"`{' '.join(command)}` exited {proc.returncode}: {proc.stderr[-800:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "machine": machine, "stdout": proc.stdout}


def ingest_run(pg: Postgres, data: Path, workers: str, records: int) -> dict:
    with pg.fresh("app", "sys") as names, tempfile.TemporaryDirectory() as work:
        env = postgres_env(pg, names)
        prepare(env, Path(work))
        run = timed([*ingest_command(), "load", str(data), "--json", "--no-progress",
                     "--workers", workers], env, Path(work))
    result = json.loads(run["stdout"].strip().splitlines()[-1])
    if result["tasks"] != records:
        raise BenchError(f"--workers {workers}: {result['tasks']} tasks, expected {records}")
    return run


def baseline_run(pg: Postgres, data: Path) -> dict:
    with pg.fresh("base") as (name,), tempfile.TemporaryDirectory() as work:
        return timed([sys.executable, str(HERE / "baseline_copy.py"), str(data), "--shape", "ndjson",
                      "--url", pg.url(name)], child_env(), Path(work))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", default="1,2,auto", help="comma-separated --workers values")
    server_and_out_options(parser)
    parser.add_argument("--smoke", action="store_true", help="300 records, one repeat, N = 1, 2")
    args = parser.parse_args(argv)
    if args.smoke:
        args.records, args.repeats, args.workers = 300, 1, "1,2"
    cases = ["baseline"] + args.workers.split(",")
    args.out.mkdir(parents=True, exist_ok=True)
    pg = Postgres(args.pg)
    samples: dict = {case: [] for case in cases}
    try:
        pg.version()
        data = dataset(args.out, args.records, "ndjson")
        for repeat in range(args.repeats):
            for case in cases[repeat % len(cases):] + cases[:repeat % len(cases)]:
                run = baseline_run(pg, data) if case == "baseline" else ingest_run(pg, data, case, args.records)
                samples[case].append(run)
                log(f"  {case}: {run['wall']:.2f} s, cpu {run['cpu']:.2f} s, machine {run['machine']:.2f} s")
    except BenchError as exc:
        log(f"bench_workers: {exc}")
        return 1
    median = {case: {k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu", "machine")}
              for case, runs in samples.items()}
    per = 100_000 / args.records
    print(f"{args.records:,} randomuser records (NDJSON), Postgres, {os.cpu_count()} CPUs, median of {args.repeats}")
    print(f"{'case':<12} {'wall s':>7} {'rec/s':>8} {'x workers 1':>12} {'x baseline':>11} "
          f"{'cpu s/100k':>11} {'machine cpu s/100k':>19}")
    for case, m in median.items():
        name = case if case == "baseline" else f"workers {case}"
        vs_one = median["1"]["wall"] / m["wall"] if "1" in median else float("nan")
        print(f"{name:<12} {m['wall']:>7.2f} {args.records / m['wall']:>8,.0f} {vs_one:>12.2f} "
              f"{median['baseline']['wall'] / m['wall']:>11.2f} {m['cpu'] * per:>11.2f} "
              f"{m['machine'] * per:>19.2f}")
    print(f"RATIO {median['1']['wall'] / median['2']['wall']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
