"""SQLAlchemy 2 models of the tables a load writes.

``tasks`` and ``errors``: every input record ends as exactly one row in one of them; the
unique ``source_key`` (file fingerprint + position, or the record's own key with ``--key``)
makes a duplicate impossible on every database. ``sources`` lists the files of each run (what chunks read back) and ``contents``
holds one row per file content ever loaded: the claim that makes the same bytes load once,
whatever the path, the command or the moment. JSON columns are JSONB on Postgres and JSON on
SQLite.
"""

from datetime import datetime
from typing import Any, Optional

from sqlalchemy import (JSON, BigInteger, DateTime, Float, Index, Integer, MetaData, String,
                        Text, UniqueConstraint, func)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .contract import TASKS

# Stable constraint names on every database, so migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

PortableJSON = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY, not a BIGINT one.
RowId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Task(Base):
    """A record that made it through the transform."""

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    data: Mapped[Any] = mapped_column(PortableJSON)
    source_key: Mapped[str] = mapped_column(Text, unique=True)
    run_id: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(BigInteger)
    # With --key: the file (ordinal in the run's sources) the stored record came from.
    ordinal: Mapped[Optional[int]] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class Error(Base):
    """A record that did not make it, with the reason (``message``) as JSON and the record's
    text as it was in the input (``source``); ``table_name`` is the table it was bound for
    (``tasks``, or a dataset table of ``--table``), and its key is unique there: a keyed
    record's earlier failures are kept under their key suffixed ``#superseded-ID``."""

    __tablename__ = "errors"
    __table_args__ = (Index("ix_errors_run_id", "run_id"),
                      UniqueConstraint("table_name", "source_key"))

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    table_name: Mapped[str] = mapped_column(Text, server_default=TASKS)
    source_key: Mapped[str] = mapped_column(Text)
    run_id: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(BigInteger)
    message: Mapped[Any] = mapped_column(PortableJSON)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    resolved_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    source: Mapped[Optional[str]] = mapped_column(Text)
    # A keyed record's earlier failure, kept when a newer one came (closed: resolved too).
    superseded_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))


class Source(Base):
    """One input file of a run: where it is, what it is, and whether this run loads it.

    ``state``: ``planned`` (written by the command, not yet claimed), ``new`` (this run
    claimed its content and loads it), ``duplicate`` (the content was claimed by the run in
    ``loaded_by``), ``bad`` (it can't be loaded; ``error`` says why), ``skipped`` (a rewritten
file left alone: ``--changed skip``). A ``new`` object of a
    bucket that changed before its chunks read it keeps ``new`` and says so in ``error``.
    """

    __tablename__ = "sources"
    __table_args__ = (UniqueConstraint("run_id", "ordinal"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64))
    ordinal: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[Optional[str]] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    shape: Mapped[Optional[str]] = mapped_column(String(16))
    size: Mapped[Optional[int]] = mapped_column(BigInteger)
    mtime_ns: Mapped[Optional[int]] = mapped_column(BigInteger)
    records: Mapped[int] = mapped_column(BigInteger, default=0)
    # [start byte, end byte, first position, record count] per piece of at most a chunk
    pieces: Mapped[Optional[Any]] = mapped_column(PortableJSON)
    error: Mapped[Optional[str]] = mapped_column(Text)
    loaded_by: Mapped[Optional[str]] = mapped_column(String(64))
    # An object of a bucket (path s3://bucket/key): what a ranged read must still find, and
    # "gzip" when its pieces are ranges of its decompressed bytes.
    etag: Mapped[Optional[str]] = mapped_column(Text)
    version_id: Mapped[Optional[str]] = mapped_column(Text)
    compression: Mapped[Optional[str]] = mapped_column(String(16))
    # A local file (see migration 0006): its absolute path, the bytes its fingerprint covers
    # (an unfinished last NDJSON line is not: ``held_back``), where its positions start (past
    # those of the version it grew from), and what it is to the version loaded before at the
    # same path (``change``: "grown" or "rewritten"; ``previous``: that one's fingerprint).
    origin: Mapped[Optional[str]] = mapped_column(Text, index=True)
    covered: Mapped[Optional[int]] = mapped_column(BigInteger)
    first_position: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    held_back: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    change: Mapped[Optional[str]] = mapped_column(String(16))
    previous: Mapped[Optional[str]] = mapped_column(String(64))


