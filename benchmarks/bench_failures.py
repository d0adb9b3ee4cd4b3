"""Benchmark: what a load costs when every record fails (a transform whose API is down:
``--flaky-rate 1.0``) against the same file loading cleanly, in one run.

    python benchmarks/bench_failures.py --records 20000 --repeats 2
    python benchmarks/bench_failures.py --ingest "/tmp/old/bin/python -m durable_ingest.cli"
    python benchmarks/bench_failures.py --smoke                       # seconds; for the tests

Each load runs on the defaults (SQLite, ``--max-attempts 3``, ``--retry-interval 0.1``,
``--backoff 2``) in a fresh folder, clean and failing alternately (the failing one first on
every other repeat, so drift in the machine hits both). For each it prints the wall time,
the peak RSS, the DBOS system database's size (all of it is the load's growth: the folder
starts empty) and the app database's; then the medians, and the issue-34 targets: peak RSS
of the failing load <= 250 MB, its system database <= 2x the clean one's, its time <= 1.5x
the clean one's plus the retry waits (0.1 s + 0.2 s). The last line is ``RATIO <failing
time / (clean time + waits)>``.
"""

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import GNU_TIME, RSS_WRAPPER, BenchError, child_env, dataset, log  # noqa: E402

HERE = Path(__file__).resolve().parent
RETRY_WAITS_SEC = 0.1 + 0.2  # the two waits of --max-attempts 3 at the default interval, backoff
RSS_LIMIT_MB = 250


@dataclass
class Sample:
    seconds: float
    rss_mb: float
    system_mb: float
    app_mb: float
    summary: str


def folder_mb(folder: Path, prefix: str) -> float:
    """Bytes of a SQLite database and its -wal/-shm files, in MB."""
    return sum(p.stat().st_size for p in folder.iterdir()
               if p.name.startswith(prefix) and not p.name.startswith(prefix + "_app")) / 1e6


def load_once(ingest: list, data: Path, failing: bool, scratch: Path) -> Sample:
    """One load of ``data`` in a fresh folder: its time, RSS and databases."""
    cwd = Path(tempfile.mkdtemp(dir=scratch))
    command = [*ingest, "load", str(data), "--no-progress"]
    if failing:
        command += ["--flaky-rate", "1.0"]
    rss_file = cwd / "rss"
    wrapped = ([GNU_TIME, "-f", "%M", "-o", str(rss_file), *command] if os.access(GNU_TIME, os.X_OK)
               else [sys.executable, "-c", RSS_WRAPPER, str(rss_file), *command])
    began = time.perf_counter()
    proc = subprocess.run(wrapped, env=child_env(), cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if proc.returncode not in ((4,) if failing else (0,)):  # all failing: exit 4, by design
        raise BenchError(f"`{shlex.join(command)}` exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    summary = proc.stdout.strip().splitlines()[-1].strip()
    rss_mb = int(rss_file.read_text().split()[-1]) / 1024
    return Sample(seconds, rss_mb, folder_mb(cwd, "durable_ingest.sqlite"),
                  folder_mb(cwd, "durable_ingest_app.sqlite"), summary)


def report(name: str, samples: list) -> Sample:
    middle = Sample(statistics.median(s.seconds for s in samples),
                    statistics.median(s.rss_mb for s in samples),
                    statistics.median(s.system_mb for s in samples),
                    statistics.median(s.app_mb for s in samples), samples[-1].summary)
    print(f"{name:<9} {middle.seconds:7.2f} s  {middle.rss_mb:6.0f} MB peak RSS  "
          f"system db {middle.system_mb:8.2f} MB  app db {middle.app_mb:7.2f} MB  | {middle.summary}")
    return middle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--ingest", default=None,
                        help="the ingest command to measure (default: this environment's)")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--smoke", action="store_true", help="300 records, once")
    args = parser.parse_args()
    if args.smoke:
        args.records, args.repeats = 300, 1
    ingest = shlex.split(args.ingest) if args.ingest else [str(Path(sys.executable).parent / "ingest")]
    args.out.mkdir(parents=True, exist_ok=True)
    data = dataset(args.out, args.records, "envelope")
    print(f"{args.records:,} records ({data.stat().st_size / 1e6:.1f} MB), {args.repeats} repeats, "
          f"SQLite, defaults; failing: --flaky-rate 1.0")
    clean, failing = [], []
    with tempfile.TemporaryDirectory(dir=args.out) as scratch:
        for repeat in range(args.repeats):
            for fails in ((False, True) if repeat % 2 == 0 else (True, False)):
                sample = load_once(ingest, data, fails, Path(scratch))
                (failing if fails else clean).append(sample)
                log(f"  {'failing' if fails else 'clean'}: {sample.seconds:.2f} s, "
                    f"{sample.rss_mb:.0f} MB, system db {sample.system_mb:.2f} MB")
    a, b = report("clean", clean), report("failing", failing)
    budget = 1.5 * a.seconds + RETRY_WAITS_SEC
    print(f"targets: peak RSS {b.rss_mb:.0f} MB <= {RSS_LIMIT_MB} MB: "
          f"{'ok' if b.rss_mb <= RSS_LIMIT_MB else 'MISSED'}; system db x{b.system_mb / a.system_mb:.2f} "
          f"<= 2: {'ok' if b.system_mb <= 2 * a.system_mb else 'MISSED'}; time {b.seconds:.2f} s "
          f"<= 1.5 x {a.seconds:.2f} s + {RETRY_WAITS_SEC:.1f} s = {budget:.2f} s: "
          f"{'ok' if b.seconds <= budget else 'MISSED'}")
    print(f"RATIO {b.seconds / (a.seconds + RETRY_WAITS_SEC):.3f}")


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        sys.exit(f"bench_failures: {exc}")
