"""The threads and solo pools run the same jobs with the same outcomes as prefork."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from jobmaster import JobStatus
from tests.conftest import Stack, wait_until


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_pool_runs_retries_and_times_out(pool: str, stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory("sqlite")
    app = stack.app()
    adds = [app.definition("add").delay(x=i, y=1) for i in range(20)]
    flaky = app.definition("flaky").delay(fails=1)
    slow = app.definition("sleeper").apply(kwargs={"seconds": 30, "tag": "slow"}, timeout=1)
    progress = app.definition("progress").delay()
    stack.worker("-c", "2", "--pool", pool)
    assert [h.wait(timeout=30).result for h in adds] == [i + 1 for i in range(20)]
    assert flaky.wait(timeout=30).result == 2
    job = slow.wait(timeout=30)
    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.type == "TimeoutError"
    expected = "was abandoned" if pool == "threads" else "was interrupted"
    assert expected in job.error.message
    assert progress.wait(timeout=30).progress_message == "forty"
    after = app.definition("add").delay(x=5, y=5)
    assert after.wait(timeout=30).result == 10


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_pool_warm_shutdown_hands_back_waiting_jobs(
    pool: str, stack_factory: Callable[..., Stack]
) -> None:
    stack = stack_factory("sqlite")
    app = stack.app()
    handles = [app.definition("sleeper").delay(seconds=0.3, tag=f"t{i}") for i in range(8)]
    worker = stack.worker("-c", "1", "--pool", pool)
    wait_until(lambda: any(line.startswith("done") for line in stack.lines()),
               what="a job to finish")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    stack.worker("-c", "2", "--pool", pool)
    for h in handles:
        assert h.wait(timeout=60).status is JobStatus.SUCCEEDED
    tags = sorted(line.split()[1] for line in stack.lines() if line.startswith("done"))
    assert tags == sorted(f"t{i}" for i in range(8))
