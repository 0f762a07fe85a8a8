"""``jobmaster.testing.drain`` and ``WorkerThread``: real workers in threads run what is
queued on a test app (SQLite master in a temporary directory, ``memory://`` agent)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobmaster import App, JobContext, JobStatus, JobTimeoutError
from jobmaster.testing import WorkerThread, close_app, drain, memory_app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    made = memory_app("drain", directory=tmp_path)
    yield made
    close_app(made)


def test_drain_runs_what_is_queued_and_returns_how_many(app: App) -> None:
    @app.job()
    def mul(x: int, y: int) -> int:
        return x * y

    handles = [mul.delay(i, i) for i in range(5)]
    assert all(h.state == "PENDING" for h in handles)
    assert drain(app) == 5
    assert [h.get(timeout=1) for h in handles] == [0, 1, 4, 9, 16]
    assert app.agent().length() == 0
    assert app.jobs.history(handles[0].id)[-1].status is JobStatus.SUCCEEDED


def test_drain_of_nothing_returns_zero_at_once(app: App) -> None:
    started = time.monotonic()
    assert drain(app) == 0
    assert time.monotonic() - started < 5


def test_drain_runs_jobs_enqueued_by_jobs_and_other_lanes(app: App) -> None:
    @app.job(lane="emails")
    def send(to: str) -> str:
        return f"sent to {to}"

    @app.job()
    def signup(user: str) -> str:
        return send.delay(to=user).id

    h = signup.delay(user="ada@example.invalid")
    assert drain(app) == 2
    assert app.handle(h.get(timeout=1)).get(timeout=1) == "sent to ada@example.invalid"


def test_drain_runs_retries_that_come_due_meanwhile(app: App) -> None:
    @app.job(max_retries=2, retry_delay=0.05, retry_backoff=1.0)
    def flaky(ctx: JobContext) -> int:
        if ctx.attempt < 3:
            raise ConnectionError("try again")
        return ctx.attempt

    h = flaky.delay()
    drain(app)
    assert h.get(timeout=1) == 3
    assert h.record().attempts == 3


def test_drain_leaves_jobs_due_later(app: App) -> None:
    @app.job()
    def later() -> str:
        return "ran"

    now = later.delay()
    then = later.apply_async(countdown=30)  # on the agent, due in 30 s
    assert drain(app, quiet=0.1) == 1
    assert now.get(timeout=1) == "ran"
    assert then.status() is JobStatus.QUEUED


def test_drain_gives_up_on_jobs_that_never_stop_coming(app: App) -> None:
    @app.job()
    def forever(n: int) -> None:
        forever.delay(n=n + 1)

    forever.delay(n=0)
    with pytest.raises(JobTimeoutError, match="still due"):
        drain(app, timeout=1.0)


def test_a_worker_thread_runs_jobs_until_stopped(app: App) -> None:
    @app.job()
    def add(x: int, y: int) -> int:
        return x + y

    with WorkerThread(app, concurrency=2) as worker:
        assert worker.running
        assert add.delay(2, 3).get(timeout=10) == 5
        worker.wait_idle()
        assert worker.processed == 1
    assert not worker.running


def test_a_worker_thread_refuses_a_forking_pool(app: App) -> None:
    with pytest.raises(ValueError, match="prefork"):
        WorkerThread(app, pool="prefork")
