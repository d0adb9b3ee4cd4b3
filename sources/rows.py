"""The rows that plan a run: ``write_plan`` scans the files of a ``Manifest`` whose content
was never claimed and writes one ``sources`` row per file, a batch per transaction. A local
file loaded before at the same path (its ``origin``) is planned as what it is to that
version: grown by a tail (only the tail loads, its positions continuing), or rewritten
(announced; left alone with ``--changed skip``); see docs/sources.md.
"""

import os
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field, replace
from typing import Optional

from ..errors import InputError
from ..store.files import claimed_by, loaded_at, source_row, write_sources
from .object_copies import discard
from .objects import ObjectPlan, chosen_endpoint, pool, scan_object
from .plan import PLAN_BATCH, Identified, Manifest, format_of, object_of
from .scan import Plan, Tail, scan
from .spool import readable_copy, remove_quietly, spool_dir


# -- the run's rows -------------------------------------------------------------------------------
@dataclass
class PlanCounts:
    planned: int = 0  # files to scan and claim
    records: int = 0
    known: int = 0  # already claimed when the command looked
    bad: int = 0
    bad_names: list = field(default_factory=list)  # the first few, for the output
    changed_skipped: int = 0  # rewritten files left alone (--changed skip)


@dataclass(frozen=True)
class Planning:
    """How the files of one command are planned."""

    run_id: str
    chunk_size: int
    fmt: Optional[str]
    label: str
    scanned: Optional[Plan] = None  # the plan the command already made (a file alone)
    endpoint: Optional[str] = None
    changed: str = "load"  # --changed: what a rewritten file does, "load" or "skip"


def write_plan(engine, manifest: Manifest, run_id: str, chunk_size: int, fmt: Optional[str],
               label: str, scanned: Optional[Plan] = None,
               endpoint: Optional[str] = None, changed: str = "load") -> PlanCounts:
    """One ``sources`` row per file, a batch per transaction; files whose content is already
    claimed are not scanned again. ``scanned`` is a plan the command already made."""
    planning = Planning(run_id, chunk_size, fmt, label, scanned, endpoint, changed)
    counts = PlanCounts()
    batch: list = []
    for ordinal, item in enumerate(manifest):
        batch.append((ordinal, item))
        if len(batch) == PLAN_BATCH:
            _write_batch(engine, planning, batch, counts)
            batch = []
    _write_batch(engine, planning, batch, counts)
    return counts


def _write_batch(engine, planning: Planning, batch: list, counts: PlanCounts) -> None:
    if not batch:
        return
    with engine.begin() as connection:
        owners = claimed_by(connection, [i.fingerprint for _, i in batch if i.fingerprint])
        versions = loaded_at(connection, [i.origin for _, i in batch if i.origin and i.error
                                          is None and i.fingerprint not in owners],
                             planning.run_id)
    batch = _objects_read(batch, owners, planning.chunk_size, planning.fmt, planning.label,
                          planning.endpoint)
    rows = [_source_row(planning, ordinal, item, owners.get(item.fingerprint),
                        versions.get(item.origin), counts) for ordinal, item in batch]
    with engine.begin() as connection:
        write_sources(connection, rows)
    for (_, item), row in zip(batch, rows):
        if item.s3 and row["state"] != "planned":  # no chunk will read its copy
            discard(chosen_endpoint(planning.endpoint), object_of(item))


def _objects_read(batch: list, owners: dict, chunk_size, fmt, label, endpoint) -> list:
    """The batch, with the objects known from the fingerprint cache whose content is not
    claimed read now (a few at once): they need their plan."""
    unread = {ordinal: pool().submit(scan_object, object_of(item), chunk_size,
                                     fmt or format_of(item.name), label, endpoint)
              for ordinal, item in batch if item.s3 and item.plan is None
              and item.error is None and item.fingerprint not in owners}
    return [(ordinal, _with_plan(item, unread[ordinal]) if ordinal in unread else item)
            for ordinal, item in batch]


def _with_plan(item: Identified, read: Future) -> Identified:
    try:
        plan: ObjectPlan = read.result()
    except InputError as exc:
        return replace(item, error=str(exc))
    if plan.fingerprint != item.fingerprint:  # the cache said otherwise: it can't be trusted
        return replace(item, error=f"{item.name}: its content is not what this machine "
                       f"recorded for it; delete {os.path.join(spool_dir(), 's3-fingerprints')}"
                       " and run the command again")
    return replace(item, plan=asdict(plan))


