"""DBOS's queue threads: the manager woken when this process registers its queues, and the
chunk and retry queues polled slowly while this process has nothing running.

DBOS 3.4 starts one manager thread per process at launch; it lists the queues of the system
database every second and starts a worker thread for each new one. Queues can only be
registered after launch, so in a new database (a first load, every test, every benchmark
run) the chunk queue waited up to that second before its first chunk ran: measured ~1 s of
a 1-record load's ~3 s on a fresh Postgres database. ``wake_on_register`` (before launch)
gives the manager a view of its stop event whose ``wait`` also ends at ``nudge``; the
queue threads it starts get the same view (see below). DBOS looks the manager up by name at
launch, so it is swapped there, as ``scheduler`` swaps its loop.

The chunk and retry queues are polled every 0.05 s so that a run's chunks start at once;
each poll is three queries, so an idle ``ingest worker`` spent 11-19 % of a core and ~150
queries a second on them. While no workflow runs in this process, their threads now wait
``IDLE_POLL_SEC`` between polls, and go back to the queue's pace as soon as one does (a run
started here, or a chunk taken from the queue). A worker that was idle takes its first chunk
of another process's run within that time; ticks and runs (their own queues) are unchanged.
"""

import threading
import time
from typing import Callable, Optional

from ..contract import CHUNK_QUEUE, RETRY_QUEUE

_nudged = threading.Event()
SLICE_SEC = 0.05  # how soon the manager sees DBOS's own stop while it waits for a nudge
IDLE_POLL_SEC = 0.5  # the chunk and retry queues' poll while nothing runs in this process
_SLOWED = tuple(f"queue-worker-{name}" for name in (CHUNK_QUEUE, RETRY_QUEUE))


def wake_on_register() -> None:
    import dbos._dbos as dbos_core
    from dbos._queue import queue_thread

    def manager(stop_event: threading.Event, dbos) -> None:
        busy = dbos._active_workflows_set.activeList  # DBOS 3.4's set of what runs here
        queue_thread(WakeableStop(stop_event, threading.get_ident(), busy), dbos)

    dbos_core.queue_thread = manager


def nudge() -> None:
    """Have the manager list the queues now (after this process registered or chose some)."""
    _nudged.set()


class WakeableStop:
    """DBOS's stop event as its threads see it: the manager's ``wait`` also returns (False,
    not stopped) on ``nudge``; a chunk or retry queue's thread waits ``IDLE_POLL_SEC`` while
    nothing runs here (``busy``); every other thread's is the event's own."""

    def __init__(self, stop: threading.Event, manager_ident: int, busy: Callable[[], list]):
        self._stop = stop
        self._manager = manager_ident
        self._busy = busy

    def is_set(self) -> bool:
        return self._stop.is_set()

    def set(self) -> None:
        self._stop.set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        if threading.get_ident() == self._manager:
            return self._until_nudged(timeout)
        if timeout is not None and timeout < IDLE_POLL_SEC \
                and threading.current_thread().name in _SLOWED and not self._busy():
            return self._while_idle(timeout)
        return self._stop.wait(timeout)

    def _while_idle(self, timeout: float) -> bool:
        """Wait IDLE_POLL_SEC, or only ``timeout`` once something runs here."""
        began = time.monotonic()
        while not self._stop.wait(SLICE_SEC):
            waited = time.monotonic() - began
            if waited >= IDLE_POLL_SEC or (waited >= timeout and self._busy()):
                break
        return self._stop.is_set()

    def _until_nudged(self, timeout: Optional[float]) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stop.is_set():
            left = SLICE_SEC if deadline is None else min(SLICE_SEC, deadline - time.monotonic())
            if left <= 0:
                break
            if _nudged.wait(left):
                _nudged.clear()
                return self._stop.is_set()
        return self._stop.is_set()
