"""The ``ingest`` command line: parse options, call ``commands`` (loads and what follows them)
or ``views`` (read-only views), print. No DBOS calls of its own.

Heavy libraries (DBOS, SQLAlchemy, OpenTelemetry) are imported inside the commands that
need them, so ``ingest --help`` answers at once.

Exit codes: ``errors.EXIT_*`` (docs/commands.md); every non-zero exit says why in one line.
"""

import json
import os
import signal
import sys
from contextlib import nullcontext

import click

from .. import __version__
from ..commands import progress
from ..errors import EXIT_INTERRUPTED
from .options import (LOAD_EXAMPLES, Failure, concurrency_option, database_option,
                      error_budget_of, error_filter_of, errors_command_options, exit_if_failed,
                      fault_options, faults_of, generate_command_options, json_option,
                      load_command_options, load_options_of, one_line_errors, remote_options,
                      report_unexpected, running_app, say, status_command_options,
                      ui_command_options, worker_command_options)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ingest")
def main() -> None:
    """Load JSON datasets into SQLite or Postgres with DBOS durable workflows.

    \b
    Example:
      ingest load data/randomuser-1000.json --transform uppercase --fail-task 50
    """


# -- ingest load --------------------------------------------------------------------------------
@main.command(epilog=LOAD_EXAMPLES)
@click.argument("paths", nargs=-1, required=True, metavar="PATH|URL...")
@load_command_options
def load(paths, **given) -> None:
    """Load JSON files, folders, globs and API pages: every record ends in tasks or errors,
    exactly once.

    PATH is a JSON array, a {"results": [...]} envelope or NDJSON file (optionally gzip), a
    folder (walked for .json, .ndjson and .jsonl files), a quoted glob ('landing/**/*.json')
    or '-' for stdin. URL is an http(s) URL of such a document; with a {page} placeholder,
    the pages --pages names; without, the chain of pages its Link headers lead to (or the
    paging options: below). All of them are one run; content loaded before is not loaded
    again.

    \b
    Example:
      ingest load data/randomuser-1000.json --transform uppercase --fail-task 50
      ingest load landing/ 'exports/2026-*.ndjson.gz'
      ingest load exports/ --transform examples/redact.py:redact --key login.uuid
      ingest load 'https://randomuser.me/api/?results=500&seed=7&page={page}' --pages 1-20
    """
    from ..commands import load as runs, waiting
    from ..steps.inputs import identify_inputs

    run: dict = {}
    database_url, detach, concurrency = given["database_url"], given["detach"], given["concurrency"]
    with one_line_errors(lambda: waiting.interrupted_line(run["manifest"].run_id if run else None)):
        options, budget = load_options_of(paths, given), error_budget_of(given)
        fleet = runs.helpers(database_url, given["workers"], concurrency, detach, say,
                             entry=run_ingest)
        with fleet or nullcontext():
            manifest, skipped, scanned = identify_inputs(list(paths), options, sys.stdin.buffer)
            run["manifest"] = manifest
            with running_app(database_url, concurrency, role="client" if detach else "local") as app:
                runs.tune_gc()
                result = runs.load(app, list(paths), options, manifest, skipped, scanned,
                                   detach=detach, fleet=fleet, say=say,
                                   show_progress=progress.wanted(not given["no_progress"]))
    click.echo(json.dumps(result.asdict()) if given["as_json"] else str(result))
    if detach:
        return
    for line in result.input_lines():
        say(line)
    exit_if_failed(result.failure(budget))


# -- ingest resume ------------------------------------------------------------------------------
@main.command()
@click.argument("run_id", required=False)
@database_option
@concurrency_option
@json_option
@remote_options
def resume(run_id, database_url, concurrency, as_json, headers, endpoint_url) -> None:
    """Finish interrupted runs: recover crashed ones, retry given-up chunks.

    Without RUN_ID, finishes every unfinished run of this machine (executor).

    \b
    Example:
      ingest resume ingest-3c1e0d8a2b4f6e7d9c01
    """
    from ..commands import resume as resuming, waiting
    from ..steps import load_options

    with one_line_errors(lambda: waiting.interrupted_line(run_id, resuming=True)):
        load_options.install_headers(headers, endpoint_url)
        if not resuming.any_state(database_url, run_id):
            click.echo("no unfinished runs")
            return
        with running_app(database_url, concurrency) as app:
            results, failed = resuming.resume_all(app, run_id, say=say, quiet=as_json), None
            for result in results:
                click.echo(json.dumps(result.asdict()) if as_json else str(result))
                failed = failed or result.failure()
            if results.count == 0:
                click.echo("no unfinished runs")
    exit_if_failed(failed)


