"""Micro-benchmark: durable_ingest.codec against orjson, in one process, on the same data.

    python benchmarks/codec_micro.py                       # 100,000 randomuser NDJSON lines
    python benchmarks/codec_micro.py --file /tmp/u.ndjson --runs 5
    python benchmarks/codec_micro.py --smoke               # 2,000 lines, 1 run

The file (generated with ``ingest generate --count N --seed 7 --format ndjson`` when it is
missing) is read into memory; each measure is the whole list of lines or records, and each
pair runs alternately (orjson first on even runs), so drift in a shared machine hits both.
It prints the median wall time and CPU time of each, and the ratio codec/orjson:

- ``loads``: ``codec.loads_checked`` (what a reader calls) vs ``orjson.loads``;
- ``dumps``: ``codec.dumps`` vs ``orjson.dumps`` of the records orjson read, and
  ``codec.dumps(nan_check=False)`` (for values from ``loads``: no search for NaN);
- the same two on the lines with 3 more fields holding floats of 17 significant digits,
  written as Python writes them (shortest round trip: read as floats), and on lines whose
  3 fields hold 20 digits (more than a double: read as Decimals).
"""

import argparse
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson

from durable_ingest import codec


def lines_of(path: Path, count: int) -> list:
    if not path.exists():
        subprocess.run([sys.executable, "-m", "durable_ingest.cli", "generate", "--count", str(count),
                        "--seed", "7", "--format", "ndjson", "-o", str(path)], check=True)
    with open(path, "rb") as f:
        return [line for line, _ in zip(f.read().splitlines(), range(count)) if line.strip()]


def with_floats(lines: list, digits: int) -> list:
    """Each line with 3 more numbers: ``digits`` significant digits each. 17 are written as
    repr writes a float (random floats whose shortest text has 17 digits); more are not a
    double's text."""
    rnd = random.Random(7)
    out = []
    for line in lines:
        numbers = [_number(rnd, digits) for _ in range(3)]
        extra = b',"lat":%s,"lng":%s,"score":%s}' % tuple(n.encode() for n in numbers)
        out.append(line.rstrip()[:-1] + extra)
    return out


def _number(rnd: random.Random, digits: int) -> str:
    if digits == 17:
        while True:
            text = repr(rnd.uniform(-180, 180))
            if len(text.lstrip("-").replace(".", "").lstrip("0")) == 17:
                return text
    whole = str(rnd.randint(1, 179))
    return whole + "." + "".join(rnd.choices("0123456789", k=digits - len(whole)))


def unchecked(value) -> bytes:
    return codec.dumps(value, nan_check=False)


def timed(function, items) -> tuple:
    """(wall seconds, CPU seconds) of ``function`` over every item."""
    wall, cpu = time.perf_counter(), time.process_time()
    for item in items:
        function(item)
    return time.perf_counter() - wall, time.process_time() - cpu


def compare(name: str, ours, theirs, items: list, runs: int) -> None:
    """Run both ``runs`` times, alternately; print the medians and the ratio ours/theirs."""
    results = {"codec": [], "orjson": []}
    for run in range(runs):
        pair = [("codec", ours), ("orjson", theirs)]
        for side, function in (pair if run % 2 else pair[::-1]):
            results[side].append(timed(function, items))
    medians = {side: (statistics.median(w for w, _ in got), statistics.median(c for _, c in got))
               for side, got in results.items()}
    (ow, oc), (tw, tc) = medians["codec"], medians["orjson"]
    print(f"{name:<46} codec {ow:6.3f} s (cpu {oc:6.3f})   orjson {tw:6.3f} s (cpu {tc:6.3f})"
          f"   ratio wall {ow / tw:5.2f}  cpu {oc / tc:5.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=Path("/tmp/u.ndjson"))
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    count, runs = (2000, 1) if args.smoke else (args.count, args.runs)
    lines = lines_of(args.file, count)
    print(f"{len(lines)} lines of {args.file}, median of {runs}")
    for label, data in (("randomuser", lines), ("+3 floats, 17 digits", with_floats(lines, 17)),
                        ("+3 decimals, 20 digits", with_floats(lines, 20))):
        compare(f"loads   {label}", codec.loads_checked, orjson.loads, data, runs)
        records = [orjson.loads(line) for line in data]
        values = [codec.loads(line) for line in data]
        compare(f"dumps   {label}", codec.dumps, orjson.dumps, records, runs)
        compare(f"dumps   {label}, nan_check=False", unchecked, orjson.dumps, records, runs)
        if values != records:  # Decimals: orjson can't write them, so dumps has no pair
            wall, cpu = timed(codec.dumps, values)
            print(f"{'dumps   ' + label + ' (as read)':<46} codec {wall:6.3f} s (cpu {cpu:6.3f})")


if __name__ == "__main__":
    main()
