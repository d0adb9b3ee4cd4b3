"""The baseline a load is measured against: the simplest fast loader one would write by hand.

One process, one transaction, no durability machinery:

- read the file record by record: NDJSON line by line; a JSON document (bare array or
  ``{"results": [...]}`` envelope) parsed whole with ``json.load``;
- stdlib ``json`` only; uppercase every string value recursively, keys unchanged (the same
  transform as ``ingest``);
- ``COPY ... FROM STDIN`` with psycopg's ``cursor.copy()`` and ``write_row`` of
  (``"task <i>"``, ``json.dumps(data)``, ``"<fp>:<i>"``) into a fresh table shaped like
  ``tasks`` (id bigserial pk, title text, data jsonb, source_key text unique).

``<fp>`` is a fingerprint of the file's bytes (sha256, one streaming pass), as ``ingest``
also fingerprints what it loads.

    python benchmarks/baseline_copy.py FILE --shape ndjson|array|envelope --url postgresql://...

Prints one JSON line: {"records": N, "elapsed_s": ...} (elapsed inside the process; the
benchmark times the whole process from start to exit).
"""

import argparse
import hashlib
import json
import sys
import time

import psycopg

TABLE = "baseline_tasks"


def uppercase(value):
    """Every string value uppercased, recursively; keys and other values unchanged."""
    if isinstance(value, str):
        return value.upper()
    if isinstance(value, dict):
        return {k: uppercase(v) for k, v in value.items()}
    if isinstance(value, list):
        return [uppercase(v) for v in value]
    return value


def fingerprint(path: str) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            hasher.update(block)
    return hasher.hexdigest()[:20]


def records(path: str, shape: str):
    """Yield the file's records one by one."""
    if shape == "ndjson":
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)
        return
    with open(path, encoding="utf-8") as f:
        document = json.load(f)
    yield from (document["results"] if shape == "envelope" else document)


def load(path: str, shape: str, url: str) -> int:
    fp = fingerprint(path)
    with psycopg.connect(url) as conn:  # one transaction, committed when the block ends
        conn.execute(
            f"CREATE TABLE {TABLE} (id bigserial PRIMARY KEY, title text NOT NULL, "
            "data jsonb NOT NULL, source_key text NOT NULL UNIQUE)"
        )
        count = 0
        with conn.cursor().copy(f"COPY {TABLE} (title, data, source_key) FROM STDIN") as copy:
            for i, record in enumerate(records(path, shape)):
                copy.write_row((f"task {i}", json.dumps(uppercase(record)), f"{fp}:{i}"))
                count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--shape", choices=("ndjson", "array", "envelope"), required=True)
    parser.add_argument("--url", required=True, help="Postgres database to load into.")
    args = parser.parse_args()
    began = time.perf_counter()
    count = load(args.path, args.shape, args.url)
    print(json.dumps({"records": count, "elapsed_s": round(time.perf_counter() - began, 3)}))


if __name__ == "__main__":
    sys.exit(main())
