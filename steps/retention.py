"""Retention (``ingest gc``, and ``collect_garbage`` of ``ingest worker --retention``): what
finished runs older than a cutoff leave behind, deleted, a batch of runs at a time.

A run is collected when its own workflow succeeded, every workflow under its ID (chunks,
retries, forks, redrives) ended, all of them before the cutoff, and (a run with URL inputs)
a newer generation of its command exists: the newest one numbers the next (see
``contract.RunIdentity.run_id``). A batch goes in this order, so that a gc killed at any point
and run again finishes the job and nobody sees a run half gone:

1. the runs' summary rows (``store.run_summaries``): written from their DBOS output where
   their workflow did not write one (runs older than the table), the counts of their
   ``ingest retry`` workflows folded in; one transaction, then read back;
2. the files only they needed: spooled copies (stdin, gzip, API pages) that no other run
   still holding its history names, their page markers, and the quick-check memory of
   their local files that are gone;
3. their DBOS history, in one call: each run's workflow and every workflow under its ID
   (``delete_children``: and any child DBOS links to them).

Never touched: ``tasks``, ``errors``, the dataset tables and their catalog, ``sources`` and
``contents`` (the claims that make the same bytes "already loaded" for ever). ``history`` is
``DBOS`` (inside the scheduled workflow's step) or a ``DBOSClient`` (the command): both
list and delete workflows alike.
"""

import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Optional

from sqlalchemy import select

from ..contract import ACTIVE, ERROR, GIVEN_UP, SUCCESS, RunPlan, Summary, fork_id
from ..models import Source
from ..sources.fetcher import markers_dir
from ..sources.known import KnownFiles
from ..store import run_summaries
from . import faults

BATCH = 100  # runs per pass: one row transaction, their files, one delete call
SPOOL_GRACE_SEC = 3600  # a spooled copy no run names yet may be a load's that plans now
SPOOLED = re.compile(r"(stdin|gunzip|page)-[0-9a-f]{20}\.data")  # sources.spool's names
RUN = "ingest_dataset"
REDRIVE = "redrive_errors"
TICK = "collect_garbage"
SCHEDULE_TICK = "scheduled_load"
TICKS_PER_CALL = 1000
GC_PARK_INDEX = -1  # where the park fault hook holds gc (INGEST_FAULT_PARK_AT=gc)


@dataclass
class Collected:
    """What a gc deleted (or, ``dry_run``, would delete)."""

    older_than: float
    dry_run: bool = False
    runs: int = 0
    workflows: int = 0
    files: int = 0
    bytes: int = 0
    rows_written: int = 0  # summary rows written for runs older than ``ingest_runs``
    kept: int = 0  # old runs left alone: work of theirs not finished, or a newest generation
    run_ids: list = field(default_factory=list)  # the first few, for people

    def asdict(self) -> dict:
        return asdict(self)


def collect(history, engine, older_than: float, dry_run: bool = False,
            now: Optional[float] = None) -> Collected:
    """Collect what finished runs older than ``older_than`` seconds left (see the module)."""
    cutoff = (now if now is not None else time.time()) - older_than
    done = Collected(older_than=older_than, dry_run=dry_run)
    offset = 0
    while True:
        parents = history.list_workflows(name=RUN, status=SUCCESS, limit=BATCH, offset=offset,
                                         completed_before=iso(cutoff))
        if not parents:
            break
        collected = collect_runs(history, engine, parents, cutoff, done, dry_run)
        offset += len(parents) - (0 if dry_run else collected)
    collect_redrives(history, engine, cutoff, done, dry_run)
    collect_ticks(history, cutoff, done, dry_run)
    sweep_spool(history, engine, min(cutoff, time.time() - SPOOL_GRACE_SEC), done, dry_run)
    return done


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat()


# -- runs ----------------------------------------------------------------------------------------
def collect_runs(history, engine, parents: list, cutoff: float, done: Collected,
                 dry_run: bool) -> int:
    """One batch: the runs of ``parents`` that may go, gone; how many went."""
    children = children_of(history, [p.workflow_id for p in parents])
    chosen = [p for p in parents if collectible(history, p, children[p.workflow_id], cutoff)]
    done.kept += len(parents) - len(chosen)
    if not chosen:
        return 0
    ids = [p.workflow_id for p in chosen]
    if not dry_run:
        ids = keep_rows(engine, chosen, children, done)
    chosen = [p for p in chosen if p.workflow_id in set(ids)]
    plans = {p.workflow_id: plan_of(p) for p in chosen}
    remove_files(history, engine, plans, done, dry_run)
    doomed = ids + [c.workflow_id for run in ids for c in children[run]]
    faults.park(GC_PARK_INDEX, "gc")
    if not dry_run and doomed:
        history.delete_workflows(doomed, delete_children=True)
    done.runs += len(ids)
    done.workflows += len(doomed)
    done.run_ids += ids[:max(0, 20 - len(done.run_ids))]
    return len(ids)


