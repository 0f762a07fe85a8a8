"""The master's tables, as SQLAlchemy Core metadata. Alembic migrations are made from this.

Times are stored as naive UTC (``UTCDateTime``) so SQLite, PostgreSQL and MySQL compare
them the same way; they come back as aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect

from jobmaster.options import OPTIONS

PREFIX = "jobmaster_"
VERSION_TABLE = "jobmaster_alembic_version"

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """An aware UTC datetime, stored naive (microseconds kept on every backend)."""

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in {"mysql", "mariadb"}:
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _blob() -> sa.types.TypeEngine[bytes]:
    return sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


def _text() -> sa.types.TypeEngine[str]:
    return sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


_OPTION_TYPES: dict[str, Callable[[], Any]] = {
    "string": lambda: sa.String(100), "smallint": lambda: sa.SmallInteger,
    "integer": lambda: sa.Integer, "double": lambda: sa.Double, "json": lambda: sa.JSON,
    "timestamp": lambda: UTCDateTime,
}


MIGRATION_ONLY = frozenset({"ix_jobmaster_jobs_meta"})
"""Objects the migrations make that the metadata does not declare: PostgreSQL's GIN
expression index on ``meta::jsonb`` (0007). Comparisons of the schema with the metadata
leave them out (``include_object``)."""


def include_object(obj: Any, name: str | None, type_: str, reflected: bool,
                   compare_to: Any) -> bool:
    """Alembic's ``include_object`` hook: everything but ``MIGRATION_ONLY``."""
    return name not in MIGRATION_ONLY


def option_columns() -> list[sa.Column[Any]]:
    """The columns of the job options the master stores, from ``jobmaster.options``."""
    return [sa.Column(spec.column, _OPTION_TYPES[spec.sql](), nullable=spec.nullable)
            for spec in OPTIONS.values() if spec.column is not None]


