"""The reference shape that ``ingest`` avoids: one DBOS workflow per record.

Every record of an NDJSON file is enqueued as its own workflow on a DBOS 3.4 queue with the
default polling interval (1 s); each workflow runs one datasource transaction that
uppercases the record's string values and inserts one row into a table shaped like
``tasks``. This is what a naive durable loader looks like, and why ``ingest`` works in
chunks.

    python benchmarks/per_record.py FILE --url postgresql://.../app --system-url postgresql://.../sys

Prints one JSON line: {"records": N, "elapsed_s": ..., "enqueue_s": ...}, timed from the
first enqueue to the last result (the benchmark also times the whole process).
"""

import argparse
import json
import sys
import time

from dbos import DBOS, SQLAlchemyDatasource
from durable_ingest.transform import uppercase_strings as uppercase
from sqlalchemy import create_engine, text

TABLE = "per_record_tasks"
QUEUE = "per-record"
_ds = None


def insert_record(position: int, line: str, fingerprint: str) -> None:
    _ds.sql_session().execute(
        text(f"INSERT INTO {TABLE} (title, data, source_key) VALUES (:t, CAST(:d AS jsonb), :k)"),
        {"t": f"task {position}", "d": json.dumps(uppercase(json.loads(line))),
         "k": f"{fingerprint}:{position}"},
    )


@DBOS.workflow(name="load_record")
def load_record(position: int, line: str, fingerprint: str) -> None:
    _ds.run_tx_step({"name": "insert_record", "isolation_level": "READ COMMITTED"},
                    insert_record, position, line, fingerprint)


def sqlalchemy_url(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"postgresql+psycopg://{rest}" if scheme in ("postgres", "postgresql") else url


def main() -> None:
    global _ds
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="NDJSON file")
    parser.add_argument("--url", required=True, help="App database (Postgres), existing.")
    parser.add_argument("--system-url", required=True, help="DBOS system database, existing.")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="worker_concurrency of the queue (default: DBOS's, no limit).")
    args = parser.parse_args()

    app_url = sqlalchemy_url(args.url)
    engine = create_engine(app_url)
    with engine.begin() as conn:
        conn.execute(text(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, title text NOT NULL, "
            "data jsonb NOT NULL, source_key text NOT NULL UNIQUE)"))
    engine.dispose()

    DBOS(config={"name": "durable-ingest-per-record", "system_database_url": args.system_url,
                 "application_version": "per-record-bench", "log_level": "ERROR"})
    _ds = SQLAlchemyDatasource.create(app_url)
    DBOS.launch()
    try:
        queue = DBOS.register_queue(QUEUE, worker_concurrency=args.concurrency)  # default polling
        fingerprint = f"per-record-{int(time.time())}"
        began = time.perf_counter()
        with open(args.path, encoding="utf-8") as f:
            handles = [queue.enqueue(load_record, i, line.rstrip("\n"), fingerprint)
                       for i, line in enumerate(l for l in f if l.strip())]
        enqueued = time.perf_counter()
        for handle in handles:
            handle.get_result()
        elapsed = time.perf_counter() - began
    finally:
        DBOS.destroy()
    print(json.dumps({"records": len(handles), "elapsed_s": round(elapsed, 3),
                      "enqueue_s": round(enqueued - began, 3)}))


if __name__ == "__main__":
    sys.exit(main())
