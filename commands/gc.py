"""``ingest gc``: delete what finished runs older than a duration leave behind (their DBOS
history, spooled copies, per-run scratch; see ``steps.retention``), and ``ingest worker
--retention``: the same every hour, as the DBOS schedule ``ingest-gc``.

Nothing here prints or knows click: the command line passes the duration and shows the
``Collected`` it gets back.
"""

import os
import re
from typing import Optional

from ..errors import UsageError

DEFAULT_OLDER_THAN = "30d"
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
SCHEDULE = "ingest-gc"
# Every hour, on the hour; a hidden override for tests (docs/development.md, fault hooks).
RETENTION_CRON_ENV = "INGEST_RETENTION_CRON"
RETENTION_CRON = "0 * * * *"


OFF = -1.0  # ``--retention off``: the schedule deleted


def parse_duration(text: str, option: str = "--older-than") -> float:
    """``30d``, ``12h``, ``15m``, ``0s`` in seconds (``--retention`` also takes ``off``:
    ``OFF``); ``UsageError`` (exit 2) otherwise."""
    if option == "--retention" and (text or "").strip().lower() == "off":
        return OFF
    found = DURATION.fullmatch((text or "").strip().lower())
    if not found:
        off = ", or off" if option == "--retention" else ""
        raise UsageError(f"{option} {text!r} is not a duration: give a number and a unit, "
                         f"s, m, h or d (30d, 12h, 15m, 0s){off}")
    return float(found.group(1)) * UNITS[found.group(2)]


def collect(database_url: Optional[str], older_than: float, dry_run: bool):
    """``ingest gc``'s ``steps.retention.Collected``: through a ``DBOSClient`` (DBOS is not
    launched: no recovery, no queue work), with the app database brought to its schema
    head first (the summary rows)."""
    from dbos import DBOSClient
    from sqlalchemy import create_engine

    from .. import database
    from ..steps import retention
    from ..views.runs import system_database_exists

    databases = database.resolve(database_url)
    if not system_database_exists(databases.system_url):
        return retention.Collected(older_than=older_than, dry_run=dry_run)  # no run here yet
    database.upgrade_schema(databases.app_url)
    try:
        client = DBOSClient(system_database_url=databases.system_url)
    except Exception as exc:
        raise database.cannot_connect(databases.system_url, getattr(exc, "orig", exc)) from None
    engine = create_engine(databases.app_url)
    try:
        return retention.collect(client, engine, older_than, dry_run)
    finally:
        engine.dispose()
        client.destroy()


def describe(collected) -> str:
    """What a gc deleted, for people: one line, and the runs it took (the first few)."""
    verb = "would delete" if collected.dry_run else "deleted"
    size = f"{collected.bytes / 1e6:.1f} MB" if collected.bytes >= 100_000 else \
        f"{collected.bytes:,} bytes"
    line = (f"{verb}: runs {collected.runs:,} | workflows {collected.workflows:,} | files "
            f"{collected.files:,} ({size}) | runs finished over {age(collected.older_than)} ago")
    lines = [line]
    if collected.kept:
        lines.append(f"kept {collected.kept:,} old run(s): work of theirs is not finished, or "
                     "a command with URLs numbers its next run after its newest")
    lines += [f"  {run}" for run in collected.run_ids]
    if collected.runs > len(collected.run_ids):
        lines.append(f"  and {collected.runs - len(collected.run_ids):,} more")
    return "\n".join(lines)


def age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def keep_collecting(older_than: Optional[float]) -> None:
    """``ingest worker --retention``: create or update the schedule ``ingest-gc`` (every
    hour, ``collect_garbage`` on the retention queue, which only workers work); each tick
    is one workflow across all workers. Without ``older_than``, leaves it as it is (it
    lives in the system database); ``OFF`` deletes it."""
    if older_than is None:
        return
    from dbos import DBOS

    from .. import integration
    from ..contract import GC_QUEUE

    if older_than == OFF:
        DBOS.delete_schedule(SCHEDULE)
        return
    DBOS.apply_schedules([{"schedule_name": SCHEDULE, "workflow_fn": integration.collect_garbage,
                           "schedule": os.environ.get(RETENTION_CRON_ENV) or RETENTION_CRON,
                           "context": older_than, "queue_name": GC_QUEUE}])
