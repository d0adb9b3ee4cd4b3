"""What every command does with a run: plan it, start it or attach to it, wait for it with
progress, and report a typed result. The one place that polls DBOS while a command waits.

Nothing here prints or knows click: the command line (``cli``) passes callbacks for the lines
it shows and turns an ``IngestError`` into its exit code.
"""

import time
from dataclasses import asdict, dataclass, field
from typing import BinaryIO, Callable, Iterator, Optional

from .contract import (ACTIVE, ERROR, GIVEN_UP, PAGES_EVENT, SUCCESS, Chunk, HttpPolicy, Job,
                       RunPlan, Summary, children_prefix, is_run_id)
from .errors import InputError, RunFailed, RunIncomplete, RunNotFound
from .progress import Progress
from .states import needing_resume, pages_dict, published_pages

POLL_SEC = 0.25  # how often a waiting command looks at its run
CHILDREN_SEC = 1.0  # how often it looks at the run's chunks (progress, given-up chunks)
DEFAULT_CHUNK_SIZE = 5000


@dataclass(frozen=True)
class LoadOptions:
    chunk_size: int = DEFAULT_CHUNK_SIZE
    fmt: Optional[str] = None
    label: str = ""
    max_attempts: int = 3
    retry_interval: float = 0.1
    backoff: float = 2.0
    faults: dict = field(default_factory=dict)
    transform: str = "uppercase"  # as recorded: see transform.recorded_spec
    transform_dir: str = ""
    key: str = ""
    on_conflict: str = "skip"
    http: HttpPolicy = HttpPolicy()
    urls: tuple = ()  # UrlSource of each URL input (see ``url_inputs``)

    def job(self, run_id: str) -> Job:
        return Job(run_id=run_id, chunk_size=self.chunk_size, max_attempts=self.max_attempts,
                   retry_interval=self.retry_interval, backoff=self.backoff, faults=self.faults,
                   transform=self.transform, transform_dir=self.transform_dir, key=self.key,
                   on_conflict=self.on_conflict, http=self.http, fmt=self.fmt,
                   fingerprint_label=self.identity, **self.fetching(run_id))

    def fetching(self, run_id: str) -> dict:
        """What the run's page fetches need besides the policy: where to spool, and a check
        (not the values) of this command's credentials."""
        if not self.urls:
            return {}
        import os

        from .sources.http import credentials
        from .sources.spool import spool_dir

        mine = credentials()
        return {"spool": os.path.abspath(spool_dir()), "credentials_check": mine.check(run_id),
                "credential_names": mine.names()}

    @property
    def identity(self) -> str:
        """What names a file besides its bytes: the label and, for records with their own
        keys, how they are keyed and shaped. A keyed load of the same bytes with other
        settings is another run; a file already loaded unkeyed is not loaded again unkeyed
        (with a new transform either: use --label, or --key)."""
        if not self.key:
            return self.label
        return f"{self.label}\x1fkey={self.key};on-conflict={self.on_conflict};transform={self.transform}"


def shaping_options(transform: str, key: Optional[str], on_conflict: Optional[str]) -> dict:
    """``LoadOptions`` fields for ``--transform``, ``--key`` and ``--on-conflict``, checked
    before any work: a transform that can't be imported or called is ``TransformNotFound``
    (exit 2), a malformed key path a ``UsageError``."""
    import os

    from .errors import UsageError
    from .transform import key_path, recorded_spec, resolve

    if on_conflict and not key:
        raise UsageError("--on-conflict needs --key: without a key, records are identified "
                         "by file and position and never conflict")
    recorded = recorded_spec(transform)
    directory = os.getcwd()
    resolve(recorded, directory)
    if key is not None:
        try:
            key_path(key)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return {"transform": recorded, "transform_dir": directory, "key": key or "",
            "on_conflict": on_conflict or "skip"}


