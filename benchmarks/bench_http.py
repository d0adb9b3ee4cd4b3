"""Benchmark: loading pages of a JSON API against loading the same pages from local files.

    python benchmarks/bench_http.py                   # 100 pages x 1,000 records, 3 repeats
    python benchmarks/bench_http.py --pages 20 --records 500 --repeats 1
    python benchmarks/bench_http.py --smoke           # seconds; used by the test suite

A local server (``page_server.py``, a process of its own) serves randomuser-shaped pages
that it writes to a folder first. Then, into fresh Postgres databases each time (set up by
an untimed tiny load, as an existing installation is), alternately:

- files: ``ingest load FOLDER`` of those very page files;
- http: ``ingest load 'http://127.0.0.1:PORT/users?page={page}' --pages 1-``.

The report gives the median records/s of both and their ratio (http / files), then two runs
that check rather than time: a server answering 10 % of requests with 500 or 429 and
resetting 2 % of connections (every record must land exactly once, and a rerun must store
nothing), and a load of ~10 MB pages, for peak RSS. The last line is ``RATIO <http / files>``.
"""

import argparse
import statistics
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import (HERE, BenchError, Postgres, ingest_command, log,  # noqa: E402
                   measure, server_and_out_options, serving)
from bench_files import postgres_env, prepare  # noqa: E402

RSS_PAGE_RECORDS = 9_000  # ~10 MB of randomuser records per page
RSS_LIMIT_MB = 250


@contextmanager
def page_server(folder: Path, pages: int, records: int, *faults: str):
    """``page_server.py`` in a process of its own; yields its page URL template."""
    folder.mkdir(parents=True, exist_ok=True)
    with serving([sys.executable, str(HERE / "page_server.py"), "--pages", str(pages),
                  "--records", str(records), "--dir", str(folder), *faults]) as url:
        yield url


def one_load(pg: Postgres, source: list, expected: int) -> tuple:
    """A timed ``ingest load`` of ``source`` into fresh databases: (Run, its JSON result)."""
    with pg.fresh("app", "sys") as names, tempfile.TemporaryDirectory() as work:
        env = postgres_env(pg, names)
        prepare(env, Path(work))
        run = measure([*ingest_command(), "load", *source, "--json", "--no-progress"],
                      env=env, cwd=Path(work))
        result = run.result()
        if result["tasks"] != expected:
            raise BenchError(f"{' '.join(source)}: {result['tasks']} tasks, expected {expected}")
        return run, result


def throughput(pg: Postgres, folder: Path, url: str, records: int, repeats: int) -> dict:
    files, http = [], []
    for number in range(repeats):
        run, _ = one_load(pg, [str(folder)], records)
        files.append(records / run.seconds)
        run, result = one_load(pg, [url, "--pages", "1-"], records)
        http.append(records / run.seconds)
        log(f"  repeat {number + 1}: files {files[-1]:,.0f} rec/s | http {http[-1]:,.0f} rec/s "
            f"({result['pages']['fetched']} pages)")
    row = {"files_rps": statistics.median(files), "http_rps": statistics.median(http)}
    row["ratio"] = row["http_rps"] / row["files_rps"]
    return row


def chaos(pg: Postgres, out: Path, pages: int, records: int) -> dict:
    """10 % 500/429 and 2 % resets: every record once, then a rerun that stores nothing."""
    expected = pages * records
    with page_server(out / f"chaos-{pages}x{records}", pages, records, "--fail-rate", "0.1",
                     "--reset-rate", "0.02", "--seed", "11") as url, \
            pg.fresh("app", "sys") as names, tempfile.TemporaryDirectory() as work:
        env = postgres_env(pg, names)
        command = [*ingest_command(), "load", url, "--pages", "1-", "--http-attempts", "8",
                   "--json", "--no-progress"]
        first = measure(command, env=env, cwd=Path(work)).result()
        again = measure(command, env=env, cwd=Path(work)).result()
        app = names[0]
        rows = pg.scalar(app, "SELECT count(*) FROM tasks")
        distinct = pg.scalar(app, "SELECT count(DISTINCT source_key) FROM tasks")
        errors = pg.scalar(app, "SELECT count(*) FROM errors")
    exact = rows == distinct == expected and errors == 0 and again["tasks"] == 0
    log(f"  chaos: {rows:,} rows ({distinct:,} distinct), {errors} errors, "
        f"{first['pages']['http_retries']} http retries; rerun stored {again['tasks']} "
        f"({again['pages']['already']} pages already loaded)")
    if not exact:
        raise BenchError(f"chaos run not exact: {rows} rows, {distinct} distinct, {errors} errors, "
                         f"rerun {again['tasks']} tasks; expected {expected} once")
    return {"rows": rows, "http_retries": first["pages"]["http_retries"],
            "rerun_tasks": again["tasks"]}


def big_pages(pg: Postgres, out: Path, pages: int, records: int) -> dict:
    folder = out / f"big-{pages}x{records}"
    with page_server(folder, pages, records) as url:
        size_mb = sum(p.stat().st_size for p in folder.glob("page-*.json")) / pages / 2**20
        run, _ = one_load(pg, [url, "--pages", f"1-{pages}"], pages * records)
    log(f"  {pages} pages of {size_mb:.1f} MB: peak RSS {run.rss_mb:.0f} MB")
    return {"page_mb": size_mb, "rss_mb": run.rss_mb}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--records", type=int, default=1000, help="records per page")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rss-pages", type=int, default=10, help="pages of ~10 MB (0: skip)")
    server_and_out_options(parser)
    parser.add_argument("--smoke", action="store_true", help="5 pages x 40 records")
    args = parser.parse_args(argv)
    rss_records = RSS_PAGE_RECORDS
    if args.smoke:
        args.pages, args.records, args.repeats, args.rss_pages, rss_records = 5, 40, 1, 2, 200
    records = args.pages * args.records
    pg = Postgres(args.pg)
    try:
        pg.version()
        folder = args.out / f"pages-{args.pages}x{args.records}"
        with page_server(folder, args.pages, args.records) as url:
            row = throughput(pg, folder, url, records, args.repeats)
        mess = chaos(pg, args.out, args.pages, args.records)
        big = big_pages(pg, args.out, args.rss_pages, rss_records) if args.rss_pages else None
    except BenchError as exc:
        log(f"bench_http: {exc}")
        return 1
    print(f"{args.pages} pages x {args.records:,} records ({records:,} records), Postgres, "
          f"median of {args.repeats}")
    print(f"{'files rec/s':>12} {'http rec/s':>11} {'ratio':>6}  target >= 0.70")
    print(f"{row['files_rps']:>12,.0f} {row['http_rps']:>11,.0f} {row['ratio']:>6.2f}")
    print(f"chaos (10% 500/429, 2% resets): {mess['rows']:,} rows, each once; "
          f"{mess['http_retries']} http retries; rerun stored {mess['rerun_tasks']}")
    if big:
        verdict = "ok" if big["rss_mb"] <= RSS_LIMIT_MB else "OVER"
        print(f"{args.rss_pages} pages of {big['page_mb']:.1f} MB: peak RSS {big['rss_mb']:.0f} MB "
              f"(limit {RSS_LIMIT_MB}: {verdict})")
    print(f"RATIO {row['ratio']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