class Content(Base):
    """A file content (fingerprint) claimed by the run that loads it: at most one, ever."""

    __tablename__ = "contents"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64))
    ordinal: Mapped[int] = mapped_column(BigInteger)
    claimed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class DatasetTable(Base):
    """A dataset table (``ingest load --table NAME``), created at run time: its key, if
    records are identified by a field (``--key``), and the run that created it."""

    __tablename__ = "ingest_tables"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    key_path: Mapped[Optional[str]] = mapped_column(Text)  # as given: login.uuid
    key_column: Mapped[Optional[str]] = mapped_column(Text)  # its column: login__uuid
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class DatasetColumn(Base):
    """A column of a dataset table, added when a record first had its field: the field's path
    (a JSON array of keys), its type (``tables.types``), the column whose values of another
    type it holds (a variant), and the run that added it."""

    __tablename__ = "ingest_columns"

    table_name: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    number: Mapped[int] = mapped_column(Integer)  # order: path, then type (tables.catalog)
    path: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(Text)
    variant_of: Mapped[Optional[str]] = mapped_column(Text)
    added_by: Mapped[str] = mapped_column(Text)
    added_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class DatasetHint(Base):
    """A column type a load asked for (``--column NAME=TYPE``), kept for every later load into
    the table: the field's column is created with it (values that don't fit it go to variant
    columns, as ever). The field's path is a JSON array of keys, as in ``ingest_columns``."""

    __tablename__ = "ingest_column_hints"

    table_name: Mapped[str] = mapped_column(Text, primary_key=True)
    path: Mapped[str] = mapped_column(Text, primary_key=True)
    type: Mapped[str] = mapped_column(Text)
    added_by: Mapped[str] = mapped_column(Text)
    added_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class ScheduleTicks(Base):
    """What a schedule's ticks did so far (``ingest schedule list``): runs started, ticks
    skipped while its last run still went, ticks that found nothing new, ticks whose inputs
    could not be loaded; and the last tick. Written by the tick's own transaction, so each
    tick counts once. Deleted with the schedule; its runs keep their ``ScheduledRun`` rows."""

    __tablename__ = "ingest_schedules"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    last_tick: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    last_outcome: Mapped[Optional[str]] = mapped_column(Text)
    last_reason: Mapped[Optional[str]] = mapped_column(Text)


class ScheduledRun(Base):
    """A run a schedule's tick started: ``ingest status`` and the ui name its schedule."""

    __tablename__ = "ingest_schedule_runs"

    run_id: Mapped[str] = mapped_column(Text, primary_key=True)
    schedule: Mapped[str] = mapped_column(Text, index=True)
    tick: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RunSummary(Base):
    """A finished run, as ``ingest status`` lists it once ``ingest gc`` deleted its DBOS
    history: written by the run's workflow when it finishes (or by gc, from the run's DBOS
    output, for runs older than this table). ``summary`` is its ``contract.Summary``, ``job``
    its ``Job`` (both as JSON), ``urls`` how many URL inputs it had, ``redrives`` the counts
    of its ``ingest retry`` workflows gc deleted: ``{"ID@CREATED_MS": [tasks, skipped]}``."""

    __tablename__ = "ingest_runs"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    inputs: Mapped[str] = mapped_column(Text)
    started_at: Mapped[float] = mapped_column(Float, index=True)
    finished_at: Mapped[float] = mapped_column(Float)
    summary: Mapped[Any] = mapped_column(PortableJSON)
    job: Mapped[Optional[Any]] = mapped_column(PortableJSON)
    urls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    redrives: Mapped[Optional[Any]] = mapped_column(PortableJSON)
    written_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class IncrementalCursor(Base):
    """Where an incremental load (``--incremental``) stands: per URL input (as its runs'
    identity describes it, without credentials), table and field, the highest value its
    finished runs stored, as the source wrote it, and its type (``sources.since``). Moved
    forward only, by the run's last transaction, once its records are committed."""

    __tablename__ = "ingest_cursors"

    source: Mapped[str] = mapped_column(Text, primary_key=True)
    table_name: Mapped[str] = mapped_column(Text, primary_key=True)
    field: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    value_type: Mapped[str] = mapped_column(Text)
    run_id: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
