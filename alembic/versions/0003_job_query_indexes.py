"""jobs: indexes for app.jobs.list/count (keyset order created_at, id)

Three indexes, not one per filter: a job's every status change rewrites an entry in each
index of the table, so each index costs every job's writes. Status and definition (the
filters an operator uses most) and time have their own; lane, priority, worker and
metadata filters walk the (cluster, created_at, id) index newest first.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 02:00:00

On a large PostgreSQL master, ``CREATE INDEX`` blocks writes to the jobs table while it
builds (about a second per index per million jobs); run ``jobmaster migrate`` at a quiet
moment, or create the indexes beforehand with ``CREATE INDEX CONCURRENTLY`` under the
same names (this migration then fails on the first one: drop them again or mark the
revision with ``alembic stamp``).
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLE = "jobmaster_jobs"
INDEXES = [
    ["cluster", "created_at", "id"],
    ["cluster", "status", "created_at", "id"],
    ["cluster", "definition_id", "created_at", "id"],
]


def _name(columns: list[str]) -> str:
    return op.f(f"ix_{TABLE}_{'_'.join(columns)}")


def upgrade() -> None:
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        for columns in INDEXES:
            batch_op.create_index(_name(columns), columns, unique=False)
        # superseded by (cluster, created_at, id) and (cluster, definition_id, created_at, id)
        batch_op.drop_index(_name(["cluster", "created_at"]))
        batch_op.drop_index(_name(["cluster", "definition_id", "status"]))


def downgrade() -> None:
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.create_index(_name(["cluster", "created_at"]), ["cluster", "created_at"],
                              unique=False)
        batch_op.create_index(_name(["cluster", "definition_id", "status"]),
                              ["cluster", "definition_id", "status"], unique=False)
        for columns in reversed(INDEXES):
            batch_op.drop_index(_name(columns))
