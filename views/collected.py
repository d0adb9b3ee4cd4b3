"""Runs ``ingest gc`` collected, as ``ingest status`` and the ui show them: from their summary
rows (``ingest_runs``, see ``store.run_summaries``), with what ``ingest retry`` did since gc
(its workflows still in DBOS) added. ``views.runs`` merges them with DBOS's runs, whose rows
win while they are there. Each function takes an engine on the app database
(``views.runs.app_engine``)."""

from typing import Optional

from ..contract import IDENTITY_SEPARATOR, TASKS
from ..store import run_summaries


def readable(engine) -> bool:
    """Whether the app database (an engine, or None: none yet) has summary rows to read:
    one not migrated yet predates them (nothing was collected)."""
    from sqlalchemy import inspect

    if engine is None:
        return False
    with engine.connect() as connection:
        return inspect(connection).has_table("ingest_runs")


def newest(engine, limit: Optional[int]) -> list:
    if not readable(engine):
        return []
    with engine.connect() as connection:
        return run_summaries.newest_rows(connection, limit)


def by_id(engine, run_id: str):
    if not readable(engine):
        return None
    with engine.connect() as connection:
        return run_summaries.row_by_id(connection, run_id)


def collected_run(row, moved: int = 0, skipped: int = 0) -> dict:
    """A collected run as ``views.runs.run_row`` shows a run; ``moved`` and ``skipped``:
    error rows ``ingest retry`` resolved since gc (its workflows in DBOS)."""
    from .states import pages_dict

    stored = run_summaries.summary_of(row.summary)
    now = run_summaries.current_summary(row)
    folded = sum(run_summaries.redriven(row))
    job = run_summaries.job_of(row.job)
    duration = stored.finished_at - stored.started_at
    handled = stored.tasks + stored.updated + stored.skipped + stored.errors
    return {
        "run_id": row.run_id,
        "dataset": row.inputs,
        "state": row.state,
        "files": stored.files,
        "records": stored.records,
        "tasks": now.tasks + moved,
        "updated": stored.updated,
        "skipped": now.skipped + skipped,
        "errors": now.errors - moved - skipped,
        "resolved": folded + moved + skipped,
        "retries": stored.retries,
        "started_at": stored.started_at,
        "duration_s": round(duration, 3),
        "records_per_s": round(handled / duration, 1) if duration else None,
        "pages": pages_dict(stored.pages) if row.urls else None,
        "table": (job.table if job else "") or TASKS,
        "label": (job.fingerprint_label if job else "").split(IDENTITY_SEPARATOR)[0],
        "history_removed": True,
    }
