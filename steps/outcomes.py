"""A run's chunks awaited: the work of ``integration``'s ``batch_outcome`` step.

A batch of chunks is watched with one query per look (the statuses of all its chunks still
going), from 5 ms up to ``POLL_SEC`` apart, and the finished chunks' results are read in one
more: a run of 200 chunks asked DBOS about each chunk ~8 times before. A chunk that did not
succeed is followed to its newest fork (``ingest resume``) and waited for there, or
reported stuck.
"""

import time

from dbos import DBOS

from ..contract import ACTIVE, SUCCESS, chunk_workflow_id
from ..sources.since import Highest

POLL_SEC = 0.1  # the longest wait between two looks at a batch still going
COUNTS = ("tasks", "errors", "skipped", "updated")


def batch_outcome(run_id: str, start: int, stop: int) -> dict:
    """The batch's totals, its highest ``--incremental`` values, and its chunks ``stuck``
    (given up, cancelled or failed: ``ingest resume`` retries them)."""
    ids = [chunk_workflow_id(run_id, index) for index in range(start, stop)]
    finished = results_when_settled(ids)
    totals = {**dict.fromkeys(COUNTS, 0), "retries": 0, "stuck": []}
    highest = Highest()
    for index, workflow_id in zip(range(start, stop), ids):
        try:
            result = finished[workflow_id] if workflow_id in finished else result_of(workflow_id)
            retried = result_of(result.retry_workflow) if result.retry_workflow else None
        except Exception as exc:  # given up, cancelled, or failed: ingest resume retries it
            totals["stuck"].append(f"{index}: {type(exc).__name__}")
            continue
        for name in COUNTS:
            totals[name] += getattr(result, name, 0) + (retried or {}).get(name, 0)
        totals["retries"] += retried["retries"] if retried else 0
        highest.merge(result.highest).merge((retried or {}).get("highest"))
    return {**totals, "highest": highest.as_dict()}


def results_when_settled(ids: list) -> dict:
    """Once none of these workflows is running or queued: {ID: result} of those that
    succeeded (the others are left to ``result_of``)."""
    going, delay = list(ids), 0.005
    while going:
        found = DBOS.list_workflows(workflow_ids=going, load_input=False, load_output=False)
        going = [w.workflow_id for w in found if w.status in ACTIVE]
        if going:
            time.sleep(delay)
            delay = min(delay * 2, POLL_SEC)
    done = DBOS.list_workflows(workflow_ids=ids, status=SUCCESS, load_input=False)
    return {w.workflow_id: w.output for w in done}


def result_of(workflow_id: str):
    """The workflow's result, from its newest fork if it has one; raises what it failed with."""
    handle = DBOS.retrieve_workflow(latest_attempt(workflow_id))
    # A small run's chunk ends within milliseconds: look again soon at first.
    delay = 0.005
    while delay < POLL_SEC and handle.get_status().status in ACTIVE:
        time.sleep(delay)
        delay *= 2
    return handle.get_result(polling_interval_sec=POLL_SEC)


def latest_attempt(workflow_id: str) -> str:
    """The child, or the newest fork of it that ``ingest resume`` made after it failed."""
    forks = DBOS.list_workflows(forked_from=workflow_id, sort_desc=True, limit=1,
                                load_input=False, load_output=False)
    return latest_attempt(forks[0].workflow_id) if forks else workflow_id
