"""Column type hints of dataset tables (``ingest load --table NAME --column FIELD=TYPE``).

``ingest_column_hints`` keeps, per table and field path, the type a load asked the field's
column to have (``total=decimal``: exact sums on Postgres), so that every later load into
the table creates that column with it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-09
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingest_column_hints",
        sa.Column("table_name", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("added_by", sa.Text(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("table_name", "path", name=op.f("pk_ingest_column_hints")),
    )


def downgrade() -> None:
    op.drop_table("ingest_column_hints")
