"""Waiting for a run: the one place a command polls DBOS while its run goes on (its status,
its chunks for the progress line and for given-up parts), and the lines that say why a run
did not finish."""

import concurrent.futures
import time
from typing import Callable, Optional

from ..contract import (ACTIVE, ERROR, GIVEN_UP, PAGES_EVENT, SUCCESS, Chunk, Job, RunPlan,
                        Summary, children_prefix)
from ..errors import RunFailed, RunIncomplete
from ..steps.inputs import finished_row, run_status
from .progress import Progress
from ..views.states import needing_resume, published_pages

POLL_SEC = 0.25  # how often a waiting command looks at its run
CHILDREN_SEC = 1.0  # how often it looks at the run's chunks (progress, given-up chunks)


def finished_summary(run_id: str) -> Summary:
    """A finished run's summary: its DBOS output, or its summary row once gc collected it
    (with the ``ingest retry`` counts gc folded in)."""
    from dbos import DBOS

    from ..store.run_summaries import current_summary

    found = DBOS.list_workflows(workflow_ids=[run_id], load_input=False)
    if found and found[0].output is not None:
        return Summary.from_output(found[0].output)
    row = finished_row(run_id)
    if row is None:  # gone between two looks: only gc deletes, and it keeps the row first
        raise RunFailed(f"run {run_id} has neither a DBOS history nor a summary row")
    return current_summary(row)


def wait_for_run(run_id: str, on_children: Optional[Callable] = None, handle=None) -> Summary:
    """The run's summary once it finishes; ``RunIncomplete`` if part of it was given up or
    failed and nothing is left running, ``RunFailed`` if the run itself failed. ``handle``:
    the run's DBOS handle when it runs in this process, so its end is seen at once."""
    from dbos import DBOS

    checked = 0.0
    while True:
        status = run_status(run_id)
        if status == SUCCESS:
            return finished_summary(run_id)
        if status == ERROR:
            raise RunFailed(f"run {run_id} failed ({failure_of(run_id)}); see "
                            f"`dbos workflow steps {run_id}`")
        if time.time() - checked > CHILDREN_SEC or status in GIVEN_UP:
            checked = time.time()
            children = DBOS.list_workflows(workflow_id_prefix=children_prefix(run_id),
                                           load_input=on_children is not None, load_output=False)
            if on_children:
                on_children(children)
            stuck = needing_resume(children)
            busy = [c for c in children if c.status in ACTIVE]
            if (status in GIVEN_UP or stuck) and not busy:
                queued_all = awaits_its_chunks(run_id)
                if queued_all or status in GIVEN_UP:
                    raise RunIncomplete(incomplete_report(run_id, stuck, queued_all))
        pause(handle)


def pause(handle) -> None:
    """POLL_SEC, or less when the run ends in this process before that."""
    future = getattr(handle, "future", None)
    if future is None:
        time.sleep(POLL_SEC)
    else:
        concurrent.futures.wait([future], timeout=POLL_SEC)


def progress_of(bar: Progress, run_id: str) -> Optional[Callable]:
    """Turns the run's finished chunk workflows (and its pages so far) into files, pages and
    records done."""
    if not bar.enabled:
        return None
    from dbos import DBOS

    def update(children: list) -> None:
        done = [c.input["args"][1] for c in children
                if c.status == SUCCESS and c.name == "load_chunk" and c.input]
        pages = published_pages(DBOS.get_event(run_id, PAGES_EVENT, timeout_seconds=0)) \
            if bar.pages else None
        bar.update(sum(c.records for c in done), sum(c.files_done for c in done), pages)

    return update


def run_plan(run_id: str):
    """The plan a run was started with: a ``RunPlan``, a version-1 run's dict, or None."""
    from dbos import DBOS

    found = DBOS.list_workflows(workflow_ids=[run_id], load_output=False)
    args = found[0].input.get("args") if found and found[0].input else None
    return args[0] if args else None


