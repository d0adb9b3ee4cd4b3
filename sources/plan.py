"""What the command line names, as one stream of files, and the rows that plan a run.

``expand`` turns files, folders (walked recursively) and quoted globs into paths, each
argument's in sorted path order, and ``s3://`` inputs into the objects they name (listed a
page at a time). ``identify`` names a file by its bytes (gzip and standard input are spooled
first); ``identify_all`` also reads each new object once, a few at once, which both
fingerprints and scans it. ``Manifest`` keeps the identified files on disk while the run's
ID, which depends on all of them, is worked out; ``write_plan`` then scans the files whose
content was never claimed and writes one ``sources`` row per file. Nothing here holds the
whole list of files in memory.
"""

import hashlib
import os
import re
import tempfile
from collections import deque
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field, replace
from typing import BinaryIO, Iterator, Optional

import orjson

from ..contract import RunIdentity, fingerprint_of
from ..errors import InputError
from ..store.files import claimed_by, source_row, write_sources
from .common import BLOCK_BYTES, open_input
from .globs import glob_regex, has_magic, is_data_file
from .object_copies import discard
from .objects import (DOWNLOADS, FingerprintCache, ObjectPlan, chosen_endpoint, pool,
                      scan_object, store_for)
from .s3 import S3Object, is_s3
from .s3 import _Missing as NoSuchKey
from .scan import BOM, Plan, scan
from .spool import readable_copy, remove_quietly, spool_dir, spool_stdin

PLAN_BATCH = 1000  # files looked up, scanned and written together


# -- naming the files ---------------------------------------------------------------------------
@dataclass
class Skipped:
    """What walking folders passed over."""

    hidden: int = 0
    other: int = 0

    def describe(self) -> str:
        parts = [f"{n:,} {what}" for n, what in ((self.hidden, "hidden"),
                                                 (self.other, "with other extensions")) if n]
        return f"skipped {' and '.join(parts)} (loaded: .json, .ndjson, .jsonl, optionally .gz)" \
            if parts else ""


def format_of(name: str) -> Optional[str]:
    """NDJSON for a file named .ndjson or .jsonl (a one-record file looks like a document);
    else detected from the content."""
    base = name[:-3] if name.lower().endswith(".gz") else name
    return "ndjson" if base.lower().endswith((".ndjson", ".jsonl")) else None


def expand(specs: list, skipped: Skipped, endpoint: Optional[str] = None) -> Iterator:
    """Every file the arguments name (``S3Object``s for ``s3://`` inputs); a name that is not
    there is passed on as it is, so that it is reported as a bad input. A bucket that can't
    be listed is an ``InputError`` at once."""
    for spec in specs:
        if is_s3(spec):
            yield from _nonempty(_objects(spec, skipped, endpoint), spec,
                                 "no object matches it" if has_magic(spec) else
                                 "no .json, .ndjson or .jsonl object below it (a prefix ends "
                                 "with /)")
        elif spec == "-" or not (has_magic(spec) or os.path.isdir(spec)):
            yield spec
        elif has_magic(spec):
            yield from _nonempty(glob_files(spec), spec, "no file matches it; check the pattern "
                                 "(and quote it, so the shell leaves it to ingest)")
        else:
            yield from _nonempty(walk(spec, skipped), spec,
                                 "is a directory without .json, .ndjson or .jsonl files")


def _nonempty(paths: Iterator[str], spec: str, why: str) -> Iterator[str]:
    found = False
    for path in paths:
        found = True
        yield path
    if not found:
        yield NoFiles(spec, why)


def _objects(spec: str, skipped: Skipped, endpoint: Optional[str]) -> Iterator:
    try:
        yield from store_for(endpoint).objects(spec, skipped)
    except NoSuchKey:
        yield NoFiles(spec, "no such key; check the key (a prefix ends with /)")


class NoFiles(str):
    """A folder or glob that named no file: reported as a bad input, under its own name."""

    def __new__(cls, spec: str, why: str):
        value = super().__new__(cls, spec)
        value.why = why
        return value


def walk(directory: str, skipped: Skipped) -> Iterator[str]:
    """Data files under ``directory``, recursively, in sorted path order; hidden entries and
    other extensions are counted in ``skipped``."""
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            skipped.hidden += 1
        elif entry.is_dir():
            yield from walk(entry.path, skipped)
        elif is_data_file(entry.name):
            yield entry.path
        else:
            skipped.other += 1


def glob_files(pattern: str) -> Iterator[str]:
    """Files matching a glob (``*``, ``?``, ``[...]``; ``**`` for any depth of folders), in
    sorted path order; hidden entries only where the pattern names them."""
    parts = pattern.split("/")
    fixed = 0
    while fixed < len(parts) - 1 and not has_magic(parts[fixed]):
        fixed += 1
    root = "/".join(parts[:fixed]) or ("/" if pattern.startswith("/") else ".")
    matcher = re.compile(glob_regex(parts[fixed:]))
    for path in _walk_all(root):
        relative = os.path.relpath(path, root)
        if matcher.fullmatch(relative):
            yield path if root != "." or pattern.startswith("./") else relative


