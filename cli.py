"""The ``ingest`` command line: a thin layer over ``integration`` (the DBOS app),
``sources`` (reading files) and ``database`` (URLs and schema).

Heavy libraries (DBOS, SQLAlchemy, OpenTelemetry) are imported inside the commands that
need them, so ``ingest --help`` answers at once.

Exit codes: 0 success; 1 fatal (database unreachable, run not finished); 2 usage error;
3 bad input file; 4 records ended in ``errors`` and ``--fail-on-errors`` was given.
"""

import json
import os
import re
import signal
import sys
import time
from typing import Optional

import click

from . import __version__, progress
from .progress import Progress

EXIT_FATAL = 1
EXIT_BAD_INPUT = 3
EXIT_RECORD_ERRORS = 4


class Failure(click.ClickException):
    """A one-line error with its own exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FATAL):
        super().__init__(message)
        self.exit_code = exit_code


def database_option(f):
    return click.option(
        "--database-url", envvar="DATABASE_URL", metavar="URL",
        help="App database (default: DATABASE_URL, else sqlite:///durable_ingest_app.sqlite).",
    )(f)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ingest")
def main() -> None:
    """Load JSON datasets into SQLite or Postgres with DBOS durable workflows.

    \b
    Example:
      ingest load data/randomuser-1000.json --fail-task 50
    """


# -- ingest load --------------------------------------------------------------------------
@main.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--format", "fmt", type=click.Choice(["json", "ndjson"]),
              help="Input format (default: detected from the content).")
@database_option
@click.option("--chunk-size", type=click.IntRange(1, 1_000_000), default=5000, show_default=True,
              help="Records per chunk workflow.")
@click.option("--concurrency", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Chunk workflows run at once by this process.")
@click.option("--max-attempts", type=click.IntRange(1, 100), default=3, show_default=True,
              help="Transform tries per record, the first included.")
@click.option("--retry-interval", type=click.FloatRange(0, 3600), default=0.1, show_default=True,
              help="Seconds before the first retry.")
@click.option("--backoff", type=click.FloatRange(1, 100), default=2.0, show_default=True,
              help="Each retry waits this many times longer than the one before.")
@click.option("--fail-task", "fail_tasks", type=click.IntRange(0), multiple=True, metavar="N",
              help="Make the transform of 'task N' always fail (repeatable).")
@click.option("--flaky-rate", type=click.FloatRange(0, 1), default=0.0,
              help="Probability that a transform attempt fails transiently.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
              help="Seed of --flaky-rate's failures.")
@click.option("--label", default="", metavar="TEXT",
              help="Load the same bytes again as a new dataset: a new label is a new run.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--fail-on-errors", is_flag=True,
              help=f"Exit {EXIT_RECORD_ERRORS} if any record ended in errors.")
@click.option("--detach", is_flag=True,
              help="Queue the run for `ingest worker` processes, print its id and return.")
@click.option("--no-progress", is_flag=True, help="No progress line on stderr.")
def load(paths, fmt, database_url, chunk_size, concurrency, max_attempts, retry_interval,
         backoff, fail_tasks, flaky_rate, seed, label, as_json, fail_on_errors, detach,
         no_progress) -> None:
    """Load JSON datasets: every record ends in tasks or errors, exactly once.

    PATH is a JSON array, a {"results": [...]} envelope or NDJSON; '-' reads stdin.

    \b
    Example:
      ingest load data/randomuser-1000.json --fail-task 50
    """
    from .transform import Faults

    began = time.time()
    plans = [scan_or_fail(path, chunk_size, fmt, label) for path in paths]
    options = {
        "max_attempts": max_attempts, "retry_interval": retry_interval, "backoff": backoff,
        "faults": Faults(frozenset(fail_tasks), flaky_rate, seed).as_dict(),
    }
    with running_app(database_url, concurrency, role="client" if detach else "local") as databases:
        from . import integration

        tune_gc()
        exit_code = 0
        for plan in plans:
            if detach:
                print_detached(integration, plan, options, as_json)
                continue
            summary = load_plan(integration, databases, plan, options, began,
                                show_progress=progress.wanted(not no_progress))
            print_summary(summary, as_json)
            if fail_on_errors and summary["errors"]:
                exit_code = EXIT_RECORD_ERRORS
            began = time.time()
    if exit_code:
        sys.exit(exit_code)


def tune_gc() -> None:
    """A load allocates millions of short-lived dicts and no cycles: keep the collector
    off the long-lived start-up objects and make it run less often (measured: ~8% less
    CPU on a 100,000-record load)."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def scan_or_fail(path: str, chunk_size: int, fmt: Optional[str], label: str):
    from .errors import InputError
    from .sources.scan import scan
    from .sources.spool import spool_stdin

    try:
        if path == "-":
            return scan(spool_stdin(sys.stdin.buffer), chunk_size, fmt, label, name="stdin")
        return scan(path, chunk_size, fmt, label)
    except InputError as exc:
        raise Failure(str(exc), EXIT_BAD_INPUT) from None


