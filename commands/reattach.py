"""A rerun keeps its word: a command whose inputs already have a run (interrupted, going on
or finished) attaches to it only when it asks for what that run does. Options that change
what lands (the transform, the key and its conflict rule, the table and its column types,
the attempts, the injected faults, the format) must be the same; options that change only
how fast (chunk size, concurrency, workers, retry timing, HTTP settings) may differ.
Otherwise the command is refused with one line that names the options that differ and the
ways on."""

from typing import Optional

from ..contract import SUCCESS, Job
from ..errors import UsageError
from .waiting import run_job

# Job field -> the option that sets it.
WHAT_LANDS = (("transform", "--transform"), ("key", "--key"), ("on_conflict", "--on-conflict"),
              ("table", "--table"), ("columns", "--column"), ("max_attempts", "--max-attempts"),
              ("faults", "--fail-task/--flaky-rate/--seed"), ("fmt", "--format"))


class OptionsDiffer(UsageError):
    """The run of these inputs was started with other options than this command's."""


def differences(started: Job, asked: Job) -> list:
    """``--option: STARTED, not ASKED`` for each option of ``WHAT_LANDS`` that differs."""
    found = []
    for name, option in WHAT_LANDS:
        if name == "on_conflict" and not (started.key or asked.key):
            continue  # without a key there is no conflict to decide
        before, now = getattr(started, name, None), getattr(asked, name, None)
        if before != now:
            found.append(f"{option}: {shown(before)}, not {shown(now)}")
    return found


def shown(value) -> str:
    if isinstance(value, dict):  # the faults
        parts = [f"{key}={value[key]}" for key in sorted(value) if value[key]]
        return ",".join(parts) or "none"
    if isinstance(value, tuple):  # the column hints
        return ",".join(f"{path}={kind}" for path, kind in value) or "none"
    return str(value) if value not in (None, "") else "none"


def check_reattach(run_id: str, status: Optional[str], asked: Job) -> None:
    """Refuse to attach to the run ``run_id`` (of ``status``; None: no run yet) when it was
    started with other options that change what lands."""
    if status is None:
        return
    started = run_job(run_id)
    found = differences(started, asked) if isinstance(started, Job) else []
    if not found:
        return
    differ = "; ".join(found)
    if status == SUCCESS:
        raise OptionsDiffer(
            f"these inputs were loaded by run {run_id} with other options ({differ}): to load "
            "them again with these, add --label NAME (a new run; without --key their records "
            "are stored again)")
    raise OptionsDiffer(
        f"run {run_id} of these inputs was started with other options ({differ}): finish it "
        f"as started with: ingest resume {run_id}; or add --label NAME to load them as a new run")