def _source_row(planning: Planning, ordinal: int, item: Identified, owner, previous,
                counts: PlanCounts) -> dict:
    row = source_row(planning.run_id, ordinal, item.name, item.path,
                     fingerprint=item.fingerprint, origin=item.origin)
    if item.error is None and owner is None and item.s3:
        return _object_row(row, item, counts)
    if item.error is None and owner is None:
        try:
            item = _readable(item)
            plan, stat, change = _plan_file(item, planning, previous)
        except InputError as exc:
            if item.decompressed:
                remove_quietly(item.path)  # its content can never load: don't keep it
            item = Identified(item.name, item.path, item.fingerprint, str(exc))
        else:
            return _file_row({**row, "path": item.path}, plan, stat, change, previous,
                             planning, counts)
    if item.error is not None:
        counts.bad += 1
        if len(counts.bad_names) < 20:
            counts.bad_names.append(item.error)
        return {**row, "state": "bad", "error": item.error}
    counts.known += 1
    return {**row, "state": "duplicate", "loaded_by": owner}


def _file_row(row: dict, plan: Plan, stat, change: Optional[str], previous, planning: Planning,
              counts: PlanCounts) -> dict:
    """A local file's row: new content; or the tail of a file that grew (its positions
    continue the old ones); or a rewritten file, loaded as new content or (``--changed
    skip``) left alone."""
    row = {**row, "change": change, "previous": previous[0] if change else None}
    if change == "rewritten" and planning.changed == "skip":
        counts.changed_skipped += 1
        return {**row, "state": "skipped"}
    counts.planned += 1
    counts.records += plan.records
    return {**row, "shape": plan.shape, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "records": plan.records, "pieces": [list(p) for p in plan.chunks],
            "covered": plan.covered, "held_back": plan.held_back,
            "first_position": plan.prefix_records if change == "grown" else 0}


def _object_row(row: dict, item: Identified, counts: PlanCounts) -> dict:
    """An object's row: its plan, and what its chunks' ranged reads must find."""
    plan, (_, _, size, etag, version_id) = item.plan, item.s3
    counts.planned += 1
    counts.records += plan["records"]
    return {**row, "shape": plan["shape"], "size": size, "records": plan["records"],
            "pieces": plan["pieces"], "etag": etag, "version_id": version_id,
            "compression": plan["compression"]}


def _readable(item: Identified) -> Identified:
    """A file the quick check identified (not read) that must be scanned after all: its
    content is not claimed here. A gzip file is decompressed now."""
    if not item.known:
        return item
    path, decompressed = readable_copy(item.path, item.name)
    return replace(item, path=os.path.abspath(path), decompressed=decompressed)


def _plan_file(item: Identified, planning: Planning, previous) -> tuple:
    """``(plan, stat, change)``: scan the file (or take the scan the command made), as the
    tail of ``previous`` (fingerprint, covered bytes, positions: what was loaded at its path)
    if its old bytes are unchanged (``change`` "grown"), else whole ("rewritten" if there
    was a previous version), and check it is still the file that was identified."""
    fmt = planning.fmt or format_of(item.name)
    before = os.stat(item.path)
    plan, change = planning.scanned, None
    if plan is not None and plan.fingerprint != item.fingerprint:
        plan = None
    if previous is not None:
        fingerprint, covered, positions = previous
        if plan is None or (plan.tail_start, plan.prefix_records) != (covered, positions):
            plan = scan(item.path, planning.chunk_size, fmt, planning.label,
                        name=item.scan_name, tail=Tail(covered, positions))
        change = "grown" if plan.prefix == fingerprint else "rewritten"
    if plan is None or plan.tail_start is not None and change != "grown":
        plan = scan(item.path, planning.chunk_size, fmt, planning.label, name=item.scan_name)
    if plan.fingerprint != item.fingerprint or os.stat(item.path).st_mtime_ns != before.st_mtime_ns:
        raise InputError(f"{item.name}: changed while it was being read (or since this "
                         "machine last read it: --full-check reads every file); load it "
                         "again once it is complete")
    return plan, before, change
