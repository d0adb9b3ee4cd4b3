"""Benchmark: what runs leave behind, with ``ingest gc`` and without (issue 30, retention).

    python benchmarks/bench_retention.py                 # 1,000 runs each way; status at 1,000 and 10,000
    python benchmarks/bench_retention.py --smoke         # 10 runs; used by the test suite

On SQLite (the zero-set-up default), in a fresh directory per way: ``--runs`` runs of one
small gzip NDJSON file each (``--records`` records; gzip, so that each run leaves its
decompressed copy in the spool), loaded in this process through the commands' own API (what
``ingest load FILE`` does, without a process start each); each file is moved away once
loaded, as from a landing folder. With gc, ``ingest gc --older-than 0s`` runs after every
``--every`` runs. At each checkpoint (``--at``): the system database's bytes in use (pages
less free pages) and on disk (with its WAL), the spool's bytes, and the app database's
bookkeeping bytes per run (``sources``, ``contents``, ``ingest_runs`` and their indexes,
from SQLite's ``dbstat``).

Then ``ingest status`` (a process; median of ``--repeats``) and the ui's runs list
(its ``Views``, the newest 1,000 runs, in this process) over the way without gc (``--runs``
runs, all in DBOS), and over ``--status-runs`` runs two ways: all in DBOS (those plus copies
of a run's own workflow, older), and the way with gc plus summary rows of collected runs
(copies of theirs, older). The last line is ``RATIO <slowest status with --status-runs /
status with --runs>`` (1.00 or less: no slower).
"""

import argparse
import gzip
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import chdir
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import BenchError, ingest_command, log  # noqa: E402

SYSTEM_DB, APP_DB, SPOOL = "durable_ingest.sqlite", "durable_ingest_app.sqlite", ".ingest-spool"
BOOKKEEPING = ("sources", "contents", "ingest_runs")


def write_input(folder: Path, number: int, records: int) -> Path:
    path = folder / f"export-{number:05d}.ndjson.gz"
    lines = "".join(json.dumps({"id": number * records + i, "name": f"user {number}-{i}",
                                "tags": ["a", "b"]}) + "\n" for i in range(records))
    with gzip.open(path, "wt") as out:
        out.write(lines)
    return path


def load_one(app, path: Path) -> None:
    from durable_ingest.commands import load as runs
    from durable_ingest.steps.inputs import identify_inputs
    from durable_ingest.steps.load_options import LoadOptions

    options = LoadOptions()
    manifest, skipped, scanned = identify_inputs([str(path)], options)
    result = runs.load(app, [str(path)], options, manifest, skipped, scanned)
    if result.tasks + result.errors == 0 and not result.already_loaded:
        raise BenchError(f"{path}: nothing loaded")


def used_bytes(path: Path) -> int:
    """Bytes in use in a SQLite file: its pages less its free ones (gc frees pages that
    later runs reuse; the file itself never shrinks without VACUUM)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        pages, free, size = (db.execute(f"PRAGMA {p}").fetchone()[0]
                             for p in ("page_count", "freelist_count", "page_size"))
    return (pages - free) * size


def on_disk(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.exists() else 0


def bookkeeping_bytes(path: Path) -> int:
    """Bytes of the app database's tables (and their indexes) that grow per run."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        owner = dict(db.execute("SELECT name, tbl_name FROM sqlite_master"))
        return sum(size for name, size in db.execute(
            "SELECT name, sum(pgsize) FROM dbstat GROUP BY name")
            if owner.get(name, name) in BOOKKEEPING)


def measure(work: Path, runs: int) -> dict:
    return {"runs": runs, "system_used": used_bytes(work / SYSTEM_DB),
            "system_disk": on_disk(work / SYSTEM_DB), "spool": folder_bytes(work / SPOOL),
            "app_per_run": bookkeeping_bytes(work / APP_DB) / runs}


def one_way(work: Path, args, collect: bool) -> list:
    """``args.runs`` runs in ``work``; the measures at each checkpoint."""
    from durable_ingest.commands import gc
    from durable_ingest.runtime.launch import App

    inbox, done = work / "inbox", work / "loaded"
    inbox.mkdir()
    done.mkdir()
    rows = []
    with chdir(work), App(None, 2) as app:
        app.start_working()
        for number in range(1, args.runs + 1):
            path = write_input(inbox, number, args.records)
            load_one(app, path)
            shutil.move(path, done / path.name)
            if collect and number % args.every == 0:
                gc.collect(None, 0, dry_run=False)
            if number in args.at:
                rows.append(measure(work, number))
                log(f"  {'gc' if collect else 'no gc'}: {rows[-1]}")
    return rows


def status_seconds(work: Path, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        began = time.perf_counter()
        subprocess.run([*ingest_command(), "status"], cwd=work, check=True,
                       capture_output=True)
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)


def runs_list_seconds(work: Path, repeats: int) -> float:
    """The ui's runs list (its ``Views``, with its lasting client: the newest 1,000 runs),
    as the page asks for it every second."""
    from durable_ingest.ui.server import Views

    with chdir(work):
        views = Views(None)
        try:
            views.runs()
            samples = []
            for _ in range(repeats):
                began = time.perf_counter()
                views.runs()
                samples.append(time.perf_counter() - began)
        finally:
            views.close()
    return statistics.median(samples)


