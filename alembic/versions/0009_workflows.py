"""workflows: waiting steps of chains, groups, chords and links, and their parents

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from jobmaster.master.schema import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobmaster_workflow_steps",
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("workflow_id", sa.String(36), nullable=False),
        sa.Column("cluster", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("argument", sa.String(16), nullable=False),
        sa.Column("parameter", sa.String(200), nullable=True),
        sa.Column("delay", sa.Double(), nullable=True),
        sa.Column("not_before", UTCDateTime(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", name="pk_jobmaster_workflow_steps"),
    )
    op.create_index("ix_jobmaster_workflow_steps_cluster_state", "jobmaster_workflow_steps",
                    ["cluster", "state"])
    op.create_index("ix_jobmaster_workflow_steps_workflow_id", "jobmaster_workflow_steps",
                    ["workflow_id"])
    op.create_table(
        "jobmaster_workflow_parents",
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("parent_id", sa.String(36), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "position", name="pk_jobmaster_workflow_parents"),
    )
    op.create_index("ix_jobmaster_workflow_parents_parent_id", "jobmaster_workflow_parents",
                    ["parent_id"])


def downgrade() -> None:
    op.drop_index("ix_jobmaster_workflow_parents_parent_id",
                  table_name="jobmaster_workflow_parents")
    op.drop_table("jobmaster_workflow_parents")
    op.drop_index("ix_jobmaster_workflow_steps_workflow_id",
                  table_name="jobmaster_workflow_steps")
    op.drop_index("ix_jobmaster_workflow_steps_cluster_state",
                  table_name="jobmaster_workflow_steps")
    op.drop_table("jobmaster_workflow_steps")
