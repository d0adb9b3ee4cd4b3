"""What DBOS checkpoints, in one place: workflow IDs, queue names, source keys, and the
shapes of a run's job, its chunks and its summary.

Workflow inputs and outputs are stored (pickled) by DBOS and read back after a crash, by
another worker or by ``ingest status``: change a shape here only together with
``APPLICATION_VERSION``. Every structure is small and bounded: a run's files live in the
``sources`` table, never in a workflow's input.
"""

import hashlib
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Optional

# Pinned, so that a run interrupted by a crash is recovered by the next version of the code
# (DBOS only recovers workflows of its own application version). Bump it when a shape below
# changes, after draining runs in flight. v2: runs over sets of files. v3: failed records
# travel to retry_records as runs of positions (``add_position``), and its rounds are
# retry_round transactions. v4: a job carries its column hints (``Job.columns``), and
# ``prepare_table`` keeps them. v5: schedules' ticks (``scheduled_load``, ``TickPlan``);
# URL inputs follow chains of pages (``UrlSource.paging``), a page per ``fetch_link`` step
# whose ``FetchedPage.next`` leads to the next one; a run ends with its summary row
# (``record_run``), and ``collect_garbage`` (worker --retention) is a workflow;
# incremental loads (``Job.incremental``, ``UrlSource.since``, ``ChunkResult.highest``,
# ``Summary.incremental``).
# tests/test_upgrades.py records each version's shapes.
APPLICATION_VERSION = "ingest-v5"

# How often a workflow whose process keeps dying is dispatched again before it is given up
# (a poison chunk): its status then says MAX_RECOVERY_ATTEMPTS_EXCEEDED.
MAX_RECOVERY_ATTEMPTS = int(os.environ.get("INGEST_MAX_RECOVERY_ATTEMPTS", "3"))
# A run shares its process with its chunks, so every crash a poison chunk causes is counted
# against the run too. A larger budget lets the run outlast any one poison chunk: the chunk
# is given up first, and the run goes on to queue and await the rest.
RUN_RECOVERY_ATTEMPTS = 2 * MAX_RECOVERY_ATTEMPTS + 2

TASKS = "tasks"  # the demo's table of JSON records, where records go without --table

RUN_QUEUE = "ingest-runs"  # runs started with --detach, for any worker to pick up
CHUNK_QUEUE = "ingest-chunks"
RETRY_QUEUE = "ingest-retries"
# Schedules' ticks (``scheduled_load``), one at a time across all workers: a tick decides
# whether the schedule's last run still goes before it starts the next. Only ``ingest
# worker`` processes work it (and fire ticks at all).
SCHEDULE_QUEUE = "ingest-schedules"
GC_QUEUE = "ingest-gc"  # collect_garbage's ticks (worker --retention): worked by workers only
PAGES_EVENT = "pages"  # a run's page counts so far (DBOS.set_event), for progress and status

# DBOS's workflow statuses (dbos.WorkflowStatusString), grouped as the commands use them.
SUCCESS = "SUCCESS"
ERROR = "ERROR"
GIVEN_UP = ("MAX_RECOVERY_ATTEMPTS_EXCEEDED", "CANCELLED")
ACTIVE = ("PENDING", "ENQUEUED", "DELAYED")
QUEUED = ("ENQUEUED", "DELAYED")

_RUN_ID = re.compile(r"ingest-[0-9a-f]{20}")
BAD_FILE_POSITION = -1  # the position of an errors row that stands for a whole file


# -- identities ------------------------------------------------------------------------------
# Between the parts of a run's identity label (the user's --label first, then the table and
# the key settings): a character no --label holds, so the user's label can be read back.
IDENTITY_SEPARATOR = "\x1f"


def fingerprint_of(content_hash: str, label: str) -> str:
    """A file's identity: its bytes, plus a label to load the same bytes again on purpose."""
    return hashlib.sha256(f"{content_hash}:{label}".encode()).hexdigest()[:20]


def is_run_id(text: str) -> bool:
    """``ingest-`` and 20 hex digits: also what keeps a run id safe inside COPY text."""
    return _RUN_ID.fullmatch(text) is not None


def chunk_workflow_id(run_id: str, index: int) -> str:
    return f"{run_id}-chunk-{index:05d}"