jobs = sa.Table(
    f"{PREFIX}jobs",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("cluster", sa.String(100), nullable=False),
    sa.Column("definition_id", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("encoding", sa.String(16), nullable=False),
    sa.Column("payload", _blob(), nullable=False),
    sa.Column("job_key", sa.String(200), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    *option_columns(),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("scheduled_at", UTCDateTime, nullable=True),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("worker", sa.String(200), nullable=True),
    sa.Column("error_type", sa.String(200), nullable=True),
    sa.Column("error_message", _text(), nullable=True),
    sa.Column("error_traceback", _text(), nullable=True),
    sa.Column("result", _blob(), nullable=True),
    sa.Column("progress", sa.SmallInteger, nullable=True),
    sa.Column("progress_message", sa.String(500), nullable=True),
    sa.Column("schedule_name", sa.String(200), nullable=True),
    sa.Column("occurrence", UTCDateTime, nullable=True),
    sa.UniqueConstraint("cluster", "job_key"),
    sa.UniqueConstraint("cluster", "schedule_name", "occurrence"),
    sa.Index(None, "status", "scheduled_at"),
    # app.jobs.list/count: newest first with keyset paging on (created_at, id), one index
    # per equality filter so a page is an index range whatever the filter (migration 0003)
    sa.Index(None, "cluster", "created_at", "id"),
    sa.Index(None, "cluster", "status", "created_at", "id"),
    sa.Index(None, "cluster", "definition_id", "created_at", "id"),
    # and on PostgreSQL only, a GIN index on meta::jsonb for jobs that carry metadata
    # (migration 0007; an expression index, so it is not declared here)
)
"""Every job ever accepted, with its latest status, outcome and timings."""

attempts = sa.Table(
    f"{PREFIX}attempts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("job_id", sa.String(36), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("worker", sa.String(200), nullable=True),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("finished_at", UTCDateTime, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("error_type", sa.String(200), nullable=True),
    sa.Column("error_message", _text(), nullable=True),
    sa.Column("error_traceback", _text(), nullable=True),
    sa.Index(None, "job_id"),
)
"""One row per failed, timed-out or lost attempt: the error history of a job."""

events = sa.Table(
    f"{PREFIX}events",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
              autoincrement=True),
    sa.Column("job_id", sa.String(36), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("worker", sa.String(200), nullable=True),
    sa.Column("error_type", sa.String(200), nullable=True),
    sa.Column("error_message", sa.String(2000), nullable=True),
    sa.Column("reason", sa.String(500), nullable=True),
    sa.Index(None, "job_id", "at"),
)
"""The audit trail: one row per status a job entered (``at``, on which ``worker``, in which
``attempt``, with the error and a reason), written with the job's own record."""

schedules = sa.Table(
    f"{PREFIX}schedules",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("cluster", sa.String(100), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("definition_id", sa.String(200), nullable=False),
    sa.Column("expression", sa.String(500), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("encoding", sa.String(16), nullable=False),
    sa.Column("payload", _blob(), nullable=False),
    sa.Column("options", sa.JSON, nullable=False),
    sa.Column("static", sa.Boolean, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("paused", sa.Boolean, nullable=False),
    sa.Column("start_at", UTCDateTime, nullable=True),
    sa.Column("end_at", UTCDateTime, nullable=True),
    sa.Column("next_fire_at", UTCDateTime, nullable=True),
    sa.Column("last_fire_at", UTCDateTime, nullable=True),
    sa.Column("last_job_id", sa.String(36), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("cluster", "name"),
    sa.Index(None, "cluster", "active", "next_fire_at"),
)
"""Recurring schedules: static ones ensured from code, dynamic ones created at runtime."""

leases = sa.Table(
    f"{PREFIX}leases",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=True),
    sa.Column("epoch", sa.BigInteger, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)
"""Named leases with a fencing epoch (beat's leadership)."""

workers = sa.Table(
    f"{PREFIX}workers",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("cluster", sa.String(100), nullable=False),
    sa.Column("hostname", sa.String(200), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("agent", sa.String(100), nullable=False),
    sa.Column("lanes", sa.JSON, nullable=False),
    sa.Column("concurrency", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("last_seen", UTCDateTime, nullable=False),
    sa.Column("processed", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("pool", sa.String(16), nullable=True),
    sa.Column("version", sa.String(64), nullable=True),
    sa.Column("running", sa.JSON, nullable=True),
)
"""Workers seen by the master, with their last heartbeat: pool kind, jobmaster version and
the ids of the jobs running on them at that heartbeat (``running``)."""

definitions = sa.Table(
    f"{PREFIX}definitions",
    metadata,
    sa.Column("cluster", sa.String(100), primary_key=True),
    sa.Column("definition_id", sa.String(200), primary_key=True),
    sa.Column("parameters", sa.JSON, nullable=False),
    sa.Column("options", sa.JSON, nullable=False),
    sa.Column("lanes", sa.JSON, nullable=False),
    sa.Column("hostname", sa.String(200), nullable=False),
    sa.Column("worker", sa.String(200), nullable=False),
    sa.Column("registered_at", UTCDateTime, nullable=False),
    sa.Column("last_seen", UTCDateTime, nullable=False),
)
"""The registry of job definitions: what the workers of a cluster registered (parameters,
options, lanes served), so producers without the code can enqueue by id."""

workflow_steps = sa.Table(
    f"{PREFIX}workflow_steps",
    metadata,
    sa.Column("job_id", sa.String(36), primary_key=True),
    sa.Column("workflow_id", sa.String(36), nullable=False),
    sa.Column("cluster", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("trigger", sa.String(16), nullable=False),
    sa.Column("argument", sa.String(16), nullable=False),
    sa.Column("parameter", sa.String(200), nullable=True),
    sa.Column("delay", sa.Double, nullable=True),
    sa.Column("not_before", UTCDateTime, nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index(None, "cluster", "state"),
    sa.Index(None, "workflow_id"),
)
"""Jobs of a workflow (chain, group, chord, link) that wait for other jobs: held in
``jobmaster_jobs`` as ``scheduled`` with no time until released. ``kind`` says why it waits
(``chain``, ``chord``, ``link``, ``errback``), ``trigger`` on what (``success`` of every
parent, or ``failure`` of one), ``argument`` what it receives as its first positional
argument (``nothing``, ``result``, ``results``, ``job_id``) and ``parameter`` the name that
argument binds to; ``delay``/``not_before`` hold its countdown and eta; ``state`` is
``waiting`` until released or abandoned (a conditional update decides, exactly once)."""

workflow_parents = sa.Table(
    f"{PREFIX}workflow_parents",
    metadata,
    sa.Column("job_id", sa.String(36), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("parent_id", sa.String(36), nullable=False),
    sa.Index(None, "parent_id"),
)
"""The jobs a waiting workflow step waits for, in order (a chord's results keep it)."""

stats = sa.Table(
    f"{PREFIX}stats",
    metadata,
    sa.Column("cluster", sa.String(100), primary_key=True),
    sa.Column("minute", UTCDateTime, primary_key=True),
    sa.Column("definition_id", sa.String(200), primary_key=True),
    sa.Column("worker", sa.String(200), primary_key=True),
    sa.Column("started", sa.Integer, nullable=False),
    sa.Column("succeeded", sa.Integer, nullable=False),
    sa.Column("failed", sa.Integer, nullable=False),
    sa.Column("retried", sa.Integer, nullable=False),
    sa.Column("cancelled", sa.Integer, nullable=False),
    sa.Column("wait_ms", sa.BigInteger, nullable=False),
    sa.Column("run_ms", sa.BigInteger, nullable=False),
    sa.Index(None, "cluster", "minute"),
)
"""Per-minute totals the workers add to with each batch they record: jobs started,
finished by outcome, and the summed queue wait (start - due) and run time, in
milliseconds. A row per worker, so workers never wait on each other's counters."""

lanes = sa.Table(
    f"{PREFIX}lanes",
    metadata,
    sa.Column("cluster", sa.String(100), primary_key=True),
    sa.Column("lane", sa.String(100), primary_key=True),
    sa.Column("paused", sa.Boolean, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)
"""Lanes an operator paused: workers claim nothing from them until they are resumed."""
