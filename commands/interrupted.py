"""Runs a killed command of this machine left unfinished, finished in plain sight.

A local command that has work works this machine's queues, where the chunks of such a run
wait ahead of its own, and recovers what that run had in flight (``runtime.launch.
start_working``). So it says first which run it finishes and how far that run got, shows
its progress, and reports it, before its own work. A command with nothing to do starts no
work: it leaves such a run exactly as it was, and names the command that finishes it.
"""

from typing import Callable, Optional

from ..contract import ACTIVE
from ..errors import RunFailed, RunIncomplete
from .waiting import bar_for_run, progress_of, run_job, run_so_far, wait_for_run


def interrupted_runs(own: Optional[str]) -> list:
    """[(run ID, records done, records planned)] of this executor's unfinished runs but
    ``own``. The command holds the executor's lock: none of them is running."""
    from dbos import DBOS

    runs = DBOS.list_workflows(name="ingest_dataset", status=list(ACTIVE),
                               executor_id=DBOS.executor_id, load_input=False,
                               load_output=False)
    found = []
    for run in sorted(runs, key=lambda w: w.created_at or 0):
        if run.workflow_id != own:
            done, planned, _, _ = run_so_far(run.workflow_id)
            found.append((run.workflow_id, done, planned))
    return found


def finish_others_first(app, own: Optional[str], say: Callable, show_progress: bool) -> None:
    """Start working; first finish, in view, any other run this executor left unfinished."""
    others = interrupted_runs(own)
    app.start_working()
    for run_id, done, planned in others:
        if lacks_credentials(run_id):
            say(f"run {run_id} was interrupted ({done:,} of {planned:,} records loaded) and "
                f"fetches pages with credentials this command was not given: the same command "
                f"as before, or `ingest resume {run_id} --header ...`, finishes it")
            continue
        say(f"finishing interrupted run {run_id} ({done:,} of {planned:,} records) first")
        bar = bar_for_run(run_id, show_progress)
        try:
            summary = wait_for_run(run_id, on_children=progress_of(bar, run_id))
        except (RunIncomplete, RunFailed) as exc:
            say(str(exc))
            continue
        finally:
            bar.close()
        say(f"finished {run_id}: records {summary.records:,} | tasks {summary.tasks:,} | "
            f"errors {summary.errors:,}")


def lacks_credentials(run_id: str) -> bool:
    """Whether the run fetches pages with credentials this process does not hold: it can't
    advance here (its fetches wait), so nothing waits for it."""
    from ..sources.credentials import credentials

    job = run_job(run_id)
    check = job.credentials_check if job is not None else ""
    return bool(check) and credentials().check(run_id) != check


def name_others(own: Optional[str], say: Callable) -> None:
    """A command with nothing to do: one line per unfinished run it leaves as it was."""
    for run_id, done, planned in interrupted_runs(own):
        say(f"run {run_id} was interrupted ({done:,} of {planned:,} records loaded): "
            f"`ingest resume {run_id}` finishes it")
