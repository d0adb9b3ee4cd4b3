"""What the command line names, as one stream of files, and the rows that plan a run.

``expand`` turns files, folders (walked recursively) and quoted globs into paths, each
argument's in sorted path order, and ``s3://`` inputs into the objects they name (listed a
page at a time). ``identify`` names a file by its bytes (gzip and standard input are spooled
first); ``identify_all`` also reads each new object once, a few at once, which both
fingerprints and scans it, and passes local files through ``sources.local`` (still being
written, or known to this machine). ``Manifest`` keeps the identified files on disk while
the run's ID, which depends on all of them, is worked out; ``sources.rows.write_plan`` then
writes the run's rows. Nothing here holds the whole list of files in memory.
"""

import os
import re
import tempfile
from collections import deque
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field, replace
from typing import BinaryIO, Iterator, Optional

import orjson

from ..contract import fingerprint_of
from .identity import RunIdentity
from ..errors import InputError
from .common import BLOCK_BYTES, open_input
from .globs import glob_regex, has_magic, is_data_file
from .known import KnownFiles, Seen
from .local import LocalPolicy, Settling, identify_local, origin_of
from .objects import DOWNLOADS, FingerprintCache, pool, scan_object, store_for
from .s3 import S3Object, is_s3
from .s3 import _Missing as NoSuchKey
from .content import ContentHasher
from .scan import BOM, Tail, detect_shape, scan
from .spool import readable_copy, remove_quietly, spool_stdin

PLAN_BATCH = 1000  # files looked up, scanned and written together


# -- naming the files ---------------------------------------------------------------------------
@dataclass
class Skipped:
    """What walking folders passed over."""

    hidden: int = 0
    other: int = 0
    settling: Settling = field(default_factory=Settling)  # modified too recently (--settle)

    def describe(self) -> str:
        parts = [f"{n:,} {what}" for n, what in ((self.hidden, "hidden"),
                                                 (self.other, "with other extensions")) if n]
        walked = f"skipped {' and '.join(parts)} (loaded: .json, .ndjson, .jsonl, optionally " \
            ".gz)" if parts else ""
        return "\n".join(line for line in (walked, self.settling.describe()) if line)


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
    origin: Optional[str] = None  # a local file: its absolute path (see ``origin_of``)
    covered: Optional[int] = None  # the bytes its fingerprint covers (see sources.content)
    known: bool = False  # identified by this machine's quick check: not read (see sources.known)
    held_back: int = 0  # an unfinished last line, not part of it yet (see sources.content)
    positions: Optional[int] = None  # its records, if it was scanned (see sources.scan.Tail)

    @property
    def scan_name(self) -> str:
        return f"{self.name} (decompressed)" if self.decompressed else self.name


def identify(name: str, label: str, stdin: Optional[BinaryIO] = None,
             fmt: Optional[str] = None) -> Identified:
    """Hash a file's bytes into its fingerprint; one-line reasons for files that can't be read."""
    if isinstance(name, NoFiles):
        return Identified(name=name, error=f"{name}: {name.why}")
    try:
        if name == "-":
            return _identified("stdin", spool_stdin(stdin), label, False, fmt)
        path, decompressed = readable_copy(name, name)
        return _identified(name, path, label, decompressed, fmt)
    except InputError as exc:
        return Identified(name=name, error=str(exc))


def scan_alone(path: str, label: str, chunk_size: int, fmt: Optional[str],
               name: Optional[str] = None, policy: Optional[LocalPolicy] = None,
               settling: Optional[Settling] = None) -> tuple:
    """``(Identified, Plan)`` of a file named alone: one pass over its bytes both scans and
    fingerprints it (the scan hashes what ``identify`` hashes). ``InputError`` if it can't
    be loaded. Messages call it ``name`` (default: its path). With a ``policy`` (a local
    file, not a spooled copy) the file goes through ``identify_local``: ``(None, None)`` if
    it is left for a later run, no plan if this machine knows it; a file that grew since
    this machine read it is scanned as a tail (``Tail``), its old bytes checked on the way."""
    if policy is None:
        return _scan_copy(path, name or path, label, chunk_size, fmt, None)
    known, plans = KnownFiles(label), {}

    def read(name: str) -> Identified:
        seen = known.get(origin_of(name, label))
        tail = Tail(seen.covered, seen.positions) if seen and seen.positions is not None \
            and os.path.getsize(name) >= seen.size else None
        item, plans["plan"] = _scan_copy(name, name, label, chunk_size, fmt, tail)
        return item

    item = identify_local(path, label, policy, known, settling or Settling(policy.settle),
                          read, recalled)
    return item, plans.get("plan")


