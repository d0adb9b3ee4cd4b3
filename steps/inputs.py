"""The inputs of a load, found and named, and the run they make: the files, folders, globs,
stdin, objects and URLs a load names, fingerprinted (``identify_inputs``), and the run ID of
what they hold now (``current_run``). ``ingest load`` and a schedule's tick both start here.
"""

from typing import BinaryIO, Optional

from ..contract import ERROR, SUCCESS, is_url
from ..errors import InputError
from .load_options import LoadOptions


def identify_inputs(specs: list, options: LoadOptions, stdin: Optional[BinaryIO] = None):
    """Name and fingerprint every input file (no database is touched); objects of buckets
    are read once now (fingerprinted and scanned), unless this machine knows them; URL
    inputs (``options.urls``) are named by what they ask for, and fetched by the run. A single
    file named alone that can't be loaded, or inputs of which none can, are an
    ``InputError`` here, before anything is written. A file named alone is scanned at
    once (the scan is also its fingerprint): ``scanned`` is its plan."""
    import os

    from ..sources.globs import has_magic
    from ..sources.plan import Manifest, Skipped, expand, identify_all, scan_alone
    from ..sources.s3 import is_s3

    skipped, manifest = Skipped(), Manifest()
    skipped.settling.seconds = options.settle
    if options.changed == "skip":
        manifest.identity.add_setting("changed=skip")
    files = [s for s in specs if not is_url(s)]
    if len(specs) == 1 and files and files[0] != "-" and not has_magic(files[0]) \
            and not os.path.isdir(files[0]) and not is_s3(files[0]):
        item, scanned = scan_alone(files[0], options.identity, options.chunk_size, options.fmt,
                                   policy=options.local, settling=skipped.settling)
        if item is not None:
            manifest.add(item)
        return manifest, skipped, scanned
    names = expand(files, skipped, options.endpoint_url)
    for item in identify_all(names, options.identity, stdin, options.chunk_size, options.fmt,
                             options.endpoint_url, options.local, skipped.settling):
        manifest.add(item)
    for source in options.urls:
        manifest.identity.add_url(source, options.identity)
    if manifest.count and manifest.bad == manifest.count and not options.urls:
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

    from ..sources.identity import generation_of

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


def describe_inputs(specs: list, urls: tuple = ()) -> str:
    """The inputs as typed, for people: paths made absolute, URLs without credentials."""
    import os

    from ..sources.s3 import is_s3

    bare = iter(source.describe() for source in urls)
    names = ["stdin" if s == "-" else next(bare) if is_url(s) else
             (s if is_s3(s) or any(c in s for c in "*?[") else os.path.abspath(s)) for s in specs]
    return names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} more"


def run_status(run_id: str) -> Optional[str]:
    """The run's DBOS status; a run ``ingest gc`` collected (its summary row is all that
    is left) is SUCCESS; None: no such run."""
    from dbos import DBOS

    status = DBOS.get_workflow_status(run_id)
    if status:
        return status.status
    return SUCCESS if finished_row(run_id) is not None else None


def finished_row(run_id: str):
    """The summary row of ``run_id`` (``store.run_summaries``), read through the launched
    DBOS datasource's engine; None: none, or an app database not migrated yet."""
    from sqlalchemy.exc import SQLAlchemyError

    from ..store.datasource import app_db
    from ..store.run_summaries import row_by_id

    try:
        with app_db().engine.connect() as connection:
            return row_by_id(connection, run_id)
    except SQLAlchemyError:
        return None
