"""workers: pool kind, jobmaster version, running job ids

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobmaster_workers", sa.Column("pool", sa.String(16), nullable=True))
    op.add_column("jobmaster_workers", sa.Column("version", sa.String(64), nullable=True))
    op.add_column("jobmaster_workers", sa.Column("running", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobmaster_workers") as batch:
        batch.drop_column("running")
        batch.drop_column("version")
        batch.drop_column("pool")
