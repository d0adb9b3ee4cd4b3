"""A finished run's summary row (``ingest_runs``): written by its workflow when it finishes
(``record_run``, a datasource transaction), or by ``ingest gc`` for a run older than the
table, and read by ``ingest status``, the ui and the commands once gc has deleted the run's
DBOS history. The row keeps the run's ``Summary`` and ``Job`` as JSON; the counts of the
``ingest retry`` workflows gc deleted are folded into ``redrives``."""

from dataclasses import asdict, fields, replace
from typing import Optional

from sqlalchemy import Row, select, update

from ..contract import HttpPolicy, Job, PageCounts, Summary
from ..models import RunSummary
from .dialect import insert_ignoring_conflicts

DONE = "done"  # the state of every row: only runs whose workflow succeeded are collected
COLUMNS = tuple(RunSummary.__table__.c)  # read as rows (attributes by column name)
JOB_FIELDS = frozenset(f.name for f in fields(Job))  # a row's job may predate a field


# -- the shapes, as JSON -----------------------------------------------------------------------
def job_json(job: Optional[Job]) -> Optional[dict]:
    return asdict(job) if job is not None else None


def job_of(data: Optional[dict]) -> Optional[Job]:
    """The ``Job`` a row keeps (tuples come back from JSON as lists); None without one."""
    if not data:
        return None
    values = {k: v for k, v in data.items() if k in JOB_FIELDS}
    values["http"] = HttpPolicy(**values.get("http") or {})
    values["credential_names"] = tuple(values.get("credential_names") or ())
    values["columns"] = tuple(tuple(c) for c in values.get("columns") or ())
    return Job(**values)


def summary_json(summary: Summary) -> dict:
    return asdict(summary)


def summary_of(data: dict) -> Summary:
    pages = data.get("pages")
    return Summary(**{**data, "pages": PageCounts(**pages) if pages else None})


def row_of(summary: Summary, job: Optional[Job], urls: int) -> dict:
    """The ``ingest_runs`` row of a finished run."""
    return {"run_id": summary.run_id, "state": DONE, "inputs": summary.inputs,
            "started_at": summary.started_at, "finished_at": summary.finished_at,
            "summary": summary_json(summary), "job": job_json(job), "urls": urls,
            "redrives": {}}


# -- writing -------------------------------------------------------------------------------------
def record_run(summary: Summary, job: Job, urls: int) -> None:
    """The run's row, in the datasource transaction that ends its workflow (once: a replay
    of a committed transaction is not run again)."""
    from .datasource import session

    write_rows(session(), [row_of(summary, job, urls)])


def write_rows(connection, rows: list) -> None:
    """Rows of finished runs; a row already there is kept (its run wrote it first)."""
    if rows:
        connection.execute(insert_ignoring_conflicts(connection, RunSummary), rows)


def fold_redrives(connection, run_id: str, counts: dict) -> None:
    """Add ``{"ID@CREATED_MS": [tasks, skipped]}`` of the run's finished ``ingest retry``
    workflows to its row: folding the same ones again changes nothing."""
    if not counts:
        return
    folded = connection.execute(select(RunSummary.redrives)
                                .where(RunSummary.run_id == run_id)).scalar_one_or_none()
    merged = {**(folded or {}), **counts}
    if merged != folded:
        connection.execute(update(RunSummary).where(RunSummary.run_id == run_id)
                           .values(redrives=merged))


# -- reading -------------------------------------------------------------------------------------
def newest_rows(connection, limit: Optional[int]) -> list:
    """The newest rows (by the start of their run), newest first."""
    query = select(*COLUMNS).order_by(RunSummary.started_at.desc())
    return connection.execute(query.limit(limit) if limit else query).all()


def rows_by_id(connection, run_ids: list) -> dict:
    if not run_ids:
        return {}
    found = connection.execute(select(*COLUMNS).where(RunSummary.run_id.in_(run_ids)))
    return {row.run_id: row for row in found}


def row_by_id(connection, run_id: str) -> Optional[Row]:
    return rows_by_id(connection, [run_id]).get(run_id)


def redriven(row: Row) -> tuple:
    """(error rows moved to tasks, skipped as already there) by the folded redrives."""
    counts = list((row.redrives or {}).values())
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


def current_summary(row: Row) -> Summary:
    """The run's ``Summary`` with the folded redrives' counts applied (as ``as_today``
    applies those still in DBOS)."""
    summary = summary_of(row.summary)
    moved, skipped = redriven(row)
    return replace(summary, tasks=summary.tasks + moved, skipped=summary.skipped + skipped,
                   errors=summary.errors - moved - skipped)
