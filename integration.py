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
   and a page spooled by an unfinished one is found in the spool. A URL without ``{page}``
   is a chain (``fetch_chain``): a page per step (``fetch_link``), whose output carries
   the next page's URL, so it goes on from the last page fetched.
3. ``load_chunk`` reads its pieces, transforms every record and writes the successes to
   ``tasks`` in one datasource transaction (``write_chunk``; COPY on Postgres). Records that
   can never load go straight to ``errors``.
4. Records whose transform failed are handed, one workflow per chunk, to the
   ``ingest-retries`` queue as runs of positions, never the records themselves.
   ``retry_records`` retries them in rounds (``retry_round`` transactions, durable sleeps
   growing by the backoff in between): each reads them again from the input, writes the
   rescued ones to ``tasks``, and those that failed for good (the last attempt, or a
   permanent error) to ``errors`` with their exception and text.
5. The run awaits its chunks in batches and returns its summary. Run again, the same files
   get that summary back without any work; after a crash, DBOS resumes the run where it
   stopped.

``redrive_errors`` (``ingest retry``) sends a run's ``errors`` rows through the transform
again; ``scheduled_load`` is a schedule's tick (``ingest schedule``): it plans a run as
``ingest load`` does and starts it, in an ``ingest worker``; ``collect_garbage`` (``ingest
worker --retention``) deletes what old finished runs leave behind, every hour. Every side
effect is a step or a datasource transaction, and a transaction commits its rows together
with DBOS's checkpoint: replays never write twice, and metrics are counted only when a
transaction really commits.
"""

if __name__ == "__main__" and not __package__:
    # `python integration.py`, as the demo was run: the `ingest` command of the installed
    # package (the demo load when no arguments are given). An entry point, not an import.
    import runpy
    import sys
    from pathlib import Path

    demo = str(Path(__file__).resolve().parent / "data" / "randomuser-1000.json")
    sys.argv[1:] = sys.argv[1:] or ["load", demo, "--transform", "uppercase", "--fail-task", "50"]
    runpy.run_module("durable_ingest.cli", run_name="__main__", alter_sys=True)

import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Optional

from dbos import DBOS, SetWorkflowID

from .store import datasource, run_summaries
from .steps import chunks, claims, cursors, faults, outcomes, packing, redrive, retention, ticks
from .telemetry import metrics as telemetry
from .steps.chunks import target_of
from .tables import catalog as tables
from .contract import (ACTIVE, CHUNK_QUEUE, GIVEN_UP, MAX_RECOVERY_ATTEMPTS, PAGES_EVENT,
                       RETRY_QUEUE, RUN_QUEUE, RUN_RECOVERY_ATTEMPTS, Chunk, ChunkResult,
                       Claimed, FetchedPage, HttpPolicy, Job, PageCounts, RunPlan, Summary,
                       TickPlan, UrlSource, chunk_workflow_id, count_of, redrive_prefix,
                       redrive_workflow_id, retry_workflow_id)
from .sources.credentials import CredentialsNeeded, credentials_for
from .sources.fetcher import forget_run
from .sources.http import Scanning, Tail, fetch_chained, fetch_pages, unfetched
from .sources.paging import Chain
from .sources.since import Highest

CLAIM_PAGE = 1000  # files claimed per transaction
AWAIT_BATCH = 64  # chunks awaited per step


# -- 1. the run -----------------------------------------------------------------------------
@DBOS.workflow(name="ingest_dataset", max_recovery_attempts=RUN_RECOVERY_ATTEMPTS)
def ingest_run(plan: RunPlan) -> Summary:
    job = plan.job
    telemetry.tag_run(job.run_id)
    started = clock()
    if job.table:
        prepare_table(job)
    claimed = claim_files(job, plan.files)
    packed = enqueue_chunks(job, final=not plan.urls)
    fetched = Fetched(claimed=Claimed(), pages=PageCounts(), ordinal=plan.files, packing=packed)
    for source in plan.urls:
        fetched = fetch_source(job, source, fetched)
    if plan.urls:
        packed = enqueue_chunks(job, fetched.packing, final=True)
        fetched_all(job)
    count = packed["next_index"]
    totals = await_chunks(job.run_id, count)
    pages = fetched.claimed
    incremental = datasource.run_tx("advance_cursor", cursors.advance, job, plan.urls[0],
                                    target_of(job), totals.highest) if job.incremental else None
    summary = Summary(run_id=job.run_id, inputs=plan.inputs,
                      records=claimed.records + pages.records, tasks=totals.tasks,
                      errors=totals.errors + claimed.bad_rows + pages.bad_rows,
                      retries=totals.retries, chunks=count, files_new=claimed.new,
                      files_already=claimed.duplicate, files_bad=claimed.bad,
                      started_at=started, finished_at=clock(), skipped=totals.skipped,
                      updated=totals.updated, pages=fetched.pages if plan.urls else None,
                      incremental=incremental)
    # The run's summary row, kept when ``ingest gc`` deletes this history (once: checkpointed).
    datasource.run_tx("record_run", run_summaries.record_run, summary, job, len(plan.urls))
    return summary


@DBOS.step(name="clock")
def clock() -> float:
    return time.time()


def prepare_table(job: Job) -> None:
    """The run's dataset table, created if it is not there yet, and its column hints kept (its
    columns come with the records that need them)."""
    datasource.run_tx("prepare_table", tables.prepare, job.table, job.key, job.run_id,
                      job.columns)


def claim_files(job: Job, files: int) -> Claimed:
    total = Claimed()
    for low in range(0, files, CLAIM_PAGE):
        total += datasource.run_tx("claim_page", claims.claim_page, job.run_id, low,
                                   low + CLAIM_PAGE, target_of(job))
    return total


# -- 2. chunks ------------------------------------------------------------------------------
def enqueue_chunks(job: Job, state: Optional[dict] = None, final: bool = True) -> dict:
    """Pack the run's new files not packed yet into chunks, a page of files at a time, and
    enqueue each chunk as it is packed. ``state`` carries on where the last call stopped
    (its ``next_index`` is the number of chunks so far); with ``final``, the last chunk is
    closed, else it stays open for the files (pages) still to come."""
    state = state or packing.first_state()
    while True:
        page = datasource.run_tx("pack_chunks", packing.pack_chunks, job.run_id, job.chunk_size,
                                 state, final)
        for chunk in page["chunks"]:
            with SetWorkflowID(chunk_workflow_id(job.run_id, chunk.index)):
                DBOS.enqueue_workflow(CHUNK_QUEUE, load_chunk, job, chunk)
        state = page["state"]
        if page["done"]:
            return state


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
    if not source.paginated:
        return fetch_chain(job, source, fetched)
    count = pages_per_step(job.http)
    page, tail = source.first, Tail()
    while source.last is None or page <= source.last:
        pages, ended = when_allowed(fetch_batch, job, source, page, count, tail)
        for fetched_page in pages:
            tail = tail.after(fetched_page)
        page += len(pages)
        if ended and source.last is not None and page <= source.last:
            pages.append(unfetched(source, page, tail))  # N failures in a row: the rest alike
        fetched = record_batch(job, fetched, pages)
        if ended:
            break
    return fetched


def fetch_chain(job: Job, source: UrlSource, fetched: Fetched) -> Fetched:
    """Fetch a chain of pages, each page's step carrying the next one's URL. Pages are
    written to ``sources``, claimed and packed once they hold a chunk's records (or a
    step's worth of pages), so their chunks load while the next pages are fetched. A loop
    ends the chain with an ``errors`` row."""
    chain, unrecorded = Chain(source), []
    while chain.url is not None:
        page = when_allowed(fetch_link, job, source, chain.url, chain.count + 1)
        stopped = chain.follow(page)
        unrecorded += [page] + ([stopped] if stopped else [])
        if chain.url is None or len(unrecorded) >= pages_per_step(job.http) \
                or sum(p.records for p in unrecorded) >= job.chunk_size:
            fetched, unrecorded = record_batch(job, fetched, unrecorded), []
    return fetched


def record_batch(job: Job, fetched: Fetched, pages: list) -> Fetched:
    """A batch's pages into ``sources``, claimed and packed, its counts published."""
    kept = [p for p in pages if p.loads]
    claimed = datasource.run_tx("record_pages", claims.record_pages, job.run_id, fetched.ordinal,
                                kept, target_of(job))
    counts = fetched.pages + PageCounts(
        new=claimed.new, already=claimed.duplicate, failed=claimed.bad,
        empty=len(pages) - len(kept), http_retries=sum(max(p.attempts - 1, 0) for p in pages),
        records=claimed.records)
    DBOS.set_event(PAGES_EVENT, asdict(counts))
    return replace(fetched, claimed=fetched.claimed + claimed, pages=counts,
                   ordinal=fetched.ordinal + len(kept),
                   packing=enqueue_chunks(job, fetched.packing, final=False))