def url_inputs(specs: list, pages: Optional[str], headers: tuple) -> tuple:
    """The ``UrlSource`` of each URL among ``specs``, checked before any work (a
    ``UsageError``, exit 2); their credentials (``--header``, a URL's userinfo) are
    installed in this process and its helpers, and kept nowhere else."""
    from .errors import UsageError
    from .sources.common import is_url
    from .sources.http import Credentials, install, parse_pages, url_source

    credentials = Credentials()
    for header in headers:
        credentials.add_header(header)
    page_range = parse_pages(pages) if pages is not None else None
    sources = tuple(url_source(spec, page_range, credentials) for spec in specs if is_url(spec))
    if pages is not None and not any(source.paginated for source in sources):
        raise UsageError("--pages is for URL inputs with a {page} placeholder, e.g. "
                         "'https://api.example.com/users?page={page}'")
    install(credentials)
    return sources


def install_headers(headers: tuple) -> None:
    """``--header`` of ``resume`` and ``worker``: the credentials a run's pages need (they
    are never stored, so a process that fetches them must be given them again)."""
    if headers:
        url_inputs([], None, headers)


@dataclass
class LoadResult:
    """What a load did, for people (``str``) and for scripts (``asdict``)."""

    run_id: str
    dataset: str
    records: int
    tasks: int
    errors: int
    retries: int
    chunks: int
    files_loaded: int
    files_already_loaded: int
    files_bad: int
    already_loaded: bool
    elapsed_s: float
    bad_files: list = field(default_factory=list)  # one line each (the first 20)
    skipped_inputs: str = ""  # what folders and globs passed over, one line
    skipped: int = 0  # records without a row on purpose (transform None, --key already there)
    updated: int = 0  # (--key --on-conflict update) rows replaced
    workers: int = 1  # processes that loaded chunks: this one and its helpers
    pages: Optional[dict] = None  # with URL inputs: PageCounts, and "fetched"

    @classmethod
    def from_summary(cls, summary: Summary, already_loaded: bool, elapsed_s: float,
                     bad_files: list, skipped_inputs: str = "", workers: int = 1) -> "LoadResult":
        loaded, already = summary.files_new, summary.files_already
        if already_loaded:
            loaded, already = 0, loaded + already
        return cls(run_id=summary.run_id, dataset=summary.inputs, records=summary.records,
                   tasks=summary.tasks, errors=summary.errors, retries=summary.retries,
                   chunks=summary.chunks, files_loaded=loaded, files_already_loaded=already,
                   files_bad=summary.files_bad, already_loaded=already_loaded,
                   elapsed_s=elapsed_s, bad_files=bad_files, skipped_inputs=skipped_inputs,
                   skipped=summary.skipped, updated=summary.updated, workers=workers,
                   pages=pages_dict(summary.pages))

    @property
    def has_errors(self) -> bool:
        return self.errors > 0

    @property
    def bad_inputs(self) -> int:
        """Files and pages that could not be loaded at all (exit 3)."""
        return self.files_bad + (self.pages or {}).get("failed", 0)

    @property
    def records_per_s(self) -> float:
        return self.records / max(self.elapsed_s, 1e-9)

    @property
    def files(self) -> int:
        return self.files_loaded + self.files_already_loaded + self.files_bad

    def input_lines(self) -> list:
        """One line per bad input (the first 20) and one for what folders skipped."""
        lines = [f"bad input: {line}" for line in self.bad_files]
        if self.bad_inputs > len(self.bad_files):
            lines.append(f"... and {self.bad_inputs - len(self.bad_files)} more bad inputs: "
                         f"ingest errors {self.run_id}")
        return lines + ([self.skipped_inputs] if self.skipped_inputs else [])

    def asdict(self) -> dict:
        shown = asdict(self)
        shown.pop("skipped_inputs")
        return {**shown, "inserted": self.tasks, "elapsed_s": round(self.elapsed_s, 3),
                "records_per_s": round(self.records_per_s, 1)}

    def __str__(self) -> str:
        lines = []
        if self.already_loaded:
            lines.append(f"{self.dataset}: already loaded by run {self.run_id}; nothing to do "
                         "(use --label to load it again as a new dataset)")
        lines += [f"run {self.run_id}  {self.dataset}"]
        if self.files > 1 or self.files_bad or self.files_already_loaded and not self.already_loaded:
            lines.append(f"  files: {self.files_loaded:,} new files loaded, "
                         f"{self.files_already_loaded:,} already loaded, {self.files_bad:,} bad")
        if self.pages is not None:
            from .tables import describe_pages

            lines.append(describe_pages(self.pages))
        shaped = (f" | updated {self.updated}" if self.updated else "") + \
            (f" | skipped {self.skipped}" if self.skipped else "")
        lines.append(
            f"  records {self.records} | tasks {self.tasks}{shaped} | errors {self.errors}"
            f" | retries {self.retries} | elapsed {self.elapsed_s:.2f} s"
            f" | {self.records_per_s:,.0f} records/s")
        return "\n".join(lines)


