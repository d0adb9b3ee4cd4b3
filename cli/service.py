"""The commands of a service left running: ``ingest worker`` (works the shared queues and fires
the schedules' ticks), ``ingest schedule`` (recurring loads) and ``ingest ui`` (the page of the
runs). Like ``main``: parse, call ``commands`` or ``views``, print."""

import json

import click

from ..errors import EXIT_INTERRUPTED
from .options import (Failure, database_option, json_option, load_command_options,
                      one_line_errors, remote_options, running_app, say, ui_command_options,
                      worker_command_options)


# -- ingest worker ------------------------------------------------------------------------------
@click.command()
@database_option
@worker_command_options
@remote_options
def worker(database_url, worker_id, concurrency, global_concurrency, take_over, drain_timeout,
           processes, retention, parent_pid, headers, endpoint_url) -> None:
    """Process queued runs and chunks until stopped (SIGINT/SIGTERM).

    Several workers, on one machine or many, share one Postgres; each needs its own
    --worker-id, and local input files at the same path (fetched pages: the spool,
    INGEST_SPOOL_DIR, on a shared volume); s3:// objects are read from the bucket.

    \b
    Example:
      ingest worker --worker-id worker-1 --concurrency 4
    """
    import socket

    from ..commands import worker
    from ..steps import load_options

    worker_id = worker_id or socket.gethostname()
    waiting = f"waiting: a live process already works as {worker_id}"
    with one_line_errors():
        load_options.install_headers(headers, endpoint_url)
    with one_line_errors(), running_app(database_url, concurrency, executor_id=worker_id,
                                        global_concurrency=global_concurrency, role="worker",
                                        exclusive=True, helper=parent_pid is not None,
                                        on_wait=lambda: say(waiting)) as app:
        worker.serve(app, worker_id, list(take_over), drain_timeout, say=say, processes=processes,
                     parent_pid=parent_pid, retention=retention)
    if parent_pid is None:
        say(f"worker {worker_id} stopped")


# -- ingest ui ----------------------------------------------------------------------------------
@click.command()
@database_option
@ui_command_options
def ui(database_url, host, port, token) -> None:
    """Serve a read-only web page of the runs (live). Ctrl-C to stop.

    \b
    Example:
      ingest ui --port 8787
    """
    from ..ui import server as web

    try:
        with one_line_errors():
            web.serve(database_url, host, port, token, say=say)
    except Failure as stopped:  # Ctrl-C is how it is meant to stop: no error
        if stopped.exit_code != EXIT_INTERRUPTED:
            raise
        say("ingest ui stopped")


# -- ingest schedule ----------------------------------------------------------------------------
@click.group()
def schedule() -> None:
    """Loads that come back on their own: a cron, inputs and load options, fired by `ingest
    worker` processes (one run per tick across all of them).

    \b
    Example:
      ingest schedule add landing '*/15 * * * *' landing/ --table events
      ingest worker
    """


@schedule.command("add")
@click.argument("name")
@click.argument("cron")
@click.argument("paths", nargs=-1, required=True, metavar="PATH|URL...")
@click.option("--tz", default=None, metavar="ZONE",
              help="The IANA time zone the cron is read in (default: UTC).")
@click.option("--backfill", is_flag=True,
              help="Ticks missed while no worker ran each make a run (default: one catch-up "
                   "run).")
@load_command_options
def schedule_add(name, cron, paths, **given) -> None:
    """Add schedule NAME: every tick of CRON loads what is new in PATH|URL..., with the
    options of `ingest load` (checked now as it checks them). CRON has 5 fields, or 6 with
    seconds first. Credentials (--header, a URL's password) are not stored: the workers
    that run the ticks are given them.

    \b
    Example:
      ingest schedule add hourly-users '0 * * * *' landing/ --table users --key login.uuid
      ingest schedule add api-sync '*/30 * * * * *' 'https://api.example.com/users?page={page}' --pages 1-
    """
    from ..commands import schedules

    with one_line_errors(), running_app(given["database_url"], 1, role="client"):
        added = schedules.add(name, cron, list(paths), given, say)
    click.echo(json.dumps(added) if given["as_json"] else
               f"schedule {name} added: {cron} ({added['tz']}), next tick {added['next_tick']}; "
               "`ingest worker` runs it")


@schedule.command("list")
@database_option
@json_option
def schedule_list(database_url, as_json) -> None:
    """The schedules: cron and zone, inputs, paused or not, next tick, the last run, runs so
    far and ticks skipped (while the last run still went).

    \b
    Example:
      ingest schedule list --json
    """
    from ..views import render
    from ..views.schedules import list_schedules

    with one_line_errors():
        found = list_schedules(database_url)
    click.echo(json.dumps(found) if as_json else render.schedules(found))


def _name_command(verb: str, action: str, summary: str, done: str):
    """``ingest schedule VERB NAME``: ``commands.schedules.<action>``, then ``done``."""
    @schedule.command(verb, help=f"{summary}\n\n\b\nExample:\n  ingest schedule {verb} hourly-users")
    @click.argument("name")
    @database_option
    def command(name, database_url) -> None:
        from ..commands import schedules

        with one_line_errors(), running_app(database_url, 1, role="client") as app:
            outcome = getattr(schedules, action)(
                *((name, app.engine) if action == "delete" else (name,)))
        click.echo(done.format(name=name, outcome=outcome))

    return command


schedule_pause = _name_command("pause", "pause", "Stop firing NAME's ticks (`ingest schedule run` still "
                               "runs it).", "schedule {name} paused")
schedule_resume = _name_command("resume", "resume", "Fire NAME's ticks again.", "schedule {name} resumed")
schedule_delete = _name_command("delete", "delete", "Delete schedule NAME (its runs stay, naming it).",
                                "schedule {name} deleted")
schedule_run = _name_command("run", "run_now", "One tick of NAME now, outside its cron (also while "
                             "paused), for a worker to run.",
                             "schedule {name}: tick {outcome} queued; an `ingest worker` runs it")
