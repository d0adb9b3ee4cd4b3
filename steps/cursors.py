"""Incremental loads' stored values (``ingest_cursors``): the value a new run starts from
(``stored_value``, read when the run is planned), and the run's last transaction, which moves
it forward to the highest value its committed records had (``advance``), never back.
"""

from datetime import datetime, timezone
from typing import Optional

from sqlalchemy import select, update

from ..contract import Job, UrlSource
from ..models import IncrementalCursor
from ..sources.since import Highest, new_value
from ..store import datasource
from ..store.dialect import insert_ignoring_conflicts


def stored_value(engine, source: str, table: str, field: str) -> tuple:
    """``(type, text)`` of the value stored for this URL input, table and field; ``()``."""
    with engine.connect() as connection:
        row = connection.execute(select(IncrementalCursor.value_type, IncrementalCursor.value)
                                 .where(*key_of(source, table, field))).first()
    return tuple(row) if row else ()


def key_of(source: str, table: str, field: str) -> tuple:
    return (IncrementalCursor.source == source, IncrementalCursor.table_name == table,
            IncrementalCursor.field == field)


def advance(job: Job, source: UrlSource, table: str, highest: Optional[dict]) -> dict:
    """In the run's last transaction: the stored value moved to the highest the run's records
    had, of its type, when that is higher (``sources.since.new_value``). Returns what
    ``ingest status`` shows: ``{"field", "used", "new"}`` (texts, None for no value)."""
    session = datasource.session()
    where = key_of(source.describe(), table, job.incremental)
    row = session.execute(select(IncrementalCursor.value_type, IncrementalCursor.value)
                          .where(*where).with_for_update()).first()
    stored = tuple(row) if row else ()
    # Another run of the same input may have moved it since this one was planned: what is
    # stored now (and its type) is what the run's values must pass.
    found = Highest(highest).as_dict()
    new = new_value(stored, found) if stored else new_value(source.since, found, given=True)
    values = {"value": new[1], "value_type": new[0], "run_id": job.run_id,
              "updated_at": datetime.now(timezone.utc)} if new else {}
    if values and not stored:  # (a first run of another label at once: the first one's)
        session.execute(insert_ignoring_conflicts(session, IncrementalCursor), [{
            "source": source.describe(), "table_name": table, "field": job.incremental,
            **values}])
    elif values and new != stored:
        session.execute(update(IncrementalCursor).where(*where).values(values))
    used = source.since[1] if source.since else None
    return {"field": job.incremental, "used": used, "new": new[1] if new else None}