def children_of(history, run_ids: list) -> dict:
    """run id -> the workflows under its ID (chunks, retries, forks, redrives)."""
    found: dict = {run: [] for run in run_ids}
    if not run_ids:
        return found
    for workflow in history.list_workflows(workflow_id_prefix=[f"{r}-" for r in run_ids],
                                           load_input=False, load_output=False):
        run = "-".join(workflow.workflow_id.split("-")[:2])  # ingest-<hex>-chunk-00001
        if run in found:
            found[run].append(workflow)
    redrives = history.list_workflows(workflow_id_prefix=[f"{r}-redrive-" for r in run_ids],
                                      name=REDRIVE, load_input=False)
    outputs = {w.workflow_id: w.output for w in redrives}
    for workflows in found.values():
        for workflow in workflows:
            workflow.output = outputs.get(workflow.workflow_id)
    return found


def collectible(history, parent, children: list, cutoff: float) -> bool:
    """Whether nothing of the run goes on or may still be resumed, all of it ended before
    the cutoff, and (URL inputs) it is not its command's newest generation."""
    ids = {c.workflow_id for c in children}
    for child in children:
        if child.status in ACTIVE or child.status in GIVEN_UP:
            return False
        if child.status == ERROR and child.name != REDRIVE and fork_id(child.workflow_id) not in ids:
            return False  # a failed chunk ``ingest resume`` would fork
        if (ended_at(child) or cutoff) > cutoff:
            return False
    plan = plan_of(parent)
    return not getattr(plan, "urls", ()) or not newest_generation(history, parent.workflow_id)


def ended_at(workflow) -> Optional[float]:
    moment = workflow.completed_at or workflow.updated_at
    return moment / 1000 if moment else None


def newest_generation(history, run_id: str) -> bool:
    newest = history.list_workflows(workflow_id_prefix=run_id[:-6], name=RUN, sort_desc=True,
                                    limit=1, load_input=False, load_output=False)
    return bool(newest) and newest[0].workflow_id == run_id


def plan_of(workflow):
    args = workflow.input.get("args") if workflow.input else None
    return args[0] if args else None


def keep_rows(engine, chosen: list, children: dict, done: Collected) -> list:
    """Write the runs' summary rows where missing and fold their redrives in (one
    transaction); the IDs of the runs whose row is there, read back."""
    ids = [p.workflow_id for p in chosen]
    with engine.begin() as connection:
        have = run_summaries.rows_by_id(connection, ids)
        missing = [row_of(p) for p in chosen if p.workflow_id not in have]
        run_summaries.write_rows(connection, missing)
        for run in ids:
            run_summaries.fold_redrives(connection, run, redrive_counts(children[run]))
    with engine.connect() as connection:
        kept = run_summaries.rows_by_id(connection, ids)
    done.rows_written += len([p for p in chosen if p.workflow_id not in have
                              and p.workflow_id in kept])
    return [run for run in ids if run in kept]


def row_of(parent) -> dict:
    """A summary row from a run's DBOS output and input (a run older than the table)."""
    plan = plan_of(parent)
    job = plan.job if isinstance(plan, RunPlan) else None
    urls = len(plan.urls) if isinstance(plan, RunPlan) else 0
    return run_summaries.row_of(Summary.from_output(parent.output), job, urls)


def redrive_counts(children: list) -> dict:
    """``{"ID@CREATED_MS": [tasks, skipped]}`` of finished redrives among ``children``."""
    return {f"{c.workflow_id}@{c.created_at}": [c.output.get("tasks", 0),
                                                 c.output.get("skipped", 0)]
            for c in children if c.name == REDRIVE and c.status == SUCCESS
            and isinstance(c.output, dict)}


# -- files ---------------------------------------------------------------------------------------
def remove_files(history, engine, plans: dict, done: Collected, dry_run: bool) -> None:
    """The runs' spooled copies no other run still needs, their page markers, and the
    quick-check memory of their local files that are gone."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(Source.run_id, Source.path, Source.origin)
            .where(Source.run_id.in_(list(plans)))).all()
        copies = {r.path for r in rows if r.path and SPOOLED.fullmatch(os.path.basename(r.path))}
        copies -= still_needed(history, connection, copies, set(plans))
    paths = sorted(copies) + [p for p in quick_checks(rows, plans) if p not in copies]
    for path in paths:
        remove(path, done, dry_run)
    for run, plan in plans.items():
        spool = getattr(getattr(plan, "job", None), "spool", "")
        if spool:
            remove_tree(markers_dir(spool, run), done, dry_run)


def still_needed(history, connection, copies: set, leaving: set) -> set:
    """The copies another run names that still has its DBOS history (or none yet: being
    planned right now)."""
    if not copies:
        return set()
    named = connection.execute(select(Source.run_id, Source.path).where(
        Source.path.in_(sorted(copies)), Source.run_id.not_in(sorted(leaving)))).all()
    others = sorted({r.run_id for r in named})
    gone = set(run_summaries.rows_by_id(connection, others)) - alive(history, others)
    return {r.path for r in named if r.run_id not in gone}


def alive(history, run_ids: list) -> set:
    """Those of ``run_ids`` whose workflow is in the system database."""
    found = set()
    for low in range(0, len(run_ids), BATCH):
        found |= {w.workflow_id for w in history.list_workflows(
            workflow_ids=run_ids[low:low + BATCH], load_input=False, load_output=False)}
    return found


def quick_checks(rows: list, plans: dict) -> list:
    """The quick-check files (``sources.known``) of the runs' local files no longer there."""
    found = []
    for row in rows:
        if not row.origin or os.path.exists(row.origin.split("\x1f")[0]):
            continue
        label = getattr(getattr(plans[row.run_id], "job", None), "fingerprint_label", "")
        found.append(KnownFiles(label).cache.path(row.origin, label))
    return found


