"""The DBOS application: how a set of files and API pages is loaded, durably and exactly once.

Read top to bottom, this is the story of a load:

1. ``ingest_run`` is the run: one parent workflow per command, whose ID comes from the
   files' contents. The command has written the run's files into ``sources``; the run first
   claims their contents (``claim_files``): a content already claimed by another run is not
   loaded again, and a file that can't be loaded gets one ``errors`` row.
2. It packs the pieces of the claimed files into chunks of about ``chunk_size`` records (a
   chunk may span many small files; a big file is cut into byte ranges) and enqueues one
   ``load_chunk`` workflow per chunk on the ``ingest-chunks`` queue, all at once.
2b. Then it fetches the pages of its URL inputs (``fetch_source``), a batch per step
   (``fetch_batch``: each page retried by its own HTTP policy, spooled to disk and scanned
   as a file is). Each batch is written to ``sources``, claimed and packed like files, so
   its chunks load while the next batch is fetched; a page that can't be had gets one
   ``errors`` row. A crash never fetches a page twice: a finished batch is checkpointed,
   and a page spooled by an unfinished one is found in the spool.
3. ``load_chunk`` reads its pieces, transforms every record and writes the successes to
   ``tasks`` in one datasource transaction (``write_chunk``; COPY on Postgres). Records that
   can never load go straight to ``errors``.
4. Records whose transform failed are handed, one workflow per chunk, to the
   ``ingest-retries`` queue: ``retry_records`` retries them in rounds (``transform_round``
   steps, durable sleeps growing by the backoff in between), then writes the rescued ones
   to ``tasks`` and the rest to ``errors`` with the original exception.
5. The run awaits its chunks in batches and returns its summary. Run again, the same files
   get that summary back without any work; after a crash, DBOS resumes the run where it
   stopped.

``redrive_errors`` (``ingest retry``) sends a run's ``errors`` rows through the transform
again. Every side effect is a step or a datasource transaction, and a transaction commits
its rows together with DBOS's checkpoint: replays never write twice, and metrics are
counted only when a transaction really commits.
"""

import os
import time
from dataclasses import asdict, dataclass, replace
from typing import Optional

import orjson
from dbos import DBOS, SetWorkflowID
from sqlalchemy import func, select, update

from . import store, telemetry
from .app import MAX_RECOVERY_ATTEMPTS, app_db, tx_options
from .contract import (ACTIVE, CHUNK_QUEUE, ERROR, GIVEN_UP, PAGES_EVENT, RETRY_QUEUE, RUN_QUEUE,
                       Chunk, ChunkResult, Claimed, FetchedPage, HttpPolicy, Job, PageCounts,
                       RunPlan, Summary, UrlSource, chunk_workflow_id, fork_id, redrive_prefix,
                       redrive_workflow_id, retry_workflow_id)
from .errors import PERMANENT_TYPES, InputChanged, is_permanent
from .models import Error, Source
from .sources.http import (CredentialsNeeded, Scanning, Tail, credentials_for, fetch_pages,
                           forget_run)
from .sources.read import RecordProblem, read_chunk
from .transform import Faults, Shaper

CLAIM_PAGE = 1000  # files claimed per transaction
PACK_PAGE = 1000  # files read per packing step
AWAIT_BATCH = 64  # chunks awaited per step
RESULT_POLLING_SEC = 0.1


# -- 1. the run -----------------------------------------------------------------------------
@DBOS.workflow(name="ingest_dataset", max_recovery_attempts=MAX_RECOVERY_ATTEMPTS)
def ingest_run(plan: RunPlan) -> Summary:
    job = plan.job
    telemetry.tag_run(job.run_id)
    started = clock()
    claimed = claim_files(job.run_id, plan.files)
    packing = enqueue_chunks(job, final=not plan.urls)
    fetched = Fetched(claimed=Claimed(), pages=PageCounts(), ordinal=plan.files, packing=packing)
    for source in plan.urls:
        fetched = fetch_source(job, source, fetched)
    if plan.urls:
        packing = enqueue_chunks(job, fetched.packing, final=True)
        fetched_all(job)
    chunks = packing["next_index"]
    totals = await_chunks(job.run_id, chunks)
    pages = fetched.claimed
    return Summary(run_id=job.run_id, inputs=plan.inputs, records=claimed.records + pages.records,
                   tasks=totals.tasks, errors=totals.errors + claimed.bad_rows + pages.bad_rows,
                   retries=totals.retries, chunks=chunks, files_new=claimed.new,
                   files_already=claimed.duplicate, files_bad=claimed.bad,
                   started_at=started, finished_at=clock(), skipped=totals.skipped,
                   updated=totals.updated, pages=fetched.pages if plan.urls else None)


