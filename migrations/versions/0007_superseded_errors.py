"""A keyed record's earlier failures stay in ``errors``, marked superseded.

Under ``--key`` an ``errors`` row is filed under the record's key, unique per table. A new
failure of a key used to overwrite its row; now the earlier row is moved aside (its
``source_key`` suffixed with ``#superseded-ID``), marked ``superseded_at`` and closed
(``resolved_at``: ``ingest retry`` does not redrive it), and the new failure gets a row of
its own: the audit history stays.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("errors") as batch:
        batch.add_column(sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("errors") as batch:
        batch.drop_column("superseded_at")
