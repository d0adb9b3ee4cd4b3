"""A small summary row per finished run (``ingest_runs``), so that a run stays visible once
``ingest gc`` has deleted its DBOS history.

The run's workflow writes its row when it finishes, in a datasource transaction checkpointed
with it (exactly once); ``ingest gc`` writes the rows of runs that finished before this
migration from their DBOS output, before it deletes anything. ``job`` is the run's ``Job``
as JSON (``ingest retry`` runs a gc'd run's errors through its transform again); ``redrives``
folds in the counts of the run's ``ingest retry`` workflows gc deleted (keyed by workflow
and creation time, so that folding them again changes nothing).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

PortableJSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "ingest_runs",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("inputs", sa.Text(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=False),
        sa.Column("summary", PortableJSON, nullable=False),
        sa.Column("job", PortableJSON, nullable=True),
        sa.Column("urls", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("redrives", PortableJSON, nullable=True),
        sa.Column("written_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_ingest_runs")),
    )
    op.create_index(op.f("ix_ingest_runs_started_at"), "ingest_runs", ["started_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_ingest_runs_started_at"), table_name="ingest_runs")
    op.drop_table("ingest_runs")