@DBOS.step(name="clock")
def clock() -> float:
    return time.time()


def claim_files(run_id: str, files: int) -> Claimed:
    total = Claimed()
    for low in range(0, files, CLAIM_PAGE):
        total += app_db().run_tx_step(tx_options("claim_page"), claim_page, run_id, low,
                                      low + CLAIM_PAGE)
    return total


def claim_page(run_id: str, low: int, high: int) -> Claimed:
    """Claim the contents of files ``low..high-1`` of the run, in order: the first claim of a
    content wins, so the same bytes at two paths, in two runs or in two commands at once load
    once. Bad files get their ``errors`` row (once, however often they are seen)."""
    session = app_db().sql_session()
    rows = session.execute(
        select(Source.ordinal, Source.fingerprint, Source.state, Source.records, Source.name,
               Source.error)
        .where(Source.run_id == run_id, Source.ordinal >= low, Source.ordinal < high)
        .order_by(Source.ordinal)).all()
    planned = [(r.ordinal, r.fingerprint) for r in rows if r.state == "planned"]
    owners = store.claim(session, run_id, planned)
    new = [o for o, f in planned if owners[f] == (run_id, o)]
    duplicates = {o: owners[f][0] for o, f in planned if owners[f] != (run_id, o)}
    store.set_source_states(session, run_id, new, "new")
    store.set_source_states(session, run_id, list(duplicates), "duplicate", duplicates)
    bad = [r for r in rows if r.state == "bad"]
    written = store.write_errors_once(
        session, [store.bad_file_row(run_id, r.name, r.fingerprint, r.error) for r in bad])
    store.count_on_commit(session, 0, written)
    new_set = set(new)
    claimed_rows = [r for r in rows if r.ordinal in new_set]
    return Claimed(new=len(new), duplicate=len(rows) - len(new) - len(bad), bad=len(bad),
                   bad_rows=written,
                   records=sum(r.records for r in claimed_rows))


# -- 2. chunks ------------------------------------------------------------------------------
def enqueue_chunks(job: Job, packing: Optional[dict] = None, final: bool = True) -> dict:
    """Pack the run's new files not packed yet into chunks, a page of files at a time, and
    enqueue each chunk as it is packed. ``packing`` carries on where the last call stopped
    (its ``next_index`` is the number of chunks so far); with ``final``, the last chunk is
    closed, else it stays open for the files (pages) still to come."""
    state = packing or {"after": -1, "open": None, "next_index": 0}
    while True:
        page = app_db().run_tx_step(tx_options("pack_chunks"), pack_chunks, job.run_id,
                                    job.chunk_size, state, final)
        for chunk in page["chunks"]:
            with SetWorkflowID(chunk_workflow_id(job.run_id, chunk.index)):
                DBOS.enqueue_workflow(CHUNK_QUEUE, load_chunk, job, chunk)
        state = page["state"]
        if page["done"]:
            return state


def pack_chunks(run_id: str, chunk_size: int, state: dict, final: bool = True) -> dict:
    """The chunks of the next page of new files. ``state`` carries the chunk still open
    across pages, so chunks are cut the same way whatever the page size."""
    rows = app_db().sql_session().execute(
        select(Source.ordinal, Source.pieces)
        .where(Source.run_id == run_id, Source.state == "new", Source.ordinal > state["after"])
        .order_by(Source.ordinal).limit(PACK_PAGE)).all()
    packer = Packer(chunk_size, state["open"], state["next_index"])
    for row in rows:
        packer.add_file(row.ordinal, row.pieces or [])
    done = len(rows) < PACK_PAGE
    if done and final:
        packer.close()
    after = rows[-1].ordinal if rows else state["after"]
    return {"chunks": packer.chunks, "done": done,
            "state": {"after": after, "open": packer.open, "next_index": packer.next_index}}


