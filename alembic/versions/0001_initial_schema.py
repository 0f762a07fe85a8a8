"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 15:12:22.872202
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import jobmaster.master.schema

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobmaster_attempts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("started_at", jobmaster.master.schema.UTCDateTime(), nullable=True),
        sa.Column("finished_at", jobmaster.master.schema.UTCDateTime(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error_type", sa.String(length=200), nullable=True),
        sa.Column(
            "error_message",
            sa.Text()
            .with_variant(mysql.MEDIUMTEXT(), "mariadb")
            .with_variant(mysql.MEDIUMTEXT(), "mysql"),
            nullable=True,
        ),
        sa.Column(
            "error_traceback",
            sa.Text()
            .with_variant(mysql.MEDIUMTEXT(), "mariadb")
            .with_variant(mysql.MEDIUMTEXT(), "mysql"),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobmaster_attempts")),
    )
    with op.batch_alter_table("jobmaster_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_jobmaster_attempts_job_id"), ["job_id"], unique=False)

    op.create_table(
        "jobmaster_jobs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("cluster", sa.String(length=100), nullable=False),
        sa.Column("definition_id", sa.String(length=200), nullable=False),
        sa.Column("lane", sa.String(length=100), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("agent", sa.String(length=100), nullable=True),
        sa.Column("encoding", sa.String(length=16), nullable=False),
        sa.Column(
            "payload",
            sa.LargeBinary()
            .with_variant(mysql.LONGBLOB(), "mariadb")
            .with_variant(mysql.LONGBLOB(), "mysql"),
            nullable=False,
        ),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("job_key", sa.String(length=200), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("max_retries", sa.Integer(), nullable=False),
        sa.Column("timeout", sa.Double(), nullable=True),
        sa.Column("retry_delay", sa.Double(), nullable=False),
        sa.Column("retry_backoff", sa.Double(), nullable=False),
        sa.Column("created_at", jobmaster.master.schema.UTCDateTime(), nullable=False),
        sa.Column("scheduled_at", jobmaster.master.schema.UTCDateTime(), nullable=True),
        sa.Column("started_at", jobmaster.master.schema.UTCDateTime(), nullable=True),
        sa.Column("finished_at", jobmaster.master.schema.UTCDateTime(), nullable=True),
        sa.Column("updated_at", jobmaster.master.schema.UTCDateTime(), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("error_type", sa.String(length=200), nullable=True),
        sa.Column(
            "error_message",
            sa.Text()
            .with_variant(mysql.MEDIUMTEXT(), "mariadb")
            .with_variant(mysql.MEDIUMTEXT(), "mysql"),
            nullable=True,
        ),
        sa.Column(
            "error_traceback",
            sa.Text()
            .with_variant(mysql.MEDIUMTEXT(), "mariadb")
            .with_variant(mysql.MEDIUMTEXT(), "mysql"),
            nullable=True,
        ),
        sa.Column(
            "result",
            sa.LargeBinary()
            .with_variant(mysql.LONGBLOB(), "mariadb")
            .with_variant(mysql.LONGBLOB(), "mysql"),
            nullable=True,
        ),
        sa.Column("progress", sa.SmallInteger(), nullable=True),
        sa.Column("progress_message", sa.String(length=500), nullable=True),
        sa.Column("schedule_name", sa.String(length=200), nullable=True),
        sa.Column("occurrence", jobmaster.master.schema.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobmaster_jobs")),
        sa.UniqueConstraint("cluster", "job_key", name=op.f("uq_jobmaster_jobs_cluster_job_key")),
        sa.UniqueConstraint(
            "cluster",
            "schedule_name",
            "occurrence",
            name=op.f("uq_jobmaster_jobs_cluster_schedule_name_occurrence"),
        ),
    )
    with op.batch_alter_table("jobmaster_jobs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_jobmaster_jobs_cluster_created_at"),
            ["cluster", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_jobmaster_jobs_cluster_definition_id_status"),
            ["cluster", "definition_id", "status"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_jobmaster_jobs_status_scheduled_at"),
            ["status", "scheduled_at"],
            unique=False,
        )

    op.create_table(
        "jobmaster_leases",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=True),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", jobmaster.master.schema.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_jobmaster_leases")),
    )
    op.create_table(
        "jobmaster_schedules",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("cluster", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("definition_id", sa.String(length=200), nullable=False),
        sa.Column("expression", sa.String(length=500), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("encoding", sa.String(length=16), nullable=False),
        sa.Column(
            "payload",
            sa.LargeBinary()
            .with_variant(mysql.LONGBLOB(), "mariadb")
            .with_variant(mysql.LONGBLOB(), "mysql"),
            nullable=False,
        ),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("static", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("start_at", jobmaster.master.schema.UTCDateTime(), nullable=True),
        sa.Column("end_at", jobmaster.master.schema.UTCDateTime(), nullable=True),
        sa.Column("next_fire_at", jobmaster.master.schema.UTCDateTime(), nullable=True),
        sa.Column("last_fire_at", jobmaster.master.schema.UTCDateTime(), nullable=True),
        sa.Column("last_job_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", jobmaster.master.schema.UTCDateTime(), nullable=False),
        sa.Column("updated_at", jobmaster.master.schema.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobmaster_schedules")),
        sa.UniqueConstraint("cluster", "name", name=op.f("uq_jobmaster_schedules_cluster_name")),
    )
    with op.batch_alter_table("jobmaster_schedules", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_jobmaster_schedules_cluster_active_next_fire_at"),
            ["cluster", "active", "next_fire_at"],
            unique=False,
        )

    op.create_table(
        "jobmaster_workers",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("cluster", sa.String(length=100), nullable=False),
        sa.Column("hostname", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("agent", sa.String(length=100), nullable=False),
        sa.Column("lanes", sa.JSON(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", jobmaster.master.schema.UTCDateTime(), nullable=False),
        sa.Column("last_seen", jobmaster.master.schema.UTCDateTime(), nullable=False),
        sa.Column("processed", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobmaster_workers")),
    )


def downgrade() -> None:
    op.drop_table("jobmaster_workers")
    with op.batch_alter_table("jobmaster_schedules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobmaster_schedules_cluster_active_next_fire_at"))

    op.drop_table("jobmaster_schedules")
    op.drop_table("jobmaster_leases")
    with op.batch_alter_table("jobmaster_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobmaster_jobs_status_scheduled_at"))
        batch_op.drop_index(batch_op.f("ix_jobmaster_jobs_cluster_definition_id_status"))
        batch_op.drop_index(batch_op.f("ix_jobmaster_jobs_cluster_created_at"))

    op.drop_table("jobmaster_jobs")
    with op.batch_alter_table("jobmaster_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobmaster_attempts_job_id"))

    op.drop_table("jobmaster_attempts")
