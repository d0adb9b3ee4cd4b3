"""The DBOS application: how a dataset is loaded, durably and exactly once.

Read top to bottom, this is the story of a load:

1. ``ingest_dataset`` is the run: one parent workflow per dataset, whose ID comes from the
   dataset's fingerprint. It fans the dataset's chunks out on the ``ingest-chunks`` queue
   and collects their results into the run's summary.
2. ``load_chunk`` is one child workflow per chunk. In a single datasource transaction
   (``write_chunk``) it reads its byte range of the file, transforms every record and
   writes the successes to ``tasks`` in bulk (COPY on Postgres). Bad records (not JSON, not
   an object, too large, too deep) go straight to ``errors``.
3. Records whose transform failed are handed, one workflow per chunk, to the
   ``ingest-retries`` queue: ``retry_records`` retries them in rounds (``transform_round``
   steps, durable sleeps growing by the backoff in between), then writes the rescued ones
   to ``tasks`` and the rest to ``errors`` with the original exception.
4. The run returns its summary. Run again, the same dataset gets that summary back
   without any work; after a crash, DBOS resumes the run where it stopped.

Every side effect is a step or a datasource transaction, and a transaction commits its
rows together with DBOS's checkpoint: replays never write twice, and metrics are counted
only when a transaction really commits.
"""

import hashlib
import json
import os
import re
import socket
import sqlite3
import threading
import time
from typing import Any, Optional

import orjson
from dbos import DBOS, SetWorkflowID, SQLAlchemyDatasource
from dbos._error import DBOSAwaitedWorkflowCancelledError, DBOSAwaitedWorkflowMaxRecoveryAttemptsExceeded
from sqlalchemy import Engine, event, func, insert, select, update

from . import APP_NAME, __version__, telemetry
from .database import Databases
from .sources.read import RecordProblem, read_chunk
from .models import Error, Task
from .operations import ACTIVE, GIVEN_UP, fork_id, needing_resume
from .transform import Faults, NestingTooDeep, title_of, transform

RUN_QUEUE = "ingest-runs"  # runs started with --detach, for any worker to pick up
CHUNK_QUEUE = "ingest-chunks"
RETRY_QUEUE = "ingest-retries"
# Pinned, so that a run interrupted by a crash is recovered by the next version of the code
# (DBOS only recovers workflows of its own application version). Bump it only when a change
# makes old checkpoints unreadable, after draining runs in flight.
APPLICATION_VERSION = "ingest-v1"
MAX_RECOVERY_ATTEMPTS = int(os.environ.get("INGEST_MAX_RECOVERY_ATTEMPTS", "3"))
QUEUE_POLLING_SEC = 0.05
RESULT_POLLING_SEC = 0.1
COPY_BATCH_ROWS = 500

_app_db: Optional[SQLAlchemyDatasource] = None


# -- 1. the run ---------------------------------------------------------------------------
@DBOS.workflow(name="ingest_dataset", max_recovery_attempts=MAX_RECOVERY_ATTEMPTS)
def ingest_dataset(run: dict) -> dict:
    telemetry.tag_run(run["run_id"])
    started = clock()
    job = {k: v for k, v in run.items() if k != "chunks"}
    handles = [enqueue_chunk(job, index, chunk) for index, chunk in enumerate(run["chunks"])]
    chunks = [await_child(h.workflow_id) for h in handles]
    retries = [await_child(c["retry_workflow"]) for c in chunks if c["retry_workflow"]]
    return summarise(job, chunks, retries, started, clock())


def await_child(workflow_id: str) -> dict:
    """A child's result. A child given up after max_recovery_attempts (a poison chunk) is
    waited for, durably, until an operator resumes it (``ingest resume``)."""
    wait = 1.0
    while True:
        outcome = child_outcome(workflow_id)
        if outcome["given_up"] is False:
            return outcome["result"]
        DBOS.sleep(wait)
        wait = min(wait * 2, 60.0)


