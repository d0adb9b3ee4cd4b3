"""Read-only views for operators: runs and their chunks (``ingest status``) and error
triage (``ingest errors``).

Run state comes from DBOS's system database through a ``DBOSClient``, which reads it
without launching DBOS (no recovery, no queue workers): looking never changes anything.
"""

import re
import time
from typing import Optional

GIVEN_UP = ("MAX_RECOVERY_ATTEMPTS_EXCEEDED", "CANCELLED")
ACTIVE = ("PENDING", "ENQUEUED", "DELAYED")


def system_database_exists(system_url: str) -> bool:
    """False when no load ever ran here: then there is nothing to show, and nothing to create."""
    from sqlalchemy import create_engine, inspect, make_url

    url = make_url(system_url)
    if url.get_backend_name() == "sqlite":
        import os

        if not url.database or not os.path.exists(url.database):
            return False
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            schema = None if url.get_backend_name() == "sqlite" else "dbos"
            return inspect(connection).has_table("workflow_status", schema=schema)
    except Exception as exc:
        if re.search(r'database "[^"]*" does not exist', str(exc)):
            return False
        raise
    finally:
        engine.dispose()


def open_client(system_url: str):
    from dbos import DBOSClient

    return DBOSClient(system_database_url=system_url)


def list_runs(client, limit: Optional[int] = None) -> list:
    """Every run, newest first, as one dict each."""
    parents = client.list_workflows(name="ingest_dataset", sort_desc=True, limit=limit)
    return [run_row(client, parent) for parent in parents]


def run_row(client, parent, children: Optional[list] = None) -> dict:
    args = parent.input["args"][0] if parent.input and parent.input.get("args") else {}
    if children is None and parent.status != "SUCCESS":
        children = client.list_workflows(workflow_id_prefix=f"{parent.workflow_id}-")
    if parent.status == "SUCCESS" and isinstance(parent.output, dict):
        out = parent.output
        tasks, errors, retries = out["tasks"], out["errors"], out["retries"]
        started, finished = out["started_at"], out["finished_at"]
    else:
        tasks, errors, retries = _sum_children(children or [])
        started = (parent.created_at or 0) / 1000
        finished = None
    records = args.get("records", 0)
    duration = (finished or time.time()) - started if started else None
    return {
        "run_id": parent.workflow_id,
        "dataset": args.get("path"),
        "state": run_state(parent.status, children),
        "records": records,
        "tasks": tasks,
        "errors": errors,
        "retries": retries,
        "started_at": started,
        "duration_s": round(duration, 3) if duration is not None else None,
        "records_per_s": round((tasks + errors) / duration, 1) if duration else None,
    }


def fork_id(workflow_id: str) -> str:
    """The ID ``ingest resume`` gives the fork of a failed child: under the run's prefix."""
    return f"{workflow_id}-fork"


def needing_resume(children: list) -> list:
    """The children ``ingest resume`` must act on: given up, or failed and not forked yet."""
    ids = {c.workflow_id for c in children}
    return [c for c in children if c.status in GIVEN_UP
            or (c.status == "ERROR" and fork_id(c.workflow_id) not in ids)]


def run_state(parent_status: str, children: Optional[list]) -> str:
    if parent_status == "SUCCESS":
        return "done"
    if parent_status in GIVEN_UP or needing_resume(children or []):
        return "incomplete"
    if parent_status == "ERROR":
        return "failed"
    return "queued" if parent_status in ("ENQUEUED", "DELAYED") else "running"


def _sum_children(children: list) -> tuple:
    tasks = errors = retries = 0
    for child in children:
        if child.status == "SUCCESS" and isinstance(child.output, dict):
            tasks += child.output.get("tasks", 0)
            errors += child.output.get("errors", 0)
            retries += child.output.get("retries", 0)
    return tasks, errors, retries


def run_detail(client, run_id: str) -> Optional[dict]:
    """One run with the state of each chunk (and of its retry workflow, if any)."""
    found = client.list_workflows(workflow_ids=[run_id])
    if not found:
        return None
    parent = found[0]
    children = client.list_workflows(workflow_id_prefix=f"{run_id}-")
    detail = run_row(client, parent, children)
    by_id = {c.workflow_id: c for c in children}
    plan = parent.input["args"][0]["chunks"] if parent.input else []
    detail["chunks"] = [
        chunk_row(run_id, index, chunk, by_id) for index, chunk in enumerate(plan)
    ]
    return detail


def chunk_row(run_id: str, index: int, chunk, by_id: dict) -> dict:
    _, _, first, count = chunk
    workflow = by_id.get(f"{run_id}-chunk-{index:05d}")
    retry = by_id.get(f"{run_id}-retry-{index:05d}")
    output = workflow.output if workflow and isinstance(workflow.output, dict) else {}
    retry_output = retry.output if retry and isinstance(retry.output, dict) else {}
    return {
        "chunk": index,
        "records": f"{first}-{first + count - 1}",
        "state": workflow.status if workflow else "NOT_ENQUEUED",
        "tasks": output.get("tasks", 0) + retry_output.get("tasks", 0),
        "errors": output.get("errors", 0) + retry_output.get("errors", 0),
        "retry_state": retry.status if retry else None,
        "recovery_attempts": workflow.recovery_attempts if workflow else 0,
        "executor": workflow.executor_id if workflow else None,
    }


# -- error triage -------------------------------------------------------------------------
def error_groups(engine, run_id: Optional[str], limit: int, include_resolved: bool) -> list:
    """Error rows grouped by exception type and message: count and a sample title each."""
    from sqlalchemy import text

    error_type, message = json_fields(engine.dialect.name)
    where = ["1 = 1"]
    params: dict = {"limit": limit}
    if run_id:
        where.append("run_id = :run_id")
        params["run_id"] = run_id
    if not include_resolved:
        where.append("resolved_at IS NULL")
    sql = text(
        f"SELECT {error_type} AS error_type, {message} AS error, count(*) AS n, min(title) AS sample "
        f"FROM errors WHERE {' AND '.join(where)} "
        f"GROUP BY {error_type}, {message} ORDER BY n DESC, error_type LIMIT :limit"
    )
    with engine.connect() as connection:
        rows = connection.execute(sql, params).fetchall()
    return [{"error_type": r[0], "error": r[1], "count": r[2], "sample_title": r[3]} for r in rows]


def json_fields(dialect: str) -> tuple:
    """The SQL that reads ``message.error_type`` and ``message.error``: the one place that
    knows each database's JSON operators."""
    if dialect == "postgresql":
        return "message->>'error_type'", "message->>'error'"
    return "json_extract(message, '$.error_type')", "json_extract(message, '$.error')"