def run_spec(integration, plan, options: dict) -> dict:
    stat = os.stat(plan.path)
    return {
        "run_id": integration.run_id_for(plan.fingerprint), "path": plan.path,
        "shape": plan.shape, "fingerprint": plan.fingerprint, "records": plan.records,
        "chunks": plan.chunks, "source": {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns},
        **options,
    }


def print_detached(integration, plan, options: dict, as_json: bool) -> None:
    run = run_spec(integration, plan, options)
    status = integration.run_status(run["run_id"])
    if status is None:
        integration.start_run(run, detach=True)
    if as_json:
        click.echo(json.dumps({"run_id": run["run_id"], "dataset": plan.path,
                               "records": plan.records, "state": status or "ENQUEUED"}))
    else:
        state = "queued" if status is None else f"already {status}"
        click.echo(f"{run['run_id']}  {plan.path}: {state} ({plan.records} records); "
                   f"follow it with: ingest status {run['run_id']}")


def load_plan(integration, databases, plan, options: dict, began: float,
              show_progress: bool = False) -> dict:
    run_id = integration.run_id_for(plan.fingerprint)
    status = integration.run_status(run_id)
    if status == "SUCCESS":
        summary = integration.wait_for(integration.DBOS.retrieve_workflow(run_id))
        return {**summary, "already_loaded": True,
                "elapsed_s": summary["finished_at"] - summary["started_at"]}
    if status is None:
        integration.start_run(run_spec(integration, plan, options))
    # Started now, or earlier by a process that died: DBOS.launch() recovered it.
    bar = Progress(plan.records, enabled=show_progress)
    try:
        counter = progress_counter(integration, run_id, plan, bar)
        summary = wait_for_run(integration, run_id, on_progress=counter)
    finally:
        bar.close()
    return {**summary, "already_loaded": False, "elapsed_s": time.time() - began}


def progress_counter(integration, run_id: str, plan, bar):
    """Turns the run's finished chunk workflows into records done, for the progress line."""
    sizes = {integration.chunk_workflow_id(run_id, index): chunk[3]
             for index, chunk in enumerate(plan.chunks)}

    def update(children: list) -> None:
        bar.update(sum(sizes.get(c.workflow_id, 0) for c in children if c.status == "SUCCESS"))

    return update if bar.enabled else None


def wait_for_run(integration, run_id: str, poll: float = 0.1, on_progress=None) -> dict:
    """The run's summary once it finishes; a one-line failure if part of it was given up."""
    checked = 0.0
    while True:
        status = integration.run_status(run_id)
        if status == "SUCCESS":
            return integration.wait_for(integration.DBOS.retrieve_workflow(run_id))
        if status == "ERROR":
            raise Failure(f"run {run_id} failed; see `dbos workflow steps {run_id}`")
        if time.time() - checked > (0.5 if on_progress else 1.0) or status in integration.GIVEN_UP:
            checked = time.time()
            children = integration.children(run_id)
            if on_progress:
                on_progress(children)
            stuck = integration.needing_resume(children)
            busy = [c for c in children if c.status in integration.ACTIVE]
            if status in integration.GIVEN_UP and not busy or stuck and not busy:
                raise Failure(incomplete_report(integration, run_id, stuck))
        time.sleep(poll)