@DBOS.step(name="child_outcome")
def child_outcome(workflow_id: str) -> dict:
    # Awaited inside a step, so that "given up" is recorded as this step's output. DBOS's
    # own recorded getResult replays differently once the child has been resumed.
    try:
        result = DBOS.retrieve_workflow(latest_attempt(workflow_id)).get_result(
            polling_interval_sec=RESULT_POLLING_SEC)
        return {"given_up": False, "result": result}
    except Exception as exc:  # given up, cancelled, or failed: ingest resume retries it
        return {"given_up": True, "result": None, "error": f"{type(exc).__name__}: {exc}"}


def latest_attempt(workflow_id: str) -> str:
    """The child, or the newest fork of it that ``ingest resume`` made after it failed."""
    forks = DBOS.list_workflows(forked_from=workflow_id, sort_desc=True, limit=1,
                                load_input=False, load_output=False)
    return latest_attempt(forks[0].workflow_id) if forks else workflow_id


def enqueue_chunk(job: dict, index: int, chunk: tuple):
    with SetWorkflowID(chunk_workflow_id(job["run_id"], index)):
        return DBOS.enqueue_workflow(CHUNK_QUEUE, load_chunk, job, index, chunk)


def run_id_for(fingerprint: str) -> str:
    return f"ingest-{fingerprint}"


def chunk_workflow_id(run_id: str, index: int) -> str:
    return f"{run_id}-chunk-{index:05d}"


@DBOS.step(name="clock")
def clock() -> float:
    return time.time()


def summarise(job: dict, chunks: list, retries: list, started: float, finished: float) -> dict:
    return {
        "run_id": job["run_id"],
        "dataset": job["path"],
        "records": job["records"],
        "chunks": len(chunks),
        "tasks": sum(c["tasks"] for c in chunks) + sum(r["tasks"] for r in retries),
        "errors": sum(c["errors"] for c in chunks) + sum(r["errors"] for r in retries),
        "retries": sum(r["retries"] for r in retries),
        "started_at": started,
        "finished_at": finished,
    }


# -- 2. one chunk ---------------------------------------------------------------------------
@DBOS.workflow(name="load_chunk", max_recovery_attempts=MAX_RECOVERY_ATTEMPTS)
def load_chunk(job: dict, index: int, chunk: tuple) -> dict:
    telemetry.tag_run(job["run_id"])
    with telemetry.chunk(chunk[3]):
        outcome = app_db().run_tx_step(tx_options("write_chunk"), write_chunk, job, index, chunk)
    retry_workflow = None
    if outcome["retry"]:
        with SetWorkflowID(f"{job['run_id']}-retry-{index:05d}"):
            retry_workflow = DBOS.enqueue_workflow(
                RETRY_QUEUE, retry_records, job, index, outcome["retry"]
            ).workflow_id
    return {"index": index, "tasks": outcome["tasks"], "errors": outcome["errors"],
            "retry_workflow": retry_workflow}


def write_chunk(job: dict, index: int, chunk: tuple) -> dict:
    """Transform one chunk and write it: successes to ``tasks``, bad records to ``errors``."""
    start, end, first, count = chunk
    check_input(job)
    faults = Faults.from_dict(job["faults"])
    retry_now = job["max_attempts"] > 1
    problems: list = []
    retry: list = []

    def transformed_rows():
        for position, record in read_chunk(job["path"], job["shape"], start, end, first):
            if isinstance(record, RecordProblem):
                problems.append(error_row(job, position, record.kind, record.message, None, 0))
                continue
            try:
                data = attempt(record, position, 1, faults)
            except (NestingTooDeep, TypeError, orjson.JSONEncodeError, NulCharacter) as exc:
                problems.append(error_row(job, position, type(exc).__name__, str(exc), record, 1))
                continue
            except Exception as exc:
                failure = {"position": position, "record": record, "attempts": 1,
                           "error_type": type(exc).__name__, "error": str(exc)}
                if retry_now:
                    retry.append(failure)
                else:
                    problems.append(final_error_row(job, failure))
                continue
            yield position, data

    session = app_db().sql_session()
    tasks = write_tasks(session, job, transformed_rows())
    write_errors(session, problems)
    process_faults(index)
    count_on_commit(session, tasks, len(problems))
    return {"tasks": tasks, "errors": len(problems), "retry": retry}


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


