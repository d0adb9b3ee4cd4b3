"""Add sources (the files of each run) and contents (one claim per file content).

Contents already loaded before this revision are claimed by the run that loaded them, so a
file loaded by an earlier version is not loaded a second time.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

json_type = sa.JSON().with_variant(JSONB(), "postgresql")
row_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", row_id, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("ordinal", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("shape", sa.String(16), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=True),
        sa.Column("records", sa.BigInteger(), nullable=False),
        sa.Column("pieces", json_type, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("loaded_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sources")),
        sa.UniqueConstraint("run_id", "ordinal", name=op.f("uq_sources_run_id")),
    )
    op.create_table(
        "contents",
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("ordinal", sa.BigInteger(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_contents")),
    )
    # Source keys are "<fingerprint>:<position>": claim what earlier versions loaded.
    op.execute(
        "INSERT INTO contents (fingerprint, run_id, ordinal) "
        "SELECT substr(source_key, 1, 20), min(run_id), 0 FROM "
        "(SELECT source_key, run_id FROM tasks UNION ALL SELECT source_key, run_id FROM errors) AS k "
        "WHERE substr(source_key, 21, 1) = ':' GROUP BY substr(source_key, 1, 20)"
    )


def downgrade() -> None:
    op.drop_table("contents")
    op.drop_table("sources")