@dataclass(frozen=True)
class Detached:
    run_id: str
    dataset: str
    records: int
    state: str

    def asdict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        state = "queued" if self.state == "ENQUEUED" else f"already {self.state}"
        return (f"{self.run_id}  {self.dataset}: {state} ({self.records} records); "
                f"follow it with: ingest status {self.run_id}")


# -- load -----------------------------------------------------------------------------------------
def identify_inputs(specs: list, options: LoadOptions, stdin: Optional[BinaryIO] = None):
    """Name and fingerprint every input file (no database is touched); URL inputs
    (``options.urls``) are named by what they ask for, and fetched by the run. A single
    file named alone that can't be loaded, or inputs of which none can, are an
    ``InputError`` here, before anything is written. A file named alone is scanned at
    once (the scan is also its fingerprint): ``scanned`` is its plan."""
    import os

    from .sources.common import is_url
    from .sources.plan import Manifest, Skipped, expand, has_magic, identify, scan_alone

    skipped, manifest = Skipped(), Manifest()
    files = [s for s in specs if not is_url(s)]
    if len(specs) == 1 and files and files[0] != "-" and not has_magic(files[0]) \
            and not os.path.isdir(files[0]):
        item, scanned = scan_alone(files[0], options.identity, options.chunk_size, options.fmt)
        manifest.add(item)
        return manifest, skipped, scanned
    for name in expand(files, skipped):
        manifest.add(identify(name, options.identity, stdin))
    for source in options.urls:
        manifest.identity.add_url(source, options.identity)
    if manifest.bad == manifest.count and not options.urls:  # nothing to load at all
        more = f" (and {manifest.bad - 1} more bad inputs)" if manifest.bad > 1 else ""
        raise InputError(manifest.first.error + more)
    scanned = None
    if specs == ["-"]:  # spooled by ``identify``: scanned now, to fail before any work
        stdin_copy = manifest.first
        _, scanned = scan_alone(stdin_copy.path, options.identity, options.chunk_size,
                                options.fmt, name=stdin_copy.name)
    return manifest, skipped, scanned


def current_run(manifest) -> tuple:
    """(run ID, its status or None) of these inputs. With URLs: the newest run (generation)
    of the command if it is unfinished, else a new one: the same command fetches the pages
    again, and stores only what no earlier run stored."""
    from dbos import DBOS

    from .contract import generation_of

    identity = manifest.identity
    if not identity.fetches:
        run_id = identity.run_id()
        return run_id, run_status(run_id)
    newest = DBOS.list_workflows(workflow_id_prefix=identity.generations(), name="ingest_dataset",
                                 sort_desc=True, limit=1, load_input=False, load_output=False)
    if newest and newest[0].status not in (SUCCESS, ERROR):
        manifest.chosen = newest[0].workflow_id
        return manifest.chosen, newest[0].status
    manifest.chosen = identity.run_id(generation_of(newest[0].workflow_id) + 1 if newest else 1)
    return manifest.chosen, None


