"""job events: the audit trail of every status a job entered

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from jobmaster.master.schema import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobmaster_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(200), nullable=True),
        sa.Column("error_type", sa.String(200), nullable=True),
        sa.Column("error_message", sa.String(2000), nullable=True),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_jobmaster_events"),
    )
    op.create_index("ix_jobmaster_events_job_id_at", "jobmaster_events", ["job_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_jobmaster_events_job_id_at", table_name="jobmaster_events")
    op.drop_table("jobmaster_events")
