"""Runs ``ingest gc`` collected, as ``ingest status`` and the ui show them: from their summary
rows (``ingest_runs``, see ``store.run_summaries``), with what ``ingest retry`` did since gc
(its workflows still in DBOS) added. ``views.runs`` merges them with DBOS's runs, whose rows
win while they are there. Each function takes an engine on the app database
(``views.runs.app_engine``)."""

from typing import Optional

from ..contract import IDENTITY_SEPARATOR, TASKS, PageCounts
from ..store import run_summaries


def newest(engine, limit: Optional[int]) -> list:
    """The newest summary rows; none when there is no app database (``engine`` None), or it
    predates them (not migrated yet: nothing was collected)."""
    return _read(engine, lambda connection: run_summaries.newest_rows(connection, limit), [])


def by_id(engine, run_id: str):
    return _read(engine, lambda connection: run_summaries.row_by_id(connection, run_id), None)


def _read(engine, query, nothing):
    from sqlalchemy import inspect
    from sqlalchemy.exc import OperationalError

    from .. import database

    if engine is None:
        return nothing
    try:
        with engine.connect() as connection:
            return query(connection) if inspect(connection).has_table("ingest_runs") else nothing
    except OperationalError as exc:
        raise database.cannot_connect(str(engine.url), exc.orig) from None


def doubtful(rows: list, summaries: list, limit) -> list:
    """The runs of ``summaries`` (not among DBOS's ``rows``) that DBOS may still hold. When
    DBOS's page is not full, it holds no other run; when it is, one it holds is older than
    the page (by its enqueueing), so only rows that started after the page's oldest are
    asked about (a queued run starts after it is enqueued)."""
    if limit is None or len(rows) < limit:
        return []
    oldest = min((r["started_at"] or 0 for r in rows), default=0)
    return [s.run_id for s in summaries if s.started_at >= oldest]


def merged(rows: list, gone: list, limit, redriven) -> list:
    """DBOS's ``rows`` and the summary rows of runs ``gone`` from it, newest first, the first
    ``limit``; ``redriven(run_id)``: (moved, skipped) by ``ingest retry`` since gc. Each list
    holds the newest of its kind, so the newest of both are among them."""
    ordered = sorted(rows + gone, reverse=True, key=lambda r: (
        r["started_at"] if isinstance(r, dict) else r.started_at) or 0)[:limit or None]
    return [r if isinstance(r, dict) else collected_run(r, *redriven(r.run_id)) for r in ordered]


def collected_run(row, moved: int = 0, skipped: int = 0) -> dict:
    """A collected run as ``views.runs.run_row`` shows a run; ``moved`` and ``skipped``:
    error rows ``ingest retry`` resolved since gc (its workflows in DBOS). Read from the
    row's JSON as it is (the ui lists a thousand runs every second)."""
    stored, job = row.summary, row.job or {}
    folded_moved, folded_skipped = run_summaries.redriven(row)
    moved, skipped = moved + folded_moved, skipped + folded_skipped
    duration = stored["finished_at"] - stored["started_at"]
    handled = stored["tasks"] + stored["updated"] + stored["skipped"] + stored["errors"]
    return {
        "run_id": row.run_id,
        "dataset": row.inputs,
        "state": row.state,
        "files": stored["files_new"] + stored["files_already"] + stored["files_bad"],
        "records": stored["records"],
        "tasks": stored["tasks"] + moved,
        "updated": stored["updated"],
        "skipped": stored["skipped"] + skipped,
        "errors": stored["errors"] - moved - skipped,
        "resolved": moved + skipped,
        "retries": stored["retries"],
        "started_at": stored["started_at"],
        "duration_s": round(duration, 3),
        "records_per_s": round(handled / duration, 1) if duration else None,
        "pages": pages_of(stored) if row.urls else None,
        "table": job.get("table") or TASKS,
        "label": (job.get("fingerprint_label") or "").split(IDENTITY_SEPARATOR)[0],
        "history_removed": True,
        "incremental": dict(stored["incremental"]) if stored.get("incremental") else None,
    }


def pages_of(stored: dict) -> dict:
    from .states import pages_dict

    return pages_dict(run_summaries.summary_of(stored).pages or PageCounts())