def load(app, specs: list, options: LoadOptions, manifest, skipped, scanned=None,
         detach: bool = False, show_progress: bool = False, fleet=None):
    """Plan the run of these files and start it, or attach to it if it exists; returns its
    ``LoadResult`` (``Detached`` with ``detach``). A ``fleet`` (see ``helpers``) loads
    chunks beside this process until the run ends."""
    from . import integration

    began = time.time()
    run_id, status = current_run(manifest)
    dataset = describe_inputs(specs, options.urls)
    if fleet is not None:
        fleet.take_over_others(app.databases)
        if status != SUCCESS:
            fleet.start()
    planned = 0  # records this command planned (none if the run existed)
    try:
        if status is None:
            planned = app.write_plan(manifest, run_id, options, scanned).records
            plan = RunPlan(job=options.job(run_id), inputs=dataset, files=manifest.count,
                           records=planned, urls=options.urls)
            integration.start_run(plan, detach=detach)
        if detach:
            return Detached(run_id, dataset, planned, status or "ENQUEUED")
        bar = Progress(planned, enabled=show_progress and status != SUCCESS, files=manifest.count,
                       pages=bool(options.urls))
        try:
            summary = wait_for_run(run_id, on_children=progress_of(bar, run_id))
        finally:
            bar.close()
    finally:
        if fleet is not None:
            fleet.stop()
    # A run this command did not start (done already, or going on after an interruption):
    # its whole duration, from its first start to its end, not this command's part.
    elapsed = time.time() - began if status is None else summary.finished_at - summary.started_at
    return LoadResult.from_summary(summary, status == SUCCESS, elapsed, app.bad_files(run_id),
                                   skipped.describe(), workers=fleet.size if fleet else 1)


HELPER_DRAIN_SEC = 30


def helpers(database_url: Optional[str], processes: int, concurrency: int, detach: bool,
            say: Callable, entry: Callable[[list], None]):
    """``load``'s helper processes (``--workers``), None when it has none to start. On
    Postgres they start at once, forked (``entry`` runs ``ingest ARGUMENTS`` in them), so
    that their start-up overlaps the scan; on SQLite only once this process has set the
    files up (``load``)."""
    from . import database
    from .app import local_executor_id
    from .fleet import Fleet

    if detach:
        return None
    fleet = Fleet(local_executor_id(), processes, concurrency, database_url, HELPER_DRAIN_SEC, say)
    if processes > 1 and database.is_postgres(database.app_database_url(database_url)):
        from . import integration  # noqa: F401  imported once, before the fork, for all

        fleet.start(fork_entry=entry)
    return fleet


def progress_of(bar: Progress, run_id: str) -> Optional[Callable]:
    """Turns the run's finished chunk workflows (and its pages so far) into files, pages and
    records done."""
    if not bar.enabled:
        return None
    from dbos import DBOS

    def update(children: list) -> None:
        done = [c.input["args"][1] for c in children
                if c.status == SUCCESS and c.name == "load_chunk" and c.input]
        pages = published_pages(DBOS.get_event(run_id, PAGES_EVENT, timeout_seconds=0)) \
            if bar.pages else None
        bar.update(sum(c.records for c in done), sum(c.files_done for c in done), pages)

    return update


def describe_inputs(specs: list, urls: tuple = ()) -> str:
    """The inputs as typed, for people: paths made absolute, URLs without credentials."""
    import os

    from .sources.common import is_url

    bare = iter(source.describe() for source in urls)
    names = ["stdin" if s == "-" else next(bare) if is_url(s) else
             (s if any(c in s for c in "*?[") else os.path.abspath(s)) for s in specs]
    return names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} more"


# -- waiting -------------------------------------------------------------------------------------
def run_status(run_id: str) -> Optional[str]:
    from dbos import DBOS

    status = DBOS.get_workflow_status(run_id)
    return status.status if status else None