def _walk_all(directory: str) -> Iterator[str]:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.is_dir():
            yield from _walk_all(entry.path)
        else:
            yield entry.path


# -- identifying them ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Identified:
    """A file named on the command line: what is read, and its identity; or why it can't be."""

    name: str  # as the user knows it ("stdin" for -)
    path: Optional[str] = None  # what is read: the file, or its spooled copy
    fingerprint: Optional[str] = None
    error: Optional[str] = None
    decompressed: bool = False
    s3: Optional[list] = None  # an object: [bucket, key, size, ETag, VersionId]
    plan: Optional[dict] = None  # an object read at once: its ObjectPlan (None: not read)

    @property
    def scan_name(self) -> str:
        return f"{self.name} (decompressed)" if self.decompressed else self.name


def identify(name: str, label: str, stdin: Optional[BinaryIO] = None) -> Identified:
    """Hash a file's bytes into its fingerprint; one-line reasons for files that can't be read."""
    if isinstance(name, NoFiles):
        return Identified(name=name, error=f"{name}: {name.why}")
    try:
        if name == "-":
            return _identified("stdin", spool_stdin(stdin), label, False)
        path, decompressed = readable_copy(name, name)
        return _identified(name, path, label, decompressed)
    except InputError as exc:
        return Identified(name=name, error=str(exc))


def scan_alone(path: str, label: str, chunk_size: int, fmt: Optional[str],
               name: Optional[str] = None) -> tuple:
    """``(Identified, Plan)`` of a file named alone: one pass over its bytes both scans and
    fingerprints it (the scan hashes what ``identify`` hashes). ``InputError`` if it can't
    be loaded. Messages call it ``name`` (default: its path)."""
    name = name or path
    path, decompressed = readable_copy(path, name)
    item = Identified(name=name, path=os.path.abspath(path), decompressed=decompressed)
    try:
        plan = scan(path, chunk_size, fmt or format_of(name), label, name=item.scan_name)
    except InputError:
        if decompressed:
            remove_quietly(path)  # its content can never load: don't keep it
        raise
    return Identified(item.name, item.path, plan.fingerprint, None, decompressed), plan


def _identified(name: str, path: str, label: str, decompressed: bool) -> Identified:
    """The fingerprint hashes what ``scan`` hashes: the bytes after a UTF-8 byte-order mark."""
    hasher = hashlib.sha256()
    with open_input(path) as f:
        head = f.read(len(BOM))
        if head != BOM:
            hasher.update(head)
        while block := f.read(BLOCK_BYTES * 4):
            hasher.update(block)
    return Identified(name=name, path=os.path.abspath(path),
                      fingerprint=fingerprint_of(hasher.hexdigest(), label),
                      decompressed=decompressed)


def identify_all(names: Iterator, label: str, stdin: Optional[BinaryIO], chunk_size: int,
                 fmt: Optional[str], endpoint: Optional[str]) -> Iterator[Identified]:
    """``identify`` each of ``names`` (what ``expand`` yields), in order; objects of a bucket
    are downloaded ``DOWNLOADS`` at once while the listing goes on."""
    cache = FingerprintCache(label, endpoint)
    pending: deque = deque()
    try:
        for name in names:
            if isinstance(name, S3Object):
                pending.append(pool().submit(identify_object, name, label, chunk_size, fmt,
                                             endpoint, cache))
            else:
                pending.append(Future())
                pending[-1].set_result(identify(name, label, stdin))
            while pending and (len(pending) > DOWNLOADS or pending[0].done()):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def identify_object(obj: S3Object, label: str, chunk_size: int, fmt: Optional[str],
                    endpoint: Optional[str], cache: FingerprintCache) -> Identified:
    """An object's identity: its fingerprint from this machine's cache (not read), or from
    one download that also scans it (its plan kept, so it is not read again)."""
    item = Identified(name=obj.url, path=obj.url, s3=[obj.bucket, obj.key, obj.size, obj.etag,
                                                      obj.version_id])
    known = cache.get(obj)
    if known:
        return replace(item, fingerprint=known)
    try:
        plan = scan_object(obj, chunk_size, fmt or format_of(obj.key), label, endpoint)
    except InputError as exc:
        return replace(item, error=str(exc))
    cache.put(obj, plan.fingerprint)
    return replace(item, fingerprint=plan.fingerprint, plan=asdict(plan))


def _object(item: Identified) -> S3Object:
    bucket, key, size, etag, version_id = item.s3
    return S3Object(item.name, bucket, key, size, etag, version_id)


