"""Pausing a lane with real workers, and the per-minute totals they keep, on SQLite,
PostgreSQL and MySQL masters."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from jobmaster import App, ConfigurationError, JobStatus
from tests.conftest import Stack, wait_until


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def stack(request: pytest.FixtureRequest, stack_factory: Callable[..., Stack]) -> Stack:
    return stack_factory(request.param, heartbeat="0.2")


def test_a_paused_lane_keeps_its_jobs_until_resumed(stack: Stack) -> None:
    app: App = stack.app()
    app.migrate()
    app.lanes.pause("default")
    assert app.lanes.paused() == {"default"}
    held = app.definition("add").delay(x=1, y=1)
    other = app.definition("add").apply(kwargs={"x": 2, "y": 2}, lane="other")  # not paused
    stack.worker("-c", "1", "--lane", "default,other")
    assert other.wait(timeout=30).status is JobStatus.SUCCEEDED
    assert held.status() is JobStatus.QUEUED
    [depth] = [d for d in app.lanes.depths() if d.lane == "default" and d.depth]
    assert depth.paused and depth.depth == 1
    app.lanes.resume("default")
    assert held.wait(timeout=30).result == 2
    assert app.lanes.paused() == set()
    assert "lanes paused default" in stack.worker_log()
    with pytest.raises(ConfigurationError, match="lane"):
        app.lanes.pause("bad lane!")


def test_workers_keep_per_minute_totals(stack: Stack) -> None:
    app: App = stack.app()
    app.migrate()
    handles = [app.definition("add").delay(x=i, y=1) for i in range(30)]
    failing = app.definition("always-fails").delay()
    stack.worker("-c", "2")
    for handle in handles:
        handle.wait(timeout=30)
    failing.wait(timeout=30)
    now = datetime.now(UTC)

    def counted() -> bool:
        minutes = app.master.stats_minutes(app.name, since=now - timedelta(minutes=5),
                                           until=now)
        return sum(m.succeeded for m in minutes) == 30 and sum(m.failed for m in minutes) == 1

    wait_until(counted, 10, "the totals of the jobs that ran")
    minutes = app.master.stats_minutes(app.name, since=now - timedelta(minutes=5), until=now)
    assert len(minutes) == 6 and minutes == sorted(minutes, key=lambda m: m.minute)
    assert sum(m.started for m in minutes) == 33  # 30, and three tries of the failing one
    assert sum(m.retried for m in minutes) == 2
    assert all(m.mean_wait is None or m.mean_wait >= 0 for m in minutes)
    only = app.master.stats_minutes(app.name, since=now - timedelta(minutes=5), until=now,
                                    definition_id="always-fails")
    assert sum(m.failed for m in only) == 1 and sum(m.succeeded for m in only) == 0