def retry_workflow_id(run_id: str, index: int) -> str:
    return f"{run_id}-retry-{index:05d}"


def redrive_prefix(run_id: str) -> str:
    return f"{run_id}-redrive-"


def redrive_workflow_id(run_id: str, number: int) -> str:
    return f"{redrive_prefix(run_id)}{number:03d}"


def fork_id(workflow_id: str) -> str:
    """The ID ``ingest resume`` gives the fork of a failed child: under the run's prefix."""
    return f"{workflow_id}-fork"


def children_prefix(run_id: str) -> str:
    return f"{run_id}-"


def source_key(fingerprint: str, position: int) -> str:
    return f"{fingerprint}:{position}"


def bad_file_key(fingerprint: Optional[str], name: str) -> str:
    """The source key of a bad file's errors row: its content, or its path if unreadable."""
    if fingerprint:
        return f"{fingerprint}:file"
    return f"path:{hashlib.sha256(name.encode()).hexdigest()[:20]}"


def is_url(spec: str) -> bool:
    """An http(s) URL input (an API page), rather than a path."""
    return spec.lower().startswith(("http://", "https://"))


def title_of(position: int) -> str:
    return f"task {position}"


# -- what a run carries --------------------------------------------------------------------
@dataclass(frozen=True)
class Paging:
    """How each page of a URL input without ``{page}`` leads to the next one (a chain), as
    the options of ``ingest load`` say: by default a ``Link: <...>; rel="next"`` header; or
    a URL (``next_url``) or a cursor (``cursor``, or ``cursor_record``: a field of the
    page's last record) at a dotted path of the body, the cursor sent as the query
    parameter ``cursor_param``; or an offset (``offset_param``, ``limit`` records a page).
    ``has_more``, ``total`` and ``max_pages`` say where a chain ends."""

    next_url: str = ""
    cursor: str = ""
    cursor_record: str = ""
    cursor_param: str = ""
    has_more: str = ""
    offset_param: str = ""
    limit_param: str = ""
    limit: int = 0
    total: str = ""
    max_pages: Optional[int] = None

    @property
    def style(self) -> str:
        """``link``, ``next-url``, ``cursor``, ``cursor-record`` or ``offset``."""
        for style in ("next_url", "cursor", "cursor_record", "offset_param"):
            if getattr(self, style):
                return style.replace("_param", "").replace("_", "-")
        return "link"

    def describe(self) -> str:
        """The options as typed ("" for the default: Link headers, no cap)."""
        return " ".join(f"--{name.replace('_', '-')} {value}"
                        for name, value in asdict(self).items() if value)


@dataclass(frozen=True)
class UrlSource:
    """A URL input, without its credentials: pages ``first``..``last`` (``last`` None:
    until the first page with no records) of a ``{page}`` template; or, without one, a
    document and the chain of pages its ``paging`` leads to."""

    template: str
    first: int = 0
    last: Optional[int] = None
    paginated: bool = False
    paging: Paging = Paging()
    since: tuple = ()  # (--incremental) (type, text) of the value the run asks from; (): none
    since_param: str = ""  # --since-param: the query parameter the value goes into

    def url(self, page: int) -> str:
        return self.template.replace(PAGE_PLACEHOLDER, str(page)) if self.paginated else self.template

    def describe(self) -> str:
        """What it asks for, without the value it asks from (the run identity's words)."""
        asks = f" --since-param {self.since_param}" if self.since_param else ""
        if not self.paginated:
            return f"{self.template} {self.paging.describe()}".rstrip() + asks
        return f"{self.template} pages {self.first}-{'' if self.last is None else self.last}{asks}"


PAGE_PLACEHOLDER = "{page}"


@dataclass(frozen=True)
class HttpPolicy:
    """How pages are fetched: tries per page, seconds per connect or read, requests per
    second for the whole run (None: no cap), the first retry's wait, pages in flight."""

    attempts: int = 5
    timeout: float = 30.0
    rate: Optional[float] = None
    backoff: float = 0.5
    concurrency: int = 2


