"""SQLAlchemy 2 models of the two tables a load writes: ``tasks`` and ``errors``.

Every input record ends as exactly one row in one of them; the unique ``source_key``
(dataset fingerprint + position) makes a duplicate impossible on every database.
JSON columns are JSONB on Postgres and JSON on SQLite.
"""

from datetime import datetime
from typing import Any, Optional

from sqlalchemy import JSON, BigInteger, Integer, DateTime, Index, MetaData, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

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
    source_key: Mapped[str] = mapped_column(String(64), unique=True)
    run_id: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class Error(Base):
    """A record that did not make it, with the reason (``message``) as JSON."""

    __tablename__ = "errors"
    __table_args__ = (Index("ix_errors_run_id", "run_id"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    source_key: Mapped[str] = mapped_column(String(64), unique=True)
    run_id: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(BigInteger)
    message: Mapped[Any] = mapped_column(PortableJSON)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    resolved_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