def remove(path: str, done: Collected, dry_run: bool) -> None:
    try:
        size = os.stat(path).st_size
        if not dry_run:
            os.remove(path)
    except OSError:  # gone already (another gc), or never written here
        return
    done.files += 1
    done.bytes += size


def remove_tree(folder: str, done: Collected, dry_run: bool) -> None:
    if not os.path.isdir(folder):
        return
    for root, _, names in os.walk(folder):
        for name in names:
            remove(os.path.join(root, name), done, dry_run=True)
    if not dry_run:
        shutil.rmtree(folder, ignore_errors=True)


def sweep_spool(history, engine, cutoff: float, done: Collected, dry_run: bool) -> None:
    """Copies in this process's spool that no run needs any more: named only by runs gc
    collected (a later ``ingest load -`` of content loaded before spools it again), or by
    no run at all and older than ``cutoff`` (a command that stopped before it planned)."""
    from ..sources.spool import spool_dir

    folder = os.path.abspath(spool_dir())
    try:
        names = [n for n in os.listdir(folder) if SPOOLED.fullmatch(n)]
    except OSError:
        return
    with engine.connect() as connection:
        for low in range(0, len(names), BATCH):
            paths = [os.path.join(folder, n) for n in names[low:low + BATCH]]
            named = connection.execute(select(Source.run_id, Source.path)
                                       .where(Source.path.in_(paths))).all()
            runs = sorted({r.run_id for r in named})
            gone = set(run_summaries.rows_by_id(connection, runs)) - alive(history, runs)
            needed = {r.path for r in named if r.run_id not in gone}
            unnamed = set(paths) - {r.path for r in named}
            for path in paths:
                if path not in needed and (path not in unnamed or modified(path) < cutoff):
                    remove(path, done, dry_run)


def modified(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return float("inf")


# -- what gc'd runs and gc itself leave later -------------------------------------------------------
def collect_redrives(history, engine, cutoff: float, done: Collected, dry_run: bool) -> None:
    """``ingest retry`` workflows of runs gc deleted before: folded into the run's row,
    then deleted."""
    ended = history.list_workflows(name=REDRIVE, status=[SUCCESS, ERROR],
                                   completed_before=iso(cutoff), load_input=False)
    by_run: dict = {}
    for redrive in ended:
        by_run.setdefault(redrive.workflow_id.rsplit("-redrive-", 1)[0], []).append(redrive)
    orphans = sorted(set(by_run) - alive(history, sorted(by_run)))
    if not orphans:
        return
    with engine.connect() as connection:
        rows = run_summaries.rows_by_id(connection, orphans)
    doomed = [w.workflow_id for run in orphans if run in rows for w in by_run[run]]
    if not dry_run and doomed:
        with engine.begin() as connection:
            for run in orphans:
                if run in rows:
                    run_summaries.fold_redrives(connection, run, redrive_counts(by_run[run]))
        history.delete_workflows(doomed, delete_children=True)
    done.workflows += len(doomed)


def collect_ticks(history, cutoff: float, done: Collected, dry_run: bool) -> None:
    """Finished ticks: of ``ingest worker --retention`` (gc's own history) and of the
    schedules (``scheduled_load``: what each did is counted in ``ingest_schedules``, the run it
    started named in ``ingest_schedule_runs``). A tick's child is the run it started, which
    goes by the runs' own rule: its children are not deleted with it."""
    offset = 0  # a dry run reads on; a real one deletes what it read
    while True:
        ticks = [w.workflow_id for w in history.list_workflows(
            name=[TICK, SCHEDULE_TICK], status=[SUCCESS, ERROR], completed_before=iso(cutoff),
            load_input=False, load_output=False, limit=TICKS_PER_CALL, offset=offset)]
        done.workflows += len(ticks)
        if dry_run:
            offset += len(ticks)
        elif ticks:
            history.delete_workflows(ticks, delete_children=False)
        if len(ticks) < TICKS_PER_CALL:
            return