def when_allowed(fetch, *args):
    """A fetching step, once a process with the run's credentials runs the run: one that
    recovered it without them (another command's) waits, durably, and lets it go when
    it exits; the same command or ``ingest resume --header`` then goes on."""
    wait = 5.0
    while True:
        try:
            return fetch(*args)
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


@DBOS.step(name="fetch_link")
def fetch_link(job: Job, source: UrlSource, url: str, number: int) -> FetchedPage:
    """Fetch, spool and scan page ``number`` of a chain, at ``url``: its ``FetchedPage``,
    whose ``next`` is the URL of the page after it (None: the last)."""
    creds = credentials_for(job.run_id, job.credentials_check, job.credential_names)
    scanning = Scanning(job.chunk_size, job.fmt, job.fingerprint_label)
    return fetch_chained(job.run_id, source, url, number, job.http, scanning, creds, job.spool)


# -- 3. one chunk ---------------------------------------------------------------------------
@DBOS.workflow(name="load_chunk", max_recovery_attempts=MAX_RECOVERY_ATTEMPTS)
def load_chunk(job: Job, chunk: Chunk) -> ChunkResult:
    telemetry.tag_run(job.run_id)
    faults.park(chunk.index, "start")
    with telemetry.chunk(chunk.records), chunks.reading_slot():
        outcome = datasource.run_tx("write_chunk", chunks.write_chunk, job, chunk)
    retry_workflow = None
    if outcome["retry"]:
        with SetWorkflowID(retry_workflow_id(job.run_id, chunk.index)):
            retry_workflow = DBOS.enqueue_workflow(
                RETRY_QUEUE, retry_records, job, chunk, outcome["retry"]).workflow_id
    return ChunkResult(index=chunk.index, tasks=outcome["tasks"], errors=outcome["errors"],
                       retry_workflow=retry_workflow, skipped=outcome.get("skipped", 0),
                       updated=outcome.get("updated", 0), highest=outcome.get("highest"))


