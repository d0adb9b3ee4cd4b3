"""Starting and stopping DBOS for one ``ingest`` process: its configuration, the app
database's datasource, the queues this process works, the recovery of what a crashed process
left, and the lock that keeps one live process per executor id.

The workflows themselves are in ``integration``; this module only runs them.
"""

import os
import socket
import sqlite3
import threading
import time
from contextlib import contextmanager
from typing import Optional

from dbos import DBOS, SQLAlchemyDatasource
from sqlalchemy import Engine, event

from .. import APP_NAME
from ..steps import chunks
from ..store import datasource
from ..telemetry import metrics as telemetry
from ..codec import json_text
from ..contract import (ACTIVE, APPLICATION_VERSION, CHUNK_QUEUE, GC_QUEUE, RETRY_QUEUE,
                        RUN_QUEUE)
from ..database import Databases, is_retryable_conflict
from .executor_lock import ExecutorLock
from .queue_wake import nudge, wake_on_register
from .scheduler import SCHEDULE_POLL_SEC, declare_queue, fire_schedules

QUEUE_POLLING_SEC = 0.05
SQLITE_OPEN_BUSY_SEC = 5
LOCAL_DRAIN_SEC = 30
LOCAL_QUEUES = (RUN_QUEUE, CHUNK_QUEUE, RETRY_QUEUE)  # what a local command works

_lock = None  # the ExecutorLock of a local process
_concurrency = 1  # of this process's chunk queue
_working = False  # whether this process works the queues yet (``start_working``)
_deferred = False  # whether its start-up recovery waits for ``start_working``
_schedules = False  # whether this process fires schedules' ticks and works them (workers)


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
        "scheduler_polling_interval_sec": SCHEDULE_POLL_SEC,
    }
    traces = telemetry.traces_endpoint()
    if traces:
        config.update(enable_otlp=True, otlp_traces_endpoints=[traces])
    return config


_global_concurrency: Optional[int] = None


def launch(databases: Databases, *, concurrency: int, executor_id: Optional[str] = None,
           global_concurrency: Optional[int] = None, role: str = "local",
           on_wait=lambda: None, exclusive: bool = False, helper: bool = False) -> None:
    """Start DBOS on these databases and register the queues this process works on.

    Roles: ``local`` (load, resume, retry) runs as the machine's executor, one process at a
    time, and recovers what an earlier one left unfinished; ``worker`` runs as its own
    ``executor_id``; ``client`` (load --detach) only enqueues: it works no queue and owns
    nothing that would need recovering. An ``exclusive`` worker also waits until no other
    live process has its executor id. A ``helper`` (of a command, see
    ``commands.helper_processes``) works only chunks and retries: a queued run's own
    workflow stays with long-lived processes. Only a ``worker`` (not a helper) fires the
    schedules' ticks and works their queue (``scheduler``).
    """
    global _global_concurrency, _lock, _schedules
    _global_concurrency = global_concurrency
    _schedules = role == "worker" and not helper
    fire_schedules(_schedules)
    wake_on_register()
    if not event.contains(Engine, "connect", _sqlite_pragmas):
        event.listen(Engine, "connect", _sqlite_pragmas)
    if role == "client":
        executor_id = f"client-{socket.gethostname()}-{os.getpid()}"
    elif role == "local":
        executor_id = executor_id or local_executor_id()
    if role == "local" or exclusive:
        _lock = ExecutorLock(databases, executor_id)
        _lock.acquire(on_wait)
    DBOS(config=dbos_config(databases, executor_id))
    if role == "client":
        DBOS.listen_queues([])
    elif helper:
        DBOS.listen_queues([CHUNK_QUEUE, RETRY_QUEUE])
    # JSON columns written exactly: an errors row's record may hold Decimals (codec.storable)
    datasource.install(SQLAlchemyDatasource.create(databases.app_url,
                                              engine_kwargs={"json_serializer": json_text}))
    global _concurrency, _deferred
    _concurrency = concurrency
    # Read again now that this process holds the executor's lock (App read it before the
    # lock, to refuse another version's runs before changing anything): only now is it sure.
    _deferred = role == "local" and has_unfinished_runs(databases.system_url, executor_id)
    if _deferred:  # it works only once the command knows it has work: ``start_working``
        DBOS.listen_queues([])
        with startup_recovery_deferred():
            DBOS.launch()
        return
    if role == "local":  # retention's ticks (GC_QUEUE) are for workers only
        DBOS.listen_queues(list(LOCAL_QUEUES))
    DBOS.launch()
    if role == "worker" and not helper:
        DBOS.register_queue(GC_QUEUE, worker_concurrency=1, polling_interval_sec=1.0)
    if role != "client":
        start_working()


