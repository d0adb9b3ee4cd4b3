"""A chunk's records: read back from its byte ranges, sent through the run's transform, and
written in one transaction (``write_chunk``): the successes to ``tasks``, the records that
can never load to ``errors`` (with their text as it is in the input, read again only for
them); those whose transform failed are handed back for retrying, with that text.
The retry rounds (``transform_round``) and their write (``write_retried``) share the same
rows. Every function here runs inside a step or a datasource transaction of ``integration``.
"""

import os
from typing import Optional

from sqlalchemy import select

from ..store import datasource
from . import faults
from ..contract import TASKS, Chunk, Job
from ..errors import InputChanged, is_permanent
from ..models import Source
from ..sources.content import still_holds
from ..sources.object_reads import ObjectPieces
from ..sources.read import RecordProblem, SourceTexts, read_chunk
from ..sources.s3 import is_s3
from ..store.counting import count_on_commit
from ..store.error_rows import error_row, write_errors
from ..store.files import set_source_errors
from ..store.keyed import UPDATE, write_keyed_tasks
from ..store.tasks import write_tasks
from ..tables.write import write_rows as write_table_rows
from ..transform import Faults, Shaper, stored


def write_chunk(job: Job, chunk: Chunk) -> dict:
    """Transform one chunk and write it: successes to ``tasks``, bad records to ``errors``;
    records whose transform failed are returned for retrying."""
    shaper = shaper_of(job)
    retry_now = job.max_attempts > 1
    problems: list = []
    retry: list = []
    dropped = 0  # records the transform skipped
    files = chunk_files(job.run_id, chunk)  # before COPY takes the connection
    changed: dict = {}  # ordinal -> why: objects that changed since their scan

    def transformed_rows():
        nonlocal dropped
        for file, position, record, texts in chunk_records(files, chunk, job):
            if type(record) is RecordProblem:
                problems.append(error_row(job.run_id, file.fingerprint, position, record.kind,
                                          record.message, None, 0, True, table=target_of(job),
                                          source=texts.text_of(position)))
                if record.kind == "ObjectChanged":
                    changed[file.ordinal] = record.message
                continue
            key = None
            try:
                if job.keyed:
                    key = shaper.key_of(record)
                row = shaped_row(shaper, job, file.fingerprint, key, file.ordinal, position,
                                 record, 1)
            except Exception as exc:
                failure = failure_of(file.fingerprint, position, record, 1, exc, key, file.ordinal,
                                     texts.text_of(position))
                if retry_now and not failure["permanent"]:
                    retry.append(failure)
                else:
                    problems.append(final_error_row(job, failure))
                continue
            if row is None:
                dropped += 1
            else:
                yield row

    session = datasource.session()
    written = write_rows(session, job, transformed_rows())
    write_errors(session, problems, keyed=job.keyed)
    set_source_errors(session, job.run_id, changed)
    faults.process_faults(chunk.index)
    count_on_commit(session, written["tasks"], len(problems), updated=written["updated"],
                          skipped=written["skipped"] + dropped)
    return {**written, "skipped": written["skipped"] + dropped, "errors": len(problems),
            "retry": retry}


def shaper_of(job: Job) -> Shaper:
    """The run's transform, faults and key (its transform is imported once per process)."""
    return Shaper(job.transform, job.transform_dir, Faults.from_dict(job.faults), job.key)


def target_of(job: Job) -> str:
    """The table a run's records go to: its ``--table``, else the demo's ``tasks``."""
    return job.table or TASKS


def shaped_row(shaper: Shaper, job: Job, fingerprint: str, key: Optional[str],
               ordinal: Optional[int], position: int, record: dict, number: int):
    """Attempt ``number`` at a record: the row it becomes (see ``task_row``), or None when
    the transform skips it. A dataset table's row keeps the shaped record, for its columns."""
    if not job.table:
        data = shaper.attempt(record, position, number)
        return None if data is None else task_row(fingerprint, key, ordinal, position, data)
    shaped = shaper.shape(record, position, number)
    if shaped is None:
        return None
    return task_row(fingerprint, key, ordinal, position, stored(shaped, shaper.nan_check), shaped)


def task_row(fingerprint: str, key: Optional[str], ordinal: Optional[int], position: int,
             data: bytes, record: Optional[dict] = None) -> tuple:
    """A transformed record as ``write_rows`` takes it: under its file and position, or
    (``--key``) under its own key, with where it came from; for a dataset table, the record
    last."""
    row = (fingerprint, position, data) if key is None else (key, ordinal, position, data)
    return row if record is None else row + (record,)


def write_rows(session, job: Job, rows, redrive: bool = False) -> dict:
    """Write transformed records to the run's table: {"tasks": new rows, "updated": ..,
    "skipped": ..}. With a key, a record whose key is already stored updates it or is
    skipped (--on-conflict)."""
    if job.table:
        return write_table_rows(session, job.table, job.run_id, rows, job.key, job.on_conflict,
                                redrive)
    if not job.keyed:
        return {"tasks": write_tasks(session, job.run_id, rows), "updated": 0, "skipped": 0}
    inserted, existing = write_keyed_tasks(session, job.run_id, rows, job.on_conflict,
                                                 redrive=redrive)
    if job.on_conflict == UPDATE:
        return {"tasks": inserted, "updated": existing, "skipped": 0}
    return {"tasks": inserted, "updated": 0, "skipped": existing}