@dataclass(frozen=True)
class FetchedPage:
    """What fetching one page found: its spooled copy and plan (as a file's ``sources``
    row has them), or why it can't be loaded; ``empty``: it holds no records."""

    page: int
    name: str  # the URL, without credentials
    attempts: int
    status: Optional[int] = None
    path: Optional[str] = None
    fingerprint: Optional[str] = None
    shape: Optional[str] = None
    size: Optional[int] = None
    mtime_ns: Optional[int] = None
    records: int = 0
    pieces: tuple = ()
    error: Optional[str] = None
    empty: bool = False
    end: bool = False  # it ends an open range and holds nothing to load (see sources.http.ends)
    next: Optional[str] = None  # in a chain: the URL of the page after it (None: the last)

    @property
    def loads(self) -> bool:
        """Whether it gets a ``sources`` row: it has records, or could not be had."""
        return not (self.empty or self.end) or self.error is not None


@dataclass(frozen=True)
class Job:
    """What every workflow of a run needs: its ID and how to treat records."""

    run_id: str
    chunk_size: int
    max_attempts: int
    retry_interval: float
    backoff: float
    faults: dict = field(default_factory=dict)
    # How records are shaped and identified (fields added in place: a Job checkpointed
    # without them reads back with these defaults, the behaviour it was started with).
    # A built-in, MODULE:FUNCTION or /abs/path/file.py:FUNCTION. Every run records it by name
    # (transform.DEFAULT is identity); "uppercase" here is what a Job checkpointed
    # before this field existed did, so keep it: it is no default of a new run.
    transform: str = "uppercase"
    transform_dir: str = ""  # where MODULE is imported from: the load's working directory
    key: str = ""  # --key: a dotted path into the record; "" = keyed by file and position
    on_conflict: str = "skip"  # --on-conflict, with a key: "skip" or "update"
    http: HttpPolicy = HttpPolicy()  # how its URL inputs' pages are fetched
    fmt: Optional[str] = None  # --format, for pages (files are scanned by the command)
    fingerprint_label: str = ""  # what a page's fingerprint adds to its bytes (as a file's)
    spool: str = ""  # where its pages are spooled (absolute)
    credentials_check: str = ""  # of the credentials its pages are fetched with ("": none)
    credential_names: tuple = ()  # their names (headers; Authorization for a URL's userinfo)
    table: str = ""  # --table: the dataset table its records go to ("": the demo's tasks)
    # Where its s3:// inputs are read ("": AWS, or the reading process's AWS_ENDPOINT_URL);
    # never credentials: each process takes its own from AWS's default chain.
    endpoint_url: str = ""
    # --column: ((field path as given, type), ...) sorted, the column types it asks for
    columns: tuple = ()
    incremental: str = ""  # --incremental: the dotted path of each record's value ("": none)

    @property
    def keyed(self) -> bool:
        return bool(self.key)


@dataclass(frozen=True)
class RunPlan:
    """The run workflow's input: the job and what the command found (its files are rows of
    ``sources`` under the run's ID)."""

    job: Job
    inputs: str  # the paths as typed, for people
    files: int  # rows in ``sources``
    records: int  # records of the files planned as new (claims may take some away)
    urls: tuple = ()  # UrlSource of each URL input, fetched by the run after its files


@dataclass(frozen=True)
class TickPlan:
    """What a schedule's tick found (the output of its ``plan_tick`` step): a run to start
    (``started``, with its plan), or why none: the schedule's last run still goes
    (``skipped``), nothing new to load (``unchanged``), or its inputs can't be loaded now
    (``failed``, with the one-line reason)."""

    outcome: str
    run_id: str = ""
    plan: Optional[RunPlan] = None
    reason: str = ""


@dataclass(frozen=True)
class Chunk:
    """A run of consecutive pieces of the run's new files, from piece ``first_piece`` of
    file ``first`` to piece ``last_piece`` of file ``last`` (ordinals in ``sources``)."""

    index: int
    first: int
    first_piece: int
    last: int
    last_piece: int
    records: int
    files_done: int  # files whose last piece is in this chunk
    first_position: int  # of its first record, in the first file

    def span(self) -> str:
        """Its records, for people: positions within one file, or the files it spans."""
        if self.first == self.last:
            return f"{self.first_position}-{self.first_position + self.records - 1}"
        return f"files #{self.first}-#{self.last}, {self.records} records"

    def describe(self) -> str:
        what = f"records {self.span()}" if self.first == self.last else self.span()
        return f"chunk {self.index} ({what})"


