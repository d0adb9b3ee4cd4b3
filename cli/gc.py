"""``ingest gc``: delete what finished runs older than a duration leave behind, print what
went (``commands.gc`` does it)."""

import json

import click

from ..commands.gc import DEFAULT_OLDER_THAN
from .options import database_option, json_option, one_line_errors, parse_duration


@click.command()
@click.option("--older-than", default=DEFAULT_OLDER_THAN, show_default=True,
              metavar="DURATION", callback=parse_duration,
              help="Collect runs that finished longer ago than this: 30d, 12h, 15m, 0s.")
@click.option("--dry-run", is_flag=True, help="Print what would be deleted; delete nothing.")
@json_option
@database_option
def gc(older_than, dry_run, as_json, database_url) -> None:
    """Delete what finished runs older than --older-than leave behind: their DBOS history
    (the run's workflows, steps, inputs, outputs, events), spooled copies (stdin, gzip, API
    pages) and per-run scratch.

    Never tasks, errors, dataset tables, nor what makes a rerun incremental (a file loaded
    before stays "already loaded"), nor anything of an unfinished run. A collected run stays
    in ingest status and the ui (from its summary row); ingest retry still works for it.

    \b
    Example:
      ingest gc --dry-run
      ingest gc --older-than 7d --json
    """
    from ..commands import gc as collecting

    with one_line_errors():
        collected = collecting.collect(database_url, older_than, dry_run)
    click.echo(json.dumps(collected.asdict()) if as_json else collecting.describe(collected))
