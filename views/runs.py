"""Read-only views for operators: runs and their chunks (``ingest status``, the ``ui``), and
how the views reach the databases (``views.app_database`` has the app database's files, errors and
tables).

Run state comes from DBOS's system database through a ``DBOSClient``, which reads it
without launching DBOS (no recovery, no queue workers). Looking never changes anything, and
never creates a database that is not there.
"""

import os
import time
from contextlib import contextmanager
from typing import Callable, Optional

from ..contract import (ACTIVE, ERROR, GIVEN_UP, IDENTITY_SEPARATOR, PAGES_EVENT, QUEUED, SUCCESS,
                       TASKS, Chunk, PageCounts, Summary, children_prefix, is_run_id,
                       redrive_prefix)
from ..errors import RunNotFound
from .scheduled import with_schedules
from .states import incremental_of


# -- reaching the databases ---------------------------------------------------------------------
def system_database_exists(system_url: str) -> bool:
    """False when no load ever ran here: then there is nothing to show, and nothing to create."""
    from sqlalchemy import create_engine, inspect, make_url

    if not database_exists(system_url):
        return False
    url = make_url(system_url)
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            schema = None if url.get_backend_name() == "sqlite" else "dbos"
            return inspect(connection).has_table("workflow_status", schema=schema)
    finally:
        engine.dispose()


def database_exists(url: str) -> bool:
    from sqlalchemy import make_url

    from .. import database

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return bool(parsed.database) and os.path.exists(parsed.database)
    return database.postgres_database_exists(url)


@contextmanager
def system_client(database_url: Optional[str]):
    """A read-only client of DBOS's system database; None when there is none yet."""
    from dbos import DBOSClient

    from .. import database

    databases = database.resolve(database_url)
    try:
        client = DBOSClient(system_database_url=databases.system_url) \
            if system_database_exists(databases.system_url) else None
    except Exception as exc:
        raise database.cannot_connect(databases.system_url, getattr(exc, "orig", exc)) from None
    try:
        yield client
    finally:
        if client is not None:
            client.destroy()


@contextmanager
def app_engine(database_url: Optional[str]):
    """An engine on the app database, or None when it does not exist yet."""
    from sqlalchemy import create_engine, inspect

    from .. import database

    url = database.resolve(database_url).app_url
    if not database_exists(url):
        yield None
        return
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            ready = inspect(connection).has_table("sources")
    except Exception as exc:
        engine.dispose()
        raise database.cannot_connect(url, getattr(exc, "orig", exc)) from None
    try:
        yield engine if ready else None
    finally:
        engine.dispose()


_lasting: dict = {}  # app database URL -> its engine, for this process's life


def lasting_app_engine(database_url: Optional[str]):
    """An engine on the app database kept for the process (the ui lists runs every second:
    an engine costs more than the query); None while the database does not exist."""
    from sqlalchemy import create_engine

    from .. import database

    url = database.resolve(database_url).app_url
    if url not in _lasting:
        if not database_exists(url):
            return None
        _lasting[url] = create_engine(url)
    return _lasting[url]


# -- runs ---------------------------------------------------------------------------------------
def list_runs(database_url: Optional[str], limit: Optional[int] = None) -> list:
    """Every run, newest first, as one dict each."""
    with system_client(database_url) as client:
        return runs_of(client, database_url, limit) if client is not None else []


def runs_of(client, database_url: Optional[str], limit: Optional[int] = None) -> list:
    """``list_runs`` with an open client. A finished run's counts are in its output: only
    unfinished runs have their children read (one query for all redrives), so a long list
    costs a few queries, not one per run."""
    parents = client.list_workflows(name="ingest_dataset", sort_desc=True, limit=limit)
    redrives: dict = {}
    for redrive in client.list_workflows(name="redrive_errors", status=SUCCESS, load_input=False):
        redrives.setdefault(redrive.workflow_id.rsplit("-redrive-", 1)[0], []).append(redrive)
    alive = executor_alive(database_url)
    rows = [run_row(client, parent, redrives.get(parent.workflow_id, [])
                    if parent.status == SUCCESS else None, alive=alive) for parent in parents]
    return with_schedules(lasting_app_engine(database_url),
                          with_collected(client, database_url, rows, redrives, limit))


