"""A chunk's records: read back from its byte ranges, sent through the run's transform, and
written in one transaction (``write_chunk``): the successes to ``tasks``, the records that
can never load to ``errors`` (with their text as it is in the input, read again only for
them); those whose transform failed are handed back for retrying as runs of positions,
never by value. Each retry round (``retry_round``, a transaction) reads them again from
the input, writes the rescued, and the failures of its last attempt (or permanent ones) to
``errors``. Every function here runs inside a datasource transaction of ``integration``.
"""

import os
import threading
import time
from contextlib import contextmanager
from typing import Optional

from sqlalchemy import select

from ..store import datasource
from . import faults
from ..contract import TASKS, Chunk, Job, PositionSet, add_position, count_of
from ..errors import InputChanged, is_permanent
from ..models import Source
from ..sources.content import still_holds
from ..sources.object_reads import ObjectPieces
from ..sources.read import RecordProblem, SourceTexts, read_chunk
from ..sources.s3 import is_s3
from ..sources.since import Highest, value_of
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
    highest = Highest()  # (--incremental) of the records that reach the table

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
            key, value = None, incremental_value(job, record)
            try:
                if job.keyed:
                    key = shaper.key_of(record)
                row = shaped_row(shaper, job, file.fingerprint, key, file.ordinal, position,
                                 record, 1)
            except Exception as exc:
                if retry_now and not is_permanent(exc):
                    add_position(retry, file.ordinal, position)
                else:
                    problems.append(failed_row(job, file.fingerprint, key, position, record,
                                               texts.text_of(position), 1, exc, file.ordinal))
                continue
            if row is None:
                dropped += 1
            else:
                highest.add(value)
                yield row

    session = datasource.session()
    written = write_rows(session, job, transformed_rows())
    write_errors(session, problems, keyed=job.keyed)
    set_source_errors(session, job.run_id, changed)
    faults.process_faults(chunk.index)
    count_on_commit(session, written["tasks"], len(problems), updated=written["updated"],
                          skipped=written["skipped"] + dropped)
    return {**written, "skipped": written["skipped"] + dropped, "errors": len(problems),
            "retry": retry, "highest": highest.as_dict()}


def incremental_value(job: Job, record) -> Optional[tuple]:
    """(--incremental) ``(type, text)`` of the record as the source wrote it, before its
    transform (which may change it in place); None without."""
    return value_of(record, tuple(job.incremental.split("."))) if job.incremental else None


_readers = threading.BoundedSemaphore(2)


def set_readers(count: int) -> None:
    """How many chunks and retry rounds of this process hold their records at once: as
    many as chunk workflows run (``--concurrency``). Retry workflows are many more, since
    they mostly sleep; their rounds wait for a slot (memory stays what a clean load uses)."""
    global _readers
    _readers = threading.BoundedSemaphore(count)


@contextmanager
def reading_slot():
    """Hold one of the process's reader slots while a chunk or a round holds its records;
    then hand the memory they took back to the system (see ``trim_memory``)."""
    readers = _readers
    with readers:
        try:
            yield
        finally:
            trim_memory()


def trim_memory() -> None:
    """glibc keeps the memory freed by a thread in that thread's arena: retry rounds run in
    many threads (their workflows mostly sleep), so each arena would keep the high-water
    mark of a piece's records (measured: 20,000 failing records peaked at 303 MB against
    199 MB loading cleanly). ``malloc_trim`` returns the free pages of every arena."""
    if _libc is not None:
        _libc.malloc_trim(0)


def _glibc():
    import ctypes
    import ctypes.util
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


_libc = _glibc()


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


def chunk_records(files: list, chunk: Chunk, job: Job, wanted: Optional[PositionSet] = None):
    """Yield (file, position, record or RecordProblem, the piece's ``SourceTexts``) for the
    chunk's pieces (with ``wanted``: only the pieces that hold one of its positions): a
    file's read from its path, an object's fetched from its bucket a few pieces ahead."""
    pieces = [(file, piece) for file in files for piece in pieces_of(file, chunk)
              if wanted is None or wanted.overlaps(file.ordinal, piece[2], piece[2] + piece[3] - 1)]
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


