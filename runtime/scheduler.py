"""Which processes run DBOS's scheduler, and how often it reads the schedules again."""

import os

from ..contract import SCHEDULE_QUEUE

# How soon a running worker sees a schedule added, paused, resumed or deleted (DBOS: 30 s).
SCHEDULE_POLL_SEC = float(os.environ.get("INGEST_SCHEDULE_POLL_SEC", "2"))


def fire_schedules(here: bool) -> None:
    """DBOS starts a scheduler in every process it launches in. Only ``ingest worker``
    processes fire schedules' ticks (and work ``SCHEDULE_QUEUE``): a load, a resume or a
    helper that fired them would enqueue ticks while no worker runs, which would pile up and
    all run when one starts; ticks missed then make one catch-up run instead
    (``commands.schedules.catch_up``). DBOS has no setting for it: its launch looks the loop
    up by name, so it is swapped before launch."""
    import dbos._dbos as dbos_core
    from dbos._scheduler import dynamic_scheduler_loop

    dbos_core.dynamic_scheduler_loop = dynamic_scheduler_loop if here else _no_scheduler


def _no_scheduler(stop_event, polling_interval_sec) -> None:
    return None


def declare_queue() -> None:
    """``SCHEDULE_QUEUE``: one tick at a time across all workers (``scheduled_load`` decides
    whether the schedule's last run still goes before it starts the next). Declared in a
    worker, which works it, and in a command that adds a schedule, which names it."""
    from dbos import DBOS

    DBOS.register_queue(SCHEDULE_QUEUE, global_concurrency=1, polling_interval_sec=0.2)
