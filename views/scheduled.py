"""The schedule and tick that started each run, for ``ingest status`` and the ui: the app
database's ``ingest_schedule_runs`` rows, one query for a page of runs."""

from typing import Optional


def with_schedules(engine, rows: list) -> list:
    """Each run row with ``schedule``: ``{"name", "tick"}`` of the tick that started it, or
    None (a command did). ``engine``: the app database's (None: it does not exist yet)."""
    scheduled = schedules_of_runs(engine, [row["run_id"] for row in rows])
    for row in rows:
        row["schedule"] = scheduled.get(row["run_id"])
    return rows


def schedules_of_runs(engine, run_ids: list) -> dict:
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from ..models import ScheduledRun

    if engine is None or not run_ids:
        return {}
    try:
        with engine.connect() as connection:
            return {r.run_id: {"name": r.schedule, "tick": iso(r.tick)}
                    for r in connection.execute(select(ScheduledRun).where(
                        ScheduledRun.run_id.in_(run_ids)))}
    except SQLAlchemyError:  # an app database not migrated yet
        return {}


def iso(value) -> Optional[str]:
    from datetime import timezone

    if value is None or isinstance(value, str):
        return value
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()