def add_collected_rows(work: Path, total: int) -> int:
    """Summary rows of collected runs up to ``total`` runs in all, copied from the rows
    there, each older than the oldest; how many were added."""
    with sqlite3.connect(work / APP_DB) as db:
        have = db.execute("SELECT count(*) FROM ingest_runs").fetchone()[0]
        template = db.execute("SELECT state, inputs, started_at, finished_at, summary, job, "
                              "urls, redrives FROM ingest_runs ORDER BY started_at LIMIT 1").fetchone()
        state, inputs, started, finished, summary, job, urls, redrives = template
        added = [(f"ingest-{n:020x}", state, inputs, started - n, finished - n, summary, job,
                  urls, redrives) for n in range(1, total - have + 1)]
        db.executemany("INSERT INTO ingest_runs (run_id, state, inputs, started_at, finished_at, "
                       "summary, job, urls, redrives) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", added)
    return len(added)


def add_dbos_runs(work: Path, total: int) -> int:
    """Finished runs in the system database up to ``total`` in all: copies of the oldest
    run's own workflow (its status, input and output rows; not its chunks, which a list of
    finished runs never reads), each older than the one before; how many were added."""
    with sqlite3.connect(work / SYSTEM_DB) as db:
        have, template = db.execute("SELECT count(*), min(workflow_uuid) FROM workflow_status "
                                    "WHERE name = 'ingest_dataset'").fetchone()
        numbers = range(have + 1, total + 1)  # after the copies made before, if any
        for name in ("workflow_status", "workflow_input", "workflow_output"):
            columns = [c[1] for c in db.execute(f"PRAGMA table_info({name})")]
            row = dict(zip(columns, db.execute(
                f"SELECT {', '.join(columns)} FROM {name} WHERE workflow_uuid = ?",
                (template,)).fetchone()))
            copies = [tuple(older(row, f"ingest-{n:020x}", n).get(c) for c in columns)
                      for n in numbers]
            db.executemany(f"INSERT INTO {name} ({', '.join(columns)}) VALUES "
                           f"({', '.join('?' * len(columns))})", copies)
    return len(numbers)


def older(row: dict, workflow_id: str, seconds: int) -> dict:
    moved = {c: row[c] - seconds * 1000 for c in ("created_at", "updated_at", "completed_at",
                                                 "dequeued_at") if row.get(c)}
    return {**row, **moved, "workflow_uuid": workflow_id}


def table(rows: list) -> list:
    lines = [f"{'runs':>6} {'system in use':>14} {'system on disk':>15} {'spool':>10} "
             f"{'app per run':>12}"]
    lines += [f"{r['runs']:>6,} {r['system_used'] / 1e6:>11.2f} MB {r['system_disk'] / 1e6:>12.2f} MB "
              f"{r['spool'] / 1e3:>7.0f} kB {r['app_per_run']:>9.0f} B" for r in rows]
    return lines


def growth(rows: list, key: str) -> float:
    first, last = rows[0], rows[-1]
    return (last[key] - first[key]) / max(last["runs"] - first["runs"], 1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--records", type=int, default=20, help="records per run")
    parser.add_argument("--every", type=int, default=100, help="runs between two gcs")
    parser.add_argument("--at", default="100,500,1000", help="runs at which to measure")
    parser.add_argument("--status-runs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="unused: nothing is kept")
    parser.add_argument("--smoke", action="store_true", help="10 runs, gc every 5, status at 50")
    args = parser.parse_args(argv)
    if args.smoke:
        args.runs, args.every, args.at, args.status_runs, args.repeats = 10, 5, "5,10", 50, 1
    args.at = {int(n) for n in args.at.split(",")}
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("DBOS_SYSTEM_DATABASE_URL", None)
    try:
        with tempfile.TemporaryDirectory() as plain, tempfile.TemporaryDirectory() as collected:
            began = time.time()
            without = one_way(Path(plain), args, collect=False)
            with_gc = one_way(Path(collected), args, collect=True)
            log(f"  {2 * args.runs} runs in {time.time() - began:.0f} s")
            base = status_seconds(Path(plain), args.repeats)
            base_list = runs_list_seconds(Path(plain), args.repeats)
            add_dbos_runs(Path(plain), args.status_runs)
            add_collected_rows(Path(collected), args.status_runs)
            many = {way: (status_seconds(Path(d), args.repeats), runs_list_seconds(Path(d), args.repeats))
                    for way, d in (("all in DBOS", plain), ("collected but the last", collected))}
    except BenchError as exc:
        log(f"bench_retention: {exc}")
        return 1
    print(f"retention, SQLite: {args.runs} runs of {args.records} records (one gzip file each)")
    print("without gc:")
    print("\n".join(table(without)))
    print(f"  growth per run: system {growth(without, 'system_used'):,.0f} B in use, "
          f"spool {growth(without, 'spool'):,.0f} B")
    print(f"with ingest gc --older-than 0s every {args.every} runs:")
    print("\n".join(table(with_gc)))
    print(f"  growth per run: system {growth(with_gc, 'system_used'):,.0f} B in use, "
          f"spool {growth(with_gc, 'spool'):,.0f} B")
    print(f"ingest status: {args.runs:,} runs in DBOS {base * 1000:.0f} ms; the ui's runs list "
          f"{base_list * 1000:.0f} ms")
    for way, (status, listing) in many.items():
        print(f"ingest status: {args.status_runs:,} runs ({way}) {status * 1000:.0f} ms; "
              f"the ui's runs list {listing * 1000:.0f} ms")
    print(f"RATIO {max(s for s, _ in many.values()) / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
