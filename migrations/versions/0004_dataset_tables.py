"""Dataset tables (``ingest load --table NAME``) and exact error rows.

``ingest_tables`` and ``ingest_columns`` are the catalog of the tables a load creates at run
time (as dlt does: they are not migrated, their columns follow the data): each table's key,
and each column's field path, type and the run that added it. ``errors.table_name`` says
which table a failed record was bound for (``tasks`` for the demo's table), and a key is
unique per table; ``errors.source`` keeps the record's text exactly as it was in the input.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("errors") as batch:
        batch.add_column(sa.Column("table_name", sa.Text(), nullable=False, server_default="tasks"))
        batch.add_column(sa.Column("source", sa.Text(), nullable=True))
        batch.drop_constraint("uq_errors_source_key", type_="unique")
        batch.create_unique_constraint("uq_errors_table_name", ["table_name", "source_key"])
    op.create_table(
        "ingest_tables",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("key_path", sa.Text(), nullable=True),
        sa.Column("key_column", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ingest_tables")),
    )
    op.create_table(
        "ingest_columns",
        sa.Column("table_name", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("variant_of", sa.Text(), nullable=True),
        sa.Column("added_by", sa.Text(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("table_name", "name", name=op.f("pk_ingest_columns")),
    )


def downgrade() -> None:
    op.drop_table("ingest_columns")
    op.drop_table("ingest_tables")
    with op.batch_alter_table("errors") as batch:
        batch.drop_constraint("uq_errors_table_name", type_="unique")
        batch.create_unique_constraint("uq_errors_source_key", ["source_key"])
        batch.drop_column("source")
        batch.drop_column("table_name")