# -- 4. retries -----------------------------------------------------------------------------
@DBOS.workflow(name="retry_records", max_recovery_attempts=MAX_RECOVERY_ATTEMPTS)
def retry_records(job: Job, chunk: Chunk, failed: list) -> dict:
    """Retry a chunk's failed records in rounds, durable sleeps growing by the backoff in
    between. They travel as runs of positions (``contract.add_position``), never as records:
    each round (one transaction) reads them again from the input, writes the rescued to the
    run's table, and those that failed for good (their last attempt, or a permanent error)
    to ``errors``; the rest go on to the next round."""
    telemetry.tag_run(job.run_id)
    pending, delay = failed, job.retry_interval
    totals = {"tasks": 0, "updated": 0, "skipped": 0, "errors": 0, "retries": 0}
    highest = Highest()
    for number in range(2, job.max_attempts + 1):
        DBOS.sleep(delay)
        delay *= job.backoff
        totals["retries"] += count_of(pending)
        with chunks.reading_slot():
            outcome = datasource.run_tx("retry_round", chunks.retry_round, job, chunk, pending,
                                        number, number == job.max_attempts)
        for name in ("tasks", "updated", "skipped", "errors"):
            totals[name] += outcome[name]
        highest.merge(outcome.get("highest"))
        pending = outcome["failed"]
        if not pending:
            break
    return {**totals, "highest": highest.as_dict()}