class Packer:
    """Greedy packing of file pieces (each at most a chunk) into chunks of at most
    ``chunk_size`` records, in file order."""

    def __init__(self, chunk_size: int, open_chunk: Optional[dict], next_index: int):
        self.chunk_size, self.open, self.next_index = chunk_size, open_chunk, next_index
        self.chunks: list = []

    def add_file(self, ordinal: int, pieces: list) -> None:
        for number, (_, _, position, count) in enumerate(pieces):
            if self.open and self.open["records"] + count > self.chunk_size:
                self.close()
            if self.open is None:
                self.open = {"first": ordinal, "first_piece": number, "first_position": position,
                             "records": 0, "files_done": 0}
            self.open.update(last=ordinal, last_piece=number)
            self.open["records"] += count
            if number == len(pieces) - 1:
                self.open["files_done"] += 1
            if self.open["records"] >= self.chunk_size:
                self.close()

    def close(self) -> None:
        if self.open:
            self.chunks.append(Chunk(index=self.next_index, **self.open))
            self.next_index += 1
            self.open = None


# -- 2b. pages of URL inputs -------------------------------------------------------------
@dataclass(frozen=True)
class Fetched:
    """Where fetching a run's URL inputs stands: pages claimed, their counts, the next
    ordinal in ``sources`` and the chunk packing, carried from one source to the next."""

    claimed: Claimed
    pages: PageCounts
    ordinal: int
    packing: dict


def fetch_source(job: Job, source: UrlSource, fetched: Fetched) -> Fetched:
    """Fetch a URL input's pages a batch per step, each batch written to ``sources``,
    claimed and packed into chunks (so they load while the next batch is fetched)."""
    count = pages_per_step(job.http) if source.paginated else 1
    page, tail = source.first, Tail()
    while source.last is None or page <= source.last:
        pages, ended = fetch_batch_when_allowed(job, source, page, count, tail)
        for fetched_page in pages:
            tail = tail.after(fetched_page)
        page += len(pages)
        if ended and source.last is not None and page <= source.last:
            pages.append(unfetched(source, page, tail))  # N failures in a row: the rest alike
        fetched = record_batch(job, fetched, pages)
        if ended or not source.paginated:
            break
    return fetched


def record_batch(job: Job, fetched: Fetched, pages: list) -> Fetched:
    """A batch's pages into ``sources``, claimed and packed, its counts published."""
    kept = [p for p in pages if p.loads]
    claimed = app_db().run_tx_step(tx_options("record_pages"), record_pages, job.run_id,
                                   fetched.ordinal, kept)
    counts = fetched.pages + PageCounts(
        new=claimed.new, already=claimed.duplicate, failed=claimed.bad,
        empty=len(pages) - len(kept), http_retries=sum(max(p.attempts - 1, 0) for p in pages),
        records=claimed.records)
    DBOS.set_event(PAGES_EVENT, asdict(counts))
    return replace(fetched, claimed=fetched.claimed + claimed, pages=counts,
                   ordinal=fetched.ordinal + len(kept),
                   packing=enqueue_chunks(job, fetched.packing, final=False))


def unfetched(source: UrlSource, first: int, tail: Tail) -> FetchedPage:
    """The rest of a closed range, not asked for after its pages kept failing: one row."""
    name = f"{source.template} pages {first}-{source.last}"
    return FetchedPage(page=first, name=name, attempts=0, error=(
        f"{name}: not fetched: the {tail.failures} pages before them failed (see their errors); "
        "run the same command again once the cause is fixed"))


def fetch_batch_when_allowed(job: Job, source: UrlSource, first: int, count: int,
                             tail: Tail) -> tuple:
    """``fetch_batch``, once a process with the run's credentials runs the run: one that
    recovered it without them (another command's) waits, durably, and lets it go when
    it exits; the same command or ``ingest resume --header`` then goes on."""
    wait = 5.0
    while True:
        try:
            return fetch_batch(job, source, first, count, tail)
        except CredentialsNeeded:
            DBOS.sleep(wait)
            wait = min(wait * 2, 60.0)


@DBOS.step(name="fetched_all")
def fetched_all(job: Job) -> None:
    forget_run(job.spool, job.run_id)


