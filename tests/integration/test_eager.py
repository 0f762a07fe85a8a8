"""Eager mode (``App(eager=True)``): jobs run inline at enqueue, on the worker's path —
serializer round trips, middleware, JobContext, retries, JobResult — and are recorded in
the master (a SQLite master in a temporary directory, a ``memory://`` agent)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jobmaster import (
    App,
    ConfigurationError,
    JobContext,
    JobFailedError,
    JobResult,
    JobStatus,
    Reject,
    SerializationError,
    chain,
    chord,
    group,
)
from jobmaster.middleware import Middleware, Settled
from jobmaster.testing import close_app, memory_app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    made = memory_app("eager", directory=tmp_path, eager=True)
    yield made
    close_app(made)


def test_a_job_runs_inline_in_the_callers_thread_and_is_recorded(app: App) -> None:
    seen: list[int] = []

    @app.job()
    def add(x: int, y: int) -> int:
        seen.append(threading.get_ident())
        return x + y

    h = add.delay(1, 2)
    assert seen == [threading.get_ident()]  # ran before delay() returned, in this thread
    assert h.get() == 3
    assert h.state == "SUCCESS" and h.ready() and h.successful()
    job = h.record()
    assert job.status is JobStatus.SUCCEEDED and job.attempts == 1
    assert job.kwargs == {"x": 1, "y": 2}
    assert job.worker is not None and job.worker.endswith("/eager")
    assert [e.status for e in app.jobs.history(h.id)] == [
        JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED]
    assert app.agent().length() == 0  # nothing went to the agent


def test_a_failure_is_recorded_and_raised_by_get_not_at_enqueue(app: App) -> None:
    @app.job()
    def broken() -> None:
        raise KeyError("missing")

    h = broken.delay()  # does not raise
    assert h.state == "FAILURE" and h.failed()
    with pytest.raises(JobFailedError, match="KeyError"):
        h.get()
    error = h.get(propagate=False)
    assert error.type == "KeyError" and "missing" in error.message
    assert "Traceback" in error.traceback


def test_retries_run_at_once_until_they_succeed(app: App) -> None:
    attempts: list[int] = []

    @app.job(max_retries=3, retry_delay=60)
    def flaky(ctx: JobContext) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError(f"attempt {ctx.attempt}")
        return "ok"

    started = datetime.now(UTC)
    h = flaky.delay()
    assert datetime.now(UTC) - started < timedelta(seconds=30)  # the 60 s delay is skipped
    assert attempts == [1, 2, 3]
    assert h.get() == "ok"
    job = h.record()
    assert job.attempts == 3
    assert [e.type for e in job.errors] == ["ConnectionError", "ConnectionError"]
    history = app.jobs.history(h.id)
    assert [e.status for e in history] == [
        JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.RETRYING, JobStatus.RUNNING,
        JobStatus.RETRYING, JobStatus.RUNNING, JobStatus.SUCCEEDED]
    retrying = [e for e in history if e.status is JobStatus.RETRYING]
    assert all("retried at once" in (e.reason or "") for e in retrying)


def test_retries_exhausted_fail_the_job(app: App) -> None:
    calls: list[int] = []

    @app.job(max_retries=2)
    def never(n: int) -> None:
        calls.append(n)
        raise ValueError("no")

    h = never.delay(n=5)
    assert calls == [5, 5, 5]
    assert h.status() is JobStatus.FAILED
    assert h.record().attempts == 3


def test_bind_self_retry_with_countdown_and_request(app: App) -> None:
    seen: list[tuple[str, int]] = []

    @app.job(bind=True, max_retries=3)
    def fetch(self: JobContext, url: str) -> str:
        seen.append((self.request.id, self.request.retries))
        if self.request.retries < 1:
            raise self.retry(countdown=5, exc=OSError("reset"))
        return f"got {url}"

    h = fetch.apply_async(args=("https://example.invalid",))
    assert h.get() == "got https://example.invalid"
    assert seen == [(h.id, 0), (h.id, 1)]
    assert [e.type for e in h.record().errors] == ["OSError"]


def test_reject_and_jobresult_failed_without_retry_fail_at_once(app: App) -> None:
    calls: list[str] = []

    @app.job(max_retries=5)
    def rejects() -> None:
        calls.append("reject")
        raise Reject("bad input")

    @app.job(max_retries=5)
    def gives_up() -> JobResult:
        calls.append("result")
        return JobResult.failed("bad file", retry=False)

    assert rejects.delay().status() is JobStatus.FAILED
    h = gives_up.delay()
    assert h.status() is JobStatus.FAILED
    assert h.get(propagate=False).message == "bad file"
    assert calls == ["reject", "result"]


def test_jobresult_success_and_cancelled(app: App) -> None:
    @app.job()
    def counted() -> JobResult:
        return JobResult.success("processed 100 items", result=100)

    @app.job()
    def nothing() -> JobResult:
        return JobResult.cancelled("nothing to do")

    h = counted.delay()
    assert h.get() == 100
    assert app.jobs.history(h.id)[-1].reason == "processed 100 items"
    c = nothing.delay()
    assert c.state == "REVOKED"
    with pytest.raises(JobFailedError):
        c.get()


def test_an_unserializable_argument_is_refused_at_enqueue(app: App) -> None:
    ran: list[object] = []

    @app.job()
    def takes(value: object) -> None:
        ran.append(value)

    with pytest.raises(SerializationError):
        takes.delay(value=object())
    assert ran == []
    assert len(app.jobs.list()) == 0


def test_arguments_arrive_as_a_worker_sees_them(app: App) -> None:
    received: list[Any] = []

    @app.job()
    def keep(value: Any) -> Any:
        received.append(value)
        return value

    h = keep.delay(value=(1, 2))  # JSON has no tuples: the worker gets a list
    assert received == [[1, 2]]
    assert h.get() == [1, 2]


def test_a_result_the_serializer_cannot_encode_fails_the_job_without_retries(app: App) -> None:
    calls: list[int] = []

    @app.job(max_retries=3)
    def returns_a_set() -> set[int]:
        calls.append(1)
        return {1, 2}

    h = returns_a_set.delay()
    assert calls == [1]  # not retried
    error = h.get(propagate=False)
    assert error.type == "SerializationError"
    assert h.state == "FAILURE"


def test_middleware_hooks_run_in_order(tmp_path: Path) -> None:
    events: list[str] = []

    class Spy(Middleware):
        def after_enqueue(self, envelope: Any) -> None:
            events.append("after_enqueue")

        def before_run(self, envelope: Any) -> None:
            events.append("before_run")

        def after_run(self, envelope: Any, outcome: Any) -> None:
            events.append(f"after_run:{type(outcome).__name__}")

        def on_outcome(self, settled: Settled) -> None:
            events.append(f"on_outcome:{settled.status.value}")

    app = memory_app(directory=tmp_path, eager=True, middleware=[Spy()])
    try:
        @app.job()
        def hello() -> str:
            events.append("run")
            return "hi"

        hello.delay()
        assert events == ["after_enqueue", "before_run", "run", "after_run:Succeeded",
                          "on_outcome:succeeded"]
    finally:
        close_app(app)


def test_a_job_enqueued_by_a_job_runs_inline_too(app: App) -> None:
    order: list[str] = []

    @app.job()
    def child(n: int) -> int:
        order.append(f"child {n}")
        return n * 2

    @app.job()
    def parent() -> str:
        order.append("parent starts")
        h = child.delay(n=21)
        order.append("parent continues")
        return h.id

    child_id = parent.delay().get()
    assert order == ["parent starts", "child 21", "parent continues"]
    assert app.handle(child_id).get() == 42


def test_countdown_and_a_far_eta_run_now(app: App) -> None:
    @app.job()
    def later() -> str:
        return "ran"

    assert later.apply_async(countdown=3600).get() == "ran"
    assert later.apply_at(datetime.now(UTC) + timedelta(days=3)).get() == "ran"


def test_job_key_dedupes_and_runs_once(app: App) -> None:
    runs: list[int] = []

    @app.job()
    def once() -> int:
        runs.append(1)
        return len(runs)

    first = once.apply(job_key="nightly")
    second = once.apply(job_key="nightly")
    assert first.id == second.id
    assert runs == [1] and first.get() == 1


def test_delay_many_and_workflows(app: App) -> None:
    @app.job()
    def add(x: int, y: int) -> int:
        return x + y

    @app.job()
    def tsum(values: list[int]) -> int:
        return sum(values)

    handles = add.delay_many([{"x": i, "y": i} for i in range(4)])
    assert [h.get() for h in handles] == [0, 2, 4, 6]
    # the steps after a job run inline when it ends: every result is there at once
    assert chain(add.s(1, 2), add.s(10), add.s(100)).apply_async().get(timeout=1) == 113
    assert group(add.s(i, i) for i in range(5)).apply_async().get(timeout=1) == [0, 2, 4, 6, 8]
    assert chord(group(add.s(i, i) for i in range(4)), tsum.s()).apply_async().get(
        timeout=1) == 12


def test_link_and_link_error_run_eagerly(app: App) -> None:
    seen: list[Any] = []

    @app.job()
    def add(x: int, y: int) -> int:
        return x + y

    @app.job()
    def boom() -> None:
        raise ValueError("no")

    @app.job()
    def note(value: Any) -> None:
        seen.append(value)

    assert add.apply_async(args=(1, 2), link=note.s()).get() == 3
    failed = boom.apply_async(link_error=note.s())
    assert seen == [3, failed.id]


def test_an_async_def_job_runs_eagerly(app: App) -> None:
    @app.job()
    async def page(url: str) -> int:
        await asyncio.sleep(0)
        return len(url)

    assert page.delay(url="abcd").get() == 4

    async def produce() -> int:
        h = await page.delay_async(url="abcdef")
        return int(h.get())

    assert asyncio.run(produce()) == 6


def test_eager_from_the_environment_and_checked(tmp_path: Path) -> None:
    app = memory_app(directory=tmp_path, environ={"JOBMASTER_EAGER": "1"})
    try:
        assert app.config.eager is True
    finally:
        close_app(app)
    plain = memory_app(directory=tmp_path / "plain")
    try:
        assert plain.config.eager is False
    finally:
        close_app(plain)
    with pytest.raises(ConfigurationError, match="eager"):
        App("x", master=f"sqlite:///{tmp_path}/m.db", agents="memory://", eager="yes",
            environ={})