NUL_REASON = "record contains a NUL character (\\u0000), which Postgres JSONB cannot store"
PERMANENT = ("NestingTooDeep", "TypeError", "JSONEncodeError", "NulCharacter", "InvalidJSON",
             "NotAnObject", "RecordTooLarge")


class NulCharacter(Exception):
    """A record with a NUL character: Postgres JSONB can't store it (SQLite could, but one
    rule for both databases beats data that loads on one and not the other)."""


class InputChanged(Exception):
    """The input file is not the one that was scanned: its chunks can't be trusted."""


def dumps_exact(value) -> bytes:
    """orjson's JSON; the stdlib's for the rare integer over 64 bits, which orjson refuses."""
    try:
        return orjson.dumps(value)
    except TypeError as exc:
        if "64-bit" not in str(exc):
            raise
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def check_input(job: dict) -> None:
    """Refuse to read byte ranges of a file that changed since it was scanned (or that this
    worker sees differently): its records would land under the wrong keys."""
    expected = job.get("source")
    if not expected:
        return
    try:
        stat = os.stat(job["path"])
    except OSError as exc:
        raise InputChanged(f"{job['path']}: {exc.strerror}; every worker must see the input at "
                           "this path (a shared volume)") from None
    if (stat.st_size, stat.st_mtime_ns) != (expected["size"], expected["mtime_ns"]):
        raise InputChanged(f"{job['path']} changed since it was scanned; load the new file as "
                           "a new dataset (ingest load), it gets a new run id")


def attempt(record: dict, position: int, number: int, faults: Faults) -> bytes:
    """One attempt at a record: transform, then the JSON that will be stored."""
    data = dumps_exact(transform(record, position, number, faults))
    if has_nul(data):
        raise NulCharacter(NUL_REASON)
    return data


# orjson writes NUL as \u0000; an escaped backslash before "u0000" (\\u0000) is no NUL.
_NUL = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


def has_nul(data: bytes) -> bool:
    """Whether orjson's JSON text holds a NUL character."""
    return b"\\u0000" in data and _NUL.search(data) is not None


def write_tasks(session, job: dict, rows) -> int:
    """Bulk-insert (position, JSON bytes) rows into ``tasks``; returns how many."""
    connection = session.connection()
    run_id, fingerprint = job["run_id"], job["fingerprint"]
    if connection.dialect.name == "postgresql":
        return _copy_tasks(connection, run_id, fingerprint, rows)
    # SQLite has one writer at a time and locks at the first INSERT: transform the whole
    # chunk first, so the lock is held for the inserts only and chunks overlap.
    values = [(title_of(position), data.decode(), f"{fingerprint}:{position}", run_id, position)
              for position, data in rows]
    if values:
        connection.exec_driver_sql(
            "INSERT INTO tasks (title, data, source_key, run_id, position) VALUES (?, ?, ?, ?, ?)",
            values)
    return len(values)


def _copy_tasks(connection, run_id: str, fingerprint: str, rows) -> int:
    """COPY rows in text format; the JSON is orjson's, so only backslashes need escaping."""
    cursor = connection.connection.driver_connection.cursor()
    suffix = f"\t{run_id}\t".encode()  # run ids and fingerprints are [a-z0-9-]: nothing to escape
    key_prefix = f"\t{fingerprint}:".encode()
    written = 0
    batch: list = []
    sql = f"COPY {Task.__tablename__} (title, data, source_key, run_id, position) FROM STDIN"
    with cursor.copy(sql) as copy:
        for position, data in rows:
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