def _scan_copy(path: str, name: str, label: str, chunk_size: int, fmt: Optional[str],
               tail: Optional[Tail]) -> tuple:
    path, decompressed = readable_copy(path, name)
    item = Identified(name=name, path=os.path.abspath(path), decompressed=decompressed)
    try:
        plan = scan(path, chunk_size, fmt or format_of(name), label, name=item.scan_name,
                    tail=tail)
    except InputError:
        if decompressed:
            remove_quietly(path)  # its content can never load: don't keep it
        raise
    return replace(item, fingerprint=plan.fingerprint, covered=plan.covered,
                   held_back=plan.held_back, positions=plan.prefix_records + plan.records), plan


def _identified(name: str, path: str, label: str, decompressed: bool,
                fmt: Optional[str] = None) -> Identified:
    """The fingerprint hashes what ``scan`` hashes (see ``sources.content``)."""
    with open_input(path) as f:
        hasher = content_hasher(f, name, fmt or format_of(name))
        while block := f.read(BLOCK_BYTES * 4):
            hasher.update(block)
    return Identified(name=name, path=os.path.abspath(path),
                      fingerprint=fingerprint_of(hasher.finish(), label),
                      decompressed=decompressed, covered=hasher.covered,
                      held_back=hasher.held_back)


def content_hasher(f: BinaryIO, name: str, fmt: Optional[str]) -> ContentHasher:
    """A hasher for the file ``f``, positioned past its byte-order mark; NDJSON (as ``scan``
    would tell it) holds back an unfinished last line."""
    head = f.read(BLOCK_BYTES)
    start = len(BOM) if head.startswith(BOM) else 0
    try:
        ndjson = detect_shape(name, head, start, fmt) == "ndjson"
    except InputError:
        ndjson = False  # the scan says what is wrong with it
    f.seek(start)
    return ContentHasher(start, ndjson)


def identify_all(names: Iterator, label: str, stdin: Optional[BinaryIO], chunk_size: int,
                 fmt: Optional[str], endpoint: Optional[str],
                 policy: LocalPolicy = LocalPolicy(),
                 settling: Optional[Settling] = None) -> Iterator[Identified]:
    """``identify`` each of ``names`` (what ``expand`` yields), in order; objects of a bucket
    are downloaded ``DOWNLOADS`` at once while the listing goes on. Local files go through
    ``identify_local``: those still being written are counted in ``settling``, not yielded."""
    cache, known = FingerprintCache(label, endpoint), KnownFiles(label)
    settling = settling if settling is not None else Settling(policy.settle)
    pending: deque = deque()
    try:
        for name in names:
            if isinstance(name, S3Object):
                pending.append(pool().submit(identify_object, name, label, chunk_size, fmt,
                                             endpoint, cache))
            else:
                item = _identify_name(name, label, stdin, fmt, policy, known, settling)
                if item is None:
                    continue
                pending.append(Future())
                pending[-1].set_result(item)
            while pending and (len(pending) > DOWNLOADS or pending[0].done()):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def _identify_name(name, label, stdin, fmt, policy, known, settling) -> Optional[Identified]:
    if name == "-" or isinstance(name, NoFiles):
        return identify(name, label, stdin, fmt)
    return identify_local(name, label, policy, known, settling,
                          read=lambda n: identify(n, label, stdin, fmt), recall=recalled)


def recalled(name: str, seen: Seen, origin: str) -> Identified:
    """A file this machine read before, as it was then (not read now: ``known``)."""
    return Identified(name=name, path=os.path.abspath(name), fingerprint=seen.fingerprint,
                      decompressed=seen.decompressed, origin=origin, covered=seen.covered,
                      known=True, held_back=seen.held_back, positions=seen.positions)


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


def object_of(item: Identified) -> S3Object:
    bucket, key, size, etag, version_id = item.s3
    return S3Object(item.name, bucket, key, size, etag, version_id)


class Manifest:
    """The identified files of one command, kept in a temporary file, and the run's ID."""

    def __init__(self):
        self._file = tempfile.TemporaryFile()
        self.identity = RunIdentity()
        self.count = 0
        self.bad = 0
        self.held_back = 0  # unfinished last lines of its files, as this command saw them
        self.first: Optional[Identified] = None
        self.chosen: Optional[str] = None

    def add(self, item: Identified) -> None:
        self._file.write(orjson.dumps([item.name, item.path, item.fingerprint, item.error,
                                       item.decompressed, item.s3, item.plan, item.origin,
                                       item.covered, item.known, item.held_back,
                                       item.positions])
                         + b"\n")
        self.identity.add(item.fingerprint, item.name)
        self.first = self.first or item
        self.count += 1
        self.bad += item.error is not None
        self.held_back += item.held_back

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
