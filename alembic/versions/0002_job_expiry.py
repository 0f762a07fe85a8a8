"""jobs: expires_at (the job option ``expires``)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import jobmaster.master.schema

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobmaster_jobs",
                  sa.Column("expires_at", jobmaster.master.schema.UTCDateTime(), nullable=True))


def downgrade() -> None:
    op.drop_column("jobmaster_jobs", "expires_at")
