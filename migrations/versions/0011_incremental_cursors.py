"""Incremental loads' cursors (``ingest load --incremental FIELD``).

``ingest_cursors`` keeps, per URL input, table and field, the highest value that finished runs
loaded, as the source wrote it, and its type: the next run asks the API from it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingest_cursors",
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("table_name", sa.Text(), nullable=False),
        sa.Column("field", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("value_type", sa.Text(), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.PrimaryKeyConstraint("source", "table_name", "field", name=op.f("pk_ingest_cursors")),
    )


def downgrade() -> None:
    op.drop_table("ingest_cursors")
