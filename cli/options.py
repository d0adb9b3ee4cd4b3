"""The ``ingest`` command line's shared pieces: options that more than one command takes,
or that come in groups, declared once; and how a failure becomes one line and an exit code."""

import functools
import os
import sys
import traceback
from contextlib import contextmanager

import click

from ..errors import EXIT_FATAL, EXIT_INTERRUPTED, EXIT_RECORD_ERRORS


class Failure(click.ClickException):
    """A one-line error with its own exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FATAL):
        super().__init__(message)
        self.exit_code = exit_code


def say(line: str) -> None:
    """A line for the person at the terminal, on stderr."""
    click.echo(line, err=True)


def running_app(database_url, concurrency: int, **kwargs):
    """The command's ``App`` (DBOS started on the databases), speaking to the terminal."""
    from ..runtime.launch import App

    kwargs.setdefault("on_wait", lambda: say(
        "waiting for another ingest process on this machine to finish (run "
        "`ingest worker` processes to load in parallel)"))
    return App(database_url, concurrency, warn=say, **kwargs)


@contextmanager
def one_line_errors(interrupted=lambda: "interrupted"):
    """An ``IngestError`` (every failure a user can act on) becomes its line and exit code;
    Ctrl-C (or SIGTERM) the line ``interrupted()`` returns, exit 130."""
    from ..errors import IngestError

    try:
        yield
    except IngestError as exc:
        raise Failure(str(exc), exc.exit_code) from None
    except KeyboardInterrupt:
        raise Failure(interrupted(), EXIT_INTERRUPTED) from None


def options(*decorators):
    """One decorator applying ``decorators`` as if stacked in this order."""
    return lambda f: functools.reduce(lambda g, decorator: decorator(g), reversed(decorators), f)


database_option = click.option(
    "--database-url", envvar="DATABASE_URL", metavar="URL",
    help="App database (default: DATABASE_URL, else sqlite:///durable_ingest_app.sqlite).")
concurrency_option = click.option(
    "--concurrency", type=click.IntRange(1, 64), default=2, show_default=True,
    help="Chunk workflows run at once by this process.")
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print JSON for scripts (one object per result).")
fault_options = options(
    click.option("--fail-task", "fail_tasks", type=click.IntRange(0), multiple=True, metavar="N",
                 help="Make the transform of 'task N' always fail (repeatable)."),
    click.option("--flaky-rate", type=click.FloatRange(0, 1), default=0.0,
                 help="Probability that a transform attempt fails transiently."),
    click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
                 help="Seed of --flaky-rate's failures."),
)