def write_errors(session, rows: list) -> None:
    if rows:
        session.execute(insert(Error), rows)


def error_row(job: dict, position: int, error_type: str, message: str,
              record: Any, attempts: int) -> dict:
    """An ``errors`` row: the reason as JSON, with the original record for triage."""
    return {
        "title": title_of(position),
        "source_key": f"{job['fingerprint']}:{position}",
        "run_id": job["run_id"],
        "position": position,
        "message": {
            "title": title_of(position),
            "source_key": f"{job['fingerprint']}:{position}",
            "position": position,
            "error_type": error_type,
            "error": message,
            "attempts": attempts,
            "record": storable(record),
        },
    }


def final_error_row(job: dict, failure: dict) -> dict:
    return error_row(job, failure["position"], failure["error_type"], failure["error"],
                     failure["record"], failure["attempts"])


def storable(record: Any) -> Any:
    """The record as JSONB can hold it: NUL characters become U+FFFD."""
    if record is None:
        return None
    try:
        text = dumps_exact(record)
    except (TypeError, ValueError, RecursionError):  # nested deeper than orjson writes (254 levels)
        return None
    if has_nul(text):
        return orjson.loads(_NUL.sub(rb"\1\\ufffd", text))
    return orjson.loads(text)


def count_on_commit(session, tasks: int, errors: int, retries: int = 0,
                    redriven: bool = False) -> None:
    """Count rows in the metrics when, and only when, this transaction commits."""

    def committed(_session) -> None:
        telemetry.record_writes(tasks=tasks, errors=errors, retries=retries, redriven=redriven)

    event.listen(session, "after_commit", committed, once=True)


# -- 3. retries ---------------------------------------------------------------------------
@DBOS.workflow(name="retry_records", max_recovery_attempts=MAX_RECOVERY_ATTEMPTS)
def retry_records(job: dict, index: int, failures: list) -> dict:
    telemetry.tag_run(job["run_id"])
    pending, rescued, retries = failures, [], 0
    delay = job["retry_interval"]
    for number in range(2, job["max_attempts"] + 1):
        DBOS.sleep(delay)
        delay *= job["backoff"]
        retries += len(pending)
        round_result = transform_round(job, pending, number)
        rescued.extend(round_result["rescued"])
        pending = round_result["failed"]
        if not pending:
            break
    return app_db().run_tx_step(
        tx_options("write_retried"), write_retried, job, rescued, pending, retries
    )


@DBOS.step(name="transform_round")
def transform_round(job: dict, pending: list, number: int) -> dict:
    """One more attempt at each failed record of a chunk."""
    faults = Faults.from_dict(job["faults"])
    rescued, failed = [], []
    for failure in pending:
        try:
            rescued.append((failure["position"],
                            attempt(failure["record"], failure["position"], number, faults)))
        except Exception as exc:
            failed.append({**failure, "attempts": number,
                           "error_type": type(exc).__name__, "error": str(exc)})
    return {"rescued": rescued, "failed": failed}


def write_retried(job: dict, rescued: list, failed: list, retries: int) -> dict:
    session = app_db().sql_session()
    tasks = write_tasks(session, job, iter(rescued))
    write_errors(session, [final_error_row(job, f) for f in failed])
    count_on_commit(session, tasks, len(failed), retries)
    return {"tasks": tasks, "errors": len(failed), "retries": retries}


# -- 4. redrive: errors rows through the transform again -----------------------------------
@DBOS.workflow(name="redrive_errors", max_recovery_attempts=MAX_RECOVERY_ATTEMPTS)
def redrive_errors(run_id: str, faults: dict, page_size: int) -> dict:
    """Send a run's unresolved ``errors`` rows through the transform once more, a page per
    transaction: successes go to ``tasks`` and their error rows are marked resolved (kept
    for audit); failures stay, with the new attempt recorded."""
    after, totals = 0, {"retried": 0, "tasks": 0, "errors": 0}
    while True:
        page = app_db().run_tx_step(tx_options("redrive_page"), redrive_page,
                                    run_id, after, faults, page_size)
        if page["last_id"] is None:
            return {"run_id": run_id, **totals}
        after = page["last_id"]
        for key in totals:
            totals[key] += page[key]


