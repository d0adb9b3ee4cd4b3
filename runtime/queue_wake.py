"""DBOS's queue manager, woken when this process registers its queues.

DBOS 3.4 starts one manager thread per process at launch; it lists the queues of the system
database every second and starts a worker thread for each new one. Queues can only be
registered after launch, so in a new database (a first load, every test, every benchmark
run) the chunk queue waited up to that second before its first chunk ran: measured ~1 s of
a 1-record load's ~3 s on a fresh Postgres database. ``wake_on_register`` (before launch)
gives the manager a view of its stop event whose ``wait`` also ends at ``nudge``; the
worker threads, which get the same view, wait on the real event as before. DBOS looks the
manager up by name at launch, so it is swapped there, as ``scheduler`` swaps its loop.
"""

import threading
import time
from typing import Optional

_nudged = threading.Event()
SLICE_SEC = 0.05  # how soon the manager sees DBOS's own stop while it waits for a nudge


def wake_on_register() -> None:
    import dbos._dbos as dbos_core
    from dbos._queue import queue_thread

    def manager(stop_event: threading.Event, dbos) -> None:
        queue_thread(WakeableStop(stop_event, threading.get_ident()), dbos)

    dbos_core.queue_thread = manager


def nudge() -> None:
    """Have the manager list the queues now (after this process registered or chose some)."""
    _nudged.set()


class WakeableStop:
    """DBOS's stop event as its threads see it: the manager's ``wait`` also returns (False,
    not stopped) on ``nudge``; every other thread's is the event's own."""

    def __init__(self, stop: threading.Event, manager_ident: int):
        self._stop = stop
        self._manager = manager_ident

    def is_set(self) -> bool:
        return self._stop.is_set()

    def set(self) -> None:
        self._stop.set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        if threading.get_ident() != self._manager:
            return self._stop.wait(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stop.is_set():
            left = SLICE_SEC if deadline is None else min(SLICE_SEC, deadline - time.monotonic())
            if left <= 0:
                break
            if _nudged.wait(left):
                _nudged.clear()
                return self._stop.is_set()
        return self._stop.is_set()