def wait_for_run(run_id: str, on_children: Optional[Callable] = None) -> Summary:
    """The run's summary once it finishes; ``RunIncomplete`` if part of it was given up or
    failed and nothing is left running, ``RunFailed`` if the run itself failed."""
    from dbos import DBOS

    checked = 0.0
    while True:
        status = run_status(run_id)
        if status == SUCCESS:
            return Summary.from_output(DBOS.retrieve_workflow(run_id).get_result())
        if status == ERROR:
            raise RunFailed(f"run {run_id} failed ({failure_of(run_id)}); see "
                            f"`dbos workflow steps {run_id}`")
        if time.time() - checked > CHILDREN_SEC or status in GIVEN_UP:
            checked = time.time()
            children = DBOS.list_workflows(workflow_id_prefix=children_prefix(run_id),
                                           load_input=on_children is not None, load_output=False)
            if on_children:
                on_children(children)
            stuck = needing_resume(children)
            busy = [c for c in children if c.status in ACTIVE]
            if (status in GIVEN_UP or stuck) and not busy:
                raise RunIncomplete(incomplete_report(run_id, stuck))
        time.sleep(POLL_SEC)


def failure_of(run_id: str) -> str:
    """The first line of the error a failed workflow ended with."""
    from dbos import DBOS

    from .errors import one_line

    found = DBOS.list_workflows(workflow_ids=[run_id], load_input=False)
    error = found[0].error if found else None
    return one_line(error) if isinstance(error, BaseException) else str(error or "no error recorded")


def incomplete_report(run_id: str, stuck: list) -> str:
    from dbos import DBOS

    from .contract import MAX_RECOVERY_ATTEMPTS

    given_up, failed = [], []
    ids = [c.workflow_id for c in stuck]
    for child in DBOS.list_workflows(workflow_ids=ids) if ids else []:
        args = child.input["args"] if child.input else ()
        chunk = args[1] if len(args) == 2 and isinstance(args[1], Chunk) else None
        what = chunk.describe() if chunk else child.workflow_id
        if child.status == ERROR:
            failed.append(f"{what} failed ({error_line(child.error)})")
        else:
            given_up.append(what)
    parts = failed
    if given_up:
        verb = "was" if len(given_up) == 1 else "were"
        parts = [f"{', '.join(given_up)} {verb} given up after repeated crashes "
                 f"(max_recovery_attempts {MAX_RECOVERY_ATTEMPTS})"] + failed
    what = "; ".join(parts) or "the run itself was given up"
    return (f"run {run_id} is incomplete: {what}; the rest is loaded. "
            f"Fix the cause, then run: ingest resume {run_id}")


def error_line(error) -> str:
    reason = (str(error).strip().splitlines() or ["an error"])[0]
    return f"{type(error).__name__}: {reason}" if isinstance(error, BaseException) else reason


def interrupted_line(run_id: Optional[str], resuming: bool = False) -> str:
    """What a Ctrl-C during ``load`` or ``resume`` says: the run, and how to finish it."""
    if run_id is None and not resuming:
        return "interrupted before the run started; nothing was loaded: run the same command again"
    if run_id is None:
        return "interrupted; what was running stops where it is: run ingest resume again to finish it"
    again = "the same command, or " if not resuming else ""
    return (f"interrupted: run {run_id} stops where it is (what is committed stays); "
            f"finish it with {again}ingest resume {run_id}")


# -- resume, retry, workers -----------------------------------------------------------------------
def any_state(database_url: Optional[str], run_id: Optional[str] = None) -> bool:
    """Whether DBOS's system database exists: where it doesn't, no run ever started, and
    a command that only finishes runs has nothing to do (and creates nothing). With a
    ``run_id``: ``RunNotFound`` instead of False."""
    from . import database
    from .operations import system_database_exists

    exists = system_database_exists(database.resolve(database_url).system_url)
    if not exists and run_id:
        raise RunNotFound(run_id)
    return exists

def check_run(run_id: str) -> None:
    if not is_run_id(run_id) or run_status(run_id) is None:
        raise RunNotFound(run_id)


