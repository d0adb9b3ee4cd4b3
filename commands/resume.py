"""Finishing what was interrupted: ``ingest resume`` (a run's given-up or failed parts back
to work, or every unfinished run of this machine) and ``ingest retry`` (a run's errors
through its transform again), each with the transform the run recorded."""

from typing import Callable, Iterator, Optional

from ..contract import (ACTIVE, CHUNK_QUEUE, ERROR, GIVEN_UP, RETRY_QUEUE, Job, fork_id,
                        is_run_id)
from ..errors import RunNotFound
from .results import LoadResult
from .load import tune_gc
from .interrupted import finish_others_first
from ..steps.inputs import run_status
from .waiting import POLL_SEC, bar_for_run, progress_of, run_job, wait_for_run


def any_state(database_url: Optional[str], run_id: Optional[str] = None) -> bool:
    """Whether DBOS's system database exists: where it doesn't, no run ever started, and
    a command that only finishes runs has nothing to do (and creates nothing). With a
    ``run_id``: ``RunNotFound`` instead of False."""
    from .. import database
    from ..views.runs import system_database_exists

    exists = system_database_exists(database.resolve(database_url).system_url)
    if not exists and run_id:
        raise RunNotFound(run_id)
    return exists


def check_run(run_id: str) -> None:
    if not is_run_id(run_id) or run_status(run_id) is None:
        raise RunNotFound(run_id)


def unfinished_runs() -> tuple:
    """(this executor's unfinished runs, other executors' unfinished runs)."""
    from dbos import DBOS

    runs = DBOS.list_workflows(name="ingest_dataset", status=[*ACTIVE, *GIVEN_UP],
                               load_input=False, load_output=False)
    mine = [w.workflow_id for w in runs if w.executor_id == DBOS.executor_id]
    theirs = [(w.workflow_id, w.executor_id) for w in runs if w.executor_id != DBOS.executor_id]
    return mine, theirs


class resume_all:
    """Finish one run, or every unfinished run of this executor: iterate for their results
    (``count`` says how many runs there are)."""

    def __init__(self, app, run_id: Optional[str], say: Callable, quiet: bool = False):
        from .progress import wanted

        self.app, self.say, self.quiet = app, say, quiet
        self.show_progress = show_progress = wanted(not quiet)
        tune_gc()
        take_over_helpers(app, say)
        if run_id:
            check_run(run_id)
            self.run_ids = [run_id]
            finish_others_first(app, run_id, say, show_progress)
        else:
            self.run_ids, theirs = unfinished_runs()
            for other, owner in theirs:
                say(f"{other} belongs to executor {owner}: restart that worker, or "
                    f"`ingest worker --take-over {owner}`")
            app.start_working()
        self.count = len(self.run_ids)

    def __iter__(self) -> Iterator[LoadResult]:
        for rid in self.run_ids:
            yield resume(self.app, rid, on_resumed=None if self.quiet else lambda r, n: self.say(
                f"resumed {n} given-up workflow(s) of {r}"), show_progress=self.show_progress)


def take_over_helpers(app, say: Callable) -> None:
    """Chunks a killed ``load --workers`` left with its helpers come back to this process
    (once no live process has their ids): ``resume`` finishes what they had taken."""
    from dbos import DBOS

    from .helper_processes import Fleet

    Fleet(DBOS.executor_id, 1, app.concurrency, app.database_url, 0, say).take_over_others(app.databases)


def resume(app, run_id: str, on_resumed: Optional[Callable] = None,
           show_progress: bool = False) -> LoadResult:
    """Put a run's given-up or failed parts back to work and wait for it."""
    job = run_job(run_id)
    if job is not None:
        load_transform(job)
    resumed = resume_run(run_id)
    if resumed and on_resumed:
        on_resumed(run_id, len(resumed))
    bar = bar_for_run(run_id, show_progress)
    try:
        summary = wait_for_run(run_id, on_children=progress_of(bar, run_id))
    finally:
        bar.close()
    return LoadResult.from_summary(summary, False, summary.finished_at - summary.started_at,
                                   app.bad_files(run_id))


def redrive(app, run_id: str, faults: dict, say: Callable) -> dict:
    """``ingest retry``: the run's errors through the run's own transform again."""
    from .. import integration

    check_run(run_id)
    finish_others_first(app, run_id, say, show_progress=False)
    job = run_job(run_id)
    if job is not None:
        load_transform(job)
    return integration.start_redrive(run_id, faults, job=job).get_result(
        polling_interval_sec=POLL_SEC)


def load_transform(job: Job) -> None:
    """Import the run's transform here and now: ``TransformNotFound`` (exit 2) before any
    work if this process can't."""
    from ..transform import resolve

    resolve(job.transform, job.transform_dir)


def resume_run(run_id: str) -> list:
    """Put the run's stuck workflows back to work; returns their IDs. Given-up (or cancelled)
    ones are resumed; failed chunk and retry workflows are forked from their failed step."""
    from dbos import DBOS, SetWorkflowID

    from ..steps.outcomes import latest_attempt

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
    from dbos import DBOS

    steps = DBOS.list_workflow_steps(workflow_id)
    failed = [s["function_id"] for s in steps if s.get("error") is not None]
    return min(failed) if failed else (max((s["function_id"] for s in steps), default=0) + 1)