def chunk_files(run_id: str, chunk: Chunk) -> list:
    return datasource.session().execute(
        select(Source.ordinal, Source.path, Source.shape, Source.fingerprint, Source.size,
               Source.mtime_ns, Source.pieces, Source.etag, Source.version_id,
               Source.compression, Source.covered)
        .where(Source.run_id == run_id, Source.state == "new",
               Source.ordinal >= chunk.first, Source.ordinal <= chunk.last)
        .order_by(Source.ordinal)).all()


def chunk_records(files: list, chunk: Chunk, job: Job):
    """Yield (file, position, record or RecordProblem, the piece's ``SourceTexts``) for the
    chunk's pieces: a file's read from its path, an object's fetched from its bucket a few
    pieces ahead."""
    pieces = [(file, piece) for file in files for piece in pieces_of(file, chunk)]
    remote = [(file, piece) for file, piece in pieces if is_s3(file.path)]
    objects = ObjectPieces(remote, job.endpoint_url, job.fingerprint_label) if remote else None
    try:
        checked = None
        for file, (start, end, position, _) in pieces:
            if objects is not None and is_s3(file.path):
                records, texts = objects.next_records()
            else:
                if checked != file.ordinal:
                    check_input(file, job.fingerprint_label)
                    checked = file.ordinal
                records = read_chunk(file.path, file.shape, start, end, position)
                texts = SourceTexts(file.path, file.shape, start, end, position)
            for position, record in records:
                yield file, position, record, texts
    finally:
        if objects is not None:
            objects.close()


def pieces_of(file, chunk: Chunk) -> list:
    """The file's pieces that are the chunk's."""
    first = chunk.first_piece if file.ordinal == chunk.first else 0
    last = chunk.last_piece if file.ordinal == chunk.last else len(file.pieces) - 1
    return file.pieces[first:last + 1]


def check_input(file, label: str = "") -> None:
    """Refuse to read byte ranges of a file that changed since it was scanned (or that this
    worker sees differently): its records would land under the wrong keys. A file that
    only grew (its fingerprinted bytes unchanged) is read: the next run loads its tail."""
    try:
        stat = os.stat(file.path)
    except OSError as exc:
        raise InputChanged(f"{file.path}: {exc.strerror}; every worker must see the input at "
                           "this path (a shared volume)") from None
    if (stat.st_size, stat.st_mtime_ns) != (file.size, file.mtime_ns) and not still_holds(
            file.path, stat.st_size, stat.st_mtime_ns,
            file.size if file.covered is None else file.covered, file.fingerprint, label):
        raise InputChanged(f"{file.path} changed since it was scanned; load the new file as "
                           "a new dataset (ingest load), it gets a new run id")


def failure_of(fingerprint: str, position: int, record, attempts: int, exc: Exception,
               key: Optional[str] = None, ordinal: Optional[int] = None,
               source: Optional[str] = None) -> dict:
    """A failed attempt at a record, as the retry workflow takes it (checkpointed: the
    record's text travels with it, so no retry round reads the input again)."""
    return {"fingerprint": fingerprint, "position": position, "record": record,
            "attempts": attempts, "error_type": type(exc).__name__, "error": str(exc),
            "permanent": is_permanent(exc), "key": key, "ordinal": ordinal, "source": source}


def final_error_row(job: Job, failure: dict) -> dict:
    return error_row(job.run_id, failure["fingerprint"], failure["position"],
                     failure["error_type"], failure["error"], failure["record"],
                     failure["attempts"], failure["permanent"], failure.get("key"),
                     failure.get("ordinal"), table=target_of(job), source=failure.get("source"))


# -- retry rounds ---------------------------------------------------------------------------------
def transform_round(job: Job, pending: list, number: int) -> dict:
    """One more attempt at each failed record of a chunk."""
    shaper = shaper_of(job)
    rescued, failed, skipped = [], [], 0
    for failure in pending:
        try:
            row = shaped_row(shaper, job, failure["fingerprint"], failure.get("key"),
                             failure.get("ordinal"), failure["position"], failure["record"],
                             number)
        except Exception as exc:
            failed.append(failure_of(failure["fingerprint"], failure["position"],
                                     failure["record"], number, exc, failure.get("key"),
                                     failure.get("ordinal"), failure.get("source")))
            continue
        if row is None:
            skipped += 1
        else:
            rescued.append(row)
    return {"rescued": rescued, "failed": failed, "skipped": skipped}


def write_retried(job: Job, rescued: list, failed: list, retries: int, dropped: int = 0) -> dict:
    session = datasource.session()
    written = write_rows(session, job, iter(rescued))
    write_errors(session, [final_error_row(job, f) for f in failed], keyed=job.keyed)
    skipped = written["skipped"] + dropped
    count_on_commit(session, written["tasks"], len(failed), retries,
                          updated=written["updated"], skipped=skipped)
    return {**written, "skipped": skipped, "errors": len(failed), "retries": retries}