def redrive_page(run_id: str, after_id: int, faults: dict, page_size: int) -> dict:
    session = app_db().sql_session()
    # FOR UPDATE: a concurrent redrive waits, then no longer sees the rows resolved here.
    rows = session.execute(
        select(Error.id, Error.position, Error.source_key, Error.message)
        .where(Error.run_id == run_id, Error.resolved_at.is_(None), Error.id > after_id)
        .order_by(Error.id).limit(page_size).with_for_update()
    ).all()
    if not rows:
        return {"last_id": None}
    # A record that can never load (not JSON, not an object, too large or deep, a NUL)
    # keeps its row and its reason: transforming it again can't help.
    retriable = []
    for row in rows:
        message = row.message if isinstance(row.message, dict) else orjson.loads(row.message)
        if message.get("error_type") not in PERMANENT and type(message.get("record")) is dict:
            retriable.append((row, message))
    injected = Faults.from_dict(faults)
    rescued, resolved, failed = [], [], []
    for row, message in retriable:
        number = int(message.get("attempts") or 0) + 1
        try:
            rescued.append((row.position, attempt(message["record"], row.position, number, injected)))
            resolved.append(row.id)
        except Exception as exc:
            failed.append({"id": row.id, "message": {
                **message, "attempts": number, "error_type": type(exc).__name__,
                "error": str(exc), "first_error": message.get("first_error") or message.get("error")}})
    fingerprint = rows[0].source_key.split(":", 1)[0]
    tasks = write_tasks(session, {"run_id": run_id, "fingerprint": fingerprint}, iter(rescued))
    if resolved:
        session.execute(update(Error).where(Error.id.in_(resolved)).values(resolved_at=func.now()))
    for change in failed:
        session.execute(update(Error).where(Error.id == change["id"]).values(message=change["message"]))
    count_on_commit(session, tasks, 0, retries=len(retriable), redriven=True)
    return {"last_id": rows[-1].id, "retried": len(retriable), "tasks": tasks, "errors": len(failed)}


def start_redrive(run_id: str, faults: dict, page_size: int = 1000):
    """Attach to this run's unfinished redrive, or start the next one."""
    earlier = DBOS.list_workflows(workflow_id_prefix=f"{run_id}-redrive-", load_input=False,
                                  load_output=False)
    unfinished = [w for w in earlier if w.status in ACTIVE or w.status in GIVEN_UP]
    if unfinished:
        for w in unfinished:
            if w.status in GIVEN_UP:
                DBOS.resume_workflow(w.workflow_id)
        return DBOS.retrieve_workflow(unfinished[0].workflow_id)
    with SetWorkflowID(f"{run_id}-redrive-{len(earlier) + 1:03d}"):
        return DBOS.start_workflow(redrive_errors, run_id, faults, page_size)


# -- running the app ----------------------------------------------------------------------
def tx_options(name: str) -> dict:
    """Inserts of distinct keys need no more than READ COMMITTED (SQLite has no such level)."""
    postgres = app_db().engine.dialect.name == "postgresql"
    return {"name": name, "isolation_level": "READ COMMITTED" if postgres else "SERIALIZABLE"}


def app_db() -> SQLAlchemyDatasource:
    assert _app_db is not None, "launch() first"
    return _app_db


def dbos_config(databases: Databases, executor_id: Optional[str] = None) -> dict:
    config: dict = {
        "name": APP_NAME,
        "system_database_url": databases.system_url,
        "application_version": APPLICATION_VERSION,
        "executor_id": executor_id,
        # DBOS logs a workflow's exception with its traceback; the CLI reports it in one line.
        "log_level": os.environ.get("INGEST_LOG_LEVEL", "CRITICAL"),
        # Only shutdown waits on this listener (we use no events): a short wait, little polling.
        "notification_listener_polling_interval_sec": 0.2,
    }
    traces = telemetry.traces_endpoint()
    if traces:
        config.update(enable_otlp=True, otlp_traces_endpoints=[traces])
    return config


