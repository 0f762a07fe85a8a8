"""definitions: the registry of job definitions workers registered

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 02:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import jobmaster.master.schema

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobmaster_definitions",
        sa.Column("cluster", sa.String(length=100), nullable=False),
        sa.Column("definition_id", sa.String(length=200), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("lanes", sa.JSON(), nullable=False),
        sa.Column("hostname", sa.String(length=200), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=False),
        sa.Column("registered_at", jobmaster.master.schema.UTCDateTime(), nullable=False),
        sa.Column("last_seen", jobmaster.master.schema.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("cluster", "definition_id",
                                name=op.f("pk_jobmaster_definitions")),
    )


def downgrade() -> None:
    op.drop_table("jobmaster_definitions")
