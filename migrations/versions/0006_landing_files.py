"""Files of landing folders that grow, are rewritten or are still being written.

Each ``sources`` row of a local file now says where it was found (``origin``: its absolute
path, indexed, so the next run finds what was loaded at that path), which of its bytes its
fingerprint covers (``covered``: an unfinished last NDJSON line is not, see ``held_back``),
where its records' positions start (``first_position``: past the records of the version it
grew from) and how it relates to what was loaded at the same path before (``change``:
``grown`` or ``rewritten``, ``previous``: that version's fingerprint).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("origin", sa.Text(), nullable=True))
        batch.add_column(sa.Column("covered", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("first_position", sa.BigInteger(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("held_back", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("change", sa.String(16), nullable=True))
        batch.add_column(sa.Column("previous", sa.String(64), nullable=True))
    op.create_index("ix_sources_origin", "sources", ["origin"])


def downgrade() -> None:
    op.drop_index("ix_sources_origin", table_name="sources")
    with op.batch_alter_table("sources") as batch:
        for column in ("previous", "change", "held_back", "first_position", "covered", "origin"):
            batch.drop_column(column)
