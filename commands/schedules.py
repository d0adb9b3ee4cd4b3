"""``ingest schedule``: recurring loads, kept in DBOS's system database and fired by ``ingest
worker`` processes (``integration.scheduled_load``, one run per tick across all of them).

A schedule stores its inputs and its ``ingest load`` options, checked when it is added
exactly as ``ingest load`` checks them; never credentials (``--header``, a URL's userinfo):
the worker that runs a tick has its own. ``catch_up`` is a worker's start: ticks missed while
no worker ran make one run, not one per tick (a run loads whatever is new).
"""

import os
import re
from datetime import datetime, timezone
from typing import Callable, Optional

from ..contract import SCHEDULE_QUEUE, is_url
from ..errors import UsageError
from ..views.schedules import RESERVED, next_tick, ticks_from_now

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# ``ingest load`` options a schedule does not keep: its runs run in workers, which have their
# own database, credentials and output.
NOT_STORED = ("database_url", "headers", "detach", "workers", "no_progress", "as_json",
              "max_errors", "tz", "backfill")


def add(name: str, cron: str, inputs: list, given: dict, say: Callable) -> dict:
    """Check the schedule as ``ingest load`` checks a load, then store it (DBOS must run in
    this process, as a client). Returns what was stored, for the command to show."""
    from dbos import DBOS

    from .. import integration
    from ..runtime.scheduler import declare_queue
    from ..steps.load_options import options_of

    check_name(name)
    check_cron(cron)
    zone = check_zone(given.get("tz"))
    refuse_load_only(given)
    stored_inputs = [stored_input(spec) for spec in inputs]
    options_of(inputs, given)  # every check ``ingest load`` makes before any work
    if DBOS.get_schedule(name) is not None:
        raise UsageError(f"schedule {name} exists: pick another name, or `ingest schedule "
                         f"delete {name}` first")
    context = {"name": name, "inputs": stored_inputs, "directory": os.getcwd(),
               "options": {k: v for k, v in given.items() if k not in NOT_STORED},
               "added_at": datetime.now(timezone.utc).isoformat()}
    declare_queue()
    DBOS.create_schedule(schedule_name=name, workflow_fn=integration.scheduled_load,
                         schedule=cron, context=context, cron_timezone=zone,
                         automatic_backfill=bool(given.get("backfill")),
                         queue_name=SCHEDULE_QUEUE)
    if given.get("headers") or any(is_url(s) and "@" in s.split("/")[2] for s in inputs):
        say(f"note: credentials are not stored with a schedule: start the workers that run "
            f"{name} with the same --header options")
    return {"name": name, "cron": cron, "tz": zone or "UTC", "inputs": stored_inputs,
            "next_tick": next_tick(cron, zone)}


def check_name(name: str) -> None:
    if not NAME.fullmatch(name) or name.startswith(RESERVED):
        raise UsageError(f"schedule name {name[:70]!r}: use up to 64 letters, digits, '.', '_' "
                         f"or '-', starting with a letter or digit (not {RESERVED!r})")


def check_cron(cron: str) -> None:
    from croniter import croniter

    fields = cron.split()
    if len(fields) not in (5, 6) or not croniter.is_valid(cron, second_at_beginning=True):
        raise UsageError(f"cron {cron!r}: expected 5 fields (minute hour day month weekday, "
                         "e.g. '*/15 * * * *') or 6 with seconds first ('*/30 * * * * *')")


def check_zone(zone: Optional[str]) -> Optional[str]:
    from zoneinfo import ZoneInfo

    if zone is None:
        return None
    try:
        ZoneInfo(zone)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        raise UsageError(f"--tz {zone[:60]!r}: not an IANA time zone (e.g. UTC, Europe/Paris, "
                         "America/New_York)") from None
    return zone


def refuse_load_only(given: dict) -> None:
    if given.get("detach"):
        raise UsageError("--detach: a schedule's runs always run in `ingest worker` processes; "
                         "drop --detach")
    if str(given.get("workers", "1")) != "1":
        raise UsageError("--workers: a schedule's runs are loaded by the `ingest worker` "
                         "processes (start more of them, or give them --processes N)")


def stored_input(spec: str) -> str:
    """An input as the schedule keeps it: a local path made absolute (the worker may start
    elsewhere), a URL without its userinfo. A local file or folder must exist now."""
    from urllib.parse import urlsplit, urlunsplit

    from ..sources.globs import has_magic
    from ..sources.s3 import is_s3

    if spec == "-":
        raise UsageError("-: a schedule can't read stdin; give the files, folders or URLs "
                         "it loads on every tick")
    if is_url(spec):
        parts = urlsplit(spec)
        return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    if is_s3(spec):
        return spec
    if not has_magic(spec) and not os.path.exists(spec):
        raise UsageError(f"{spec}: no such file or folder; create the folder the files land "
                         "in first, or quote a glob ('landing/*.json')")
    return os.path.abspath(spec)


def named(name: str) -> dict:
    """The schedule ``name`` (``UsageError`` if there is none)."""
    from dbos import DBOS

    found = DBOS.get_schedule(name) if not name.startswith(RESERVED) else None
    if found is None:
        raise UsageError(f"no schedule named {name[:70]!r}: `ingest schedule list` shows them")
    return found


def pause(name: str) -> None:
    from dbos import DBOS

    named(name)
    DBOS.pause_schedule(name)


def resume(name: str) -> None:
    from dbos import DBOS

    named(name)
    DBOS.resume_schedule(name)


def delete(name: str, engine) -> None:
    """The schedule, and its tick counts; the runs it started keep its name."""
    from dbos import DBOS
    from sqlalchemy import delete as delete_rows

    from ..models import ScheduleTicks

    named(name)
    DBOS.delete_schedule(name)
    with engine.begin() as connection:
        connection.execute(delete_rows(ScheduleTicks).where(ScheduleTicks.name == name))


def run_now(name: str) -> str:
    """One tick now, outside the cron (also while paused): queued for a worker; its ID."""
    from dbos import DBOS

    named(name)
    return DBOS.trigger_schedule(name).get_workflow_id()


def catch_up(say: Callable) -> int:
    """At a worker's start: for each active schedule whose last due tick never fired (no
    worker ran then), that one tick, under the ID DBOS would have given it, so that workers
    starting together queue it once. Schedules added with ``--backfill`` have DBOS queue
    every missed tick instead."""
    from dbos import DBOS, SetWorkflowID

    from .. import integration

    queued = 0
    for schedule in DBOS.list_schedules(status="ACTIVE"):
        context = schedule["context"]
        if schedule["automatic_backfill"] or not isinstance(context, dict) \
                or "inputs" not in context:
            continue
        due = last_due(schedule)
        since = schedule["last_fired_at"] or context["added_at"]
        if due is None or due <= datetime.fromisoformat(since):
            continue
        with SetWorkflowID(f"sched-{schedule['schedule_name']}-{due.isoformat()}"):
            DBOS.enqueue_workflow(SCHEDULE_QUEUE, integration.scheduled_load, due, context)
        say(f"schedule {schedule['schedule_name']}: catching up on the tick of "
            f"{due.isoformat()} (no worker ran then)")
        queued += 1
    return queued


def last_due(schedule: dict) -> Optional[datetime]:
    try:
        return ticks_from_now(schedule["schedule"], schedule["cron_timezone"]).get_prev(datetime)
    except (ValueError, KeyError):
        return None