def incomplete_report(integration, run_id: str, stuck: list) -> str:
    given_up, failed = [], []
    ids = [c.workflow_id for c in stuck]
    for child in integration.DBOS.list_workflows(workflow_ids=ids) if ids else []:
        args = child.input["args"] if child.input else ()
        if child.name == "load_chunk" and len(args) == 3:
            index, (_, _, first, count) = args[1], args[2]
            what = f"chunk {index} (records {first}-{first + count - 1})"
        else:
            what = child.workflow_id
        if child.status == "ERROR":
            error = child.error
            reason = (str(error).strip().splitlines() or ["an error"])[0]
            if isinstance(error, BaseException):
                reason = f"{type(error).__name__}: {reason}"
            failed.append(f"{what} failed ({reason})")
        else:
            given_up.append(what)
    parts = failed
    if given_up:
        verb = "was" if len(given_up) == 1 else "were"
        parts = [f"{', '.join(given_up)} {verb} given up after repeated crashes "
                 f"(max_recovery_attempts {integration.MAX_RECOVERY_ATTEMPTS})"] + failed
    what = "; ".join(parts) or "the run itself was given up"
    return (f"run {run_id} is incomplete: {what}; the rest is loaded. "
            f"Fix the cause, then run: ingest resume {run_id}")


def print_summary(summary: dict, as_json: bool) -> None:
    elapsed = max(summary["elapsed_s"], 1e-9)
    rate = summary["records"] / elapsed
    if as_json:
        shown = {k: summary[k] for k in ("run_id", "dataset", "records", "tasks", "errors",
                                          "retries", "chunks", "already_loaded")}
        click.echo(json.dumps({**shown, "elapsed_s": round(elapsed, 3),
                               "records_per_s": round(rate, 1)}))
        return
    if summary["already_loaded"]:
        click.echo(f"{summary['dataset']}: already loaded by run {summary['run_id']}; "
                   "nothing to do (use --label to load it again as a new dataset)")
    click.echo(
        f"run {summary['run_id']}  {summary['dataset']}\n"
        f"  records {summary['records']} | tasks {summary['tasks']} | errors {summary['errors']}"
        f" | retries {summary['retries']} | elapsed {elapsed:.2f} s | {rate:,.0f} records/s"
    )


class running_app:
    """Prepare the databases, start metrics and DBOS; always flush and stop them."""

    def __init__(self, database_url: Optional[str], concurrency: int,
                 executor_id: Optional[str] = None, global_concurrency: Optional[int] = None,
                 role: str = "local"):
        self.database_url, self.concurrency, self.executor_id = database_url, concurrency, executor_id
        self.global_concurrency, self.role = global_concurrency, role
        self.drain_sec = 0

    def __enter__(self):
        from . import database, telemetry

        try:
            self.databases = database.resolve(self.database_url)
            database.upgrade_schema(self.databases.app_url)  # DBOS creates its own database
        except database.DatabaseError as exc:
            raise Failure(str(exc)) from None
        telemetry.start(warn=lambda line: click.echo(line, err=True))
        from . import integration

        try:
            integration.launch(self.databases, concurrency=self.concurrency,
                               executor_id=self.executor_id,
                               global_concurrency=self.global_concurrency, role=self.role,
                               on_wait=lambda: click.echo(
                                   "waiting for another ingest process on this machine to "
                                   "finish (run `ingest worker` processes to load in parallel)",
                                   err=True))
        except Exception as exc:
            telemetry.stop()
            urls = (self.databases.system_url, self.databases.app_url)
            raise Failure(f"cannot start DBOS on {database.redact(self.databases.system_url)}: "
                          f"{database.scrub(str(exc).splitlines()[0] if str(exc) else repr(exc), *urls)}") from None
        return self.databases

    def __exit__(self, *exc_info):
        from . import integration, telemetry

        try:
            integration.shutdown(self.drain_sec)
        finally:
            telemetry.stop()
        return False


