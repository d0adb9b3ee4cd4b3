"""The ``ingest`` command line: parse options, call ``runs`` (loads and what follows them)
or ``operations`` (read-only views), print. No DBOS calls of its own.

Heavy libraries (DBOS, SQLAlchemy, OpenTelemetry) are imported inside the commands that
need them, so ``ingest --help`` answers at once.

Exit codes (``errors.EXIT_*``): 0 success; 1 fatal; 2 usage error; 3 bad input; 4 records
ended in ``errors`` and ``--fail-on-errors`` was given; 130 interrupted.
"""

import json
import os
import signal
import sys
import traceback
from contextlib import nullcontext

import click

from . import __version__, progress
from .errors import EXIT_BAD_INPUT, EXIT_FATAL, EXIT_RECORD_ERRORS
from .options import (concurrency_option, database_option, fault_options, faults_of,
                      header_option, http_options, http_policy, json_option, one_line_errors,
                      shaping_options, workers_option)


def say(line: str) -> None:
    """A line for the person at the terminal, on stderr."""
    click.echo(line, err=True)


def running_app(database_url, concurrency: int, **kwargs):
    from .app import App

    kwargs.setdefault("on_wait", lambda: say(
        "waiting for another ingest process on this machine to finish (run "
        "`ingest worker` processes to load in parallel)"))
    return App(database_url, concurrency, warn=say, **kwargs)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ingest")
def main() -> None:
    """Load JSON datasets into SQLite or Postgres with DBOS durable workflows.

    \b
    Example:
      ingest load data/randomuser-1000.json --fail-task 50
    """


# -- ingest load --------------------------------------------------------------------------------
@main.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH|URL...")
@click.option("--format", "fmt", type=click.Choice(["json", "ndjson"]),
              help="Input format (default: detected from the content).")
@database_option
@click.option("--chunk-size", type=click.IntRange(1, 1_000_000), default=5000, show_default=True,
              help="Records per chunk workflow.")
@click.option("--concurrency", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Chunk workflows run at once by this process, and pages in flight.")
@click.option("--max-attempts", type=click.IntRange(1, 100), default=3, show_default=True,
              help="Transform tries per record, the first included.")
@click.option("--retry-interval", type=click.FloatRange(0, 3600), default=0.1, show_default=True,
              help="Seconds before the first retry.")
@click.option("--backoff", type=click.FloatRange(1, 100), default=2.0, show_default=True,
              help="Each retry waits this many times longer than the one before.")
@fault_options
@click.option("--label", default="", metavar="TEXT",
              help="Load the same bytes again as a new dataset: a new label is a new run.")
@shaping_options
@json_option
@click.option("--fail-on-errors", is_flag=True,
              help=f"Exit {EXIT_RECORD_ERRORS} if any record ended in errors.")
@click.option("--detach", is_flag=True,
              help="Queue the run for `ingest worker` processes, print its id and return.")
@click.option("--no-progress", is_flag=True, help="No progress line on stderr.")
@workers_option()
@http_options
def load(paths, fmt, database_url, chunk_size, concurrency, max_attempts, retry_interval,
         backoff, fail_tasks, flaky_rate, seed, label, transform_spec, key, on_conflict, as_json,
         fail_on_errors, detach, no_progress, workers, pages, headers, http_attempts,
         http_timeout, rate) -> None:
    """Load JSON files, folders, globs and API pages: every record ends in tasks or errors,
    exactly once.

    PATH is a JSON array, a {"results": [...]} envelope or NDJSON file (optionally gzip), a
    folder (walked for .json, .ndjson and .jsonl files), a quoted glob ('landing/**/*.json')
    or '-' for stdin. URL is an http(s) URL of such a document; with a {page} placeholder,
    the pages --pages names. All of them are one run; content loaded before is not loaded
    again.

    \b
    Example:
      ingest load data/randomuser-1000.json --fail-task 50
      ingest load landing/ 'exports/2026-*.ndjson.gz'
      ingest load exports/ --transform examples/redact.py:redact --key login.uuid
      ingest load 'https://randomuser.me/api/?results=500&seed=7&page={page}' --pages 1-20
    """
    from . import load_options, runs, waiting

    run: dict = {}
    with one_line_errors(lambda: waiting.interrupted_line(run["manifest"].run_id if run else None)):
        load_options = load_options.LoadOptions(
            chunk_size=chunk_size, fmt=fmt, label=label, max_attempts=max_attempts,
            retry_interval=retry_interval, backoff=backoff,
            faults=faults_of(fail_tasks, flaky_rate, seed),
            http=http_policy(http_attempts, http_timeout, rate, concurrency),
            urls=load_options.url_inputs(paths, pages, headers),
            **load_options.shaping_options(transform_spec, key, on_conflict))
        fleet = runs.helpers(database_url, workers, concurrency, detach, say, entry=run_ingest)
        with fleet or nullcontext():
            manifest, skipped, scanned = runs.identify_inputs(list(paths), load_options, sys.stdin.buffer)
            run["manifest"] = manifest
            with running_app(database_url, concurrency, role="client" if detach else "local") as app:
                runs.tune_gc()
                result = runs.load(app, list(paths), load_options, manifest, skipped, scanned,
                                   detach=detach, show_progress=progress.wanted(not no_progress),
                                   fleet=fleet)
    click.echo(json.dumps(result.asdict()) if as_json else str(result))
    if detach:
        return
    for line in result.input_lines():
        say(line)
    if result.bad_inputs:
        sys.exit(EXIT_BAD_INPUT)
    if fail_on_errors and result.has_errors:
        sys.exit(EXIT_RECORD_ERRORS)


# -- ingest resume ------------------------------------------------------------------------------
@main.command()
@click.argument("run_id", required=False)
@database_option
@concurrency_option
@json_option
@header_option
def resume(run_id, database_url, concurrency, as_json, headers) -> None:
    """Finish interrupted runs: recover crashed ones, retry given-up chunks.

    Without RUN_ID, finishes every unfinished run of this machine (executor).

    \b
    Example:
      ingest resume ingest-3c1e0d8a2b4f6e7d9c01
    """
    from . import load_options, resuming, waiting

    with one_line_errors(lambda: waiting.interrupted_line(run_id, resuming=True)):
        load_options.install_headers(headers)
        if not resuming.any_state(database_url, run_id):
            click.echo("no unfinished runs")
            return
        with running_app(database_url, concurrency) as app:
            results = resuming.resume_all(app, run_id, say=say, quiet=as_json)
            for result in results:
                click.echo(json.dumps(result.asdict()) if as_json else str(result))
            if results.count == 0:
                click.echo("no unfinished runs")


# -- ingest status ------------------------------------------------------------------------------
@main.command()
@click.argument("run_id", required=False)
@database_option
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True,
              help="Runs to list.")