def with_collected(client, database_url: Optional[str], rows: list, redrives: dict,
                   limit: Optional[int]) -> list:
    """``rows`` (DBOS's runs, newest first) with the runs gc collected among the newest
    ``limit`` (``views.collected.merged``)."""
    from .collected import doubtful, merged, newest

    shown = {r["run_id"] for r in rows}
    summaries = [s for s in newest(lasting_app_engine(database_url), limit)
                 if s.run_id not in shown]
    asked = doubtful(rows, summaries, limit)
    still = {w.workflow_id for w in client.list_workflows(
        workflow_ids=asked, load_input=False, load_output=False)} if asked else set()
    return merged(rows, [s for s in summaries if s.run_id not in still], limit,
                  lambda run_id: redriven_of(run_id, redrives.get(run_id, [])))


def run_detail(database_url: Optional[str], run_id: str) -> dict:
    """One run with the state of each chunk (and of its retry workflow, if any)."""
    with system_client(database_url) as client:
        return detail_of(client, database_url, run_id)


def detail_of(client, database_url: Optional[str], run_id: str) -> dict:
    """``run_detail`` with an open client (None: no system database yet)."""
    known = client is not None and is_run_id(run_id)
    found = client.list_workflows(workflow_ids=[run_id]) if known else []
    children = client.list_workflows(workflow_id_prefix=children_prefix(run_id)) if known else []
    if not found:
        return with_schedules(lasting_app_engine(database_url),
                              [collected_detail(database_url, run_id, children)])[0]
    detail = with_schedules(lasting_app_engine(database_url), [
        run_row(client, found[0], children, alive=executor_alive(database_url))])[0]
    by_id = {c.workflow_id: c for c in children}
    chunks = sorted((c for c in children if c.name == "load_chunk" and c.input
                     and not c.workflow_id.endswith("-fork")), key=lambda c: c.workflow_id)
    detail["chunks"] = [chunk_row(run_id, c, by_id) for c in chunks]
    detail["chunk_summary"] = chunk_summary(detail["chunks"])
    return detail


def collected_detail(database_url: Optional[str], run_id: str, children: list) -> dict:
    """A run gc collected, from its summary row: no chunks are left to show."""
    from .collected import collected_run

    row = summary_row(database_url, run_id)
    if row is None:
        raise RunNotFound(run_id)
    detail = collected_run(row, *redriven_of(run_id, children))
    return {**detail, "chunks": [], "chunk_summary": chunk_summary([])}


def summary_row(database_url: Optional[str], run_id: str):
    """The summary row of a run gc collected (None: none)."""
    from .collected import by_id

    return by_id(lasting_app_engine(database_url), run_id) if is_run_id(run_id) else None


SLOWEST_SHOWN = 3
FAILED_SHOWN = 20


def chunk_summary(chunks: list) -> dict:
    """A run's chunks in a few lines: how many are in each state, the slowest finished
    ones, and those that failed or were given up (the first ``FAILED_SHOWN``)."""
    by_state: dict = {}
    for chunk in chunks:
        by_state[chunk["state"]] = by_state.get(chunk["state"], 0) + 1
    timed = [c for c in chunks if c["started_at"] and c["ended_at"]]
    slowest = sorted(timed, key=lambda c: c["started_at"] - c["ended_at"])[:SLOWEST_SHOWN]
    failed = [c for c in chunks if c["state"] == ERROR or c["state"] in GIVEN_UP]
    return {
        "total": len(chunks),
        "by_state": by_state,
        "slowest": [{"chunk": c["chunk"], "seconds": round(c["ended_at"] - c["started_at"], 3)}
                    for c in slowest],
        "failed": [{"chunk": c["chunk"], "state": c["state"], "records": c["records"]}
                   for c in failed[:FAILED_SHOWN]],
        "failed_total": len(failed),
        "recoveries": sum(c["recoveries"] for c in chunks),
    }


