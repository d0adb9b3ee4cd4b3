"""Objects of S3 buckets as a run's inputs (``ingest load s3://bucket/prefix/``).

A ``sources`` row of an object records what a chunk's ranged reads must still find: its
``etag`` and, where the bucket keeps versions and the object was named by its key, its
``version_id`` (reads are conditional on them, If-Match). ``compression`` is ``gzip`` for an
object whose pieces are ranges of its decompressed bytes (a chunk's process then reads a
decompressed copy of it). All three are null for files and API pages.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-12
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("etag", sa.Text(), nullable=True))
        batch.add_column(sa.Column("version_id", sa.Text(), nullable=True))
        batch.add_column(sa.Column("compression", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("compression")
        batch.drop_column("version_id")
        batch.drop_column("etag")