@click.option("--files", "files_page", type=click.IntRange(1), default=None, metavar="PAGE",
              help="With RUN_ID: list the run's files, 100 per page (1 is the first).")
@json_option
def status(run_id, database_url, limit, files_page, as_json) -> None:
    """List runs, newest first; with RUN_ID, one run and the state of each chunk.

    \b
    Example:
      ingest status
      ingest status ingest-3c1e0d8a2b4f6e7d9c01 --json
      ingest status ingest-3c1e0d8a2b4f6e7d9c01 --files 1
    """
    from . import operations, tables

    with one_line_errors():
        if run_id is None:
            runs = operations.list_runs(database_url, limit)
            click.echo(json.dumps(runs) if as_json else tables.runs(runs))
        elif files_page:
            files = operations.run_files(database_url, run_id, files_page)
            click.echo(json.dumps(files) if as_json else tables.files(files))
        else:
            detail = operations.run_detail(database_url, run_id)
            click.echo(json.dumps(detail) if as_json else tables.detail(detail))


# -- ingest errors ------------------------------------------------------------------------------
@main.command()
@click.argument("run_id", required=False)
@database_option
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True,
              help="Groups to show.")
@click.option("--all", "include_resolved", is_flag=True, help="Include resolved (redriven) rows.")
@json_option
def errors(run_id, database_url, limit, include_resolved, as_json) -> None:
    """Group error rows by exception type and message, with counts and a sample title.

    Files that could not be loaded at all show as error type BadFile, titled by their path;
    API pages that could not be had, as BadPage, titled by their URL.

    \b
    Example:
      ingest errors
      ingest errors ingest-3c1e0d8a2b4f6e7d9c01 --limit 5 --json
    """
    from . import operations, tables

    with one_line_errors():
        groups = operations.error_groups(database_url, run_id, limit, include_resolved)
    click.echo(json.dumps(groups) if as_json else tables.error_groups(groups, run_id))


# -- ingest retry -------------------------------------------------------------------------------
@main.command()
@click.argument("run_id")
@database_option
@fault_options
@json_option
def retry(run_id, database_url, fail_tasks, flaky_rate, seed, as_json) -> None:
    """Send a run's error rows through the transform again (redrive).

    Successes move to tasks and their error rows are marked resolved (kept for audit);
    failures stay, with the new attempt recorded. Running it again is harmless.

    \b
    Example:
      ingest retry ingest-3c1e0d8a2b4f6e7d9c01
    """
    from . import resuming

    with one_line_errors():
        resuming.any_state(database_url, run_id)
        with running_app(database_url, 1):
            outcome = resuming.redrive(run_id, faults_of(fail_tasks, flaky_rate, seed))
    if as_json:
        click.echo(json.dumps(outcome))
    elif not outcome["retried"]:
        click.echo(f"{run_id}: no unresolved errors; nothing to retry")
    else:
        click.echo(f"{run_id}: retried {outcome['retried']} | moved to tasks {outcome['tasks']} "
                   f"| still failing {outcome['errors']}")


