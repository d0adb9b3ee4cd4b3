"""``ingest worker``: a process that works the shared queues until it is stopped, then lets
its running work finish; it says a line when it starts a run and when it finishes one
(``RunLog``)."""

import time
from collections import deque
from typing import Callable, Optional

from ..contract import ACTIVE, SUCCESS, Summary
from .gc import OFF, age, keep_collecting
from .load import tune_gc


def serve(app, worker_id: str, take_over: list, drain_sec: int, say: Callable,
          processes: int = 1, parent_pid: Optional[int] = None,
          retention: Optional[float] = None) -> None:
    """Work the queues until SIGINT or SIGTERM (or, for a command's helper, until its parent
    process is gone), then let running work finish (``drain_sec``). With ``processes`` > 1,
    helper processes work beside this one (see ``helper_processes``); with ``retention``
    (seconds), finished runs older than that are collected every hour (``gc``)."""
    import signal
    import threading

    from ..runtime.launch import take_over as recover_executors
    from .helper_processes import Fleet, exit_with_parent
    from .schedules import catch_up

    tune_gc()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    if parent_pid:
        exit_with_parent(parent_pid, stop)
        say = (lambda line: None)  # the parent speaks for its helpers
    if retention is not None and not parent_pid:
        keep_collecting(retention)
        say("retention: off (the ingest-gc schedule is deleted)" if retention == OFF else
            f"retention: every hour, ingest gc --older-than {age(retention)}")
    if take_over:
        taken = recover_executors(take_over)
        say(f"took over {taken} unfinished workflow(s) of {', '.join(take_over)}")
    with Fleet(worker_id, processes, app.concurrency, app.database_url, drain_sec, say) as fleet:
        fleet.take_over_others(app.databases)
        fleet.start()
        catch_up(say)
        say(f"worker {worker_id} ready (concurrency {app.concurrency}"
            f"{f', {len(fleet.ids) + 1} processes' if fleet.ids else ''}); Ctrl-C to stop")
        log = RunLog(worker_id, say)
        while not stop.wait(RunLog.POLL_SEC):
            log.look()
        log.look()  # a run that ended since the last look
        say(f"worker {worker_id} stopping: letting running work finish (up to {drain_sec} s)")
    app.drain_sec = drain_sec


class RunLog:
    """The runs this worker (its executor id) works, read from the system database every
    ``POLL_SEC``: a line when one starts (its inputs and records) and when it ends (what it
    did, how long it took). Read, not told: a run's workflow re-runs after a crash, a line
    written by it would repeat."""

    POLL_SEC = 1.0

    def __init__(self, worker_id: str, say: Callable):
        self.worker_id, self.say = worker_id, say
        self.running: dict = {}  # run id -> when this worker first saw it
        self.ended = deque(maxlen=256)  # runs said ended (polls overlap by POLL_SEC)
        self.since = time.time()

    def look(self) -> None:
        """``poll``, best effort: a database that can't be read now is read next time (the
        worker's own work retries by itself)."""
        try:
            self.poll()
        except Exception:
            pass

    def poll(self) -> None:
        from datetime import datetime, timezone

        from dbos import DBOS

        now = time.time()
        after = datetime.fromtimestamp(self.since - self.POLL_SEC, timezone.utc).isoformat()
        pending = DBOS.list_workflows(name="ingest_dataset", executor_id=self.worker_id,
                                      status="PENDING", load_output=False)
        ended = DBOS.list_workflows(name="ingest_dataset", executor_id=self.worker_id,
                                    completed_after=after)
        ended += DBOS.list_workflows(workflow_ids=list(self.running), load_input=False) \
            if self.running else []
        for run in pending:
            self._started(run)
        for run in {run.workflow_id: run for run in ended}.values():
            if run.status not in ACTIVE and run.workflow_id not in self.ended:
                self._ended(run)
        self.since = now

    def _started(self, run) -> None:
        if run.workflow_id in self.running:
            return
        self.running[run.workflow_id] = time.time()
        plan = (run.input.get("args") or [None])[0] if run.input else None
        what = f"{plan.inputs} ({plan.records:,} records)" if plan is not None else ""
        self.say(f"run {run.workflow_id} started: {what}".rstrip(": "))

    def _ended(self, run) -> None:
        if run.workflow_id not in self.running:
            self._started(run)
        began = self.running.pop(run.workflow_id)
        self.ended.append(run.workflow_id)
        summary = Summary.from_output(run.output) if run.output is not None else None
        if run.status == SUCCESS and summary is not None:
            self.say(f"run {run.workflow_id} finished: records {summary.records:,} | tasks "
                     f"{summary.tasks:,} | errors {summary.errors:,} in "
                     f"{summary.finished_at - summary.started_at:.1f} s")
        else:
            self.say(f"run {run.workflow_id} ended {run.status} after "
                     f"{time.time() - began:.1f} s: ingest status {run.workflow_id}")