def pages_per_step(policy: HttpPolicy) -> int:
    """Pages fetched per step: enough for the pages in flight to keep busy, few enough
    for chunks to start loading early."""
    return min(64, max(8, 4 * policy.concurrency))


@DBOS.step(name="fetch_batch")
def fetch_batch(job: Job, source: UrlSource, first: int, count: int, tail: Tail) -> tuple:
    """Fetch, spool and scan pages ``first``..: ``(pages, ended)``. An HTTP failure is a
    page's ``error``, not the step's; a process without the run's credentials raises
    ``CredentialsNeeded`` before any request."""
    creds = credentials_for(job.run_id, job.credentials_check, job.credential_names)
    scanning = Scanning(job.chunk_size, job.fmt, job.fingerprint_label)
    return fetch_pages(job.run_id, source, first, count, job.http, scanning, creds, job.spool,
                       tail)


def record_pages(run_id: str, low: int, pages: list) -> Claimed:
    """The pages' ``sources`` rows (ordinals ``low``..), claimed as a file's are; a page
    that failed in an earlier run and loads now resolves that run's ``errors`` row."""
    session = app_db().sql_session()
    store.write_sources(session, [page_row(run_id, low + n, page) for n, page in enumerate(pages)])
    store.resolve_bad_pages(session, [page.name for page in pages if not page.error])
    return claim_page(run_id, low, low + len(pages))


def page_row(run_id: str, ordinal: int, page: FetchedPage) -> dict:
    return store.source_row(run_id, ordinal, page.name, page.path, fingerprint=page.fingerprint,
                            records=page.records, state="bad" if page.error else "planned",
                            shape=page.shape, size=page.size, mtime_ns=page.mtime_ns,
                            pieces=[list(p) for p in page.pieces] or None, error=page.error)


# -- 3. one chunk ---------------------------------------------------------------------------
@DBOS.workflow(name="load_chunk", max_recovery_attempts=MAX_RECOVERY_ATTEMPTS)
def load_chunk(job: Job, chunk: Chunk) -> ChunkResult:
    telemetry.tag_run(job.run_id)
    with telemetry.chunk(chunk.records):
        outcome = app_db().run_tx_step(tx_options("write_chunk"), write_chunk, job, chunk)
    retry_workflow = None
    if outcome["retry"]:
        with SetWorkflowID(retry_workflow_id(job.run_id, chunk.index)):
            retry_workflow = DBOS.enqueue_workflow(
                RETRY_QUEUE, retry_records, job, chunk.index, outcome["retry"]).workflow_id
    return ChunkResult(index=chunk.index, tasks=outcome["tasks"], errors=outcome["errors"],
                       retry_workflow=retry_workflow, skipped=outcome.get("skipped", 0),
                       updated=outcome.get("updated", 0))


def write_chunk(job: Job, chunk: Chunk) -> dict:
    """Transform one chunk and write it: successes to ``tasks``, bad records to ``errors``;
    records whose transform failed are returned for retrying."""
    shaper = shaper_of(job)
    retry_now = job.max_attempts > 1
    problems: list = []
    retry: list = []
    dropped = 0  # records the transform skipped
    files = chunk_files(job.run_id, chunk)  # before COPY takes the connection

    def transformed_rows():
        nonlocal dropped
        for file, position, record in chunk_records(files, chunk):
            if type(record) is RecordProblem:
                problems.append(store.error_row(job.run_id, file.fingerprint, position, record.kind,
                                                record.message, None, 0, True))
                continue
            key = None
            try:
                if job.keyed:
                    key = shaper.key_of(record)
                data = shaper.attempt(record, position, 1)
            except Exception as exc:
                failure = failure_of(file.fingerprint, position, record, 1, exc, key, file.ordinal)
                if retry_now and not failure["permanent"]:
                    retry.append(failure)
                else:
                    problems.append(final_error_row(job.run_id, failure))
                continue
            if data is None:
                dropped += 1
            else:
                yield task_row(file.fingerprint, key, file.ordinal, position, data)

    session = app_db().sql_session()
    written = write_rows(session, job, transformed_rows())
    store.write_errors(session, problems, keyed=job.keyed)
    process_faults(chunk.index)
    store.count_on_commit(session, written["tasks"], len(problems), updated=written["updated"],
                          skipped=written["skipped"] + dropped)
    return {**written, "skipped": written["skipped"] + dropped, "errors": len(problems),
            "retry": retry}


