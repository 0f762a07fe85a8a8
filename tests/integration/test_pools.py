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


def test_a_failing_process_start_hook_stops_the_worker_with_a_clear_error(
    stack_factory: Callable[..., Stack],
) -> None:
    stack = stack_factory("sqlite")
    worker = stack.worker("-c", "1", app="tests.fixtures.badhook")
    assert worker.wait(60) != 0
    log = stack.worker_log(0)
    assert "on_worker_process_start hook" in log
    assert "cannot connect to the warehouse" in log
    assert "died before they were ready" in log


def test_solo_job_is_seen_running_and_can_be_cancelled(
    stack_factory: Callable[..., Stack],
) -> None:
    stack = stack_factory("sqlite", lease_seconds="1.5")
    app = stack.app()
    handle = app.definition("patient").delay(seconds=30)
    stack.worker("-c", "1", "--pool", "solo")
    wait_until(lambda: handle.status() is JobStatus.RUNNING, what="the solo job to run")
    handle.cancel()
    job = handle.wait(timeout=30)
    assert job.status is JobStatus.CANCELLED
    wait_until(lambda: any(line.startswith("patient stopped") for line in stack.lines()),
               what="the job to see should_stop()")
