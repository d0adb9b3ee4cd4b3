"""Postgres alone: the same rows as ``baseline_copy.py`` loads, already encoded as COPY text,
streamed into the same table in 1 MiB blocks: no Python work per record. The rate no loader
of these records can beat on this server (the limit of issue 32).

    python benchmarks/postgres_alone.py --encode DATASET --shape ndjson --out ROWS.copy
    python benchmarks/postgres_alone.py ROWS.copy --url postgresql://.../db

The first writes the COPY text once (untimed, kept beside the dataset); the second loads it
in one transaction and prints ``{"records": N, "elapsed_s": S}``.
"""

import argparse
import json
import sys
import time

import psycopg

from baseline_copy import TABLE, fingerprint, records, uppercase

BLOCK_BYTES = 1 << 20


def encode(path: str, shape: str, out: str) -> int:
    """The rows ``baseline_copy`` writes, as COPY text lines (title, data, source_key)."""
    fp, count = fingerprint(path), 0
    with open(out, "w", encoding="utf-8") as rows:
        for i, record in enumerate(records(path, shape)):
            # json.dumps escapes control characters: only its backslashes need COPY's escape.
            data = json.dumps(uppercase(record)).replace("\\", "\\\\")
            rows.write(f"task {i}\t{data}\t{fp}:{i}\n")
            count += 1
    return count


def load(rows: str, url: str) -> int:
    with psycopg.connect(url) as conn:  # one transaction, committed when the block ends
        conn.execute(f"CREATE TABLE {TABLE} (id bigserial PRIMARY KEY, title text NOT NULL, "
                     "data jsonb NOT NULL, source_key text NOT NULL UNIQUE)")
        count = 0
        with conn.cursor().copy(f"COPY {TABLE} (title, data, source_key) FROM STDIN") as copy, \
                open(rows, "rb") as f:
            while block := f.read(BLOCK_BYTES):
                copy.write(block)
                count += block.count(b"\n")
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="the COPY text to load (or, with --encode, the dataset)")
    parser.add_argument("--encode", action="store_true", help="write the COPY text of PATH")
    parser.add_argument("--shape", choices=("ndjson", "array", "envelope"))
    parser.add_argument("--out", help="with --encode: where the COPY text goes")
    parser.add_argument("--url", help="Postgres database to load into")
    args = parser.parse_args()
    if args.encode:
        print(json.dumps({"records": encode(args.path, args.shape, args.out)}))
        return
    began = time.perf_counter()
    count = load(args.path, args.url)
    print(json.dumps({"records": count, "elapsed_s": round(time.perf_counter() - began, 3)}))


if __name__ == "__main__":
    sys.exit(main())
