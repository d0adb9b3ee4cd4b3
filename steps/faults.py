"""Hidden fault-injection hooks for the tests (never set them in production), read from the
environment; unset, each costs one environment lookup.

- ``INGEST_FAULT_CHUNK_DELAY_SEC``: every chunk sleeps that long before it commits;
- ``INGEST_FAULT_CRASH_CHUNKS=3,7``: the process dies (exit 86) on those chunks, every time
  (a poison chunk);
- ``INGEST_FAULT_PARK_DIR=/abs/dir``: chunks park, so a test sees a run in the middle without
  racing it. ``INGEST_FAULT_PARK_CHUNKS`` chooses them (``2``, ``2,5``, ``4-``, ``all``;
  default ``all``), ``INGEST_FAULT_PARK_AT`` where: ``start`` (default: before the chunk's
  transaction, nothing held) or ``commit`` (rows written, not committed; on SQLite that holds
  the write lock). A parked chunk writes ``<dir>/parked-<index>-<pid>.json`` (pid, executor,
  stage) and waits until ``<dir>/release-<index>`` or ``<dir>/release-all`` exists; after
  ``INGEST_FAULT_PARK_TIMEOUT_SEC`` (default 120) the process exits with 87, so a forgotten
  release fails loudly. A chunk replayed after a crash parks again while the variables are set.
  ``INGEST_FAULT_PARK_AT=gc`` parks ``ingest gc`` instead (as index -1), after a batch's rows
  and files, before its DBOS history: where a test kills it.
"""

import json
import os
import time

PARK_DIR = "INGEST_FAULT_PARK_DIR"
PARK_EXIT = 87
CRASH_EXIT = 86
_POLL_SEC = 0.01


def process_faults(index: int) -> None:
    """The hooks that act before a chunk commits: the delay, the crash, and parking at
    ``commit``."""
    delay = os.environ.get("INGEST_FAULT_CHUNK_DELAY_SEC")
    if delay:
        time.sleep(float(delay))
    crash = os.environ.get("INGEST_FAULT_CRASH_CHUNKS")
    if crash and str(index) in crash.split(","):
        os._exit(CRASH_EXIT)
    park(index, "commit")


def park(index: int, stage: str) -> None:
    """Hold chunk ``index`` at ``stage`` (``start`` or ``commit``) until the test releases it,
    when ``INGEST_FAULT_PARK_DIR`` asks for it."""
    folder = os.environ.get(PARK_DIR)
    if not folder or not _parks(index, stage):
        return
    _mark(folder, index, stage)
    released = (os.path.join(folder, f"release-{index}"), os.path.join(folder, "release-all"))
    deadline = time.monotonic() + float(os.environ.get("INGEST_FAULT_PARK_TIMEOUT_SEC", "120"))
    while not any(os.path.exists(path) for path in released):
        if time.monotonic() >= deadline:
            os._exit(PARK_EXIT)
        time.sleep(_POLL_SEC)


def _parks(index: int, stage: str) -> bool:
    """Whether the environment parks chunk ``index`` at ``stage``."""
    if os.environ.get("INGEST_FAULT_PARK_AT", "start") != stage:
        return False
    for part in os.environ.get("INGEST_FAULT_PARK_CHUNKS", "all").split(","):
        part = part.strip()
        if part == "all" or part == str(index) \
                or (part.endswith("-") and index >= int(part[:-1])):
            return True
    return False


def _mark(folder: str, index: int, stage: str) -> None:
    """Say, atomically, that this process holds chunk ``index`` at ``stage``."""
    from dbos import DBOS

    try:
        executor = DBOS.executor_id
    except Exception:  # DBOS not launched here (ingest gc)
        executor = None
    pid = os.getpid()
    marker = os.path.join(folder, f"parked-{index}-{pid}.json")
    os.makedirs(folder, exist_ok=True)
    with open(marker + ".tmp", "w") as out:
        json.dump({"index": index, "pid": pid, "executor": executor, "stage": stage}, out)
    os.replace(marker + ".tmp", marker)
