"""Failures into ``errors``: a record that did not make it, with the reason, the original
record as JSON and its text as it was in the input, and the one row of a file or an API page
that can't be loaded at all."""

from typing import Any, Optional

from sqlalchemy import Text, cast as sa_cast, func, insert, update

from ..codec import storable
from ..contract import BAD_FILE_POSITION, TASKS, bad_file_key, is_url, source_key, title_of
from ..models import Error
from .dialect import dialect_insert


def error_row(run_id: str, fingerprint: str, position: int, error_type: str, message: str,
              record: Any, attempts: int, permanent: bool, key: Optional[str] = None,
              ordinal: Optional[int] = None, table: str = TASKS,
              source: Optional[str] = None) -> dict:
    """An ``errors`` row: the reason as JSON, and the record's text as it was in the input
    (``source``), kept once: the record itself goes into the reason only when its text is
    not known. A record with its own key
    (``--key``) is filed under it, with the file it came from; ``table`` is the table the
    record was bound for. A NUL byte of ``source`` (only invalid JSON has one) is kept as
    the six characters of its JSON escape: a Postgres text column can't hold it."""
    stored_key = key if key is not None else source_key(fingerprint, position)
    reason = {
        "title": title_of(position),
        "source_key": stored_key,
        "position": position,
        "error_type": error_type,
        "error": message,
        "attempts": attempts,
        "permanent": permanent,
        "record": storable(record) if source is None else None,  # the text is kept once
    }
    if key is not None:
        reason.update(key=key, ordinal=ordinal, fingerprint=fingerprint)
    return {"title": title_of(position), "table_name": table, "source_key": stored_key,
            "run_id": run_id, "position": position, "message": reason,
            "source": source.replace("\x00", "\\u0000") if source and "\x00" in source else source}


def bad_file_row(run_id: str, name: str, fingerprint: Optional[str], reason: str,
                 table: str = TASKS) -> dict:
    """The one ``errors`` row of a file (or an API page: ``BadPage``) that can't be loaded
    at all."""
    key = bad_file_key(fingerprint, name)
    kind = "BadPage" if is_url(name) else "BadFile"
    return {
        "title": name,
        "table_name": table,
        "source_key": key,
        "run_id": run_id,
        "position": BAD_FILE_POSITION,
        "message": {"title": name, "source_key": key, "position": BAD_FILE_POSITION,
                    "error_type": kind, "error": reason, "attempts": 0, "permanent": True,
                    "path": name, "fingerprint": fingerprint, "record": None},
        "source": None,
    }


def resolve_bad_pages(session, names: list, table: str = TASKS) -> None:
    """A page that loads now marks the errors rows of its earlier failures resolved."""
    keys = [bad_file_key(None, name) for name in names]
    if keys:
        session.execute(update(Error).where(Error.table_name == table, Error.source_key.in_(keys),
                                            Error.resolved_at.is_(None))
                        .values(resolved_at=func.now()))


SUPERSEDE_BATCH = 1000  # keys per statement (SQLite's bound parameters are limited)


def write_errors(session, rows: list, keyed: bool = False) -> None:
    """Insert ``errors`` rows. Under records' own keys (``keyed``), the earlier rows of a key
    that failed before are kept, superseded (``supersede``), and the new failure is the
    key's open row."""
    if not rows:
        return
    if not keyed:
        session.execute(insert(Error), rows)
        return
    supersede(session, rows[0]["table_name"], [row["source_key"] for row in rows])
    statement = dialect_insert(session, Error)
    session.execute(statement.on_conflict_do_update(  # the same key twice in one chunk
        index_elements=[Error.table_name, Error.source_key],
        set_={"title": statement.excluded.title, "run_id": statement.excluded.run_id,
              "position": statement.excluded.position, "message": statement.excluded.message,
              "source": statement.excluded.source, "resolved_at": None}), rows)


def supersede(session, table: str, keys: list) -> None:
    """Move the rows of ``keys`` aside: their key suffixed ``#superseded-ID`` (the key stays
    unique per table), closed and marked superseded, kept for the audit history."""
    moved = Error.source_key + "#superseded-" + sa_cast(Error.id, Text)
    for low in range(0, len(keys), SUPERSEDE_BATCH):
        batch = keys[low:low + SUPERSEDE_BATCH]
        session.execute(update(Error).where(Error.table_name == table, Error.source_key.in_(batch))
                        .values(source_key=moved, superseded_at=func.now(),
                                resolved_at=func.coalesce(Error.resolved_at, func.now())),
                        execution_options={"synchronize_session": False})


def write_errors_once(session, rows: list) -> int:
    """Insert rows whose source key may already be there (a bad file seen again), one by
    one (they are few); returns how many are new. A row resolved since (an API page that
    loaded once, then failed again) is open again, with the new reason, and counts as new."""
    statement = dialect_insert(session, Error)
    statement = statement.on_conflict_do_update(
        index_elements=[Error.table_name, Error.source_key],
        set_={"run_id": statement.excluded.run_id, "message": statement.excluded.message,
              "resolved_at": None},
        where=Error.resolved_at.is_not(None)).returning(Error.id)
    return sum(len(session.execute(statement, row).all()) for row in rows)