# -- ingest resume -----------------------------------------------------------------------
@main.command()
@click.argument("run_id", required=False)
@database_option
@click.option("--concurrency", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Chunk workflows run at once by this process.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def resume(run_id, database_url, concurrency, as_json) -> None:
    """Finish interrupted runs: recover crashed ones, retry given-up chunks.

    Without RUN_ID, finishes every unfinished run of this machine (executor).

    \b
    Example:
      ingest resume ingest-3c1e0d8a2b4f6e7d9c01
    """
    began = time.time()
    with running_app(database_url, concurrency) as _:
        from . import integration

        tune_gc()
        if run_id:
            check_run_id(integration, run_id)
            run_ids = [run_id]
        else:
            run_ids, theirs = integration.unfinished_runs()
            for other, owner in theirs:
                click.echo(f"{other} belongs to executor {owner}: restart that worker, or "
                           f"`ingest worker --take-over {owner}`", err=True)
        if not run_ids:
            click.echo("no unfinished runs")
        for rid in run_ids:
            resumed = integration.resume_run(rid)
            if resumed and not as_json:
                click.echo(f"resumed {len(resumed)} given-up workflow(s) of {rid}", err=True)
            summary = wait_for_run(integration, rid)
            print_summary({**summary, "already_loaded": False, "elapsed_s": time.time() - began},
                          as_json)
            began = time.time()


# -- ingest status -----------------------------------------------------------------------
@main.command()
@click.argument("run_id", required=False)
@database_option
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True,
              help="Runs to list.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(run_id, database_url, limit, as_json) -> None:
    """List runs, newest first; with RUN_ID, one run and the state of each chunk.

    \b
    Example:
      ingest status
      ingest status ingest-3c1e0d8a2b4f6e7d9c01 --json
    """
    from . import operations

    if run_id and not is_run_id(run_id):
        raise no_such_run(run_id)
    client = system_client(database_url)
    if client is None:
        if run_id:
            raise no_such_run(run_id)
        click.echo("[]" if as_json else format_runs([]))
        return
    try:
        if run_id:
            detail = operations.run_detail(client, run_id)
            if detail is None:
                raise no_such_run(run_id)
            click.echo(json.dumps(detail) if as_json else format_detail(detail))
        else:
            runs = operations.list_runs(client, limit)
            click.echo(json.dumps(runs) if as_json else format_runs(runs))
    finally:
        client.destroy()


def is_run_id(text: str) -> bool:
    """``ingest-`` and 20 hex digits: also what keeps a run id safe inside COPY text."""
    return re.fullmatch(r"ingest-[0-9a-f]{20}", text) is not None


def no_such_run(run_id: str) -> Failure:
    return Failure(f"no run {run_id}; `ingest status` lists the runs", EXIT_BAD_INPUT)


def check_run_id(integration, run_id: str) -> None:
    """For commands that launched DBOS."""
    if not is_run_id(run_id) or integration.run_status(run_id) is None:
        raise no_such_run(run_id)


def require_known_run(database_url: Optional[str], run_id: str) -> None:
    """For commands that only read DBOS's system database."""
    client = system_client(database_url) if is_run_id(run_id) else None
    try:
        if client is None or not client.list_workflows(workflow_ids=[run_id], load_input=False,
                                                       load_output=False):
            raise no_such_run(run_id)
    finally:
        if client is not None:
            client.destroy()


def system_client(database_url: Optional[str]):
    """A read-only view of DBOS's system database (DBOS itself is not launched)."""
    from . import database, operations

    try:
        databases = database.resolve(database_url)
    except database.DatabaseError as exc:
        raise Failure(str(exc)) from None
    try:
        if not operations.system_database_exists(databases.system_url):
            return None
        return operations.open_client(databases.system_url)
    except Exception as exc:
        raise Failure(str(database.cannot_connect(databases.system_url, getattr(exc, "orig", exc)))) from None


def format_runs(runs: list) -> str:
    if not runs:
        return "no runs yet; start one with: ingest load FILE"
    header = f"{'run id':<28} {'state':<10} {'records':>9} {'tasks':>9} {'errors':>7} {'started':<19} {'duration':>9} {'rec/s':>8}  dataset"
    lines = [header]
    for r in runs:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["started_at"])) if r["started_at"] else "-"
        duration = f"{r['duration_s']:.1f} s" if r["duration_s"] is not None else "-"
        rate = f"{r['records_per_s']:,.0f}" if r["records_per_s"] is not None else "-"
        lines.append(f"{r['run_id']:<28} {r['state']:<10} {r['records']:>9} {r['tasks']:>9} "
                     f"{r['errors']:>7} {started:<19} {duration:>9} {rate:>8}  {r['dataset']}")
    return "\n".join(lines)


