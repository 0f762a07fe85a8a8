"""jobs: per-job retry_backoff_max and retry_jitter

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobmaster_jobs", sa.Column("retry_backoff_max", sa.Double(), nullable=True))
    op.add_column("jobmaster_jobs", sa.Column("retry_jitter", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobmaster_jobs") as batch:
        batch.drop_column("retry_jitter")
        batch.drop_column("retry_backoff_max")