def workers_option(name="--workers"):
    def parse(_ctx, _param, value):
        from ..commands.helper_processes import worker_count

        try:
            return worker_count(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return click.option(name, "workers" if name == "--workers" else "processes", default="1",
                        show_default=True, metavar="N|auto", callback=parse,
                        help="Processes that load chunks: this one and N-1 helpers "
                             "(auto: one per usable CPU, half that when the Postgres server "
                             "runs on this machine).")


shaping_options = options(
    click.option("--table", default=None, metavar="NAME",
                 help="Load into the dataset table NAME, a typed column per field (created "
                      "and extended as needed), instead of tasks."),
    click.option("--transform", "transform_spec", default=None, metavar="MODULE:FUNCTION",
                 help="The function each record goes through: MODULE:FUNCTION, "
                      "path/to/file.py:FUNCTION, identity (store records as read) or "
                      "uppercase (the demo's: every string value uppercased)  [default: "
                      "identity]"),
    click.option("--key", default=None, metavar="FIELD", help="Identify records by this field "
                 "(a dotted path, e.g. login.uuid): one row per key, across files and runs."),
    click.option("--on-conflict", type=click.Choice(["skip", "update"]), default=None,
                 help="With --key, a key already stored: keep its row (skip, default) or "
                      "update it."),
    click.option("--column", "columns", multiple=True, metavar="FIELD=TYPE",
                 help="With --table, the type of FIELD's column (a dotted path), e.g. "
                      "total=decimal for exact sums; kept for later loads (repeatable). Types: "
                      "bigint, double, decimal, bool, text, timestamp, json."),
)


header_option = click.option(
    "--header", "headers", multiple=True, metavar="'NAME: VALUE'",
    help="An HTTP header for every page request, e.g. an API key (repeatable). Never printed "
         "nor stored: a later resume or worker that fetches pages needs it again.")
endpoint_option = click.option(
    "--endpoint-url", metavar="URL", default=None,
    help="S3-compatible endpoint of s3:// inputs (default: AWS_ENDPOINT_URL, else AWS's).")
remote_options = options(header_option, endpoint_option)  # what resume and worker fetch with
# ``ingest load --help``'s last words: one example per paging style, with the APIs it fits.
LOAD_EXAMPLES = """\b
Paging of URL inputs without {page} (one style per command; --max-pages N caps any):
  Link: <...>; rel="next" headers (GitHub, GitLab) are followed by themselves:
    ingest load 'https://api.github.com/repos/o/r/issues?per_page=100'
  The next URL in the body (JSON:API links.next; DRF next, with --records results):
    ingest load https://api.example.com/articles --next-url links.next --records data
  A cursor in the body (Slack; Notion: --cursor next_cursor --has-more has_more):
    ingest load 'https://slack.com/api/users.list?limit=200' --records members \\
      --cursor response_metadata.next_cursor --cursor-param cursor
  The last record's id as the cursor (Stripe):
    ingest load https://api.stripe.com/v1/charges --records data --has-more has_more \\
      --cursor-record id --cursor-param starting_after
  Offset and limit (many SQL-backed APIs):
    ingest load https://api.example.com/rows --records rows --offset-param offset \\
      --limit-param limit --limit 500 --total total
Only what changed since the last finished run (--incremental; a nightly sync with schedule add):
  ingest load https://api.example.com/orders --records data --incremental updated_at \\
    --since-param updated_since --since-initial 2026-01-01T00:00:00Z --key id
"""

# (flag, metavar, help) of the paging options that take a path or a name
PAGING_TEXTS = (
    ("--next-url", "PATH", "A URL input's next page is the URL at this dotted path of its "
     "body, absolute or relative (links.next: JSON:API; next: DRF)."),
    ("--cursor", "PATH", "The next page's token is at this path of the body, sent as "
     "--cursor-param (response_metadata.next_cursor: Slack)."),
    ("--cursor-record", "FIELD", "The next page's token is this field of the page's last "
     "record, sent as --cursor-param (id, with --cursor-param starting_after: Stripe)."),
    ("--cursor-param", "NAME", "The query parameter a --cursor or --cursor-record token goes into."),
    ("--has-more", "PATH", "Stop when the body's value here says there is no more (false, 0, "
     "null or missing)."),
    ("--offset-param", "NAME", "Offset paging: this query parameter is 0, then grows by the "
     "records of each page, until a page holds fewer than --limit."),
    ("--limit-param", "NAME", "With --offset-param: the query parameter --limit is sent in."),
    ("--total", "PATH", "With --offset-param: the number of records in all, at this path of "
     "the body."),
)
paging_options = options(
    *(click.option(flag, metavar=metavar, default=None, help=text)
      for flag, metavar, text in PAGING_TEXTS),
    click.option("--limit", type=click.IntRange(1), default=None, metavar="N",
                 help="With --offset-param: records a page holds (a shorter page is the last)."),
    click.option("--max-pages", type=click.IntRange(1), default=None, metavar="N",
                 help="At most N pages of each URL input, whatever its paging."),
)
incremental_options = options(
    click.option("--incremental", metavar="FIELD", default=None,
                 help="Load only what changed: each run asks a URL input for records from the "
                      "highest FIELD (a dotted path, e.g. updated_at or id) its finished runs "
                      "stored, by {since} in the URL or --since-param."),
    click.option("--since-param", metavar="NAME", default=None,
                 help="With --incremental: the query parameter the value goes into."),
    click.option("--since-initial", metavar="VALUE", default=None,
                 help="With --incremental: the value of the first run (else no {since} is "
                      "possible, and --since-param is not sent)."),
)
http_options = options(
    click.option("--pages", metavar="START-END|START-", default=None,
                 help="Pages of URL inputs with a {page} placeholder: START-END (inclusive), "
                      "or START- (until the first page with no records)."),
    header_option,
    paging_options,
    incremental_options,
    click.option("--http-attempts", type=click.IntRange(1, 100), default=5, show_default=True,
                 help="Tries per page, the first included (connection errors, timeouts, 429, 5xx)."),
    click.option("--http-timeout", type=click.FloatRange(0.1, 3600), default=30.0,
                 show_default=True, help="Seconds to connect, and between bytes of an answer."),
    click.option("--rate", type=click.FloatRange(0.01, 100_000), default=None, metavar="N",
                 help="At most N page requests per second, retries included (default: no cap)."),
)


def _check_budget(_ctx, _param, value):
    from ..commands.results import ErrorBudget

    try:
        ErrorBudget.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


load_command_options = options(
    click.option("--format", "fmt", type=click.Choice(["json", "ndjson"]),
                 help="Input format (default: detected from the content)."),
    click.option("--records", "records", default=None, metavar="PATH",
                 help="Where each document's (or page's) records are: a dotted path to a list, "
                      "e.g. data or response.docs (default: a top-level array, NDJSON or the "
                      '"results" list).'),
    database_option,
    click.option("--chunk-size", type=click.IntRange(1, 1_000_000), default=5000,
                 show_default=True, help="Records per chunk workflow."),
    click.option("--concurrency", type=click.IntRange(1, 64), default=2, show_default=True,
                 help="Chunk workflows run at once by this process, and pages in flight."),
    click.option("--max-attempts", type=click.IntRange(1, 100), default=3, show_default=True,
                 help="Transform tries per record, the first included."),
    click.option("--retry-interval", type=click.FloatRange(0, 3600), default=0.1,
                 show_default=True, help="Seconds before the first retry."),
    click.option("--backoff", type=click.FloatRange(1, 100), default=2.0, show_default=True,
                 help="Each retry waits this many times longer than the one before."),
    fault_options,
    click.option("--label", default="", metavar="TEXT",
                 help="Load the same bytes again as a new dataset: a new label is a new run."),
    click.option("--settle", type=click.FloatRange(0), default=0.0, metavar="SECONDS",
                 show_default=True, help="Leave files modified less than SECONDS ago for a "
                 "later run (they may still be being written)."),
    click.option("--full-check", is_flag=True, help="Read every file, even those whose path, "
                 "size and modification time match what this machine read before."),
    click.option("--changed", type=click.Choice(["load", "skip"]), default="load",
                 show_default=True, help="A file rewritten since it was loaded: load its "
                 "records as new content, or leave it alone (reported either way)."),
    shaping_options,
    json_option,
    click.option("--max-errors", metavar="N|P%", default=None, callback=_check_budget,
                 help=f"Exit {EXIT_RECORD_ERRORS} if more than N records (or P% of them) "
                      "ended in errors (default: only if none loaded)."),
    click.option("--fail-on-errors", is_flag=True,
                 help=f"Exit {EXIT_RECORD_ERRORS} if any record ended in errors "
                      "(--max-errors 0)."),
    click.option("--detach", is_flag=True,
                 help="Queue the run for `ingest worker` processes, print its id and return."),
    click.option("--no-progress", is_flag=True, help="No progress line on stderr."),
    workers_option(),
    http_options,
    endpoint_option,
)


def exit_if_failed(failed) -> None:
    """Exit with a ``LoadResult.failure``'s code, after its line (None: carry on)."""
    if failed:
        if failed[1]:
            say(failed[1])
        sys.exit(failed[0])


def error_budget_of(given: dict):
    """``--max-errors`` as an ``ErrorBudget``; ``--fail-on-errors`` is ``--max-errors 0``."""
    from ..commands.results import ErrorBudget

    if given["fail_on_errors"]:
        if given["max_errors"] is not None:
            raise click.UsageError("--fail-on-errors is --max-errors 0: give one of them")
        return ErrorBudget(count=0, option="--fail-on-errors")
    return ErrorBudget.parse(given["max_errors"])


def load_options_of(paths: tuple, given: dict):
    """The ``LoadOptions`` of ``ingest load``'s options, checked before any work."""
    from ..steps.load_options import options_of

    return options_of(paths, given)


def faults_of(fail_tasks, flaky_rate, seed) -> dict:
    from ..steps.load_options import faults_of as faults

    return faults(fail_tasks, flaky_rate, seed)


def report_unexpected(exc: Exception) -> int:
    """A bug or an unexpected failure as one line (the traceback with ``INGEST_DEBUG=1``),
    with the passwords of the database URLs in play scrubbed; returns the exit code."""
    from ..database import environment_urls
    from ..errors import one_line, scrub

    urls = list(environment_urls()) + [a.removeprefix("--database-url=") for a in sys.argv[1:]]
    urls = [u for u in urls if u]
    if os.environ.get("INGEST_DEBUG"):
        click.echo(scrub("".join(traceback.format_exception(exc)), *urls), err=True)
    click.echo(f"Error: {type(exc).__name__}: {one_line(exc, *urls)} "
               f"(INGEST_DEBUG=1 shows the traceback, INGEST_LOG_LEVEL=INFO DBOS's log)", err=True)
    return EXIT_FATAL


ui_command_options = options(
    click.option("--host", default="127.0.0.1", show_default=True,
                 help="Address to listen on; anything but loopback needs --token."),
    click.option("--port", type=click.IntRange(0, 65535), default=8787, show_default=True,
                 help="Port (0: any free one)."),
    click.option("--token", envvar="INGEST_UI_TOKEN", default=None, metavar="TOKEN",
                 help="Ask every visitor for this token (env INGEST_UI_TOKEN): open the page "
                      "once as /?token=TOKEN. Required on any host but loopback."),
)

def parse_duration(ctx, param, value):
    """A duration option (``30d``, ``12h``, ``15m``, ``0s``) in seconds; a bad one is one
    line, exit 2 (None stays None)."""
    from ..commands.gc import parse_duration as seconds
    from ..errors import UsageError

    try:
        return None if value is None else seconds(value, f"--{param.name.replace('_', '-')}")
    except UsageError as exc:
        raise Failure(str(exc), exc.exit_code) from None


worker_command_options = options(
    click.option("--worker-id", default=None, metavar="ID",
                 help="This worker's DBOS executor id (default: the host name). Restarted with "
                      "the same id, it picks its unfinished work up again."),
    click.option("--concurrency", type=click.IntRange(1, 64), default=2, show_default=True,
                 help="Chunk workflows at once per worker."),
    click.option("--global-concurrency", type=click.IntRange(1, 1024), default=None,
                 help="Chunk workflows at once across all workers."),
    click.option("--take-over", "take_over", multiple=True, metavar="ID",
                 help="Also recover the unfinished work of these dead workers (repeatable)."),
    click.option("--drain-timeout", type=click.IntRange(0, 3600), default=30, show_default=True,
                 help="On SIGINT/SIGTERM, seconds to let running chunks finish."),
    workers_option("--processes"),
    click.option("--retention", default=None, metavar="DURATION", callback=parse_duration,
                 help="Every hour, delete what finished runs older than DURATION leave "
                      "behind (ingest gc --older-than DURATION), once across all workers; "
                      "kept for later workers; off stops it."),
    click.option("--parent-pid", type=int, default=None, hidden=True),  # a helper of that process
)


generate_command_options = options(
    click.option("--count", type=click.IntRange(0, 100_000_000), required=True,
                 help="Records to write."),
    click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
                 help="The same seed writes a byte-identical file."),
    click.option("--format", "fmt", type=click.Choice(["json", "ndjson"]), default="json",
                 show_default=True, help="A randomuser.me envelope, or one record per line."),
    click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default="-",
                 help="File to write (default: stdout)."),
)


