"""Schedules' ticks (``ingest schedule``).

``ingest_schedules`` counts what each schedule's ticks did (runs started, ticks skipped,
unchanged or failed) and keeps its last tick; ``ingest_schedule_runs`` names the schedule and
tick of every run a tick started. The schedules themselves live in DBOS's system database.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingest_schedules",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("last_tick", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_outcome", sa.Text(), nullable=True),
        sa.Column("last_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ingest_schedules")),
    )
    op.create_table(
        "ingest_schedule_runs",
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("schedule", sa.Text(), nullable=False),
        sa.Column("tick", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_ingest_schedule_runs")),
    )
    op.create_index(op.f("ix_ingest_schedule_runs_schedule"), "ingest_schedule_runs",
                    ["schedule"])


def downgrade() -> None:
    op.drop_index(op.f("ix_ingest_schedule_runs_schedule"), table_name="ingest_schedule_runs")
    op.drop_table("ingest_schedule_runs")
    op.drop_table("ingest_schedules")
