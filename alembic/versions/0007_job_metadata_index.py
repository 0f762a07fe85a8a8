"""jobs: a GIN index for metadata filters on PostgreSQL

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 04:30:00

``app.jobs.list(metadata={...})`` asks PostgreSQL ``meta::jsonb @> '{...}'``; this index
answers it for jobs that carry metadata (jobs without any are left out of it, so they cost
it nothing). Other databases filter metadata by scanning the matching jobs.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE INDEX IF NOT EXISTS ix_jobmaster_jobs_meta ON jobmaster_jobs "
                   "USING gin ((meta::jsonb) jsonb_path_ops) WHERE meta::jsonb <> '{}'::jsonb")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_jobmaster_jobs_meta")
