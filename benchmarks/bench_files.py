"""Benchmark: a landing folder of many small files against the same records in one file.

    python benchmarks/bench_files.py                          # 10,000 files x 20 records
    python benchmarks/bench_files.py --files 1000 --per-file 20 --sqlite
    python benchmarks/bench_files.py --rss-files 100000       # adds 100,000 files x 1 record
    python benchmarks/bench_files.py --smoke                  # seconds; used by the test suite

For each database it loads, in fresh databases set up by an untimed tiny load (an existing
installation), first the records as one NDJSON file, then the same records as a folder of
randomuser-style envelope files, then the folder again (nothing new), and prints records/s
of each, the folder's ratio to the single file (measured in the same run) and the rerun's
wall time. The last line is ``RATIO <folder / one file, lowest over the databases>``.
"""

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import (BenchError, Postgres, child_env, dataset, ingest_command,  # noqa: E402
                   log, measure, server_and_out_options)



def split_into_files(source: Path, folder: Path, files: int, per_file: int) -> Path:
    """``files`` envelope files of ``per_file`` records each, in 100 subfolders, made once."""
    done = folder / ".complete"
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    with open(source, "rb") as lines:
        for number in range(files):
            records = [json.loads(lines.readline()) for _ in range(per_file)]
            sub = folder / f"page-{number % 100:02d}"
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"page-{number:06d}.json").write_text(json.dumps(
                {"results": records, "info": {"page": number, "results": per_file}}))
    done.write_text("")
    return folder


def prepare(env: dict, cwd: Path) -> None:
    """An untimed 20-record load creates the schemas; the timed runs then find them."""
    tiny = cwd / "tiny.json"
    tiny.write_text(json.dumps({"results": [{"id": i} for i in range(20)]}))
    measure([*ingest_command(), "load", str(tiny), "--json"], env=env, cwd=cwd)


def timed_load(path: Path, env: dict, cwd: Path, expected: int) -> tuple:
    run = measure([*ingest_command(), "load", str(path), "--json", "--no-progress"], env=env, cwd=cwd)
    result = run.result()
    if result["tasks"] + result["errors"] != expected and not result["already_loaded"]:
        raise BenchError(f"{path}: {result['tasks']} + {result['errors']} rows, expected {expected}")
    return run, result


def one_database(name: str, env: dict, work: Path, single: Path, folder: Path, records: int) -> dict:
    prepare(env, work)
    one, _ = timed_load(single, env, work, records)
    many, result = timed_load(folder, env, work, records)
    again, again_result = timed_load(folder, env, work, records)
    row = {"database": name, "one_file_rps": records / one.seconds,
           "folder_rps": records / many.seconds, "rerun_s": again.seconds,
           "folder_rss_mb": many.rss_mb, "files_loaded": result["files_loaded"],
           "rerun_already": again_result["files_already_loaded"]}
    row["ratio"] = row["folder_rps"] / row["one_file_rps"]
    log(f"  {name}: one file {row['one_file_rps']:,.0f} rec/s | folder {row['folder_rps']:,.0f} "
        f"rec/s ({row['ratio']:.2f}x) | rerun {row['rerun_s']:.2f} s")
    return row


def postgres_env(pg: Postgres, names: list) -> dict:
    app, system = names
    return child_env(DATABASE_URL=pg.url(app), DBOS_SYSTEM_DATABASE_URL=pg.url(system))


def rss_run(pg: Postgres, out: Path, files: int) -> dict:
    folder = out / f"one-record-files-{files}"
    if not (folder / ".complete").exists():
        shutil.rmtree(folder, ignore_errors=True)
        for number in range(files):
            sub = folder / f"d{number % 1000:03d}"
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"r{number:06d}.ndjson").write_text(json.dumps({"id": number}) + "\n")
        (folder / ".complete").write_text("")
    with pg.fresh("app", "sys") as names, tempfile.TemporaryDirectory() as work:
        run, result = timed_load(folder, postgres_env(pg, names), Path(work), files)
    log(f"  {files:,} one-record files: {run.seconds:.1f} s, peak RSS {run.rss_mb:.0f} MB")
    return {"files": files, "seconds": run.seconds, "rss_mb": run.rss_mb, "tasks": result["tasks"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--per-file", type=int, default=20)
    parser.add_argument("--sqlite", action="store_true", help="also on the SQLite default")
    parser.add_argument("--rss-files", type=int, default=0, help="one load of N one-record files")
    server_and_out_options(parser)
    parser.add_argument("--smoke", action="store_true", help="50 files x 4 records, SQLite too")
    args = parser.parse_args(argv)
    if args.smoke:
        args.files, args.per_file, args.sqlite = 50, 4, True
    records = args.files * args.per_file
    args.out.mkdir(parents=True, exist_ok=True)
    pg = Postgres(args.pg)
    try:
        pg.version()
        single = dataset(args.out, records, "ndjson")
        folder = split_into_files(single, args.out / f"landing-{args.files}x{args.per_file}",
                                  args.files, args.per_file)
        rows = []
        with pg.fresh("app", "sys") as names, tempfile.TemporaryDirectory() as work:
            rows.append(one_database("postgres", postgres_env(pg, names), Path(work), single,
                                     folder, records))
        if args.sqlite:
            with tempfile.TemporaryDirectory() as work:
                rows.append(one_database("sqlite", child_env(), Path(work), single, folder, records))
        rss = rss_run(pg, args.out, args.rss_files) if args.rss_files else None
    except BenchError as exc:
        log(f"bench_files: {exc}")
        return 1
    print(f"{args.files:,} files x {args.per_file} records ({records:,} records)")
    print(f"{'database':<10} {'one file rec/s':>15} {'folder rec/s':>13} {'ratio':>6} {'rerun s':>8} {'folder RSS MB':>14}")
    for r in rows:
        print(f"{r['database']:<10} {r['one_file_rps']:>15,.0f} {r['folder_rps']:>13,.0f} "
              f"{r['ratio']:>6.2f} {r['rerun_s']:>8.2f} {r['folder_rss_mb']:>14.0f}")
    if rss:
        print(f"{rss['files']:,} one-record files (Postgres): {rss['seconds']:.1f} s, "
              f"peak RSS {rss['rss_mb']:.0f} MB, {rss['tasks']:,} tasks")
    print(f"RATIO {min(r['ratio'] for r in rows):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
