"""Benchmark: a chain of API pages that lead to each other by ``Link`` headers, against the
same records in one local file.

    python benchmarks/bench_chain.py                  # 100 pages x 1,000 records, 3 repeats
    python benchmarks/bench_chain.py --pages 20 --records 500 --repeats 1
    python benchmarks/bench_chain.py --smoke          # seconds

A local server (``chain_server.py``, a process of its own) serves randomuser-shaped pages as
bare arrays at ``/link?page=N``, each with ``Link: </link?page=N+1>; rel="next"`` but the
last. The same records, in the same order, are written to one JSON array file. Then, into
fresh Postgres databases each time (set up by an untimed tiny load), alternately:

- file: ``ingest load FILE``;
- chain: ``ingest load http://127.0.0.1:PORT/link`` (a page per DBOS step, in sequence).

The report gives the median records/s of both and their ratio (chain / file); the last line
is ``RATIO <chain / file>``.
"""

import argparse
import statistics
import sys
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import (HERE, BenchError, Postgres, log, server_and_out_options,  # noqa: E402
                   serving)
from bench_http import one_load  # noqa: E402

TARGET = 0.75


@contextmanager
def chain_server(folder: Path, pages: int, records: int):
    """``chain_server.py`` in a process of its own; yields its base URL."""
    folder.mkdir(parents=True, exist_ok=True)
    with serving([sys.executable, str(HERE / "chain_server.py"), "--pages", str(pages),
                  "--records", str(records), "--dir", str(folder)]) as url:
        yield url


def one_file(folder: Path, pages: int) -> Path:
    """The server's records, in page order, as one JSON array."""
    path = folder / "all-pages.json"
    with open(path, "wb") as out:
        out.write(b"[")
        for page in range(1, pages + 1):
            out.write((b", " if page > 1 else b"") + (folder / f"records-{page:06d}.part").read_bytes())
        out.write(b"]")
    return path


def throughput(pg: Postgres, path: Path, url: str, records: int, repeats: int) -> dict:
    file, chain = [], []
    for number in range(repeats):
        run, _ = one_load(pg, [str(path)], records)
        file.append(records / run.seconds)
        run, result = one_load(pg, [url], records)
        chain.append(records / run.seconds)
        log(f"  repeat {number + 1}: file {file[-1]:,.0f} rec/s | chain {chain[-1]:,.0f} rec/s "
            f"({result['pages']['fetched']} pages)")
    row = {"file_rps": statistics.median(file), "chain_rps": statistics.median(chain),
           "file_all": file, "chain_all": chain}
    row["ratio"] = row["chain_rps"] / row["file_rps"]
    return row


def measured(args, records: int) -> dict:
    pg = Postgres(args.pg)
    pg.version()
    folder = args.out / f"chain-{args.pages}x{args.records}"
    with chain_server(folder, args.pages, args.records) as url:
        return throughput(pg, one_file(folder, args.pages), f"{url}/link", records, args.repeats)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--records", type=int, default=1000, help="records per page")
    parser.add_argument("--repeats", type=int, default=3)
    server_and_out_options(parser)
    parser.add_argument("--smoke", action="store_true", help="5 pages x 40 records")
    args = parser.parse_args(argv)
    if args.smoke:
        args.pages, args.records, args.repeats = 5, 40, 1
    records = args.pages * args.records
    try:
        row = measured(args, records)
    except BenchError as exc:
        log(f"bench_chain: {exc}")
        return 1
    report(f"{args.pages} pages x {args.records:,} records ({records:,} records), Postgres, "
           f"median of {args.repeats}", row)
    return 0


def report(title: str, row: dict) -> None:
    print(title)
    print(f"{'file rec/s':>11} {'chain rec/s':>12} {'ratio':>6}  target >= {TARGET}")
    print(f"{row['file_rps']:>11,.0f} {row['chain_rps']:>12,.0f} {row['ratio']:>6.2f}")
    print("every repeat: file " + " / ".join(f"{r:,.0f}" for r in row["file_all"])
          + ", chain " + " / ".join(f"{r:,.0f}" for r in row["chain_all"]))
    print(f"RATIO {row['ratio']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