def run_row(client, parent, children: Optional[list] = None,
            alive: Callable[[str], bool] = lambda executor: True) -> dict:
    plan = parent.input["args"][0] if parent.input and parent.input.get("args") else None
    if children is None:
        children = client.list_workflows(workflow_id_prefix=children_prefix(parent.workflow_id))
    redriven, redrive_skipped = redriven_of(parent.workflow_id, children)
    if parent.status == SUCCESS and parent.output is not None:
        out = Summary.from_output(parent.output)
        tasks, errors, retries, records = out.tasks, out.errors, out.retries, out.records
        skipped, updated = out.skipped, out.updated
        started, finished, files = out.started_at, out.finished_at, out.files
    else:
        tasks, errors, retries, skipped, updated = sum_children(children)
        started, finished = (parent.created_at or 0) / 1000, None
        records, files = planned_size(plan)
    state = run_state(parent, children, alive)
    if finished is None and state not in ("running", "queued"):  # nothing runs: its clock stops
        finished = last_change(parent, children)
    duration = (finished or time.time()) - started if started else None
    pages = pages_of(client, parent, plan)
    done = Summary.from_output(parent.output) if parent.status == SUCCESS and parent.output else None
    return {
        "run_id": parent.workflow_id,
        "dataset": dataset_of(plan),
        "state": state,
        "files": files,
        "records": records,
        "tasks": tasks + redriven,
        "updated": updated,
        "skipped": skipped + redrive_skipped,
        "errors": errors - redriven - redrive_skipped,
        "resolved": redriven + redrive_skipped,
        "retries": retries,
        "started_at": started,
        "duration_s": round(duration, 3) if duration is not None else None,
        "records_per_s": round((tasks + updated + skipped + errors) / duration, 1) if duration else None,
        "pages": pages,
        "table": table_of(plan),
        "label": label_of(plan),
        "history_removed": False,  # True: ingest gc deleted it (``views.collected``)
        "incremental": incremental_of(plan, done),
    }


def redriven_of(run_id: str, children: list) -> tuple:
    """(error rows moved to tasks, and skipped as already there) by ``ingest retry``s of the
    run, from its finished redrive workflows among ``children``."""
    redrives = [c.output for c in children if c.workflow_id.startswith(redrive_prefix(run_id))
                and c.status == SUCCESS and isinstance(c.output, dict)]
    return sum(r.get("tasks", 0) for r in redrives), sum(r.get("skipped", 0) for r in redrives)


def last_change(parent, children: list) -> Optional[float]:
    """When the run or one of its workflows last changed (epoch seconds)."""
    moments = [w.updated_at for w in (parent, *children) if w.updated_at]
    return max(moments) / 1000 if moments else None


def pages_of(client, parent, plan) -> Optional[dict]:
    """A run's pages of URL inputs, fetched so far (None: it has no URL inputs): from its
    summary once done, else from the counts its workflow publishes as it goes."""
    from .states import pages_dict, published_pages

    if plan is None or isinstance(plan, dict) or not getattr(plan, "urls", ()):
        return None
    if parent.status == SUCCESS and parent.output is not None:
        return pages_dict(Summary.from_output(parent.output).pages or PageCounts())
    published = client.get_event(parent.workflow_id, PAGES_EVENT, timeout_seconds=0)
    return published_pages(published)


def dataset_of(plan) -> Optional[str]:
    if plan is None:
        return None
    return plan.get("path") if isinstance(plan, dict) else plan.inputs


def as_dict(output) -> dict:
    """A workflow's output as a dict: a dataclass (this version) or a dict (version 1)."""
    if output is None:
        return {}
    return output if isinstance(output, dict) else vars(output)


def planned_size(plan) -> tuple:
    """(records, files) a run set out to load, from its input (a version-1 run: a dict)."""
    if plan is None:
        return 0, 0
    if isinstance(plan, dict):
        return plan.get("records", 0), 1
    return plan.records, plan.files