_global_concurrency: Optional[int] = None


def launch(databases: Databases, *, concurrency: int, executor_id: Optional[str] = None,
           global_concurrency: Optional[int] = None, role: str = "local",
           on_wait=lambda: None) -> None:
    """Start DBOS on these databases and register the queues this process works on.

    Roles: ``local`` (load, resume, retry) runs as the machine's executor, one process at a
    time, and recovers what an earlier one left unfinished; ``worker`` runs as its own
    ``executor_id``; ``client`` (load --detach) only enqueues: it works no queue and owns
    nothing that would need recovering.
    """
    global _app_db, _global_concurrency, _lock
    _global_concurrency = global_concurrency
    if not event.contains(Engine, "connect", _sqlite_pragmas):
        event.listen(Engine, "connect", _sqlite_pragmas)
    if role == "client":
        executor_id = f"client-{socket.gethostname()}-{os.getpid()}"
    elif role == "local":
        executor_id = executor_id or os.environ.get("DBOS__VMID") or "local"
        _lock = ExecutorLock(databases, executor_id)
        _lock.acquire(on_wait)
    DBOS(config=dbos_config(databases, executor_id))
    if role == "client":
        DBOS.listen_queues([])
    _app_db = SQLAlchemyDatasource.create(databases.app_url)
    DBOS.launch()
    if role == "client":
        return
    crashed = crashed_children()
    if crashed:
        start_recovery_mode(crashed, concurrency)
    else:
        register_queues(concurrency)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """On every SQLite connection of this process, DBOS's system database included (its
    engine offers no other hook): WAL, so readers (ingest status, sqlite3) don't block the
    load and a commit costs one fsync; NORMAL, so a power cut can lose only the last
    commits, each together with its checkpoint, which DBOS then redoes. Measured: a 20-chunk
    load spent ~1 s enqueueing its chunks with the default rollback journal."""
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    dbapi_connection.execute("PRAGMA journal_mode=WAL")
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def register_queues(concurrency: int, retries: Optional[int] = None) -> None:
    # Settings live in DBOS's system database, shared by every process of the app.
    DBOS.register_queue(RUN_QUEUE, polling_interval_sec=0.5)
    DBOS.register_queue(CHUNK_QUEUE, worker_concurrency=concurrency,
                        global_concurrency=_global_concurrency,
                        polling_interval_sec=QUEUE_POLLING_SEC)
    # Retry workflows mostly sleep between rounds, so more of them may wait at once.
    DBOS.register_queue(RETRY_QUEUE,
                        worker_concurrency=max(8, concurrency * 4) if retries is None else retries,
                        polling_interval_sec=QUEUE_POLLING_SEC)


def crashed_children() -> list:
    """Chunk workflows that were running when a process died (dispatched, not done)."""
    active = DBOS.list_workflows(status=list(ACTIVE), queue_name=CHUNK_QUEUE,
                                 executor_id=DBOS.executor_id, load_input=False, load_output=False)
    return [w.workflow_id for w in active if (w.recovery_attempts or 0) >= 1]


def start_recovery_mode(crashed: list, concurrency: int) -> None:
    """Run the chunks that were in flight at a crash one at a time, and no retries.

    A poison chunk kills whatever runs beside it, and DBOS counts each of those deaths
    against max_recovery_attempts. Alone, a chunk can only kill itself: only the real
    poison chunk is given up, and the innocent ones finish. Normal concurrency comes back
    when the crashed ones are done.
    """
    register_queues(1, retries=0)

    def watch() -> None:
        while True:
            try:
                statuses = DBOS.list_workflows(workflow_ids=crashed, load_input=False, load_output=False)
            except Exception:
                return  # DBOS was shut down
            if all(w.status not in ACTIVE for w in statuses):
                register_queues(concurrency)
                return
            time.sleep(0.2)

    threading.Thread(target=watch, name="ingest-recovery-mode", daemon=True).start()