# -- failed records, by reference ---------------------------------------------------------------
# A chunk's records whose transform failed travel to ``retry_records`` (and from one retry
# round to the next) as runs of positions, ``[[ordinal, first, last], ...]`` (a file's
# ordinal in the run, inclusive positions in it), never as records: each round reads them
# again from the input. Their errors stay out of checkpoints too: only the last attempt's
# is stored, by the round that writes the record to ``errors``.
def add_position(ranges: list, ordinal: int, position: int) -> None:
    """Add a position to ``ranges`` (positions come in the input's order)."""
    if ranges and ranges[-1][0] == ordinal and ranges[-1][2] == position - 1:
        ranges[-1][2] = position
    else:
        ranges.append([ordinal, position, position])


def count_of(ranges: list) -> int:
    return sum(last - first + 1 for _, first, last in ranges)


class PositionSet:
    """Membership in ``ranges`` without expanding them (a chunk may hold a million)."""

    def __init__(self, ranges: list):
        self._by_file: dict = {}
        for ordinal, first, last in ranges:
            starts, ends = self._by_file.setdefault(ordinal, ([], []))
            starts.append(first)
            ends.append(last)

    def __contains__(self, place: tuple) -> bool:
        return self.overlaps(place[0], place[1], place[1])

    def overlaps(self, ordinal: int, low: int, high: int) -> bool:
        """Whether any position ``low``..``high`` (inclusive) of the file is in the set."""
        import bisect

        starts, ends = self._by_file.get(ordinal, ((), ()))
        i = bisect.bisect_right(starts, high) - 1
        return i >= 0 and ends[i] >= low


@dataclass(frozen=True)
class ChunkResult:
    index: int
    tasks: int
    errors: int
    retry_workflow: Optional[str] = None
    retries: int = 0
    skipped: int = 0  # no row on purpose: the transform returned None, or (--key) the key was there
    updated: int = 0  # (--key --on-conflict update) records whose key was already there
    highest: Optional[dict] = None  # (--incremental) {type: text}: of the records it stored


@dataclass(frozen=True)
class Claimed:
    """What claiming a page of a run's files found."""

    new: int = 0
    duplicate: int = 0
    bad: int = 0
    bad_rows: int = 0  # errors rows written for bad files (not those seen by earlier runs)
    records: int = 0

    def __add__(self, other: "Claimed") -> "Claimed":
        return Claimed(*(a + b for a, b in zip(astuple_of(self), astuple_of(other))))


@dataclass(frozen=True)
class PageCounts:
    """A run's pages so far: stored as new, already loaded (content claimed before),
    failed (an ``errors`` row each), and the HTTP requests they took beyond one each."""

    new: int = 0
    already: int = 0
    failed: int = 0
    http_retries: int = 0
    empty: int = 0  # pages with no records (the end of an open range) and past-the-end 404s
    records: int = 0  # of the new pages

    @property
    def fetched(self) -> int:
        return self.new + self.already + self.failed + self.empty

    def __add__(self, other: "PageCounts") -> "PageCounts":
        return PageCounts(*(a + b for a, b in zip(astuple_of(self), astuple_of(other))))


def astuple_of(value) -> tuple:
    return tuple(asdict(value).values())


@dataclass(frozen=True)
class Summary:
    """A finished run, as its workflow returns it."""

    run_id: str
    inputs: str
    records: int
    tasks: int
    errors: int
    retries: int
    chunks: int
    files_new: int
    files_already: int
    files_bad: int
    started_at: float
    finished_at: float
    skipped: int = 0
    updated: int = 0
    pages: Optional["PageCounts"] = None  # a run with URL inputs: what fetching them found
    incremental: Optional[dict] = None  # {"field", "used", "new"}: the values it started from and left

    @property
    def files(self) -> int:
        return self.files_new + self.files_already + self.files_bad

    @classmethod
    def from_output(cls, output) -> "Summary":
        """A run's stored output; a version-1 run (a dict, one file) reads as one file."""
        if isinstance(output, cls):
            return output
        return cls(run_id=output["run_id"], inputs=output.get("dataset", ""),
                   records=output["records"], tasks=output["tasks"], errors=output["errors"],
                   retries=output["retries"], chunks=output["chunks"], files_new=1,
                   files_already=0, files_bad=0, started_at=output["started_at"],
                   finished_at=output["finished_at"])