def run_state(parent, children: list, alive: Callable[[str], bool]) -> str:
    """done, incomplete, failed, queued, running, or interrupted: not finished, and no live
    process holds the executor id of the run's own workflow (a killed command; other
    processes may still finish chunks it had queued, but only the same command, ``ingest
    resume`` or that executor's restart finishes the run)."""
    from .states import needing_resume

    status = parent.status
    if status == SUCCESS:
        return "done"
    if status in GIVEN_UP or needing_resume(children):
        return "incomplete"
    if status == ERROR:
        return "failed"
    if status in QUEUED:
        return "queued"
    return "running" if parent.executor_id and alive(parent.executor_id) else "interrupted"


def executor_alive(database_url: Optional[str]) -> Callable[[str], bool]:
    """executor id -> whether a live process holds it (its ``ExecutorLock``), asked once each."""
    from .. import database
    from ..runtime.executor_lock import ExecutorLock

    databases = database.resolve(database_url)
    known: dict = {}

    def alive(executor_id: str) -> bool:
        if executor_id not in known:
            known[executor_id] = ExecutorLock(databases, executor_id).held_elsewhere()
        return known[executor_id]

    return alive


def sum_children(children: list) -> tuple:
    """(tasks, errors, retries, skipped, updated) of a run's finished chunks so far."""
    tasks = errors = retries = skipped = updated = 0
    for child in children:
        if child.status != SUCCESS or child.name not in ("load_chunk", "retry_records"):
            continue
        output = as_dict(child.output)
        retried = child.name == "retry_records"
        tasks += output.get("tasks", 0)
        errors += output.get("errors", 0)
        skipped += output.get("skipped", 0)
        updated += output.get("updated", 0)
        retries += output.get("retries", 0) if retried else 0
    return tasks, errors, retries, skipped, updated


def chunk_row(run_id: str, workflow, by_id: dict) -> dict:
    chunk: Chunk = workflow.input["args"][1]
    retry = by_id.get(f"{run_id}-retry-{chunk.index:05d}")
    output = as_dict(workflow.output) if workflow.status == SUCCESS else {}
    retry_output = retry.output if retry and isinstance(retry.output, dict) else {}
    return {
        "chunk": chunk.index,
        "records": chunk.span(),
        "files": chunk.last - chunk.first + 1,
        "state": workflow.status,
        "tasks": output.get("tasks", 0) + retry_output.get("tasks", 0),
        "errors": output.get("errors", 0) + retry_output.get("errors", 0),
        "retry_state": retry.status if retry else None,
        "recovery_attempts": workflow.recovery_attempts,
        # DBOS counts every dispatch, the first one too: a recovery is any dispatch after it.
        "recoveries": max((workflow.recovery_attempts or 0) - 1, 0),
        "executor": workflow.executor_id,
        # When a process took it from the queue and when it ended (epoch s; None: not yet).
        "started_at": (workflow.dequeued_at or workflow.created_at or 0) / 1000 or None,
        "ended_at": (workflow.completed_at or workflow.updated_at) / 1000
        if workflow.status not in ACTIVE and (workflow.completed_at or workflow.updated_at) else None,
    }


def require_known_run(database_url: Optional[str], run_id: str) -> None:
    with system_client(database_url) as client:
        if client is None or not is_run_id(run_id) or not client.list_workflows(
                workflow_ids=[run_id], load_input=False, load_output=False):
            if summary_row(database_url, run_id) is None:
                raise RunNotFound(run_id)


def run_table(database_url: Optional[str], run_id: str) -> str:
    """The table a run writes (``tasks`` for a run without ``--table``, or unknown)."""
    with system_client(database_url) as client:
        found = client.list_workflows(workflow_ids=[run_id], load_output=False) \
            if client is not None and is_run_id(run_id) else []
    if not found and is_run_id(run_id):
        row = summary_row(database_url, run_id)
        return ((row.job or {}).get("table") if row is not None else "") or TASKS
    return table_of(found[0].input["args"][0] if found and found[0].input else None)


def table_of(plan) -> str:
    job = getattr(plan, "job", None)
    return getattr(job, "table", "") or TASKS


def label_of(plan) -> str:
    """The run's ``--label`` ("" without one): the part of its files' identity it names."""
    job = getattr(plan, "job", None)
    return (getattr(job, "fingerprint_label", "") or "").split(IDENTITY_SEPARATOR)[0]
