"""Benchmark: two ``ingest`` commands side by side, in one run, on the same inputs.

    python benchmarks/bench_ab.py --a /path/to/old/.venv/bin/ingest              # old vs this
    python benchmarks/bench_ab.py --a-args "" --b-args "--table users"           # tasks vs a table
    python benchmarks/bench_ab.py --cases file,folder,help --sqlite --repeats 3
    python benchmarks/bench_ab.py --smoke                                         # seconds; tests

A and B are each an ``ingest`` executable (default: this environment's) with extra ``load``
arguments. For each case and database they run alternately (B first on every other repeat,
so drift in the machine hits both), each load in fresh databases set up by an untimed tiny
load (an existing installation), and every summary is checked: each record exactly once.

Cases: ``file`` (one NDJSON file of ``--records`` randomuser records), ``folder`` (the same
kind of records as ``--files`` envelope files of ``--per-file`` records), ``help`` (the
wall time of ``ingest --help``: start-up). It prints the median of each side, the ratio
B/A of the medians (for loads: records/s, above 1 B is faster; for ``help``: seconds,
below 1 B is faster) and the peak RSS. The last line is ``RATIO <lowest load ratio B/A>``.
"""

import argparse
import contextlib
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import (BenchError, Postgres, child_env, dataset, ingest_command, log,  # noqa: E402
                   measure, server_and_out_options)
from bench_files import split_into_files  # noqa: E402


class Side:
    """One of the two commands: an executable and its extra ``load`` arguments."""

    def __init__(self, name: str, executable: str, extra: str):
        self.name, self.executable, self.extra = name, executable, shlex.split(extra)
        self.samples: dict = {}  # (case, database) -> [(value, rss MB)]

    def load(self, path: Path, env: dict, cwd: Path, records: int) -> tuple:
        run = measure([self.executable, "load", str(path), "--json", "--no-progress", *self.extra],
                      env=env, cwd=cwd)
        summary = run.result()
        stored = summary["tasks"] + summary.get("updated", 0) + summary.get("skipped", 0)
        if summary["records"] != records or stored != records or summary["errors"] \
                or summary["already_loaded"]:
            raise BenchError(f"{self.name}: {path} did not load every record once: {summary}")
        return records / run.seconds, run.rss_mb

    def prepare(self, env: dict, cwd: Path) -> None:
        tiny = cwd / f"tiny-{uuid.uuid4().hex[:8]}.ndjson"
        tiny.write_text("".join(f'{{"id": {i}}}\n' for i in range(20)))
        measure([self.executable, "load", str(tiny), "--json", "--no-progress", *self.extra],
                env=env, cwd=cwd)


@contextlib.contextmanager
def installation(database: str, pg: Postgres, out: Path):
    """(environment, working directory) of a fresh installation, removed afterwards."""
    work = Path(tempfile.mkdtemp(prefix="ab-", dir=out))
    try:
        if database == "sqlite":
            yield child_env(), work
            return
        with pg.fresh("app", "sys") as (app, system):
            yield child_env(DATABASE_URL=pg.url(app), DBOS_SYSTEM_DATABASE_URL=pg.url(system)), work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def one_load(side: Side, database: str, path: Path, records: int, pg: Postgres, out: Path) -> tuple:
    with installation(database, pg, out) as (env, work):
        side.prepare(env, work)
        return side.load(path, env, work, records)


def help_time(side: Side) -> tuple:
    began = time.perf_counter()
    measure([side.executable, "--help"], env=child_env(), cwd=Path.cwd())
    return time.perf_counter() - began, 0.0


def inputs(args) -> dict:
    """case -> (path, records) of the load cases asked for."""
    found = {}
    if "file" in args.cases:
        found["file"] = (dataset(args.out, args.records, "ndjson"), args.records)
    if "folder" in args.cases:
        source = dataset(args.out, args.files * args.per_file, "ndjson")
        folder = split_into_files(source, args.out / f"folder-{args.files}x{args.per_file}",
                                  args.files, args.per_file)
        found["folder"] = (folder, args.files * args.per_file)
    return found


def run(args) -> float:
    pg = Postgres(args.pg)
    databases = (["postgres"] if not args.no_pg else []) + (["sqlite"] if args.sqlite else [])
    if not args.no_pg:
        log(f"Postgres {pg.version()} at {args.pg}")
    sides = [Side("A", args.a, args.a_args), Side("B", args.b, args.b_args)]
    cases = inputs(args)
    for repeat in range(args.repeats):
        order = sides if repeat % 2 == 0 else sides[::-1]
        for case, (path, records) in cases.items():
            for database in databases:
                for side in order:
                    value = one_load(side, database, path, records, pg, args.out)
                    side.samples.setdefault((case, database), []).append(value)
                    log(f"  {case:<6} {database:<8} {side.name} {value[0]:10,.0f} rec/s {value[1]:5.0f} MB")
        if "help" in args.cases:
            for side in order:
                side.samples.setdefault(("help", "-"), []).append(help_time(side))
    return report(sides, args)


def report(sides: list, args) -> float:
    a, b = sides
    print(f"A: {a.executable} load {' '.join(a.extra)}".rstrip())
    print(f"B: {b.executable} load {' '.join(b.extra)}".rstrip())
    print(f"{'case':<8} {'database':<9} {'unit':<6} {'A':>10} {'B':>10} {'B/A':>6} "
          f"{'A MB':>6} {'B MB':>6}")
    ratios = []
    for key in a.samples:
        median_a = statistics.median(v for v, _ in a.samples[key])
        median_b = statistics.median(v for v, _ in b.samples[key])
        ratio = median_b / median_a
        start_up = key[0] == "help"
        if not start_up:
            ratios.append(ratio)
        rss = [f"{max(r for _, r in side.samples[key]):6.0f}" if not start_up else f"{'-':>6}"
               for side in (a, b)]
        unit, digits = ("s", 3) if start_up else ("rec/s", 0)
        print(f"{key[0]:<8} {key[1]:<9} {unit:<6} {median_a:>10,.{digits}f} {median_b:>10,.{digits}f} "
              f"{ratio:6.2f} {rss[0]} {rss[1]}")
    lowest = min(ratios) if ratios else 1.0
    print(f"RATIO {lowest:.2f}")
    return lowest


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    this = ingest_command()[0]
    parser.add_argument("--a", default=this, help="A's ingest executable (default: this one's)")
    parser.add_argument("--b", default=this, help="B's ingest executable (default: this one's)")
    parser.add_argument("--a-args", default="", help="extra `ingest load` arguments of A")
    parser.add_argument("--b-args", default="", help="extra `ingest load` arguments of B")
    parser.add_argument("--cases", default="file,folder,help", help="of file, folder, help")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--per-file", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sqlite", action="store_true", help="also on the SQLite default")
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument("--smoke", action="store_true", help="tiny inputs, one repeat")
    server_and_out_options(parser)
    args = parser.parse_args(argv)
    args.cases = set(args.cases.split(","))
    if args.smoke:
        args.records, args.files, args.per_file, args.repeats = 300, 20, 5, 1
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def main(argv=None) -> int:
    try:
        run(parse_args(argv))
    except BenchError as exc:
        log(f"bench_ab: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
