"""``ingest retry``: a run's unresolved ``errors`` rows through the run's transform once more,
a page per transaction (``redrive_page``): successes go to ``tasks`` and their error rows are
marked resolved (kept for audit); failures stay, with the new attempt recorded. A row's record
is read again from its text as it was in the input (``errors.source``, exact), else (older
rows) from the copy in its message."""

from dataclasses import replace
from typing import Optional

import orjson
from sqlalchemy import func, select, update

from ..store import datasource
from .. import codec
from .chunks import shaped_row, shaper_of, write_rows
from ..contract import Job
from ..errors import PERMANENT_TYPES
from ..models import Error
from ..store.counting import count_on_commit
from ..store.keyed import UPDATE, key_holders
from ..tables.write import key_holders as table_key_holders


def redrive_page(run_id: str, after_id: int, faults: dict, page_size: int,
                 job: Optional[Job] = None) -> dict:
    session = datasource.session()
    # FOR UPDATE: a concurrent redrive waits, then no longer sees the rows resolved here.
    rows = session.execute(
        select(Error.id, Error.position, Error.source_key, Error.message, Error.source)
        .where(Error.run_id == run_id, Error.resolved_at.is_(None), Error.id > after_id)
        .order_by(Error.id).limit(page_size).with_for_update()
    ).all()
    if not rows:
        return {"last_id": None}
    retriable = [(row, message, record) for row, message, record in map(_with_record, rows)
                 if is_retriable(message, record)]
    job = replace(job or Job(run_id, 1, 1, 0, 1), faults=faults)
    rescued, keyed, resolved, failed = attempt_again(job, retriable)
    tasks = write_rows(session, job, iter(rescued))["tasks"]
    tasks += redrive_keyed(session, job, keyed, resolved, failed)
    if resolved:
        session.execute(update(Error).where(Error.id.in_(resolved)).values(resolved_at=func.now()))
    for change in failed:
        session.execute(update(Error).where(Error.id == change["id"]).values(message=change["message"]))
    count_on_commit(session, tasks, 0, retries=len(retriable), redriven=True)
    return {"last_id": rows[-1].id, "retried": len(retriable), "tasks": tasks,
            "errors": len(failed), "skipped": len(resolved) - tasks}


def attempt_again(job: Job, retriable: list) -> tuple:
    """One more attempt at each retriable row: (rescued rows, keyed rescues, ids resolved,
    rows failing again)."""
    shaper = shaper_of(job)
    rescued, keyed, resolved, failed = [], [], [], []
    for row, message, record in retriable:
        number = int(message.get("attempts") or 0) + 1
        key = message.get("key")
        fingerprint = message.get("fingerprint") or row.source_key.split(":", 1)[0]
        try:
            shaped = shaped_row(shaper, job, fingerprint, key, message.get("ordinal") or 0,
                                row.position, record, number)
        except Exception as exc:
            failed.append(failed_again(row.id, message, number, type(exc).__name__, str(exc)))
            continue
        if shaped is None:
            resolved.append(row.id)  # the transform skips it now: resolved, no row
        elif key is not None:
            keyed.append((row, message, number, shaped))
        else:
            resolved.append(row.id)
            rescued.append(shaped)
    return rescued, keyed, resolved, failed


def redrive_keyed(session, job: Job, keyed: list, resolved: list, failed: list) -> int:
    """Write rescued records that have their own keys, by the run's ``--on-conflict``; returns
    how many are now the stored row of their key. The others are resolved as skipped (the
    rule kept another record), except an update that another run's row holds off: a retry
    never replaces another run's row, so that error stays, saying how to apply it."""
    if not keyed:
        return 0
    write_rows(session, job, [k[3] for k in keyed], redrive=True)
    holders = holders_of(session, job, [k[3][0] for k in keyed])
    written = 0
    for row, message, number, (key, ordinal, position, *_) in keyed:
        holder = holders.get(key)
        if holder == (job.run_id, ordinal, position):
            written += 1
            resolved.append(row.id)
        elif job.on_conflict == UPDATE and holder and holder[0] != job.run_id:
            failed.append(failed_again(
                row.id, {**message, "permanent": True}, number, "KeyHeldByAnotherRun",
                f"key {key} holds a record of run {holder[0]}; ingest retry never replaces another "
                f"run's row: load this record again with --key {job.key} --on-conflict update"))
        else:
            resolved.append(row.id)
    return written


def holders_of(session, job: Job, keys: list) -> dict:
    """key -> (run, ordinal, position) of the record the run's table holds for it."""
    if not job.table:
        return key_holders(session, keys)
    from ..tables.catalog import read_schema

    connection = session.connection()  # the key's column as the table was created with it
    return table_key_holders(connection, job.table, read_schema(connection, job.table).key_column,
                             keys)


def failed_again(error_id: int, message: dict, number: int, error_type: str, error: str) -> dict:
    """An errors row's new message after one more failed attempt (the first error is kept)."""
    return {"id": error_id, "message": {
        **message, "attempts": number, "error_type": error_type, "error": error,
        "first_error": message.get("first_error") or message.get("error")}}


def _with_record(row) -> tuple:
    """(row, its message, its record): read again exactly from ``source`` when the row has
    it, else the message's copy (which may have lost digits or a NUL character)."""
    message = row.message if isinstance(row.message, dict) else orjson.loads(row.message)
    if row.source is not None:
        try:
            return row, message, codec.loads(row.source)
        except codec.JSONError:
            return row, message, None  # never JSON: no retry can help
    return row, message, message.get("record")


def is_retriable(message: dict, record) -> bool:
    """A record that can never load (not JSON, not an object, too large or deep, a NUL, a
    bad file) keeps its row and its reason: transforming it again can't help."""
    permanent = message.get("permanent", message.get("error_type") in PERMANENT_TYPES)
    return not permanent and type(record) is dict