def unfinished_runs() -> tuple:
    """(this executor's unfinished runs, other executors' unfinished runs)."""
    from dbos import DBOS

    runs = DBOS.list_workflows(name="ingest_dataset", status=[*ACTIVE, *GIVEN_UP],
                               load_input=False, load_output=False)
    mine = [w.workflow_id for w in runs if w.executor_id == DBOS.executor_id]
    theirs = [(w.workflow_id, w.executor_id) for w in runs if w.executor_id != DBOS.executor_id]
    return mine, theirs


class resume_all:
    """Finish one run, or every unfinished run of this executor: iterate for their results
    (``count`` says how many runs there are)."""

    def __init__(self, app, run_id: Optional[str], say: Callable, quiet: bool = False):
        self.app, self.say, self.quiet = app, say, quiet
        tune_gc()
        take_over_helpers(app, say)
        if run_id:
            check_run(run_id)
            self.run_ids = [run_id]
        else:
            self.run_ids, theirs = unfinished_runs()
            for other, owner in theirs:
                say(f"{other} belongs to executor {owner}: restart that worker, or "
                    f"`ingest worker --take-over {owner}`")
        self.count = len(self.run_ids)

    def __iter__(self) -> Iterator[LoadResult]:
        for rid in self.run_ids:
            yield resume(self.app, rid, on_resumed=None if self.quiet else lambda r, n: self.say(
                f"resumed {n} given-up workflow(s) of {r}"))


def take_over_helpers(app, say: Callable) -> None:
    """Chunks a killed ``load --workers`` left with its helpers come back to this process
    (once no live process has their ids): ``resume`` finishes what they had taken."""
    from dbos import DBOS

    from .fleet import Fleet

    Fleet(DBOS.executor_id, 1, app.concurrency, app.database_url, 0, say).take_over_others(app.databases)


def serve(app, worker_id: str, take_over: list, drain_sec: int, say: Callable,
          processes: int = 1, parent_pid: Optional[int] = None) -> None:
    """Work the queues until SIGINT or SIGTERM (or, for a command's helper, until its parent
    process is gone), then let running work finish (``drain_sec``). With ``processes`` > 1,
    helper processes work beside this one (see ``fleet``)."""
    import signal
    import threading

    from .app import take_over as recover_executors
    from .fleet import Fleet, exit_with_parent

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


def resume(app, run_id: str, on_resumed: Optional[Callable] = None) -> LoadResult:
    """Put a run's given-up or failed parts back to work and wait for it."""
    from . import integration

    job = run_job(run_id)
    if job is not None:
        load_transform(job)
    resumed = integration.resume_run(run_id)
    if resumed and on_resumed:
        on_resumed(run_id, len(resumed))
    summary = wait_for_run(run_id)
    return LoadResult.from_summary(summary, False, summary.finished_at - summary.started_at,
                                   app.bad_files(run_id))


def redrive(run_id: str, faults: dict) -> dict:
    """``ingest retry``: the run's errors through the run's own transform again."""
    from . import integration

    check_run(run_id)
    job = run_job(run_id)
    if job is not None:
        load_transform(job)
    return integration.start_redrive(run_id, faults, job=job).get_result(
        polling_interval_sec=POLL_SEC)


def run_job(run_id: str) -> Optional[Job]:
    """The job a run was started with (None for a version-1 run: the defaults)."""
    from dbos import DBOS

    found = DBOS.list_workflows(workflow_ids=[run_id], load_output=False)
    args = found[0].input.get("args") if found and found[0].input else None
    plan = args[0] if args else None
    return plan.job if isinstance(plan, RunPlan) else None


def load_transform(job: Job) -> None:
    """Import the run's transform here and now: ``TransformNotFound`` (exit 2) before any
    work if this process can't."""
    from .transform import resolve

    resolve(job.transform, job.transform_dir)


def tune_gc() -> None:
    """A load allocates millions of short-lived dicts and no cycles: keep the collector
    off the long-lived start-up objects and make it run less often (measured: ~8% less
    CPU on a 100,000-record load)."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
