"""Records identified by a field of their own (``ingest load --key``).

``tasks.ordinal``: the file (its ordinal in the run's ``sources``) a row's record came from,
so that when a key appears twice in one run, the record later in the input wins
(``--on-conflict update``) or the earlier one stays (``skip``), whatever order chunks commit
in. ``source_key`` becomes unbounded text: a key is the user's value, not a 20-digit
fingerprint and a position. SQLite does not enforce a VARCHAR length, so only Postgres
changes the type.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("ordinal", sa.BigInteger(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        for table in ("tasks", "errors"):
            op.alter_column(table, "source_key", type_=sa.Text(), existing_type=sa.String(64),
                            existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("tasks", "errors"):
            op.alter_column(table, "source_key", type_=sa.String(64), existing_type=sa.Text(),
                            existing_nullable=False)
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("ordinal")
