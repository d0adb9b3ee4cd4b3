"""Benchmark: what your own transform and your own keys cost, against the default load.

    python benchmarks/bench_shaping.py                  # 100,000 randomuser records, 3 repeats
    python benchmarks/bench_shaping.py --records 20000 --repeats 1
    python benchmarks/bench_shaping.py --smoke          # seconds; used by the test suite

Every case is ``ingest load`` of the same generated NDJSON file on Postgres, in fresh
databases set up by an untimed tiny load (an existing installation):

- ``uppercase``: ``--transform uppercase`` (the demo's transform, records keyed by file and
  position): the baseline every ratio is against, measured in the same run;
- ``identity``: ``--transform identity``, the default (the transform's own cost shows as the
  difference);
- ``key``: ``--key login.uuid``, uppercased (an upsert per record instead of COPY);
- ``update``: ``--key login.uuid --on-conflict update``, uppercased, over the same records already loaded
  with that key (every record replaces a row), in the ``key`` case's databases.

The cases alternate within each repeat (the order rotates), and the median of each is
reported. The last line is ``RATIO <lowest ratio / its target, over the cases>``: 1.00 or
more means every target of the issue is met (identity >= 1.2, key >= 0.7, update >= 0.5).
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import (BenchError, Postgres, dataset, ingest_command, log,  # noqa: E402
                   measure, server_and_out_options)
from bench_files import postgres_env, prepare  # noqa: E402

CASES = {  # name: (extra arguments, target ratio to uppercase)
    "uppercase": (("--transform", "uppercase"), None),
    "identity": (("--transform", "identity"), 1.2),
    "key": (("--transform", "uppercase", "--key", "login.uuid"), 0.7),
    "update": (("--transform", "uppercase", "--key", "login.uuid", "--on-conflict", "update",
                "--label", "again"), 0.5),
}


def timed(path: Path, args: tuple, env: dict, cwd: Path, records: int, outcome: str) -> float:
    """records/s of one load; BenchError unless every record ended as ``outcome``."""
    run = measure([*ingest_command(), "load", str(path), "--json", "--no-progress", *args],
                  env=env, cwd=cwd)
    result = run.result()
    if result[outcome] != records or result["errors"]:
        raise BenchError(f"{' '.join(args) or 'default'}: {result}, expected {records} {outcome}")
    return records / run.seconds


def one_repeat(pg: Postgres, data: Path, records: int, order: list) -> dict:
    rates = {}
    for name in order:
        if name == "update":
            continue  # measured with "key", in its databases
        with pg.fresh("app", "sys") as names, tempfile.TemporaryDirectory() as work:
            env = postgres_env(pg, names)
            prepare(env, Path(work))
            args = CASES[name][0]
            rates[name] = timed(data, args, env, Path(work), records, "tasks")
            if name == "key":
                rates["update"] = timed(data, CASES["update"][0], env, Path(work), records, "updated")
    log("  " + " | ".join(f"{n} {r:,.0f} rec/s" for n, r in rates.items()))
    return rates


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    server_and_out_options(parser)
    parser.add_argument("--smoke", action="store_true", help="300 records, one repeat")
    args = parser.parse_args(argv)
    if args.smoke:
        args.records, args.repeats = 300, 1
    args.out.mkdir(parents=True, exist_ok=True)
    pg = Postgres(args.pg)
    names = [n for n in CASES if n != "update"]
    try:
        pg.version()
        data = dataset(args.out, args.records, "ndjson")
        samples = [one_repeat(pg, data, args.records, names[i % len(names):] + names[:i % len(names)])
                   for i in range(args.repeats)]
    except BenchError as exc:
        log(f"bench_shaping: {exc}")
        return 1
    median = {name: statistics.median(s[name] for s in samples) for name in CASES}
    print(f"{args.records:,} randomuser records, Postgres, median of {args.repeats}")
    print(f"{'case':<10} {'records/s':>10} {'x uppercase':>12} {'target':>7}  arguments")
    margins = []
    for name, (extra, target) in CASES.items():
        ratio = median[name] / median["uppercase"]
        if target:
            margins.append(ratio / target)
        print(f"{name:<10} {median[name]:>10,.0f} {ratio:>12.2f} {target or '':>7}  {' '.join(extra)}")
    print(f"RATIO {min(margins):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