def failed_row(job: Job, fingerprint: str, key: Optional[str], position: int, record,
               source: Optional[str], attempts: int, exc: Exception,
               ordinal: Optional[int] = None) -> dict:
    """The ``errors`` row of a record whose attempt ``attempts`` failed for good (``exc``),
    with its text as in the input."""
    return error_row(job.run_id, fingerprint, position, type(exc).__name__, str(exc), record,
                     attempts, is_permanent(exc), key, ordinal if key is not None else None,
                     table=target_of(job), source=source)


# -- retry rounds ---------------------------------------------------------------------------------
ROUND_BATCH = 500  # rows a retry round holds before writing them (memory stays bounded)


def retry_round(job: Job, chunk: Chunk, pending: list, number: int, last: bool) -> dict:
    """Attempt ``number`` at each of a chunk's failed records (``pending``: runs of positions,
    see ``contract.add_position``), read again from the input, in one transaction: the
    rescued are written to the run's table, and the failures that are permanent, or of the
    ``last`` attempt, to ``errors`` with their text, a batch at a time; the others are
    returned, as positions, for the next round."""
    shaper = shaper_of(job)
    batch = RoundBatch(job)
    failed: list = []
    for file, position, record, texts in pending_records(job, chunk, pending):
        if type(record) is RecordProblem:  # an object replaced since its first read
            batch.problems.append(error_row(job.run_id, file.fingerprint, position, record.kind,
                                            record.message, None, number, True,
                                            table=target_of(job)))
            continue
        key, value = None, incremental_value(job, record)
        try:
            key = shaper.key_of(record) if job.keyed else None
            row = shaped_row(shaper, job, file.fingerprint, key, file.ordinal, position,
                             record, number)
        except Exception as exc:
            if last or is_permanent(exc):
                batch.problems.append(failed_row(job, file.fingerprint, key, position, record,
                                                 texts.text_of(position), number, exc,
                                                 file.ordinal))
            else:
                add_position(failed, file.ordinal, position)
            continue
        if row is None:
            batch.totals["skipped"] += 1
        else:
            batch.highest.add(value)
            batch.rows.append(row)
        batch.flush_when_full()
    batch.flush()
    count_on_commit(batch.session, batch.totals["tasks"], batch.totals["errors"],
                    count_of(pending), updated=batch.totals["updated"],
                    skipped=batch.totals["skipped"])
    return {**batch.totals, "failed": failed, "highest": batch.highest.as_dict()}


class RoundBatch:
    """A retry round's rows and ``errors`` rows, written every ``ROUND_BATCH``."""

    def __init__(self, job: Job):
        self.job, self.session = job, datasource.session()
        self.rows: list = []
        self.problems: list = []
        self.totals = {"tasks": 0, "updated": 0, "skipped": 0, "errors": 0}
        self.highest = Highest()

    def flush_when_full(self) -> None:
        if len(self.rows) + len(self.problems) >= ROUND_BATCH:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            written = write_rows(self.session, self.job, iter(self.rows))
            for name in ("tasks", "updated", "skipped"):
                self.totals[name] += written[name]
        write_errors(self.session, self.problems, keyed=self.job.keyed)
        self.totals["errors"] += len(self.problems)
        self.rows, self.problems = [], []


def pending_records(job: Job, chunk: Chunk, pending: list):
    """Yield (file, position, record, texts) for the positions of ``pending``, read again
    from the chunk's pieces that hold them."""
    wanted = PositionSet(pending)
    found = 0
    for file, position, record, texts in chunk_records(chunk_files(job.run_id, chunk), chunk,
                                                       job, wanted):
        if (file.ordinal, position) in wanted:
            found += 1
            yield file, position, record, texts
    if found != count_of(pending):  # the pieces hold fewer records than they did
        raise InputChanged(f"chunk {chunk.index} of {job.run_id}: {count_of(pending) - found} "
                           "records to retry are no longer in its input; load the new file "
                           "as a new dataset (ingest load)")
