"""What ``ingest load`` does with a run: name and fingerprint its inputs, find the run they
make (new, unfinished or done), plan it and start it or attach to it, wait for it with the
helpers of ``--workers``, and report.

Nothing here prints or knows click: the command line (``cli``) passes callbacks for the lines
it shows and turns an ``IngestError`` into its exit code.
"""

import time
from typing import Callable, Optional

from ..contract import SUCCESS, TASKS, RunPlan
from ..steps.inputs import current_run, describe_inputs
from ..steps.load_options import LoadOptions, urls_asking
from .progress import Progress
from .interrupted import finish_others_first, name_others
from .reattach import check_reattach
from .results import Detached, LoadResult, NothingYet
from .waiting import bar_for_run, progress_of, wait_for_run


def load(app, specs: list, options: LoadOptions, manifest, skipped, scanned=None,
         detach: bool = False, show_progress: bool = False, fleet=None,
         say: Callable = lambda line: None):
    """Plan the run of these files and start it, or attach to it if it exists; returns its
    ``LoadResult`` (``Detached`` with ``detach``). A ``Fleet`` (see ``helper_processes``) loads
    chunks beside this process until the run ends. Another run this machine left
    unfinished is finished first, in view, when this one has work (``interrupted``)."""
    from .. import integration

    began = time.time()
    if manifest.count == 0 and not options.urls:
        return NothingYet(skipped.settling.count, skipped.settling.describe())
    run_id, status = current_run(manifest)
    check_run_of(app, options, run_id, status)
    dataset = describe_inputs(specs, options.urls)
    hint_one_record(specs, scanned, say)
    if options.table and status is None:
        app.check_table(options.table, options.key, options.columns)
    if not detach and status == SUCCESS:
        name_others(run_id, say)
    elif not detach:
        finish_others_first(app, run_id, say, show_progress)
        began = time.time()
    if fleet is not None:
        fleet.take_over_others(app.databases)
        if status != SUCCESS:
            fleet.start()
    planned, handle = 0, None  # records this command planned (none if the run existed)
    try:
        if status is None:
            urls = urls_asking(app.engine, options)
            planned = app.write_plan(manifest, run_id, options, scanned).records
            plan = RunPlan(job=options.job(run_id), inputs=dataset, files=manifest.count,
                           records=planned, urls=urls)
            handle = integration.start_run(plan, detach=detach)
        if detach:
            return Detached(run_id, dataset, planned, status or "ENQUEUED")
        bar = Progress(planned, enabled=show_progress, files=manifest.count,
                       pages=bool(options.urls)) if status is None else \
            bar_for_run(run_id, show_progress and status != SUCCESS)
        try:
            summary = wait_for_run(run_id, on_children=progress_of(bar, run_id), handle=handle)
        finally:
            bar.close()
    finally:
        if fleet is not None:
            fleet.stop()
    # A run this command did not start (done already, or going on after an interruption):
    # its whole duration, from its first start to its end, not this command's part.
    elapsed = time.time() - began if status is None else summary.finished_at - summary.started_at
    if status == SUCCESS:
        summary = as_today(summary, dataset)
    return LoadResult.from_summary(summary, status == SUCCESS, elapsed, app.bad_files(run_id),
                                   skipped.describe(), workers=fleet.size if fleet else 1,
                                   table=options.table or TASKS,
                                   changed=app.changed_objects(run_id),
                                   notes={**app.file_notes(run_id),
                                          "held_back": manifest.held_back},
                                   keyed=bool(options.key))


def check_run_of(app, options: LoadOptions, run_id: str, status: Optional[str]) -> None:
    """The run these inputs have must be taken up with the same options (``check_reattach``);
    a new one must not be one the earlier run history of the database holds (nor a finished
    one known here only by its summary row: one finished there wrote it too)."""
    if status is None or status == SUCCESS:
        check_earlier_history(app.database_url, run_id)
    if status is not None:  # the job (with its credentials check) is built only to compare
        check_reattach(run_id, status, options.job(run_id))


def check_earlier_history(database_url: Optional[str], run_id: str) -> None:
    """``UsageError`` when this run was started with the run history this SQLite database had
    before it moved beside it: started again in the new history, its chunks would meet the
    rows it stored. It is finished, or looked at, there."""
    from ..errors import UsageError
    from ..views.earlier import in_earlier_history

    found = in_earlier_history(database_url, run_id)
    if found is None:
        return
    earlier, status = found
    there = f"DBOS_SYSTEM_DATABASE_URL=sqlite:///{earlier}"
    if status == SUCCESS:
        raise UsageError(f"these inputs were loaded by run {run_id}, whose run history is in "
                         f"{earlier} (before the history moved beside the database): to go on "
                         f"with that history, set {there}")
    raise UsageError(f"run {run_id} of these inputs was left unfinished with its run history "
                     f"in {earlier} (before the history moved beside the database): finish it "
                     f"there: {there} ingest resume {run_id}")


def hint_one_record(specs: list, scanned, say: Callable) -> None:
    """A file named alone that is one object, its records under one key: say so, and how."""
    under = getattr(scanned, "records_under", None)
    if not under or len(specs) != 1 or specs[0] == "-":
        return
    key, count = under
    say(f'hint: {specs[0]} is one object, loaded as one record; to load the {count:,} objects '
        f'under "{key}" as records instead: --records {key}')


def as_today(summary, given: str):
    """A finished run's summary as the inputs given name it, with its counts as they are
    now (``ingest retry`` may have moved error rows to tasks since)."""
    from dataclasses import replace

    from dbos import DBOS

    from ..contract import redrive_prefix
    from ..views.runs import redriven_of

    redrives = DBOS.list_workflows(workflow_id_prefix=redrive_prefix(summary.run_id),
                                   status=SUCCESS, load_input=False)
    moved, skipped = redriven_of(summary.run_id, redrives)
    return replace(summary, inputs=given, tasks=summary.tasks + moved,
                   skipped=summary.skipped + skipped, errors=summary.errors - moved - skipped)


HELPER_DRAIN_SEC = 30


def helpers(database_url: Optional[str], processes: int, concurrency: int, detach: bool,
            say: Callable, entry: Callable[[list], None]):
    """``load``'s helper processes (``--workers``), None when it has none to start. On
    Postgres they start at once, forked (``entry`` runs ``ingest ARGUMENTS`` in them), so
    that their start-up overlaps the scan; on SQLite only once this process has set the
    files up (``load``)."""
    from .. import database
    from ..runtime.launch import local_executor_id
    from .helper_processes import Fleet

    if detach:
        return None
    fleet = Fleet(local_executor_id(), processes, concurrency, database_url, HELPER_DRAIN_SEC, say)
    if fleet.ids and database.is_postgres(database.app_database_url(database_url)):
        from .. import integration  # noqa: F401  imported once, before the fork, for all

        fleet.start(fork_entry=entry)
    return fleet


def tune_gc() -> None:
    """A load allocates millions of short-lived dicts and no cycles: keep the collector
    off the long-lived start-up objects and make it run less often (measured: ~8% less
    CPU on a 100,000-record load). No collection first: it found ~20 objects for ~37 ms."""
    import gc

    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