status_command_options = options(
    click.option("--limit", type=click.IntRange(1), default=50, show_default=True,
                 help="Runs to list."),
    click.option("--files", "files_page", type=click.IntRange(1), default=None, metavar="PAGE",
                 help="With RUN_ID: list the run's files, 100 per page (1 is the first)."),
    click.option("--chunks", "every_chunk", is_flag=True,
                 help="With RUN_ID: a row per chunk (default: their counts by state, the "
                      "slowest and the failed)."),
)


errors_command_options = options(
    click.option("--limit", type=click.IntRange(1), default=20, show_default=True,
                 help="Groups to show."),
    click.option("--all", "include_resolved", is_flag=True,
                 help="Include resolved (redriven) rows, and a keyed record's superseded ones."),
    click.option("--table", default=None, metavar="NAME",
                 help="Only the errors of records bound for this table (tasks, or a --table)."),
    click.option("--run", "run_option", default=None, metavar="RUN_ID",
                 help="Only this run's errors (the same as the RUN_ID argument)."),
    click.option("--file", "file_name", default=None, metavar="PATH",
                 help="Only the errors of records of this file (its name or path, or their "
                      "end), or of this URL."),
    click.option("--type", "error_type", default=None, metavar="TYPE",
                 help="Only errors of this type (e.g. InvalidJSON, MissingKey, BadFile)."),
)


def error_filter_of(run_id, given: dict):
    """The rows ``ingest errors`` groups: RUN_ID (or ``--run``), ``--file``, ``--type``,
    ``--table`` and ``--all``."""
    from ..views.error_triage import ErrorFilter

    if run_id and given["run_option"] and run_id != given["run_option"]:
        raise click.UsageError("give the run once: as RUN_ID or as --run")
    return ErrorFilter(run_id=run_id or given["run_option"], file=given["file_name"],
                       error_type=given["error_type"], table=given["table"],
                       include_resolved=given["include_resolved"])