def format_detail(detail: dict) -> str:
    lines = [format_runs([detail]), "", f"{'chunk':>6} {'records':<17} {'state':<31} {'tasks':>7} "
             f"{'errors':>7} {'recoveries':>10}  retry"]
    for c in detail["chunks"]:
        lines.append(f"{c['chunk']:>6} {c['records']:<17} {c['state']:<31} {c['tasks']:>7} "
                     f"{c['errors']:>7} {c['recovery_attempts'] or 0:>10}  {c['retry_state'] or '-'}")
    if detail["state"] == "incomplete":
        lines.append(f"\nsome chunks were given up; once the cause is fixed: ingest resume {detail['run_id']}")
    return "\n".join(lines)


# -- ingest errors -----------------------------------------------------------------------
@main.command()
@click.argument("run_id", required=False)
@database_option
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True,
              help="Groups to show.")
@click.option("--all", "include_resolved", is_flag=True, help="Include resolved (redriven) rows.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def errors(run_id, database_url, limit, include_resolved, as_json) -> None:
    """Group error rows by exception type and message, with counts and a sample title.

    \b
    Example:
      ingest errors
      ingest errors ingest-3c1e0d8a2b4f6e7d9c01 --limit 5 --json
    """
    from . import database, operations

    if run_id:
        require_known_run(database_url, run_id)
    try:
        databases = database.resolve(database_url)
        database.upgrade_schema(databases.app_url)
    except database.DatabaseError as exc:
        raise Failure(str(exc)) from None
    from sqlalchemy import create_engine

    engine = create_engine(databases.app_url)
    try:
        groups = operations.error_groups(engine, run_id, limit, include_resolved)
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps(groups))
    elif not groups:
        click.echo("no errors" + (f" in {run_id}" if run_id else ""))
    else:
        click.echo(f"{'count':>7}  {'error type':<20} {'sample':<12} error")
        for g in groups:
            click.echo(f"{g['count']:>7}  {g['error_type']:<20} {g['sample_title']:<12} {g['error']}")


# -- ingest retry ------------------------------------------------------------------------
@main.command()
@click.argument("run_id")
@database_option
@click.option("--fail-task", "fail_tasks", type=click.IntRange(0), multiple=True, metavar="N",
              help="Make the transform of 'task N' fail again (repeatable).")
@click.option("--flaky-rate", type=click.FloatRange(0, 1), default=0.0,
              help="Probability that a transform attempt fails transiently.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
              help="Seed of --flaky-rate's failures.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as one JSON object.")
def retry(run_id, database_url, fail_tasks, flaky_rate, seed, as_json) -> None:
    """Send a run's error rows through the transform again (redrive).

    Successes move to tasks and their error rows are marked resolved (kept for audit);
    failures stay, with the new attempt recorded. Running it again is harmless.

    \b
    Example:
      ingest retry ingest-3c1e0d8a2b4f6e7d9c01
    """
    from .transform import Faults

    with running_app(database_url, 1) as _:
        from . import integration

        check_run_id(integration, run_id)
        faults = Faults(frozenset(fail_tasks), flaky_rate, seed).as_dict()
        outcome = integration.wait_for(integration.start_redrive(run_id, faults))
    if as_json:
        click.echo(json.dumps(outcome))
    elif not outcome["retried"]:
        click.echo(f"{run_id}: no unresolved errors; nothing to retry")
    else:
        click.echo(f"{run_id}: retried {outcome['retried']} | moved to tasks {outcome['tasks']} "
                   f"| still failing {outcome['errors']}")


# -- ingest worker -----------------------------------------------------------------------
@main.command()
@database_option
@click.option("--worker-id", default=None, metavar="ID",
              help="This worker's DBOS executor id (default: the host name). Restarted with "
                   "the same id, it picks its unfinished work up again.")
