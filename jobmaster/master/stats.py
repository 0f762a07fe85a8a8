"""Per-minute totals of a cluster's work (``jobmaster_stats``), for the dashboard's charts.

Workers add to them with every batch they record, in the same transaction, so a chart is a
read of a few hundred small rows rather than a scan of the jobs table. Each worker adds to
rows of its own, so workers never wait on each other's counters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from jobmaster.master.schema import stats
from jobmaster.models import JobStatus

COUNTERS = ("started", "succeeded", "failed", "retried", "cancelled", "wait_ms", "run_ms")

_OUTCOMES = {JobStatus.SUCCEEDED.value: "succeeded", JobStatus.FAILED.value: "failed",
             JobStatus.RETRYING.value: "retried", JobStatus.CANCELLED.value: "cancelled"}


def totals(rows: Sequence[Mapping[str, Any]], cluster_of: Mapping[str, str] | None = None
           ) -> list[dict[str, Any]]:
    """What a batch of job records adds to the per-minute totals: one row per minute,
    definition and worker. A record counts its starts (``attempts``) with their queue wait
    (start minus due), and its outcome if it ended (with its run time)."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        outcome = _OUTCOMES.get(row["status"])
        starts = row.get("attempts") or 0
        if not starts and outcome is None:
            continue
        started, finished = row.get("started_at"), row.get("finished_at")
        at = finished or started or row["updated_at"]
        minute = _aware(at).replace(second=0, microsecond=0)
        key = (row["cluster"], minute, row["definition_id"], row.get("worker") or "")
        total = out.get(key)
        if total is None:
            total = out[key] = {"cluster": key[0], "minute": minute, "definition_id": key[2],
                                "worker": key[3], **dict.fromkeys(COUNTERS, 0)}
        if starts:
            total["started"] += starts
            due = row.get("scheduled_at")
            if started is not None and due is not None:
                total["wait_ms"] += max(0, _ms(_aware(started) - _aware(due)))
        if outcome is not None:
            total[outcome] += 1
            if started is not None and finished is not None:
                total["run_ms"] += max(0, _ms(_aware(finished) - _aware(started)))
    return sorted(out.values(), key=lambda t: (t["minute"], t["definition_id"]))


def add(conn: sa.Connection, dialect: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Add ``totals`` rows to the table (an upsert that sums)."""
    if not rows:
        return
    if dialect == "mysql":
        stmt = mysql.insert(stats)
        conn.execute(stmt.on_duplicate_key_update(
            **{c: stats.c[c] + stmt.inserted[c] for c in COUNTERS}), list(rows))
        return
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(stats)
    conn.execute(insert.on_conflict_do_update(
        index_elements=[stats.c.cluster, stats.c.minute, stats.c.definition_id,
                        stats.c.worker],
        set_={c: stats.c[c] + insert.excluded[c] for c in COUNTERS}), list(rows))


@dataclass(frozen=True)
class Minute:
    """One minute of a cluster's work: jobs started and ended by outcome, and the mean
    queue wait and run time in seconds (``None`` when nothing started or ended)."""

    minute: datetime
    started: int
    succeeded: int
    failed: int
    retried: int
    cancelled: int
    mean_wait: float | None
    mean_run: float | None


def minutes(conn: sa.Connection, cluster: str, *, since: datetime, until: datetime,
            definition_id: str | None = None) -> list[Minute]:
    """Every minute from ``since`` up to ``until``, oldest first, summed over workers (and
    definitions unless one is named); minutes with no work are zeros."""
    since = since.replace(second=0, microsecond=0)
    query = sa.select(stats.c.minute, *(sa.func.sum(stats.c[c]) for c in COUNTERS)).where(
        stats.c.cluster == cluster, stats.c.minute >= since, stats.c.minute <= until
    ).group_by(stats.c.minute)
    if definition_id is not None:
        query = query.where(stats.c.definition_id == definition_id)
    found = {_aware(row[0]): [int(v or 0) for v in row[1:]] for row in conn.execute(query)}
    out = []
    at = _aware(since)
    while at <= _aware(until):
        started, succeeded, failed, retried, cancelled, wait_ms, run_ms = found.get(
            at, [0] * len(COUNTERS))
        ended = succeeded + failed + retried + cancelled
        out.append(Minute(at, started, succeeded, failed, retried, cancelled,
                          wait_ms / started / 1000 if started else None,
                          run_ms / ended / 1000 if ended else None))
        at += timedelta(minutes=1)
    return out


def prune(conn: sa.Connection, before: datetime) -> int:
    """Delete the totals of minutes before ``before``; how many rows went."""
    return int(conn.execute(stats.delete().where(stats.c.minute < before)).rowcount or 0)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ms(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)


__all__ = ["COUNTERS", "Minute", "add", "minutes", "prune", "totals"]
