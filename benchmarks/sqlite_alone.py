"""SQLite alone: the rows ``postgres_alone.py`` streams, already encoded (its COPY text file),
inserted into a ``tasks``-shaped table of a new SQLite file by the fastest plain means: one
``executemany`` in one transaction, with ingest's own settings (WAL, synchronous=NORMAL). No
JSON is parsed or written per record. The rate no loader of these records into SQLite can
beat on this machine (the SQLite limit of issue 32).

    python benchmarks/sqlite_alone.py ROWS.copy --db FILE

Prints ``{"records": N, "elapsed_s": S}``; the file must not exist.
"""

import argparse
import json
import sqlite3
import sys
import time

BLOCK_ROWS = 10_000  # rows read and inserted at a time: memory stays flat


def rows_of(path: str):
    """(title, data, source_key) of each COPY text line, its escaped backslashes undone."""
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            title, data, key = line.rstrip("\n").split("\t")
            yield title, data.replace("\\\\", "\\"), key


def load(rows: str, db: str) -> int:
    connection = sqlite3.connect(db, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("CREATE TABLE tasks (id INTEGER PRIMARY KEY, title TEXT NOT NULL, "
                       "data TEXT NOT NULL, source_key TEXT NOT NULL UNIQUE)")
    count, block = 0, []
    connection.execute("BEGIN")
    for row in rows_of(rows):
        block.append(row)
        if len(block) == BLOCK_ROWS:
            count += insert(connection, block)
    count += insert(connection, block)
    connection.execute("COMMIT")
    connection.close()
    return count


def insert(connection, block: list) -> int:
    connection.executemany("INSERT INTO tasks (title, data, source_key) VALUES (?, ?, ?)", block)
    done = len(block)
    block.clear()
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", help="the COPY text postgres_alone.py --encode wrote")
    parser.add_argument("--db", required=True, help="the SQLite file to create")
    args = parser.parse_args()
    began = time.perf_counter()
    count = load(args.rows, args.db)
    print(json.dumps({"records": count, "elapsed_s": round(time.perf_counter() - began, 3)}))


if __name__ == "__main__":
    sys.exit(main())
