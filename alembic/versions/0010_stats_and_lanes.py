"""stats: per-minute totals the workers add to; lanes: paused lanes

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 07:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from jobmaster.master.schema import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobmaster_stats",
        sa.Column("cluster", sa.String(100), nullable=False),
        sa.Column("minute", UTCDateTime(), nullable=False),
        sa.Column("definition_id", sa.String(200), nullable=False),
        sa.Column("worker", sa.String(200), nullable=False),
        sa.Column("started", sa.Integer(), nullable=False),
        sa.Column("succeeded", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("retried", sa.Integer(), nullable=False),
        sa.Column("cancelled", sa.Integer(), nullable=False),
        sa.Column("wait_ms", sa.BigInteger(), nullable=False),
        sa.Column("run_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("cluster", "minute", "definition_id", "worker",
                                name="pk_jobmaster_stats"),
    )
    op.create_index("ix_jobmaster_stats_cluster_minute", "jobmaster_stats",
                    ["cluster", "minute"])
    op.create_table(
        "jobmaster_lanes",
        sa.Column("cluster", sa.String(100), nullable=False),
        sa.Column("lane", sa.String(100), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("cluster", "lane", name="pk_jobmaster_lanes"),
    )


def downgrade() -> None:
    op.drop_table("jobmaster_lanes")
    op.drop_index("ix_jobmaster_stats_cluster_minute", table_name="jobmaster_stats")
    op.drop_table("jobmaster_stats")
