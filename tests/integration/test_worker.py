"""Real worker processes against real masters and agents: the foundation's guarantees."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import pytest

from jobmaster import JobStatus, Priority
from jobmaster.beat import Beat
from tests.conftest import Stack, wait_until

MASTERS = ["sqlite", "postgres"]


@pytest.fixture(params=MASTERS)
def stack(request: pytest.FixtureRequest, stack_factory: Callable[..., Stack]) -> Stack:
    return stack_factory(request.param)


def test_results_round_trip(stack: Stack) -> None:
    app = stack.app()
    value = {"when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "day": date(2026, 1, 2),
             "id": UUID("12345678-1234-5678-1234-567812345678"), "amount": Decimal("10.25"),
             "raw": b"\x00\xff", "nested": [1, "two", None, {"three": 3.5}]}
    handles = [app.definition("add").delay(x=i, y=10) for i in range(20)]
    echo = app.definition("echo").delay(value=value)
    stack.worker("-c", "2")
    assert [h.wait(timeout=30).result for h in handles] == [i + 10 for i in range(20)]
    job = echo.wait(timeout=30)
    assert job.status is JobStatus.SUCCEEDED
    assert job.result == value
    assert job.kwargs == {"value": value}
    assert job.attempts == 1
    assert job.started_at is not None and job.finished_at is not None
    assert job.worker is not None and job.worker.startswith(app.name)


def test_retries_then_success(stack: Stack) -> None:
    app = stack.app()
    handle = app.definition("flaky").delay(fails=2)
    stack.worker("-c", "1")
    job = handle.wait(timeout=30)
    assert job.status is JobStatus.SUCCEEDED
    assert job.result == 3
    assert job.attempts == 3
    assert [e.type for e in job.errors] == ["RuntimeError", "RuntimeError"]
    attempts = [line for line in stack.lines() if line.startswith("flaky")]
    assert [line.split()[-1] for line in attempts] == ["1", "2", "3"]

    trail = app.jobs.history(handle.id)
    assert [(e.status.value, e.attempt) for e in trail] == [
        ("queued", 0), ("running", 1), ("retrying", 1), ("running", 2), ("retrying", 2),
        ("running", 3), ("succeeded", 3)]
    assert trail[0].reason == "enqueued" and trail[0].worker is None
    assert {e.worker for e in trail[1:]} == {job.worker}
    for failed in (trail[2], trail[4]):
        assert failed.error is not None and failed.error.type == "RuntimeError"
        assert failed.reason is not None and "next attempt at" in failed.reason
    assert trail[-1].error is None and trail[-1].reason is None
    assert [e.at for e in trail] == sorted(e.at for e in trail)


def test_retries_exhausted_records_failure(stack: Stack) -> None:
    app = stack.app()
    handle = app.definition("always-fails").delay()
    stack.worker("-c", "1")
    job = handle.wait(timeout=30)
    assert job.status is JobStatus.FAILED
    assert job.attempts == 3
    assert job.error is not None
    assert job.error.type == "ValueError"
    assert job.error.message == "this job always fails"
    assert "always_fails" in job.error.traceback
    assert len(job.errors) == 3


def test_hard_timeout_kills_only_that_job(stack: Stack) -> None:
    app = stack.app()
    slow = app.definition("sleeper").apply(kwargs={"seconds": 60, "tag": "slow"}, timeout=1)
    worker = stack.worker("-c", "2")
    quick = [app.definition("add").delay(x=i, y=1) for i in range(10)]
    job = slow.wait(timeout=30)
    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.type == "TimeoutError"
    assert "timeout of 1 s" in job.error.message
    assert [h.wait(timeout=30).result for h in quick] == [i + 1 for i in range(10)]
    assert worker.poll() is None, "the worker itself must survive a job's timeout"
    after = app.definition("add").delay(x=2, y=2)
    assert after.wait(timeout=30).result == 4


def test_child_that_dies_is_recorded_and_replaced(stack: Stack) -> None:
    app = stack.app()
    crash = app.definition("crash").delay(code=7)
    stack.worker("-c", "1")
    job = crash.wait(timeout=30)
    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.type == "WorkerLostError"
    assert "exited with code 7" in job.error.message
    assert app.definition("add").delay(x=1, y=1).wait(timeout=30).result == 2


def test_kill_9_of_worker_mid_job_runs_the_job_again(stack: Stack) -> None:
    app = stack.app()
    marker = stack.directory / "marker"
    handle = app.definition("slow-once").delay(marker=str(marker))
    first = stack.worker("-c", "1")
    wait_until(marker.exists, what="the job to start on the first worker")
    wait_until(lambda: handle.status() is JobStatus.RUNNING, what="the master to see it run")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    stack.worker("-c", "1")
    job = handle.wait(timeout=60)
    assert job.status is JobStatus.SUCCEEDED
    assert job.attempts == 2
    runs = [line for line in stack.lines() if line.startswith("slow-once")]
    assert len(runs) == 2
    assert job.result != int(marker.read_text())  # ran to the end in another process

    # the history tells it: started on the first worker, recovered, finished on the second
    trail = app.jobs.history(handle.id)
    assert (trail[0].status, trail[0].reason) == (JobStatus.QUEUED, "enqueued")
    starts = [e for e in trail if e.status is JobStatus.RUNNING]
    assert len(starts) == 2
    lost_worker = starts[0].worker
    assert lost_worker is not None and lost_worker != job.worker == starts[1].worker
    assert "recovered" in (starts[1].reason or "")
    assert trail[-1].status is JobStatus.SUCCEEDED
    # beat notices the silent worker and marks it lost
    beat = Beat(app)
    wait_until(lambda: beat.tick() is not None and any(
        w.id == lost_worker and w.status == "lost" for w in app.workers.list()),
        what="beat to mark the killed worker lost")


def test_lanes_isolate(stack: Stack) -> None:
    app = stack.app()
    emails = [app.definition("record").apply(kwargs={"tag": f"e{i}"}, lane="emails")
              for i in range(5)]
    reports = [app.definition("record").apply(kwargs={"tag": f"r{i}"}, lane="reports")
               for i in range(5)]
    stack.worker("-c", "2", "--lane", "emails")
    for h in emails:
        assert h.wait(timeout=30).status is JobStatus.SUCCEEDED
    app.flush()
    assert {h.status() for h in reports} == {JobStatus.QUEUED}
    assert not any(line.startswith("record r") for line in stack.lines())
    stack.worker("-c", "1", "--lane", "reports")
    for h in reports:
        assert h.wait(timeout=30).status is JobStatus.SUCCEEDED


def test_priorities_order(stack: Stack) -> None:
    app = stack.app()
    record = app.definition("record")
    plan = [("low", Priority.LOW), ("medium", Priority.MEDIUM), ("vlow", Priority.VERY_LOW),
            ("high", Priority.HIGH), ("medium2", Priority.MEDIUM)]
    handles = [record.apply(kwargs={"tag": tag}, priority=p) for tag, p in plan]
    handles.append(app.definition("urgent").delay(tag="critical"))
    stack.worker("-c", "1", "--prefetch", "1")
    for h in handles:
        h.wait(timeout=30)
    order = [line.split()[1] for line in stack.lines() if line.startswith("record")]
    assert order == ["critical", "high", "medium", "medium2", "low", "vlow"]


def test_warm_shutdown_loses_nothing(stack: Stack) -> None:
    app = stack.app()
    handles = [app.definition("sleeper").delay(seconds=0.4, tag=f"t{i}") for i in range(12)]
    worker = stack.worker("-c", "2")
    wait_until(lambda: sum(1 for line in stack.lines() if line.startswith("done")) >= 2,
               what="a few jobs to finish")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    log = stack.worker_log(0)
    assert "warm shutdown" in log
    started = [line.split()[1] for line in stack.lines() if line.startswith("start")]
    done = [line.split()[1] for line in stack.lines() if line.startswith("done")]
    assert started == done or sorted(started) == sorted(done), "running jobs must finish"
    app.flush()
    statuses = {h.id: h.status() for h in handles}
    assert set(statuses.values()) <= {JobStatus.SUCCEEDED, JobStatus.QUEUED}
    stack.worker("-c", "2")
    for h in handles:
        assert h.wait(timeout=60).status is JobStatus.SUCCEEDED
    tags = [line.split()[1] for line in stack.lines() if line.startswith("done")]
    assert sorted(tags) == sorted(f"t{i}" for i in range(12)), "each job ran exactly once"


def test_progress_is_recorded(stack: Stack) -> None:
    app = stack.app()
    handle = app.definition("progress").delay()
    stack.worker("-c", "1")
    job = handle.wait(timeout=30)
    assert job.result == "ok"
    assert job.progress == 100
    assert job.progress_message == "forty"


def test_cancelled_job_never_runs(stack: Stack) -> None:
    app = stack.app()
    doomed = app.definition("record").delay(tag="doomed")
    assert doomed.cancel() is JobStatus.CANCELLED
    kept = app.definition("record").delay(tag="kept")
    stack.worker("-c", "1")
    assert kept.wait(timeout=30).status is JobStatus.SUCCEEDED
    assert doomed.wait(timeout=5).status is JobStatus.CANCELLED
    assert not any("doomed" in line for line in stack.lines())


def test_delayed_job_waits_for_its_time(stack: Stack) -> None:
    app = stack.app()
    stack.worker("-c", "1")
    before = time.time()
    handle = app.definition("add").apply_after(timedelta(seconds=1.5), x=1, y=1)
    job = handle.wait(timeout=30)
    assert job.result == 2
    assert job.started_at is not None
    assert job.started_at.timestamp() >= before + 1.4


def test_unknown_definition_in_the_agent_is_dead_lettered(stack: Stack) -> None:
    app = stack.app()
    other = stack.app()

    @other.job(definition_id="not-in-the-worker")
    def ghost() -> None: ...

    ghost_handle = ghost.delay()
    good = app.definition("add").delay(x=1, y=2)
    stack.worker("-c", "1")
    assert good.wait(timeout=30).result == 3
    job = ghost_handle.wait(timeout=30)
    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.type == "UnknownDefinitionError"
    wait_until(lambda: len(app.agent().dead_letters()) == 1, what="the dead letter")
    assert "not-in-the-worker" in app.agent().dead_letters()[0].reason
