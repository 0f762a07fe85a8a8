"""Fan-out with real worker processes: a query job streams its items into jobs of another
definition in batches, each item exactly once even when the same query runs again; async
generators too; a schedule for the query — on SQLite and PostgreSQL + Redis."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from jobmaster import App, DefinitionError, JobStatus
from jobmaster.fanout import batches, item_job_id
from tests.conftest import Stack, wait_until

APP = "tests.fixtures.fanoutapp"


@pytest.fixture(params=["sqlite", "redis"])
def stack(request: pytest.FixtureRequest, stack_factory: Callable[..., Stack]) -> Stack:
    return stack_factory(request.param)


def notified(stack: Stack) -> list[int]:
    return sorted(int(line.split()[1]) for line in stack.lines() if line.startswith("notify"))


def test_each_item_becomes_one_job_even_when_the_query_runs_again(stack: Stack) -> None:
    app: App = stack.app(APP)
    stack.worker("-c", "2", app=APP)
    query = app.fan_out_now("users-to-notify", count=250)
    assert query.get(timeout=60) == {"items": 250, "enqueued": 250}
    wait_until(lambda: len(notified(stack)) >= 250, timeout=60, what="250 item jobs to run")
    assert notified(stack) == list(range(250))
    item = app.jobs.get(item_job_id(query.id, 7))
    assert item.definition_id == "notify" and item.kwargs == {"user_id": 7}
    assert item.status is JobStatus.SUCCEEDED

    again = app.jobs.retry(query.id)  # the same query job runs again (as after a crash)
    assert again.get(timeout=60) == {"items": 250, "enqueued": 0}
    assert app.jobs.count(definition_id="notify") == 250
    assert notified(stack) == list(range(250))  # no item ran twice


def test_async_query_and_its_schedule(stack: Stack) -> None:
    app: App = stack.app(APP)
    assert "daily-notify" in app.static_schedules  # on its schedule, by beat
    stack.worker("-c", "1", app=APP)
    query = app.fan_out_now("daily-notify", count=120)
    assert query.get(timeout=60) == {"items": 120, "enqueued": 120}
    wait_until(lambda: len(notified(stack)) >= 120, timeout=60, what="the async items")
    assert notified(stack) == list(range(1000, 1120))
    bad = app.fan_out_now("bad-items")
    failed = bad.wait(timeout=60)
    assert failed.status is JobStatus.FAILED and failed.error is not None
    assert "item 1 is a str, not a dict of arguments" in failed.error.message


def test_fan_out_is_checked_when_declared(tmp_path: object) -> None:
    app = App("fan", master="sqlite:///:memory:", agents={"main": "memory://fan"})
    app.job(definition_id="t")(lambda x: x)
    with pytest.raises(DefinitionError, match="must be a generator"):
        app.fan_out(None, job="t", name="q")(lambda: [{"x": 1}])
    with pytest.raises(DefinitionError, match="batch_size=0"):
        app.fan_out(None, job="t", name="q", batch_size=0)(lambda: (yield {"x": 1}))
    assert [len(b) for b in batches(range(7), 3)] == [3, 3, 1]
    assert item_job_id("q1", 0) == item_job_id("q1", 0) != item_job_id("q1", 1)