def shaper_of(job: Job) -> Shaper:
    """The run's transform, faults and key (its transform is imported once per process)."""
    return Shaper(job.transform, job.transform_dir, Faults.from_dict(job.faults), job.key)


def task_row(fingerprint: str, key: Optional[str], ordinal: Optional[int], position: int,
             data: bytes) -> tuple:
    """A transformed record as ``write_rows`` takes it: under its file and position, or
    (``--key``) under its own key, with where it came from."""
    return (fingerprint, position, data) if key is None else (key, ordinal, position, data)


def write_rows(session, job: Job, rows, redrive: bool = False) -> dict:
    """Write transformed records to ``tasks``: {"tasks": new rows, "updated": .., "skipped": ..}.
    With a key, a record whose key is already stored updates it or is skipped (--on-conflict)."""
    if not job.keyed:
        return {"tasks": store.write_tasks(session, job.run_id, rows), "updated": 0, "skipped": 0}
    inserted, existing = store.write_keyed_tasks(session, job.run_id, rows, job.on_conflict,
                                                 redrive=redrive)
    if job.on_conflict == store.UPDATE:
        return {"tasks": inserted, "updated": existing, "skipped": 0}
    return {"tasks": inserted, "updated": 0, "skipped": existing}


def chunk_files(run_id: str, chunk: Chunk) -> list:
    return app_db().sql_session().execute(
        select(Source.ordinal, Source.path, Source.shape, Source.fingerprint, Source.size,
               Source.mtime_ns, Source.pieces)
        .where(Source.run_id == run_id, Source.state == "new",
               Source.ordinal >= chunk.first, Source.ordinal <= chunk.last)
        .order_by(Source.ordinal)).all()


def chunk_records(files: list, chunk: Chunk):
    """Yield (file, position, record or RecordProblem) for the chunk's pieces."""
    for file in files:
        check_input(file)
        first = chunk.first_piece if file.ordinal == chunk.first else 0
        last = chunk.last_piece if file.ordinal == chunk.last else len(file.pieces) - 1
        for start, end, position, _ in file.pieces[first:last + 1]:
            for position, record in read_chunk(file.path, file.shape, start, end, position):
                yield file, position, record


def check_input(file) -> None:
    """Refuse to read byte ranges of a file that changed since it was scanned (or that this
    worker sees differently): its records would land under the wrong keys."""
    try:
        stat = os.stat(file.path)
    except OSError as exc:
        raise InputChanged(f"{file.path}: {exc.strerror}; every worker must see the input at "
                           "this path (a shared volume)") from None
    if (stat.st_size, stat.st_mtime_ns) != (file.size, file.mtime_ns):
        raise InputChanged(f"{file.path} changed since it was scanned; load the new file as "
                           "a new dataset (ingest load), it gets a new run id")


def failure_of(fingerprint: str, position: int, record, attempts: int, exc: Exception,
               key: Optional[str] = None, ordinal: Optional[int] = None) -> dict:
    return {"fingerprint": fingerprint, "position": position, "record": record,
            "attempts": attempts, "error_type": type(exc).__name__, "error": str(exc),
            "permanent": is_permanent(exc), "key": key, "ordinal": ordinal}


def final_error_row(run_id: str, failure: dict) -> dict:
    return store.error_row(run_id, failure["fingerprint"], failure["position"],
                           failure["error_type"], failure["error"], failure["record"],
                           failure["attempts"], failure["permanent"], failure.get("key"),
                           failure.get("ordinal"))


def process_faults(index: int) -> None:
    """Hidden test hooks, read from the environment, that act before a chunk commits:
    ``INGEST_FAULT_CHUNK_DELAY_SEC`` slows every chunk down (room for a kill -9) and
    ``INGEST_FAULT_CRASH_CHUNKS=3,7`` makes the process die on those chunks, every time
    (a poison chunk). Unset, they cost one dictionary lookup each."""
    delay = os.environ.get("INGEST_FAULT_CHUNK_DELAY_SEC")
    if delay:
        time.sleep(float(delay))
    crash = os.environ.get("INGEST_FAULT_CRASH_CHUNKS")
    if crash and str(index) in crash.split(","):
        os._exit(86)


