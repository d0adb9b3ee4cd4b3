"""Read-only views of the schedules (``ingest schedule list``, the ui): each with its cron and
zone, inputs, paused or not, next tick, what its ticks did so far and its last run; and the
schedule and tick of scheduled runs (``ingest status``)."""

from datetime import datetime, timezone
from typing import Optional

from ..contract import SUCCESS, Summary
from .runs import app_engine, system_client
from .scheduled import iso

RESERVED = "ingest-"  # the service's own schedules (retention): not listed, not a user's name


def list_schedules(database_url: Optional[str]) -> list:
    """Every schedule, by name, as one dict each."""
    with system_client(database_url) as client:
        return schedules_of(client, database_url) if client is not None else []


def schedules_of(client, database_url: Optional[str]) -> list:
    """``list_schedules`` with an open client."""
    found = [s for s in client.list_schedules() if not s["schedule_name"].startswith(RESERVED)]
    if not found:
        return []
    with app_engine(database_url) as engine:
        counts = tick_counts(engine, [s["schedule_name"] for s in found])
        last_runs = last_runs_of(engine, [s["schedule_name"] for s in found])
    states = run_states(client, list(last_runs.values()))
    return [schedule_row(s, counts.get(s["schedule_name"], {}),
                         states.get(last_runs.get(s["schedule_name"])))
            for s in sorted(found, key=lambda s: s["schedule_name"])]


def schedule_row(schedule: dict, counts: dict, last_run: Optional[dict]) -> dict:
    context = schedule["context"] if isinstance(schedule["context"], dict) else {}
    paused = schedule["status"] != "ACTIVE"
    return {
        "name": schedule["schedule_name"],
        "cron": schedule["schedule"],
        "tz": schedule["cron_timezone"] or "UTC",
        "inputs": context.get("inputs", []),
        "table": (context.get("options") or {}).get("table") or "tasks",
        "paused": paused,
        "backfill": bool(schedule["automatic_backfill"]),
        "next_tick": None if paused else next_tick(schedule["schedule"],
                                                   schedule["cron_timezone"]),
        "last_tick": iso(counts.get("last_tick")) or schedule["last_fired_at"],
        "last_outcome": counts.get("last_outcome"),
        "last_reason": counts.get("last_reason"),
        "last_run": last_run,
        "runs": counts.get("runs", 0),
        "skipped": counts.get("skipped", 0),
        "unchanged": counts.get("unchanged", 0),
        "failed": counts.get("failed", 0),
    }


def next_tick(cron: str, zone: Optional[str]) -> Optional[str]:
    """The cron's next tick from now, in its zone (None: a cron or zone that can't be read)."""
    try:
        return ticks_from_now(cron, zone).get_next(datetime).isoformat()
    except (ValueError, KeyError):
        return None


def ticks_from_now(cron: str, zone: Optional[str]):
    """The cron's ticks around now (``croniter``: ``get_next``, ``get_prev``), read in
    ``zone`` (None: UTC) with seconds first, as DBOS's scheduler reads it."""
    from zoneinfo import ZoneInfo

    from croniter import croniter

    tz = ZoneInfo(zone) if zone else timezone.utc
    return croniter(cron, datetime.now(tz), second_at_beginning=True)


def tick_counts(engine, names: list) -> dict:
    from sqlalchemy import select

    from ..models import ScheduleTicks

    if engine is None or not names:
        return {}
    with engine.connect() as connection:
        rows = connection.execute(select(ScheduleTicks).where(ScheduleTicks.name.in_(names)))
        return {row.name: dict(row._mapping) for row in rows}


def last_runs_of(engine, names: list) -> dict:
    """schedule -> the run its newest tick started."""
    from sqlalchemy import func, select

    from ..models import ScheduledRun

    if engine is None or not names:
        return {}
    newest = select(ScheduledRun.schedule, func.max(ScheduledRun.tick).label("tick")) \
        .where(ScheduledRun.schedule.in_(names)).group_by(ScheduledRun.schedule).subquery()
    with engine.connect() as connection:
        rows = connection.execute(select(ScheduledRun.schedule, ScheduledRun.run_id).join(
            newest, (ScheduledRun.schedule == newest.c.schedule)
            & (ScheduledRun.tick == newest.c.tick)))
        return {schedule: run_id for schedule, run_id in rows}


def run_states(client, run_ids: list) -> dict:
    """run id -> its state and, once it finished, its counts."""
    if not run_ids:
        return {}
    found = {}
    for run in client.list_workflows(workflow_ids=run_ids, load_input=False):
        found[run.workflow_id] = last_run_row(run)
    return found


def last_run_row(run) -> dict:
    row = {"run_id": run.workflow_id, "state": run.status, "records": None, "tasks": None,
           "errors": None}
    if run.status == SUCCESS and run.output is not None:
        summary = Summary.from_output(run.output)
        row.update(records=summary.records, tasks=summary.tasks, errors=summary.errors)
    return row