def shutdown(drain_sec: int = 0) -> None:
    """Stop DBOS; with drain_sec, first let running workflows finish for that long (what
    is left stays PENDING for this executor to recover when it comes back)."""
    global _app_db, _lock
    DBOS.destroy(workflow_completion_timeout_sec=drain_sec)
    _app_db = None
    if _lock is not None:
        _lock.release()
        _lock = None


class ExecutorLock:
    """One live process per executor id and system database.

    DBOS recovers, at launch, every unfinished workflow of its executor id, including those
    another live process with the same id is running. Two ``ingest load`` processes on
    one machine would take each other's work and could leave it orphaned when one exits;
    so the second waits for the first (use ``ingest worker`` processes, each with its own
    id, to load in parallel). The lock dies with its process, even on kill -9.
    """

    def __init__(self, databases: Databases, executor_id: str):
        self.databases, self.executor_id = databases, executor_id
        self._held = None

    def acquire(self, on_wait) -> None:
        from sqlalchemy import make_url

        url = make_url(self.databases.system_url)
        name = f"durable-ingest|{url.render_as_string(hide_password=True)}|{self.executor_id}"
        if url.get_backend_name() == "postgresql":
            self._held = self._postgres_lock(name, on_wait)
        else:
            self._held = self._file_lock(f"{url.database}.{self.executor_id}.lock", on_wait)

    def _postgres_lock(self, name: str, on_wait):
        import psycopg
        from sqlalchemy import make_url

        key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
        plain = make_url(self.databases.app_url).set(drivername="postgresql")
        connection = psycopg.connect(plain.render_as_string(hide_password=False), autocommit=True)
        if not connection.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
            on_wait()
            connection.execute("SELECT pg_advisory_lock(%s)", (key,))
        return connection

    @staticmethod
    def _file_lock(path: str, on_wait):
        import fcntl

        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        return handle

    def release(self) -> None:
        if self._held is not None:
            self._held.close()
            self._held = None


_lock: Optional[ExecutorLock] = None


def children(run_id: str, with_io: bool = False) -> list:
    """The run's chunk and retry workflows, as DBOS sees them now."""
    return DBOS.list_workflows(workflow_id_prefix=f"{run_id}-", load_input=with_io,
                               load_output=with_io)


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
        elif w.status == "ERROR" and w.name in ("load_chunk", "retry_records") \
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


def unfinished_runs() -> tuple:
    """(this executor's unfinished runs, other executors' unfinished runs)."""
    runs = DBOS.list_workflows(name="ingest_dataset", status=[*ACTIVE, *GIVEN_UP],
                               load_input=False, load_output=False)
    mine = [w.workflow_id for w in runs if w.executor_id == DBOS.executor_id]
    theirs = [(w.workflow_id, w.executor_id) for w in runs if w.executor_id != DBOS.executor_id]
    return mine, theirs


def run_status(run_id: str) -> Optional[str]:
    status = DBOS.get_workflow_status(run_id)
    return status.status if status else None


def start_run(run: dict, detach: bool = False) -> None:
    """Run it here, or (detach) queue it for whichever worker is free."""
    with SetWorkflowID(run["run_id"]):
        if detach:
            DBOS.enqueue_workflow(RUN_QUEUE, ingest_dataset, run)
        else:
            DBOS.start_workflow(ingest_dataset, run)


def take_over(executor_ids: list) -> int:
    """Recover, in this process, the unfinished workflows of dead executors."""
    return len(DBOS._recover_pending_workflows(executor_ids))


def wait_for(handle) -> dict:
    return handle.get_result(polling_interval_sec=RESULT_POLLING_SEC)