@click.option("--concurrency", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Chunk workflows at once per worker.")
@click.option("--global-concurrency", type=click.IntRange(1, 1024), default=None,
              help="Chunk workflows at once across all workers.")
@click.option("--take-over", "take_over", multiple=True, metavar="ID",
              help="Also recover the unfinished work of these dead workers (repeatable).")
@click.option("--drain-timeout", type=click.IntRange(0, 3600), default=30, show_default=True,
              help="On SIGINT/SIGTERM, seconds to let running chunks finish.")
def worker(database_url, worker_id, concurrency, global_concurrency, take_over, drain_timeout) -> None:
    """Process queued runs and chunks until stopped (SIGINT/SIGTERM).

    Several workers, on one machine or many, share one Postgres; each needs its own
    --worker-id and the input files at the same path.

    \b
    Example:
      ingest worker --worker-id worker-1 --concurrency 4
    """
    import signal
    import socket
    import threading

    worker_id = worker_id or socket.gethostname()
    stop = threading.Event()
    app = running_app(database_url, concurrency, executor_id=worker_id,
                      global_concurrency=global_concurrency, role="worker")
    with app:
        from . import integration

        tune_gc()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        if take_over:
            taken = integration.take_over(list(take_over))
            click.echo(f"took over {taken} unfinished workflow(s) of {', '.join(take_over)}", err=True)
        click.echo(f"worker {worker_id} ready (concurrency {concurrency}); Ctrl-C to stop", err=True)
        stop.wait()
        click.echo(f"worker {worker_id} stopping: letting running work finish "
                   f"(up to {drain_timeout} s)", err=True)
        app.drain_sec = drain_timeout
    click.echo(f"worker {worker_id} stopped", err=True)


# -- ingest migrate -----------------------------------------------------------------------
@main.command()
@database_option
def migrate(database_url) -> None:
    """Create or upgrade the tasks and errors tables (alembic upgrade head).

    \b
    Example:
      DATABASE_URL=postgresql://postgres:dbos@localhost:5432/durable_ingest ingest migrate
    """
    from . import database

    try:
        databases = database.resolve(database_url)
        database.upgrade_schema(databases.app_url)
    except database.DatabaseError as exc:
        raise Failure(str(exc)) from None
    click.echo(f"schema of {database.redact(databases.app_url)} is up to date")


# -- ingest generate ----------------------------------------------------------------------
@main.command()
@click.option("--count", type=click.IntRange(0, 100_000_000), required=True, help="Records to write.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
              help="The same seed writes a byte-identical file.")
@click.option("--format", "fmt", type=click.Choice(["json", "ndjson"]), default="json",
              show_default=True, help="A randomuser.me envelope, or one record per line.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default="-",
              help="File to write (default: stdout).")
def generate(count, seed, fmt, output) -> None:
    """Write randomuser.me-shaped records, reproducibly.

    \b
    Example:
      ingest generate --count 100000 --seed 7 --format ndjson -o users.ndjson
    """
    from .generate import write_dataset

    if output == "-":
        write_dataset(sys.stdout.buffer, count, seed, fmt)
        return
    with open(output, "wb") as out:
        write_dataset(out, count, seed, fmt)
    click.echo(f"wrote {count} records to {output}", err=True)


def entry_point() -> None:
    """The ``ingest`` executable: ``main``, then exit at once. After Ctrl-C or a failure,
    DBOS.destroy() leaves workflow threads running (a run waiting for its chunks, a retry
    sleeping): their work is checkpointed and the next ``ingest`` resumes it, but they would
    keep the interpreter from exiting, for ever. Metrics and spans are flushed by then
    (``running_app``). SIGTERM (``kill``, ``docker stop``) is handled like Ctrl-C, so that it
    flushes them too."""
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except Exception as exc:  # a bug or an unexpected failure: one line, not a traceback
        from .database import scrub

        urls = [os.environ.get(v, "") for v in ("DATABASE_URL", "DBOS_SYSTEM_DATABASE_URL")]
        urls += [a.removeprefix("--database-url=") for a in sys.argv[1:]]
        line = (str(exc).strip().splitlines() or [""])[0]
        click.echo(f"Error: {type(exc).__name__}: {scrub(line, *filter(None, urls))} "
                   f"(set INGEST_LOG_LEVEL=INFO for DBOS's log)", err=True)
        code = EXIT_FATAL
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (ingest ... | head)
            pass
    os._exit(code)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    entry_point()