# -- 4. retries -----------------------------------------------------------------------------
@DBOS.workflow(name="retry_records", max_recovery_attempts=MAX_RECOVERY_ATTEMPTS)
def retry_records(job: Job, index: int, failures: list) -> dict:
    telemetry.tag_run(job.run_id)
    pending, rescued, retries = failures, [], 0
    delay = job.retry_interval
    dropped = 0
    for number in range(2, job.max_attempts + 1):
        DBOS.sleep(delay)
        delay *= job.backoff
        retries += len(pending)
        round_result = transform_round(job, pending, number)
        rescued.extend(round_result["rescued"])
        dropped += round_result.get("skipped", 0)
        pending = round_result["failed"]
        if not pending:
            break
    return app_db().run_tx_step(tx_options("write_retried"), write_retried, job, rescued,
                                pending, retries, dropped)


@DBOS.step(name="transform_round")
def transform_round(job: Job, pending: list, number: int) -> dict:
    """One more attempt at each failed record of a chunk."""
    shaper = shaper_of(job)
    rescued, failed, skipped = [], [], 0
    for failure in pending:
        try:
            data = shaper.attempt(failure["record"], failure["position"], number)
        except Exception as exc:
            failed.append(failure_of(failure["fingerprint"], failure["position"],
                                     failure["record"], number, exc, failure.get("key"),
                                     failure.get("ordinal")))
            continue
        if data is None:
            skipped += 1
        else:
            rescued.append(task_row(failure["fingerprint"], failure.get("key"),
                                    failure.get("ordinal"), failure["position"], data))
    return {"rescued": rescued, "failed": failed, "skipped": skipped}


def write_retried(job: Job, rescued: list, failed: list, retries: int, dropped: int = 0) -> dict:
    session = app_db().sql_session()
    written = write_rows(session, job, iter(rescued))
    store.write_errors(session, [final_error_row(job.run_id, f) for f in failed], keyed=job.keyed)
    skipped = written["skipped"] + dropped
    store.count_on_commit(session, written["tasks"], len(failed), retries,
                          updated=written["updated"], skipped=skipped)
    return {**written, "skipped": skipped, "errors": len(failed), "retries": retries}


# -- 5. awaiting the chunks -------------------------------------------------------------------
def await_chunks(run_id: str, chunks: int) -> ChunkResult:
    total = ChunkResult(index=-1, tasks=0, errors=0)
    for low in range(0, chunks, AWAIT_BATCH):
        batch = range(low, min(low + AWAIT_BATCH, chunks))
        outcome = await_batch(run_id, batch)
        total = ChunkResult(index=-1, tasks=total.tasks + outcome["tasks"],
                            errors=total.errors + outcome["errors"],
                            retries=total.retries + outcome["retries"],
                            skipped=total.skipped + outcome.get("skipped", 0),
                            updated=total.updated + outcome.get("updated", 0))
    return total


def await_batch(run_id: str, indexes: range) -> dict:
    """A batch's results. A chunk given up after max_recovery_attempts (a poison chunk) or
    failed is waited for, durably, until an operator resumes it (``ingest resume``)."""
    wait = 1.0
    while True:
        outcome = batch_outcome(run_id, indexes.start, indexes.stop)
        if not outcome["stuck"]:
            return outcome
        DBOS.sleep(wait)
        wait = min(wait * 2, 60.0)


@DBOS.step(name="batch_outcome")
def batch_outcome(run_id: str, start: int, stop: int) -> dict:
    # Awaited inside a step, so that "stuck" is recorded as this step's output. DBOS's own
    # recorded getResult replays differently once a child has been resumed.
    totals = {"tasks": 0, "errors": 0, "retries": 0, "skipped": 0, "updated": 0, "stuck": []}
    for index in range(start, stop):
        try:
            result = result_of(chunk_workflow_id(run_id, index))
            retried = result_of(result.retry_workflow) if result.retry_workflow else None
        except Exception as exc:  # given up, cancelled, or failed: ingest resume retries it
            totals["stuck"].append(f"{index}: {type(exc).__name__}")
            continue
        for name in ("tasks", "errors", "skipped", "updated"):
            totals[name] += getattr(result, name, 0) + (retried or {}).get(name, 0)
        totals["retries"] += retried["retries"] if retried else 0
    return totals