# -- 5. awaiting the chunks -------------------------------------------------------------------
def await_chunks(run_id: str, count: int) -> ChunkResult:
    totals = {"tasks": 0, "errors": 0, "retries": 0, "skipped": 0, "updated": 0}
    highest = Highest()
    for low in range(0, count, AWAIT_BATCH):
        outcome = await_batch(run_id, range(low, min(low + AWAIT_BATCH, count)))
        for name in totals:
            totals[name] += outcome.get(name, 0)
        highest.merge(outcome.get("highest"))
    return ChunkResult(index=-1, **totals, highest=highest.as_dict())


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
    return outcomes.batch_outcome(run_id, start, stop)


# -- 6. redrive: errors rows through the transform again --------------------------------------
@DBOS.workflow(name="redrive_errors", max_recovery_attempts=MAX_RECOVERY_ATTEMPTS)
def redrive_errors(run_id: str, faults: dict, page_size: int, job: Optional[Job] = None) -> dict:
    """Send a run's unresolved ``errors`` rows through the run's transform once more, a page
    per transaction: successes go to ``tasks`` and their error rows are marked resolved (kept
    for audit); failures stay, with the new attempt recorded."""
    after, totals = 0, {"retried": 0, "tasks": 0, "errors": 0, "skipped": 0}
    while True:
        page = datasource.run_tx("redrive_page", redrive.redrive_page, run_id, after, faults,
                                 page_size, job)
        if page["last_id"] is None:
            return {"run_id": run_id, **totals}
        after = page["last_id"]
        for key in totals:
            totals[key] += page.get(key, 0)


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


# -- 7. schedules' ticks -------------------------------------------------------------------------
@DBOS.workflow(name="scheduled_load", max_recovery_attempts=MAX_RECOVERY_ATTEMPTS)
def scheduled_load(tick: datetime, schedule: dict) -> dict:
    """A schedule's tick: DBOS's scheduler, in ``ingest worker`` processes, starts one per tick
    across all of them (its ID names the schedule and the tick), on ``ingest-schedules``, one
    at a time. It plans the run of what the schedule's inputs hold now and starts it here,
    unless the schedule's last run still goes or nothing is new; then it counts what it did.
    A crash in between replays the plan and the start: one tick, at most one run."""
    name = schedule["name"]
    planned = plan_tick(name, schedule)
    if planned.plan is not None:
        with SetWorkflowID(planned.run_id):
            DBOS.start_workflow(ingest_run, planned.plan)
    datasource.run_tx("record_tick", ticks.record_tick, name, tick, planned)
    return {"outcome": planned.outcome, "run_id": planned.run_id, "reason": planned.reason}


@DBOS.step(name="plan_tick")
def plan_tick(name: str, schedule: dict) -> TickPlan:
    return ticks.plan_tick(datasource.app_db().engine, name, schedule)


# -- 8. retention: what old finished runs leave behind -----------------------------------------
@DBOS.workflow(name="collect_garbage")
def collect_garbage(scheduled_time, context) -> dict:
    """A tick of the ``ingest-gc`` schedule (``ingest worker --retention``): ``context`` is
    how old a finished run must be, in seconds. One step: gc is safe to run again."""
    return collect_step(float(context))


@DBOS.step(name="collect_garbage_step")
def collect_step(older_than: float) -> dict:
    return retention.collect(DBOS, datasource.app_db().engine, older_than).asdict()


# -- 9. starting runs ------------------------------------------------------------------------------
def start_run(plan: RunPlan, detach: bool = False):
    """Run it here, or (detach) queue it for whichever worker is free."""
    with SetWorkflowID(plan.job.run_id):
        if detach:
            return DBOS.enqueue_workflow(RUN_QUEUE, ingest_run, plan)
        return DBOS.start_workflow(ingest_run, plan)
