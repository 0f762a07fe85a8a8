"""``async def`` jobs with real worker processes: many at once on one worker process, with
the timeout, retry, progress and context of any job, beside plain jobs — on the embedded
default (SQLite) and on PostgreSQL + Redis."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest

from jobmaster import App, JobStatus
from tests.conftest import Stack

APP = "tests.fixtures.asyncapp"


@pytest.fixture(params=["sqlite", "redis"])
def stack(request: pytest.FixtureRequest, stack_factory: Callable[..., Stack]) -> Stack:
    return stack_factory(request.param)


def peak_overlap(spans: list[tuple[datetime, datetime]]) -> int:
    """The most runs in progress at one moment."""
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def test_one_process_runs_many_async_jobs_at_once(stack: Stack) -> None:
    app: App = stack.app(APP)
    handles = app.definition("nap").delay_many(
        [{"seconds": 0.1, "tag": str(i)} for i in range(300)])
    plain = [app.definition("add").delay(x=i, y=1) for i in range(5)]
    stack.worker("-c", "1", "--async-slots", "100", app=APP)
    assert [h.get(timeout=60) for h in handles] == [str(i) for i in range(300)]
    assert [h.get(timeout=60) for h in plain] == [i + 1 for i in range(5)]
    jobs = [h.record() for h in handles]
    assert {j.status for j in jobs} == {JobStatus.SUCCEEDED}
    assert len({j.worker for j in jobs}) == 1
    spans = [(j.started_at, j.finished_at) for j in jobs]
    assert all(s is not None and e is not None for s, e in spans)
    assert peak_overlap(spans) > 50  # type: ignore[arg-type] # side by side, not in turn
    trail = app.jobs.history(handles[0].id)
    assert [e.status.value for e in trail] == ["queued", "running", "succeeded"]


def test_async_timeout_retry_and_progress(stack: Stack) -> None:
    app: App = stack.app(APP)
    stack.worker("-c", "1", app=APP)
    late = app.definition("oversleeps").delay()
    flaky = app.definition("async-flaky").delay(fails=2)
    progress = app.definition("async-progress").delay()
    job = late.wait(timeout=30)
    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.type == "TimeoutError"
    assert "timeout of 0.5 s" in job.error.message and "task was cancelled" in job.error.message
    assert flaky.get(timeout=30) == 3
    assert [e.type for e in flaky.record().errors] == ["ConnectionError", "ConnectionError"]
    assert progress.get(timeout=30) == progress.id
    assert progress.record().progress == 100


@pytest.mark.parametrize("pool", ["solo", "threads"])
def test_other_pools_run_async_jobs_one_at_a_time(stack_factory: Callable[..., Stack],
                                                  pool: str) -> None:
    stack = stack_factory("sqlite")
    app: App = stack.app(APP)
    stack.worker("-c", "1", "--pool", pool, app=APP)
    handles = app.definition("nap").delay_many([{"seconds": 0.01, "tag": "x"}] * 5)
    assert [h.get(timeout=30) for h in handles] == ["x"] * 5


def test_async_producers_share_round_trips_and_are_durable_on_return(
        stack: Stack) -> None:
    import asyncio

    app: App = stack.app(APP)
    agent = app.agent()
    pushes: list[int] = []
    push = agent.push

    def counted(messages: list) -> None:  # type: ignore[type-arg]
        pushes.append(len(messages))
        push(messages)

    agent.push = counted  # type: ignore[method-assign]
    nap = app.definition("nap")

    async def produce() -> list[str]:
        handles = await asyncio.gather(
            *(nap.delay_async(seconds=0.01, tag=str(i)) for i in range(100)),
            *(app.enqueue_async("add", {"x": i, "y": 1}) for i in range(20)))
        assert agent.length() == 120  # every awaited job is on its agent already
        return [h.id for h in handles]

    ids = asyncio.run(produce())
    assert sum(pushes) == 120 and len(pushes) <= 3, pushes  # batched, not one per call
    stack.worker("-c", "1", app=APP)
    results = [app.handle(i).get(timeout=60) for i in ids]
    assert results == [str(i) for i in range(100)] + [i + 1 for i in range(20)]