def has_unfinished_runs(system_url: str, executor_id: str) -> bool:
    """Whether the system database holds runs this executor left unfinished: then a local
    command starts no work until it knows it has some (see ``commands.interrupted``)."""
    return bool(unfinished_runs_of(system_url, executor_id))


def unfinished_runs_of(system_url: str, executor_id: str) -> list:
    """[(run ID, application version)] of the runs this executor left unfinished, read
    before DBOS starts and without creating anything."""
    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.pool import NullPool

    url = make_url(system_url)
    sqlite = url.get_backend_name() == "sqlite"
    if sqlite and not (url.database and os.path.exists(url.database)):
        return []
    engine = create_engine(url, poolclass=NullPool)
    table = "workflow_status" if sqlite else "dbos.workflow_status"
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(
                f"SELECT workflow_uuid, application_version FROM {table} "
                "WHERE executor_id = :executor AND name = :name "
                "AND status IN ('PENDING', 'ENQUEUED') ORDER BY created_at"),
                {"executor": executor_id, "name": "ingest_dataset"})]
    except SQLAlchemyError:  # no such database or table yet: no run ever started here
        return []
    finally:
        engine.dispose()


def start_working() -> None:
    """Work the queues here, and recover every workflow this executor left unfinished (a
    local command's own run, and any other run a killed command of this machine left):
    once per process."""
    global _working
    if _working:
        return
    _working = True
    crashed = crashed_children()
    if _deferred:  # a local command put off DBOS's start-up recovery and its queues until now
        from dbos._dbos import _get_dbos_instance

        _get_dbos_instance()._listening_queues = list(LOCAL_QUEUES)  # as ``launch`` would
        DBOS._recover_pending_workflows([DBOS.executor_id])
    if crashed:
        start_recovery_mode(crashed, _concurrency)
    else:
        register_queues(_concurrency)


@contextmanager
def startup_recovery_deferred():
    """``DBOS.launch`` re-enqueues every PENDING workflow of the executor in the background,
    at once. A local command that has nothing to do must leave another command's
    interrupted run as it was, and one that has work says first that it finishes such a
    run (``commands.interrupted``): so its launch skips that, and ``start_working``
    recovers. Replaces a module attribute of DBOS 3.4 (pinned) during the launch only."""
    import dbos._dbos as core

    original = core.startup_recovery_thread
    core.startup_recovery_thread = lambda *_: None
    try:
        yield
    finally:
        core.startup_recovery_thread = original


def refuse_earlier_versions(databases: Databases, executor_id: str) -> None:
    """``UsageError`` before anything is changed (the app database's schema included) when
    this executor left a run unfinished under another application version: DBOS recovers
    only its own version's workflows, and that run's checkpoints have another shape."""
    from ..database import redact
    from ..errors import UsageError

    for run_id, version in unfinished_runs_of(databases.system_url, executor_id):
        if version != APPLICATION_VERSION:
            raise UsageError(
                f"run {run_id} was interrupted under another version of durable-ingest "
                f"(application version {version}; this is {APPLICATION_VERSION}), which this "
                f"one cannot finish; nothing was changed: finish it with that version "
                f"(`ingest resume {run_id}`), or give it up "
                f"(`dbos workflow cancel {run_id} -s {redact(databases.system_url)}`)")


