"""What the dashboard reads from the master beyond the public API: each query is bounded
(an index range, a ``LIMIT``, or a time budget on PostgreSQL), so a page stays fast with
millions of jobs."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from jobmaster.master.schema import jobs, workflow_parents, workflow_steps
from jobmaster.models import JobStatus

if TYPE_CHECKING:
    from jobmaster.app import App

BUDGET_MS = 50
"""How long (PostgreSQL) a bounded read may take before it gives up and the page shows
that it does not know."""


PROBE_MS = 10
"""How long (PostgreSQL) ``oldest_due`` looks for one bucket's oldest job: a bucket whose
queued jobs are few among many others' is skipped rather than read to its end."""


def oldest_due(app: App, buckets: Sequence[tuple[str, int]]
               ) -> dict[tuple[str, int], datetime]:
    """When the longest-waiting queued job of each ``(lane, priority)`` was due. One
    transaction for all of them; on PostgreSQL each probe gets ``PROBE_MS`` and all
    together ``BUDGET_MS``: a bucket not found within them is left out (the page shows
    that it does not know)."""
    query = (sa.select(jobs.c.scheduled_at)
             .where(jobs.c.status == JobStatus.QUEUED.value, jobs.c.cluster == app.name,
                    jobs.c.lane == sa.bindparam("lane"),
                    jobs.c.priority == sa.bindparam("priority"))
             .order_by(jobs.c.scheduled_at).limit(1))
    engine = app.master.engine
    bounded = engine.dialect.name == "postgresql"
    deadline = time.monotonic() + BUDGET_MS / 1000
    found: dict[tuple[str, int], datetime] = {}
    pending = list(buckets)
    while pending:
        try:
            with engine.begin() as conn:
                if bounded:
                    conn.execute(sa.text(f"SET LOCAL statement_timeout = {PROBE_MS}"))
                while pending:
                    if bounded and time.monotonic() >= deadline:
                        return found
                    lane, priority = pending.pop(0)
                    value = conn.execute(query, {"lane": lane, "priority": priority}
                                         ).scalar()
                    if value is not None:
                        found[(lane, priority)] = _aware(value)
        except OperationalError as exc:  # that bucket took too long: on to the next
            if "statement timeout" not in str(exc.orig):
                raise
            if time.monotonic() >= deadline:
                break
    return found


@dataclass(frozen=True)
class Related:
    """A job's place in a workflow: the jobs it waited for, and the jobs waiting for it."""

    workflow_id: str | None
    parents: list[str]
    children: list[str]


def related(app: App, job_id: str, limit: int = 50) -> Related:
    """The workflow links of a job (none for a job outside any workflow)."""
    with app.master.engine.connect() as conn:
        workflow = conn.execute(sa.select(workflow_steps.c.workflow_id).where(
            workflow_steps.c.job_id == job_id)).scalar()
        parents = conn.execute(sa.select(workflow_parents.c.parent_id).where(
            workflow_parents.c.job_id == job_id).order_by(workflow_parents.c.position)
            .limit(limit)).scalars().all()
        children = conn.execute(sa.select(workflow_parents.c.job_id).where(
            workflow_parents.c.parent_id == job_id).limit(limit)).scalars().all()
    return Related(None if workflow is None else str(workflow), [str(p) for p in parents],
                   [str(c) for c in children])


def schedule_runs(app: App, name: str, limit: int = 20) -> list[dict[str, Any]]:
    """The latest jobs a schedule created, newest occurrence first (one index range)."""
    query = (sa.select(jobs.c.id, jobs.c.status, jobs.c.occurrence, jobs.c.started_at,
                       jobs.c.finished_at, jobs.c.error_type)
             .where(jobs.c.cluster == app.name, jobs.c.schedule_name == name)
             .order_by(jobs.c.occurrence.desc()).limit(limit))
    with app.master.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
    for row in rows:
        for key in ("occurrence", "started_at", "finished_at"):
            if row[key] is not None:
                row[key] = _aware(row[key])
    return rows


def ids_matching(app: App, filters: dict[str, Any], limit: int) -> list[str]:
    """Ids of the jobs a filter of the jobs page selects, newest first, at most ``limit``."""
    out: list[str] = []
    cursor = None
    while len(out) < limit:
        page = app.jobs.list(**filters, limit=min(1000, limit - len(out)), cursor=cursor)
        out.extend(job.id for job in page)
        cursor = page.next_cursor
        if cursor is None:
            break
    return out


def delete_jobs(app: App, ids: Sequence[str]) -> int:
    """Delete finished or not yet due (``scheduled``) jobs from the master with their
    history; how many went. Jobs an agent holds (queued, running, retrying) are left:
    cancel them first."""
    from jobmaster.master.schema import attempts, events

    if not ids:
        return 0
    with app.master.engine.begin() as conn:
        gone = [str(i) for i in conn.execute(sa.select(jobs.c.id).where(
            jobs.c.cluster == app.name, jobs.c.id.in_(list(ids)),
            jobs.c.status.in_(DELETABLE)
        )).scalars()]
        if gone:
            conn.execute(events.delete().where(events.c.job_id.in_(gone)))
            conn.execute(attempts.delete().where(attempts.c.job_id.in_(gone)))
            conn.execute(jobs.delete().where(jobs.c.id.in_(gone)))
    return len(gone)


DELETABLE = (JobStatus.SUCCEEDED.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value,
             JobStatus.SCHEDULED.value)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


__all__ = ["BUDGET_MS", "PROBE_MS", "Related", "delete_jobs", "ids_matching", "oldest_due",
           "related", "schedule_runs"]