# -- ingest worker ------------------------------------------------------------------------------
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
@workers_option("--processes")
@click.option("--parent-pid", type=int, default=None, hidden=True)  # a helper of that process
@header_option
def worker(database_url, worker_id, concurrency, global_concurrency, take_over, drain_timeout,
           processes, parent_pid, headers) -> None:
    """Process queued runs and chunks until stopped (SIGINT/SIGTERM).

    Several workers, on one machine or many, share one Postgres; each needs its own
    --worker-id and the input files at the same path (fetched pages: the spool,
    INGEST_SPOOL_DIR, on a shared volume).

    \b
    Example:
      ingest worker --worker-id worker-1 --concurrency 4
    """
    import socket

    from . import load_options, worker

    worker_id = worker_id or socket.gethostname()
    waiting = f"waiting: a live process already works as {worker_id}"
    with one_line_errors():
        load_options.install_headers(headers)
    with one_line_errors(), running_app(database_url, concurrency, executor_id=worker_id,
                                        global_concurrency=global_concurrency, role="worker",
                                        exclusive=True, helper=parent_pid is not None,
                                        on_wait=lambda: say(waiting)) as app:
        worker.serve(app, worker_id, list(take_over), drain_timeout, say=say, processes=processes,
                   parent_pid=parent_pid)
    if parent_pid is None:
        say(f"worker {worker_id} stopped")


# -- ingest ui ----------------------------------------------------------------------------------
@main.command()
@database_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback shows your runs to the network.")
@click.option("--port", type=click.IntRange(0, 65535), default=8787, show_default=True,
              help="Port (0: any free one).")
def ui(database_url, host, port) -> None:
    """Serve a read-only web page of the runs (live). Ctrl-C to stop.

    \b
    Example:
      ingest ui --port 8787
    """
    from . import ui as web

    with one_line_errors(lambda: "stopped"):
        web.serve(database_url, host, port, say=say)


# -- ingest migrate -----------------------------------------------------------------------------
@main.command()
@database_option
def migrate(database_url) -> None:
    """Create or upgrade the tasks and errors tables (alembic upgrade head).

    \b
    Example:
      DATABASE_URL=postgresql://postgres:dbos@localhost:5432/durable_ingest ingest migrate
    """
    from . import database

    with one_line_errors():
        databases = database.resolve(database_url)
        database.upgrade_schema(databases.app_url)
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

    with nullcontext(sys.stdout.buffer) if output == "-" else open(output, "wb") as out:
        write_dataset(out, count, seed, fmt)
    if output != "-":
        click.echo(f"wrote {count} records to {output}", err=True)


def run_ingest(arguments: list) -> None:
    """``ingest ARGUMENTS`` in this process (a forked helper's life)."""
    main.main(args=arguments, prog_name="ingest", standalone_mode=False)


def entry_point() -> None:
    """The ``ingest`` executable: ``main``, then exit at once. After Ctrl-C or a failure,
    DBOS.destroy() leaves workflow threads running (a run waiting for its chunks, a retry
    sleeping): their work is checkpointed and the next ``ingest`` resumes it, but they would
    keep the interpreter from exiting, for ever. Metrics and spans are flushed by then
    (``App``). SIGTERM (``kill``, ``docker stop``) is handled like Ctrl-C, so that it
    flushes them too. ``INGEST_DEBUG=1`` shows the traceback of an unexpected failure."""
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except Exception as exc:  # a bug or an unexpected failure: one line, not a traceback
        code = report_unexpected(exc)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (ingest ... | head)
            pass
    os._exit(code)


def report_unexpected(exc: Exception) -> int:
    from .database import environment_urls
    from .errors import one_line, scrub

    urls = list(environment_urls()) + [a.removeprefix("--database-url=") for a in sys.argv[1:]]
    urls = [u for u in urls if u]
    if os.environ.get("INGEST_DEBUG"):
        click.echo(scrub("".join(traceback.format_exception(exc)), *urls), err=True)
    click.echo(f"Error: {type(exc).__name__}: {one_line(exc, *urls)} "
               f"(INGEST_DEBUG=1 shows the traceback, INGEST_LOG_LEVEL=INFO DBOS's log)", err=True)
    return EXIT_FATAL


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    entry_point()