def local_executor_id() -> str:
    """The executor id of this machine's load, resume and retry commands."""
    return os.environ.get("DBOS__VMID") or "local"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """On every SQLite connection of this process, DBOS's system database included (its
    engine offers no other hook): WAL, so readers (ingest status, sqlite3) don't block the
    load and a commit costs one fsync; NORMAL, so a power cut can lose only the last
    commits, each together with its checkpoint, which DBOS then redoes. Measured: a 20-chunk
    load spent ~1 s enqueueing its chunks with the default rollback journal."""
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    _execute_when_not_busy(dbapi_connection, "PRAGMA journal_mode=WAL")
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _execute_when_not_busy(connection: sqlite3.Connection, sql: str) -> None:
    """Run a new connection's first statement, trying again while SQLite says the file is
    busy. The last connection of another process to close a WAL file holds it exclusively
    for an instant while it cleans up, and a connection that opens it then gets SQLITE_BUSY
    without waiting (sqlite.org/wal.html, "Sometimes Queries Return SQLITE_BUSY"): two
    loads in one folder meet that when the first hands the machine to the second."""
    deadline = time.monotonic() + SQLITE_OPEN_BUSY_SEC
    while True:
        try:
            connection.execute(sql)
            return
        except sqlite3.OperationalError as exc:
            if not is_retryable_conflict(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def register_queues(concurrency: int, retries: Optional[int] = None) -> None:
    # Settings live in DBOS's system database, shared by every process of the app.
    DBOS.register_queue(RUN_QUEUE, polling_interval_sec=0.5)
    if _schedules:
        declare_queue()
    DBOS.register_queue(CHUNK_QUEUE, worker_concurrency=concurrency,
                        global_concurrency=_global_concurrency,
                        polling_interval_sec=QUEUE_POLLING_SEC)
    # Retry workflows mostly sleep between rounds, so more of them may wait at once; but
    # only as many chunks and rounds as chunk workflows hold their records at once.
    chunks.set_readers(concurrency)
    DBOS.register_queue(RETRY_QUEUE,
                        worker_concurrency=max(8, concurrency * 4) if retries is None else retries,
                        polling_interval_sec=QUEUE_POLLING_SEC)
    nudge()  # a queue new to this database is worked now, not at DBOS's next look


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
    global _lock, _working
    if drain_sec and _working:
        drain(drain_sec)
    _working = False
    DBOS.destroy(workflow_completion_timeout_sec=0)
    datasource.install(None)
    if _lock is not None:
        _lock.release()
        _lock = None


def drain(seconds: float) -> None:
    """Stop taking work, then let this process's work finish, for up to ``seconds``: what
    DBOS's own ``destroy(workflow_completion_timeout_sec=...)`` does, but that sleeps a whole
    second before it first looks, so every finished load paid a second for nothing; this
    looks every 50 ms. "This process's work": the workflows running here (DBOS's in-memory
    set) and the chunks and retries the system database says this executor took. A chunk
    taken from the queue is PENDING there before its thread starts; left behind, it would
    wait for this executor's next start, and another command's run with it. Uses private
    attributes of DBOS 3.4: its background threads' stop events and its active set. A run
    this process can't advance (it waits for credentials it was not given) is left for
    the next process."""
    from dbos._dbos import _get_dbos_instance

    from ..sources.credentials import waiting

    dbos = _get_dbos_instance()
    for stop in dbos.background_thread_stop_events:
        stop.set()
    deadline = time.monotonic() + seconds

    def busy() -> bool:
        return bool(set(dbos._active_workflows_set.activeList()) - waiting) or taken_here()

    while time.monotonic() < deadline and busy():
        time.sleep(0.05)


def taken_here() -> bool:
    """Whether the system database has chunks or retries of this executor still PENDING."""
    try:
        return any(DBOS.list_workflows(status=["PENDING"], executor_id=DBOS.executor_id,
                                       queue_name=queue, limit=1, load_input=False,
                                       load_output=False) for queue in (CHUNK_QUEUE, RETRY_QUEUE))
    except Exception:  # the system database is gone: nothing to wait for
        return False


def take_over(executor_ids: list) -> int:
    """Recover, in this process, the unfinished workflows of dead executors (a private DBOS
    API: fine while dbos stays pinned)."""
    return len(DBOS._recover_pending_workflows(executor_ids))


class App:
    """One command's use of the databases: prepare them, start metrics and DBOS; always
    flush and stop them. ``on_wait`` is called when another local process holds the lock,
    ``warn`` with telemetry's one-line warnings."""

    def __init__(self, database_url: Optional[str], concurrency: int, *,
                 executor_id: Optional[str] = None, global_concurrency: Optional[int] = None,
                 role: str = "local", on_wait=lambda: None, warn=lambda line: None,
                 exclusive: bool = False, helper: bool = False):
        self.database_url, self.concurrency, self.executor_id = database_url, concurrency, executor_id
        self.global_concurrency, self.role, self.exclusive = global_concurrency, role, exclusive
        self.helper = helper
        self.on_wait, self.warn = on_wait, warn
        # A process that works the shared queues may hold another run's chunks when its own
        # work is done: let them finish, or they wait for this executor's next start.
        self.drain_sec = LOCAL_DRAIN_SEC if role == "local" else 0
        self.databases: Optional[Databases] = None
        self.engine = None

    def __enter__(self) -> "App":
        from sqlalchemy import create_engine

        from .. import (
            database,
            integration,  # noqa: F401  registers the workflows before DBOS starts
        )
        from ..errors import IngestError, one_line

        self.databases = database.resolve(self.database_url)
        if self.role == "local":
            refuse_earlier_versions(self.databases, self.executor_id or local_executor_id())
        database.upgrade_schema(self.databases.app_url)  # DBOS creates its own database
        telemetry.start(warn=self.warn)
        try:
            launch(self.databases, concurrency=self.concurrency, executor_id=self.executor_id,
                   global_concurrency=self.global_concurrency, role=self.role,
                   on_wait=self.on_wait, exclusive=self.exclusive, helper=self.helper)
        except Exception as exc:
            telemetry.stop()
            urls = (self.databases.system_url, self.databases.app_url)
            raise IngestError(f"cannot start DBOS (system database "
                              f"{database.redact(self.databases.system_url)}, app database "
                              f"{database.redact(self.databases.app_url)}): "
                              f"{one_line(exc, *urls)}") from None
        self.engine = create_engine(self.databases.app_url)
        return self

    def __exit__(self, exc_type, *_):
        try:
            # Interrupted or failed: stop at once; what runs is recovered at the next start.
            shutdown(self.drain_sec if exc_type is None else 0)
            if self.engine is not None:
                self.engine.dispose()
        finally:
            telemetry.stop()
        return False

    def start_working(self) -> None:
        """This command has work: it works the queues now (see ``start_working``)."""
        start_working()

    def write_plan(self, manifest, run_id: str, options, scanned=None):
        """The run's ``sources`` rows (see ``sources.plan``)."""
        from ..sources.rows import write_plan

        return write_plan(self.engine, manifest, run_id, options.chunk_size, options.fmt,
                          options.identity, scanned, options.endpoint_url, options.changed)

    def file_notes(self, run_id: str) -> dict:
        """What the run's local files said of themselves (see ``store.files.file_notes``)."""
        from ..store.files import file_notes

        with self.engine.connect() as connection:
            return file_notes(connection, run_id)

    def check_table(self, table: str, key: str, hints: tuple = ()) -> None:
        """``UsageError`` if the dataset table exists with another key than this load's, or
        with a column of another type than one of its ``--column`` hints."""
        from ..tables.catalog import check_table

        check_table(self.engine, table, key, hints)

    def bad_files(self, run_id: str, limit: int = 20) -> list:
        """Why the run's bad files could not be loaded, or its objects that changed before
        their chunks read them were not, one line each (the first ``limit``)."""
        from sqlalchemy import select

        from ..models import Source

        with self.engine.connect() as connection:
            return list(connection.execute(
                select(Source.error).where(Source.run_id == run_id, Source.error.is_not(None))
                .order_by(Source.ordinal).limit(limit)).scalars())

    def changed_objects(self, run_id: str) -> int:
        """How many of the run's objects changed before their chunks read them."""
        from sqlalchemy import func, select

        from ..models import Source

        with self.engine.connect() as connection:
            return connection.execute(
                select(func.count()).select_from(Source).where(
                    Source.run_id == run_id, Source.state == "new",
                    Source.error.is_not(None))).scalar()
