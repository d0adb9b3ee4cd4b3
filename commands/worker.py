"""``ingest worker``: a process that works the shared queues until it is stopped, then lets
its running work finish."""

from typing import Callable, Optional

from .load import tune_gc


def serve(app, worker_id: str, take_over: list, drain_sec: int, say: Callable,
          processes: int = 1, parent_pid: Optional[int] = None) -> None:
    """Work the queues until SIGINT or SIGTERM (or, for a command's helper, until its parent
    process is gone), then let running work finish (``drain_sec``). With ``processes`` > 1,
    helper processes work beside this one (see ``helper_processes``)."""
    import signal
    import threading

    from ..runtime.launch import take_over as recover_executors
    from .helper_processes import Fleet, exit_with_parent

    tune_gc()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    if parent_pid:
        exit_with_parent(parent_pid, stop)
        say = (lambda line: None)  # the parent speaks for its helpers
    if take_over:
        taken = recover_executors(take_over)
        say(f"took over {taken} unfinished workflow(s) of {', '.join(take_over)}")
    with Fleet(worker_id, processes, app.concurrency, app.database_url, drain_sec, say) as fleet:
        fleet.take_over_others(app.databases)
        fleet.start()
        say(f"worker {worker_id} ready (concurrency {app.concurrency}"
            f"{f', {processes} processes' if processes > 1 else ''}); Ctrl-C to stop")
        stop.wait()
        say(f"worker {worker_id} stopping: letting running work finish (up to {drain_sec} s)")
    app.drain_sec = drain_sec
