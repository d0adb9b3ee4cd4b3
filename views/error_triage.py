"""``ingest errors``: a run's (or every run's) ``errors`` rows grouped for triage, by error
type and message with its positions and offsets taken out (``(byte 11)``, ``line 3``: they
stay in each row), each group with a count and a sample that says where it is: the file and
line (record number for a JSON array), or the URL of the page. Rows are streamed and grouped
here, so any number of rows costs only their groups."""

import re
from dataclasses import dataclass, field
from typing import Optional

from ..contract import BAD_FILE_POSITION
from .runs import app_engine, require_known_run

FETCHED_ROWS = 2000  # rows read from the database at a time

# A place in a text or a file, inside a message: "(byte 11)", "at line 3, column 4",
# "position 17", "offset 2048", "char 5"; the word is kept, the number becomes "N".
PLACES = re.compile(r"\b(byte|line|column|col|char|character|position|pos|offset|index|task)"
                    r"(s?)\s+(\d+)", re.I)


def without_places(message: str) -> str:
    """A message with the numbers of its places (byte, line, position...) as ``N``."""
    return PLACES.sub(lambda m: f"{m.group(1)}{m.group(2)} N", message or "")


@dataclass
class Group:
    error_type: str
    error: str
    count: int = 0
    sample: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ErrorFilter:
    """Which rows: of a run, of a file (its name or path, or their end), of an error type,
    bound for a table, resolved and superseded ones too (``include_resolved``)."""

    run_id: Optional[str] = None
    file: Optional[str] = None
    error_type: Optional[str] = None
    table: Optional[str] = None
    include_resolved: bool = False


def error_groups(database_url: Optional[str], which: ErrorFilter, limit: int) -> list:
    """The groups of the rows ``which`` selects, biggest first (at most ``limit``): error
    type, message without places, count, and where its first row (the sample) is."""
    if which.run_id:
        require_known_run(database_url, which.run_id)
    with app_engine(database_url) as engine:
        if engine is None:
            return []
        with engine.connect() as connection:
            names = source_names(connection, which.run_id)
            groups = group_rows(connection, which, names)
            ranked = sorted(groups.values(), key=lambda g: (-g.count, g.error_type, g.error))
            shown = ranked[:limit]
            for group in shown:
                group.sample["where"] = where_of(group.sample, names)
    return [{"error_type": g.error_type, "error": g.error, "count": g.count,
             "sample_title": g.sample["title"], "sample_run": g.sample["run_id"],
             "sample_file": g.sample["where"][0], "sample_where": g.sample["where"][1],
             "sample_error": g.sample["error"]} for g in shown]


def group_rows(connection, which: ErrorFilter, names: dict) -> dict:
    from sqlalchemy import select

    from ..models import Error

    query = select(Error.id, Error.title, Error.run_id, Error.source_key, Error.position,
                   Error.message).order_by(Error.id)
    for condition in conditions(which):
        query = query.where(condition)
    wanted = files_named(names, which.file) if which.file else None
    groups: dict = {}
    result = connection.execution_options(yield_per=FETCHED_ROWS).execute(query)
    for row in result:
        message = row.message or {}
        fingerprint = fingerprint_of(row.source_key, message)
        if wanted is not None and fingerprint not in wanted and message.get("path") not in wanted:
            continue
        error_type, error = message.get("error_type") or "", message.get("error") or ""
        key = (error_type, without_places(error))
        group = groups.get(key)
        if group is None:
            group = groups[key] = Group(error_type, key[1], sample={
                "title": row.title, "run_id": row.run_id, "position": row.position,
                "fingerprint": fingerprint, "path": message.get("path"), "error": error})
        group.count += 1
    return groups


def conditions(which: ErrorFilter) -> list:
    from ..models import Error

    found = []
    if which.run_id:
        found.append(Error.run_id == which.run_id)
    if which.table:
        found.append(Error.table_name == which.table)
    if not which.include_resolved:
        found.append(Error.resolved_at.is_(None))
    if which.error_type:
        found.append(Error.message["error_type"].as_string() == which.error_type)
    return found


def fingerprint_of(source_key: str, message: dict) -> Optional[str]:
    """The content (fingerprint) a row's record came from: in its key (``FP:POSITION``),
    or, for a record filed under its own key, in its message."""
    if message.get("fingerprint"):
        return message["fingerprint"]
    head, _, _ = (source_key or "").partition(":")
    return head or None


def source_names(connection, run_id: Optional[str]) -> dict:
    """fingerprint -> (name, path, shape) of the files (and pages) of a run, or of all."""
    from sqlalchemy import select

    from ..models import Source

    query = select(Source.fingerprint, Source.name, Source.path, Source.shape) \
        .where(Source.fingerprint.is_not(None))
    if run_id:
        query = query.where(Source.run_id == run_id)
    return {row[0]: (row[1], row[2], row[3]) for row in connection.execute(query)}


def files_named(names: dict, wanted: str) -> set:
    """Fingerprints (and names) of the files whose name or path is ``wanted`` or ends with it."""
    found = {wanted}
    for fingerprint, (name, path, _) in names.items():
        if wanted in (name, path) or (path or "").endswith("/" + wanted.lstrip("/")):
            found.add(fingerprint)
    return found


def where_of(sample: dict, names: dict) -> tuple:
    """(file or URL, where in it) of a sample row: ``line N`` of an NDJSON file still here,
    else ``record N`` (1 for the first); a bad file or page is the whole input."""
    if sample["position"] == BAD_FILE_POSITION:
        return sample["path"] or sample["title"], "whole input"
    name, path, shape = names.get(sample["fingerprint"], (None, None, None))
    if name is None:
        return "", f"record {sample['position'] + 1}"
    line = line_of(path, sample["position"]) if shape == "ndjson" else None
    return name, f"line {line}" if line else f"record {sample['position'] + 1}"


def line_of(path: Optional[str], position: int) -> Optional[int]:
    """The line of the record at ``position`` of an NDJSON file (blank lines are no
    records), or None when the file can't be read here (gone, changed, compressed)."""
    from ..sources.common import is_blank

    try:
        with open(path, "rb") as f:
            if f.read(2) == b"\x1f\x8b":
                return None
            f.seek(0)
            records = 0
            for number, line in enumerate(f, 1):
                if not is_blank(line.rstrip(b"\n")):
                    if records == position:
                        return number
                    records += 1
    except (OSError, TypeError):
        return None
    return None