# -- ingest status ------------------------------------------------------------------------------
@main.command()
@click.argument("run_id", required=False)
@database_option
@status_command_options
@json_option
def status(run_id, database_url, limit, files_page, every_chunk, as_json) -> None:
    """List runs, newest first; with RUN_ID, one run and its chunks.

    \b
    Example:
      ingest status
      ingest status ingest-3c1e0d8a2b4f6e7d9c01 --json
      ingest status ingest-3c1e0d8a2b4f6e7d9c01 --files 1
      ingest status ingest-3c1e0d8a2b4f6e7d9c01 --chunks
    """
    from ..views import app_database as appviews, runs as operations, render
    from ..views.earlier import earlier_runs_hint

    with one_line_errors():
        if run_id is None:
            runs = operations.list_runs(database_url, limit)
            hint = None if runs or as_json else earlier_runs_hint(database_url)
            click.echo(json.dumps(runs) if as_json else render.runs(runs, hint))
        elif files_page:
            files = appviews.run_files(database_url, run_id, files_page)
            click.echo(json.dumps(files) if as_json else render.files(files))
        else:
            detail = {**operations.run_detail(database_url, run_id),
                      **appviews.landing_notes(database_url, run_id)}
            click.echo(json.dumps(detail) if as_json else render.detail(detail, every_chunk))


# -- ingest errors ------------------------------------------------------------------------------
@main.command()
@click.argument("run_id", required=False)
@database_option
@errors_command_options
@json_option
def errors(run_id, database_url, limit, as_json, **given) -> None:
    """Group error rows by type and message (positions and offsets taken out), with counts
    and where a sample is: file and line (or URL), and run. Files that could not be loaded
    at all are error type BadFile; API pages that could not be had, BadPage.

    \b
    Example:
      ingest errors
      ingest errors ingest-3c1e0d8a2b4f6e7d9c01 --limit 5 --json
      ingest errors --file users.ndjson --type InvalidJSON
    """
    from ..views import error_triage, render

    which = error_filter_of(run_id, given)
    with one_line_errors():
        groups = error_triage.error_groups(database_url, which, limit)
    click.echo(json.dumps(groups) if as_json else render.error_groups(groups, which.run_id))


# -- ingest schema ------------------------------------------------------------------------------
@main.command()
@click.argument("table", required=False)
@database_option
@json_option
def schema(table, database_url, as_json) -> None:
    """The dataset tables (--table): each column's type and the run that added it.

    \b
    Example:
      ingest schema
      ingest schema users --json
    """
    from ..views import app_database as appviews, render

    with one_line_errors():
        tables = appviews.table_schemas(database_url, table)
    click.echo(json.dumps(tables) if as_json else render.schemas(tables))


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
    from ..commands import resume as resuming

    with one_line_errors():
        resuming.any_state(database_url, run_id)
        with running_app(database_url, 1) as app:
            outcome = resuming.redrive(app, run_id, faults_of(fail_tasks, flaky_rate, seed), say)
    if as_json:
        click.echo(json.dumps(outcome))
    elif not outcome["retried"]:
        click.echo(f"{run_id}: no unresolved errors; nothing to retry")
    else:
        click.echo(f"{run_id}: retried {outcome['retried']} | moved to tasks {outcome['tasks']} "
                   f"| still failing {outcome['errors']}")


# -- ingest migrate -----------------------------------------------------------------------------
@main.command()
@database_option
def migrate(database_url) -> None:
    """Create or upgrade the tasks and errors tables (alembic upgrade head).

    \b
    Example:
      DATABASE_URL=postgresql://postgres:dbos@localhost:5432/durable_ingest ingest migrate
    """
    from .. import database

    with one_line_errors():
        databases = database.resolve(database_url)
        database.upgrade_schema(databases.app_url)
    click.echo(f"schema of {database.redact(databases.app_url)} is up to date")


# -- ingest generate ----------------------------------------------------------------------
@main.command()
@generate_command_options
def generate(count, seed, fmt, output) -> None:
    """Write randomuser.me-shaped records, reproducibly.

    \b
    Example:
      ingest generate --count 100000 --seed 7 --format ndjson -o users.ndjson
    """
    from ..generate.datasets import write_dataset

    with nullcontext(sys.stdout.buffer) if output == "-" else open(output, "wb") as out:
        write_dataset(out, count, seed, fmt)
    if output != "-":
        click.echo(f"wrote {count} records to {output}", err=True)


from .gc import gc  # noqa: E402  the commands of a service left running, beside
from .service import schedule, ui, worker  # noqa: E402

for command in (gc, schedule, ui, worker):
    main.add_command(command)


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


def _interrupt(signum, frame):
    raise KeyboardInterrupt