def run_job(run_id: str) -> Optional[Job]:
    """The job a run was started with (None for a version-1 run: the defaults); of a run gc
    collected, the one its summary row keeps."""
    from ..store.run_summaries import job_of

    plan = run_plan(run_id)
    if plan is None:
        row = finished_row(run_id)
        return job_of(row.job) if row is not None else None
    return plan.job if isinstance(plan, RunPlan) else None


def run_so_far(run_id: str) -> tuple:
    """(records done, records planned, files planned, whether it fetches pages) of a run."""
    from dbos import DBOS

    from ..views.runs import planned_size

    plan = run_plan(run_id)
    records, files = planned_size(plan)
    children = DBOS.list_workflows(workflow_id_prefix=children_prefix(run_id), status=SUCCESS,
                                   name="load_chunk", load_output=False)
    done = sum(c.input["args"][1].records for c in children if c.input)
    return done, records, files, bool(getattr(plan, "urls", None))


def bar_for_run(run_id: str, enabled: bool) -> Progress:
    """A progress display for a run this command finishes, not starts: its whole size, and
    a rate of what this command does."""
    if not enabled:
        return Progress(0, enabled=False)
    done, records, files, pages = run_so_far(run_id)
    return Progress(records, files=files, pages=pages).resumed_at(done)


def failure_of(run_id: str) -> str:
    """The first line of the error a failed workflow ended with."""
    from dbos import DBOS

    from ..errors import one_line

    found = DBOS.list_workflows(workflow_ids=[run_id], load_input=False)
    error = found[0].error if found else None
    return one_line(error) if isinstance(error, BaseException) else str(error or "no error recorded")


def awaits_its_chunks(run_id: str) -> bool:
    """Whether the run has queued all its chunks: it records ``batch_outcome`` steps only
    then. Until it does, a chunk given up does not make the run incomplete: more may come."""
    from dbos import DBOS

    return any(step["function_name"] == "batch_outcome"
               for step in DBOS.list_workflow_steps(run_id, load_output=False))


def incomplete_report(run_id: str, stuck: list, queued_all: bool = True) -> str:
    from dbos import DBOS

    from ..contract import MAX_RECOVERY_ATTEMPTS

    given_up, failed = [], []
    ids = [c.workflow_id for c in stuck]
    for child in DBOS.list_workflows(workflow_ids=ids) if ids else []:
        args = child.input["args"] if child.input else ()
        chunk = args[1] if len(args) == 2 and isinstance(args[1], Chunk) else None
        what = chunk.describe() if chunk else child.workflow_id
        if child.status == ERROR:
            failed.append(f"{what} failed ({error_line(child.error)})")
        else:
            given_up.append(what)
    parts = failed
    if given_up:
        verb = "was" if len(given_up) == 1 else "were"
        parts = [f"{', '.join(given_up)} {verb} given up after repeated crashes "
                 f"(max_recovery_attempts {MAX_RECOVERY_ATTEMPTS})"] + failed
    what = "; ".join(parts) or "the run itself was given up"
    if queued_all:
        rest = "; the rest is loaded"
    else:
        rest = f"{'; the run was given up too,' if parts else ''} before it had queued all its chunks"
    return (f"run {run_id} is incomplete: {what}{rest}. "
            f"Fix the cause, then run: ingest resume {run_id}")


def error_line(error) -> str:
    reason = (str(error).strip().splitlines() or ["an error"])[0]
    return f"{type(error).__name__}: {reason}" if isinstance(error, BaseException) else reason


def interrupted_line(run_id: Optional[str], resuming: bool = False) -> str:
    """What a Ctrl-C during ``load`` or ``resume`` says: the run, and how to finish it."""
    if run_id is None and not resuming:
        return "interrupted before the run started; nothing was loaded: run the same command again"
    if run_id is None:
        return "interrupted; what was running stops where it is: run ingest resume again to finish it"
    again = "the same command, or " if not resuming else ""
    return (f"interrupted: run {run_id} stops where it is (what is committed stays); "
            f"finish it with {again}ingest resume {run_id}")