def result_of(workflow_id: str):
    return DBOS.retrieve_workflow(latest_attempt(workflow_id)).get_result(
        polling_interval_sec=RESULT_POLLING_SEC)


def latest_attempt(workflow_id: str) -> str:
    """The child, or the newest fork of it that ``ingest resume`` made after it failed."""
    forks = DBOS.list_workflows(forked_from=workflow_id, sort_desc=True, limit=1,
                                load_input=False, load_output=False)
    return latest_attempt(forks[0].workflow_id) if forks else workflow_id


# -- 6. redrive: errors rows through the transform again --------------------------------------
@DBOS.workflow(name="redrive_errors", max_recovery_attempts=MAX_RECOVERY_ATTEMPTS)
def redrive_errors(run_id: str, faults: dict, page_size: int, job: Optional[Job] = None) -> dict:
    """Send a run's unresolved ``errors`` rows through the run's transform once more, a page
    per transaction: successes go to ``tasks`` and their error rows are marked resolved (kept
    for audit); failures stay, with the new attempt recorded."""
    after, totals = 0, {"retried": 0, "tasks": 0, "errors": 0, "skipped": 0}
    while True:
        page = app_db().run_tx_step(tx_options("redrive_page"), redrive_page,
                                    run_id, after, faults, page_size, job)
        if page["last_id"] is None:
            return {"run_id": run_id, **totals}
        after = page["last_id"]
        for key in totals:
            totals[key] += page.get(key, 0)


def redrive_page(run_id: str, after_id: int, faults: dict, page_size: int,
                 job: Optional[Job] = None) -> dict:
    session = app_db().sql_session()
    # FOR UPDATE: a concurrent redrive waits, then no longer sees the rows resolved here.
    rows = session.execute(
        select(Error.id, Error.position, Error.source_key, Error.message)
        .where(Error.run_id == run_id, Error.resolved_at.is_(None), Error.id > after_id)
        .order_by(Error.id).limit(page_size).with_for_update()
    ).all()
    if not rows:
        return {"last_id": None}
    retriable = [(row, message) for row, message in map(_with_message, rows)
                 if is_retriable(message)]
    job = replace(job or Job(run_id, 1, 1, 0, 1), faults=faults)
    shaper = shaper_of(job)
    rescued, keyed, resolved, failed = [], [], [], []
    for row, message in retriable:
        number = int(message.get("attempts") or 0) + 1
        try:
            data = shaper.attempt(message["record"], row.position, number)
        except Exception as exc:
            failed.append(failed_again(row.id, message, number, type(exc).__name__, str(exc)))
            continue
        if data is None:
            resolved.append(row.id)  # the transform skips it now: resolved, no row
        elif message.get("key") is not None:
            keyed.append((row, message, number, (message["key"], message.get("ordinal") or 0,
                                                 row.position, data)))
        else:
            resolved.append(row.id)
            rescued.append((row.source_key.split(":", 1)[0], row.position, data))
    tasks = store.write_tasks(session, run_id, iter(rescued))
    tasks += redrive_keyed(session, job, keyed, resolved, failed)
    if resolved:
        session.execute(update(Error).where(Error.id.in_(resolved)).values(resolved_at=func.now()))
    for change in failed:
        session.execute(update(Error).where(Error.id == change["id"]).values(message=change["message"]))
    store.count_on_commit(session, tasks, 0, retries=len(retriable), redriven=True)
    return {"last_id": rows[-1].id, "retried": len(retriable), "tasks": tasks,
            "errors": len(failed), "skipped": len(resolved) - tasks}


