"""A schedule's tick: what ``ingest schedule add`` stored (its inputs and ``ingest load``
options, never credentials) found again and planned as ``ingest load`` plans a run
(``plan_tick``), and what the tick did, counted once (``record_tick``).

A tick loads only what was never loaded, as any rerun does: inputs that hold nothing new make
the run that already loaded them, and no run starts. A tick that comes while the schedule's
last run still goes starts none either: it is counted as skipped.
"""

from datetime import datetime
from typing import Optional

from sqlalchemy import select, update

from ..contract import ACTIVE, SUCCESS, RunPlan, TickPlan
from ..errors import IngestError
from ..models import ScheduledRun, ScheduleTicks
from ..store import datasource
from ..store.dialect import insert_ignoring_conflicts
from ..tables.catalog import check_table
from .inputs import current_run, describe_inputs, identify_inputs, run_status
from .load_options import options_of, urls_asking

STARTED, SKIPPED, UNCHANGED, FAILED = "started", "skipped", "unchanged", "failed"


def plan_tick(engine, name: str, schedule: dict) -> TickPlan:
    """The run this tick starts (its ``sources`` rows written), or why it starts none."""
    last = last_run_of(engine, name)
    if last is not None and run_status(last) in ACTIVE:
        return TickPlan(SKIPPED, run_id=last, reason=f"its last run {last} still goes")
    try:
        return plan_run(engine, schedule)
    except IngestError as exc:  # its inputs, as they are now: the next tick tries again
        return TickPlan(FAILED, reason=str(exc))


def plan_run(engine, schedule: dict) -> TickPlan:
    from ..sources.rows import write_plan

    inputs = list(schedule["inputs"])
    given = {**schedule["options"], "headers": worker_headers()}
    options = options_of(inputs, given, schedule["directory"])
    manifest, skipped, scanned = identify_inputs(inputs, options)
    if manifest.count == 0 and not options.urls:
        return TickPlan(UNCHANGED, reason=skipped.describe() or "no input files yet")
    run_id, status = current_run(manifest)
    if status == SUCCESS:
        return TickPlan(UNCHANGED, run_id=run_id, reason=f"nothing new since run {run_id}")
    if status in ACTIVE:
        return TickPlan(SKIPPED, run_id=run_id, reason=f"run {run_id} of its inputs still goes")
    if status is not None:
        return TickPlan(FAILED, run_id=run_id, reason=f"run {run_id} of its inputs ended "
                        f"{status}: ingest resume {run_id}")
    if options.table:
        check_table(engine, options.table, options.key, options.columns)
    urls = urls_asking(engine, options)
    planned = write_plan(engine, manifest, run_id, options.chunk_size, options.fmt,
                         options.identity, scanned, options.endpoint_url, options.changed)
    plan = RunPlan(job=options.job(run_id), inputs=describe_inputs(inputs, options.urls),
                   files=manifest.count, records=planned.records, urls=urls)
    return TickPlan(STARTED, run_id=run_id, plan=plan)


def worker_headers() -> tuple:
    """This worker's ``--header`` options: a schedule keeps no credentials."""
    from ..sources.credentials import credentials

    return tuple(f"{name}: {value}" for name, value in credentials().headers)


def last_run_of(engine, name: str) -> Optional[str]:
    with engine.connect() as connection:
        return connection.execute(
            select(ScheduledRun.run_id).where(ScheduledRun.schedule == name)
            .order_by(ScheduledRun.tick.desc()).limit(1)).scalar()


def record_tick(name: str, tick: datetime, planned: TickPlan) -> None:
    """Count the tick in its schedule's row (made on its first tick); a run it started gets
    its ``ScheduledRun`` row. In the tick's transaction: it counts once."""
    session = datasource.session()
    counted = planned.outcome if planned.outcome != STARTED else "runs"
    session.execute(insert_ignoring_conflicts(session, ScheduleTicks),
                    [{"name": name, "runs": 0, "skipped": 0, "unchanged": 0, "failed": 0}])
    column = getattr(ScheduleTicks, counted)
    session.execute(update(ScheduleTicks).where(ScheduleTicks.name == name).values(
        {counted: column + 1, "last_tick": tick, "last_outcome": planned.outcome,
         "last_reason": planned.reason[:500] or None}))
    if planned.outcome == STARTED:
        session.execute(insert_ignoring_conflicts(session, ScheduledRun),
                        [{"run_id": planned.run_id, "schedule": name, "tick": tick}])