class Manifest:
    """The identified files of one command, kept in a temporary file, and the run's ID."""

    def __init__(self):
        self._file = tempfile.TemporaryFile()
        self.identity = RunIdentity()
        self.count = 0
        self.bad = 0
        self.first: Optional[Identified] = None
        self.chosen: Optional[str] = None

    def add(self, item: Identified) -> None:
        self._file.write(orjson.dumps([item.name, item.path, item.fingerprint, item.error,
                                       item.decompressed, item.s3, item.plan]) + b"\n")
        self.identity.add(item.fingerprint, item.name)
        self.first = self.first or item
        self.count += 1
        self.bad += item.error is not None

    @property
    def run_id(self) -> Optional[str]:
        """With URL inputs, the run ``commands.load.current_run`` chose (None before it chose)."""
        return self.chosen if self.identity.fetches else self.identity.run_id()

    def __iter__(self) -> Iterator[Identified]:
        self._file.flush()
        self._file.seek(0)
        for line in self._file:
            yield Identified(*orjson.loads(line))

    def close(self) -> None:
        self._file.close()


# -- the run's rows -------------------------------------------------------------------------------
@dataclass
class PlanCounts:
    planned: int = 0  # files to scan and claim
    records: int = 0
    known: int = 0  # already claimed when the command looked
    bad: int = 0
    bad_names: list = field(default_factory=list)  # the first few, for the output


def write_plan(engine, manifest: Manifest, run_id: str, chunk_size: int, fmt: Optional[str],
               label: str, scanned: Optional[Plan] = None,
               endpoint: Optional[str] = None) -> PlanCounts:
    """One ``sources`` row per file, a batch per transaction; files whose content is already
    claimed are not scanned again. ``scanned`` is a plan the command already made."""
    counts = PlanCounts()
    batch: list = []
    for ordinal, item in enumerate(manifest):
        batch.append((ordinal, item))
        if len(batch) == PLAN_BATCH:
            _write_batch(engine, run_id, batch, chunk_size, fmt, label, scanned, counts, endpoint)
            batch = []
    _write_batch(engine, run_id, batch, chunk_size, fmt, label, scanned, counts, endpoint)
    return counts


def _write_batch(engine, run_id, batch, chunk_size, fmt, label, scanned, counts,
                 endpoint) -> None:
    if not batch:
        return
    with engine.begin() as connection:
        owners = claimed_by(connection, [i.fingerprint for _, i in batch if i.fingerprint])
    batch = _objects_read(batch, owners, chunk_size, fmt, label, endpoint)
    rows = [_source_row(run_id, ordinal, item, owners.get(item.fingerprint), chunk_size, fmt,
                        label, scanned, counts) for ordinal, item in batch]
    with engine.begin() as connection:
        write_sources(connection, rows)
    for (_, item), row in zip(batch, rows):
        if item.s3 and row["state"] != "planned":  # no chunk will read its copy
            discard(chosen_endpoint(endpoint), _object(item))


def _objects_read(batch: list, owners: dict, chunk_size, fmt, label, endpoint) -> list:
    """The batch, with the objects known from the fingerprint cache whose content is not
    claimed read now (a few at once): they need their plan."""
    unread = {ordinal: pool().submit(scan_object, _object(item), chunk_size,
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


def _source_row(run_id, ordinal, item: Identified, owner, chunk_size, fmt, label, scanned,
                counts: PlanCounts) -> dict:
    row = source_row(run_id, ordinal, item.name, item.path, fingerprint=item.fingerprint)
    if item.error is None and owner is None and item.s3:
        return _object_row(row, item, counts)
    if item.error is None and owner is None:
        try:
            plan, stat = _scan_unchanged(item, chunk_size, fmt or format_of(item.name), label,
                                         scanned)
        except InputError as exc:
            if item.decompressed:
                remove_quietly(item.path)  # its content can never load: don't keep it
            item = Identified(item.name, item.path, item.fingerprint, str(exc))
        else:
            counts.planned += 1
            counts.records += plan.records
            return {**row, "shape": plan.shape, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                    "records": plan.records, "pieces": [list(p) for p in plan.chunks]}
    if item.error is not None:
        counts.bad += 1
        if len(counts.bad_names) < 20:
            counts.bad_names.append(item.error)
        return {**row, "state": "bad", "error": item.error}
    counts.known += 1
    return {**row, "state": "duplicate", "loaded_by": owner}


def _object_row(row: dict, item: Identified, counts: PlanCounts) -> dict:
    """An object's row: its plan, and what its chunks' ranged reads must find."""
    plan, (_, _, size, etag, version_id) = item.plan, item.s3
    counts.planned += 1
    counts.records += plan["records"]
    return {**row, "shape": plan["shape"], "size": size, "records": plan["records"],
            "pieces": plan["pieces"], "etag": etag, "version_id": version_id,
            "compression": plan["compression"]}


def _scan_unchanged(item: Identified, chunk_size: int, fmt, label: str,
                    scanned: Optional[Plan]) -> tuple:
    """Scan the file (or take the scan the command made) and check it is still the file that
    was identified."""
    before = os.stat(item.path)
    plan = scanned if scanned is not None and scanned.fingerprint == item.fingerprint \
        else scan(item.path, chunk_size, fmt, label, name=item.scan_name)
    if plan.fingerprint != item.fingerprint or os.stat(item.path).st_mtime_ns != before.st_mtime_ns:
        raise InputError(f"{item.name}: changed while it was being read; load it again once "
                         "it is complete")
    return plan, before
