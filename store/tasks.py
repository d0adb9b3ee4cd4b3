"""Transformed records into the demo's ``tasks`` table, keyed by file and position: COPY on
Postgres (the fast path: the JSON is orjson's, so only backslashes need escaping), one
executemany on SQLite."""

from typing import Iterable

from ..contract import source_key, title_of
from ..models import Task

COPY_BATCH_ROWS = 500


def write_tasks(session, run_id: str, rows: Iterable[tuple]) -> int:
    """Bulk-insert ``(fingerprint, position, JSON bytes)`` rows into ``tasks``; returns how many."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        return _copy_tasks(connection, run_id, rows)
    # SQLite has one writer at a time and locks at the first INSERT: transform the whole
    # chunk first, so the lock is held for the inserts only and chunks overlap.
    values = [(title_of(position), data.decode(), source_key(fingerprint, position), run_id, position)
              for fingerprint, position, data in rows]
    if values:
        connection.exec_driver_sql(
            "INSERT INTO tasks (title, data, source_key, run_id, position) VALUES (?, ?, ?, ?, ?)",
            values)
    return len(values)


def _copy_tasks(connection, run_id: str, rows: Iterable[tuple]) -> int:
    """COPY rows in text format; the JSON is orjson's, so only backslashes need escaping.
    Run ids and fingerprints are [a-z0-9-]: nothing to escape there."""
    cursor = connection.connection.driver_connection.cursor()
    suffix = f"\t{run_id}\t".encode()
    written = 0
    batch: list = []
    prefixes: dict = {}
    sql = f"COPY {Task.__tablename__} (title, data, source_key, run_id, position) FROM STDIN"
    with cursor.copy(sql) as copy:
        for fingerprint, position, data in rows:
            key_prefix = prefixes.get(fingerprint)
            if key_prefix is None:
                key_prefix = prefixes[fingerprint] = f"\t{fingerprint}:".encode()
            pos = b"%d" % position
            escaped = data.replace(b"\\", b"\\\\")
            batch.append(b"task " + pos + b"\t" + escaped + key_prefix + pos + suffix + pos + b"\n")
            if len(batch) == COPY_BATCH_ROWS:
                copy.write(b"".join(batch))
                written += len(batch)
                batch.clear()
        if batch:
            copy.write(b"".join(batch))
            written += len(batch)
    return written