def redrive_keyed(session, job: Job, keyed: list, resolved: list, failed: list) -> int:
    """Write rescued records that have their own keys, by the run's ``--on-conflict``; returns
    how many are now the stored row of their key. The others are resolved as skipped (the
    rule kept another record), except an update that another run's row holds off: a retry
    never replaces another run's row, so that error stays, saying how to apply it."""
    if not keyed:
        return 0
    store.write_keyed_tasks(session, job.run_id, [k[3] for k in keyed], job.on_conflict, redrive=True)
    holders = store.key_holders(session, [k[3][0] for k in keyed])
    written = 0
    for row, message, number, (key, ordinal, position, _) in keyed:
        holder = holders.get(key)
        if holder == (job.run_id, ordinal, position):
            written += 1
            resolved.append(row.id)
        elif job.on_conflict == store.UPDATE and holder and holder[0] != job.run_id:
            failed.append(failed_again(
                row.id, {**message, "permanent": True}, number, "KeyHeldByAnotherRun",
                f"key {key} holds a record of run {holder[0]}; ingest retry never replaces another "
                f"run's row: load this record again with --key {job.key} --on-conflict update"))
        else:
            resolved.append(row.id)
    return written


def failed_again(error_id: int, message: dict, number: int, error_type: str, error: str) -> dict:
    """An errors row's new message after one more failed attempt (the first error is kept)."""
    return {"id": error_id, "message": {
        **message, "attempts": number, "error_type": error_type, "error": error,
        "first_error": message.get("first_error") or message.get("error")}}


def _with_message(row) -> tuple:
    return row, row.message if isinstance(row.message, dict) else orjson.loads(row.message)


def is_retriable(message: dict) -> bool:
    """A record that can never load (not JSON, not an object, too large or deep, a NUL, a
    bad file) keeps its row and its reason: transforming it again can't help."""
    permanent = message.get("permanent", message.get("error_type") in PERMANENT_TYPES)
    return not permanent and type(message.get("record")) is dict


def start_redrive(run_id: str, faults: dict, page_size: int = 1000, job: Optional[Job] = None):
    """Attach to this run's unfinished redrive, or start the next one."""
    earlier = DBOS.list_workflows(workflow_id_prefix=redrive_prefix(run_id), load_input=False,
                                  load_output=False)
    unfinished = [w for w in earlier if w.status in ACTIVE or w.status in GIVEN_UP]
    if unfinished:
        for w in unfinished:
            if w.status in GIVEN_UP:
                DBOS.resume_workflow(w.workflow_id)
        return DBOS.retrieve_workflow(unfinished[0].workflow_id)
    with SetWorkflowID(redrive_workflow_id(run_id, len(earlier) + 1)):
        return DBOS.start_workflow(redrive_errors, run_id, faults, page_size, job)


# -- 7. starting and resuming runs ---------------------------------------------------------------
def start_run(plan: RunPlan, detach: bool = False):
    """Run it here, or (detach) queue it for whichever worker is free."""
    with SetWorkflowID(plan.job.run_id):
        if detach:
            return DBOS.enqueue_workflow(RUN_QUEUE, ingest_run, plan)
        return DBOS.start_workflow(ingest_run, plan)


def resume_run(run_id: str) -> list:
    """Put the run's stuck workflows back to work; returns their IDs. Given-up (or cancelled)
    ones are resumed; failed chunk and retry workflows are forked from their failed step."""
    stuck = []
    for w in DBOS.list_workflows(workflow_id_prefix=run_id, load_input=False, load_output=False):
        if not (w.workflow_id == run_id or w.workflow_id.startswith(f"{run_id}-")):
            continue
        if w.status in GIVEN_UP:
            DBOS.resume_workflow(w.workflow_id)
            stuck.append(w.workflow_id)
        elif w.status == ERROR and w.name in ("load_chunk", "retry_records") \
                and latest_attempt(w.workflow_id) == w.workflow_id:
            # The fork's ID stays under the run's prefix, so status and waiting see it.
            with SetWorkflowID(fork_id(w.workflow_id)):
                DBOS.fork_workflow(w.workflow_id, failed_step(w.workflow_id),
                                   queue_name=CHUNK_QUEUE if w.name == "load_chunk" else RETRY_QUEUE)
            stuck.append(w.workflow_id)
    return stuck


def failed_step(workflow_id: str) -> int:
    """The first step that failed: a fork re-runs it and keeps the committed ones before it."""
    steps = DBOS.list_workflow_steps(workflow_id)
    failed = [s["function_id"] for s in steps if s.get("error") is not None]
    return min(failed) if failed else (max((s["function_id"] for s in steps), default=0) + 1)
