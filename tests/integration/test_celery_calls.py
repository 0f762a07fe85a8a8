"""Celery-style calls with real worker processes: module-level ``@job`` definitions,
``apply_async``, ``send_task``, ``AsyncResult``-like handles, ``bind=True`` with
``self.request`` and ``self.retry``, per-exception retries, ``Reject``, ``store_result``
and ``task_routes`` — on the embedded default (SQLite) and on PostgreSQL + Redis."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from jobmaster import App, JobFailedError, JobStatus, current_app
from tests.conftest import Stack

APP = "tests.fixtures.celeryapp"


@pytest.fixture(autouse=True, scope="module")
def _shared_jobs_stay_here() -> object:
    """The module-level jobs of the fixture join every app made while this module runs,
    and no app made after it."""
    import jobmaster.app as module

    saved = list(module._SHARED)
    yield
    module._SHARED[:] = saved


@pytest.fixture(params=["sqlite", "redis"])
def stack(request: pytest.FixtureRequest, stack_factory: Callable[..., Stack]) -> Stack:
    return stack_factory(request.param)


def producer(stack: Stack) -> App:
    app: App = stack.app(APP)
    assert current_app() is app  # the latest App(default=True) is the one in use
    return app


def test_module_level_jobs_apply_async_send_task_and_handles(stack: Stack) -> None:
    from tests.fixtures.celerytasks import add, fail, mul

    app = producer(stack)
    stack.worker("-c", "2", "--lane", "default,math", app=APP)
    h = add.apply_async(args=(1, 2))
    assert h.get(timeout=30) == 3
    assert (h.state, h.ready(), h.successful(), h.failed()) == ("SUCCESS", True, True, False)

    later = mul.apply_async(args=(3,), kwargs={"y": 4}, countdown=0.3, queue="math",
                            priority="high")
    assert later.state == "PENDING"
    assert later.get(timeout=30) == 12
    job = later.record()
    assert (job.lane, int(job.priority)) == ("math", 3)
    assert job.started_at is not None and job.started_at - job.created_at >= timedelta(
        seconds=0.3)

    at = add.apply_async(kwargs={"x": 5, "y": 5},
                         eta=datetime.now(UTC) + timedelta(milliseconds=200))
    assert at.get(timeout=30) == 10

    sent = app.send_task("add", args=(20,), kwargs={"y": 22})
    assert sent.get(timeout=30) == 42
    again = app.AsyncResult(sent.id)
    assert again == sent and again.get(timeout=1) == 42 and again.state == "SUCCESS"

    bad = fail.apply_async(kwargs={"message": "boom"})
    with pytest.raises(JobFailedError) as caught:
        bad.get(timeout=30)
    assert caught.value.error is not None and caught.value.error.type == "RuntimeError"
    assert (bad.state, bad.failed(), bad.successful()) == ("FAILURE", True, False)
    error = bad.get(timeout=1, propagate=False)
    assert error.type == "RuntimeError" and error.message == "boom"


def test_expired_before_it_started_is_revoked(stack: Stack) -> None:
    from tests.fixtures.celerytasks import add

    producer(stack)
    h = add.apply_async(args=(1, 1), expires=0.2)
    time.sleep(0.4)  # let it expire before any worker exists: what is under test
    stack.worker("-c", "1", app=APP)
    assert h.wait(timeout=30).status is JobStatus.CANCELLED
    assert h.state == "REVOKED"
    with pytest.raises(JobFailedError, match="cancelled"):
        h.get(timeout=1)


def test_bind_self_request_and_self_retry_record_the_real_error(stack: Stack) -> None:
    app = producer(stack)
    stack.worker("-c", "1", app=APP)
    ok = app.definition("fetch").delay(fails=2)
    assert ok.get(timeout=30) == "fetched after 2 retries"
    lines = [line for line in stack.lines() if line.startswith(f"fetch {ok.id}")]
    assert [line.split()[2] for line in lines] == ["retries=0", "retries=1", "retries=2"]
    assert all("kwargs=['fails'] host=True" in line for line in lines)
    errors = [e.type for e in ok.record().errors]
    assert errors == ["ConnectionError", "ConnectionError"]

    exhausted = app.definition("fetch").delay(fails=10)
    with pytest.raises(JobFailedError) as caught:
        exhausted.get(timeout=30)
    error = caught.value.error
    assert error is not None and error.type == "ConnectionError"  # not "Retry"
    assert error.message == "down 3"
    assert exhausted.record().attempts == 4

    raised_limit = app.definition("retry-more").delay()
    assert raised_limit.get(timeout=30) == 2  # self.retry(max_retries=2) over max_retries=0


def test_autoretry_for_dont_autoretry_for_and_reject(stack: Stack) -> None:
    app = producer(stack)
    stack.worker("-c", "2", app=APP)
    network = app.definition("only-network").delay(kind="network")
    bug = app.definition("only-network").delay(kind="bug")
    never = app.definition("never-on-bugs").delay()
    rejected = app.definition("rejects").delay(reason="bad input file")
    for handle, attempts, error_type in ((network, 4, "ConnectionError"),
                                         (bug, 1, "ValueError"), (never, 1, "KeyError"),
                                         (rejected, 1, "Reject")):
        job = handle.wait(timeout=30)
        assert job.status is JobStatus.FAILED, handle
        assert job.attempts == attempts, handle
        assert job.error is not None and job.error.type == error_type, handle
    assert rejected.record().error.message == "bad input file"  # type: ignore[union-attr]
    trail = app.jobs.history(rejected.id)
    assert trail[-1].reason == "failed without retrying, as the handler asked"


def test_store_result_false_and_task_routes(stack: Stack) -> None:
    app = producer(stack)
    quiet = app.definition("quiet").delay(x=21)
    report = app.send_task("reports.daily", kwargs={"day": "mon"})
    charge = app.definition("billing.charge").apply_async(args=(7,))
    pinned = app.definition("billing.charge").apply_async(args=(8,), queue="default")
    stack.worker("-c", "2", "-Q", "default,reports,billing", app=APP)  # Celery's -Q
    assert quiet.get(timeout=30) is None
    assert quiet.record().status is JobStatus.SUCCEEDED
    assert report.get(timeout=30) == "report mon"
    assert (report.record().lane, charge.record().lane) == ("reports", "billing")
    assert charge.get(timeout=30) == 7
    assert pinned.get(timeout=30) == 8 and pinned.record().lane == "default"


@pytest.mark.parametrize(("backend", "pool"), [("sqlite", "prefork"), ("sqlite", "solo"),
                                               ("redis", "prefork")])
def test_soft_time_limit_raises_inside_the_handler(stack_factory: Callable[..., Stack],
                                                   backend: str, pool: str) -> None:
    stack = stack_factory(backend)
    app = producer(stack)
    stack.worker("-c", "1", "--pool", pool, app=APP)
    cleaned = app.definition("soft").delay(clean_up=True)
    assert cleaned.get(timeout=30) == "cleaned up"
    uncaught = app.definition("soft").apply(kwargs={"clean_up": False}, max_retries=0)
    job = uncaught.wait(timeout=30)
    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.type == "SoftTimeLimitExceeded"
    assert "soft time limit of 0.3 s" in job.error.message
    assert job.finished_at is not None and job.started_at is not None
    assert job.finished_at - job.started_at < timedelta(seconds=10)  # long before the hard one
    after = app.definition("quiet").delay(x=1)  # the worker (and its timers) carry on
    assert after.get(timeout=30) is None and after.state == "SUCCESS"


def test_rate_limit_holds_across_the_cluster(stack: Stack) -> None:
    app = producer(stack)
    handles = app.definition("limited").delay_many([{"n": i} for i in range(25)])
    for _ in range(2):  # two workers, two processes each: the limit is the cluster's
        stack.worker("-c", "2", app=APP)
    assert sorted(h.get(timeout=60) for h in handles) == list(range(25))
    starts = sorted(float(line.split()[2]) for line in stack.lines()
                    if line.startswith("limited "))
    assert len(starts) == 25
    # 10 per second: no one-second window holds more than 10 starts (plus one started at
    # most RUN_EARLY ahead of its slot)
    for i, first in enumerate(starts):
        assert sum(1 for t in starts[i:] if t < first + 1.0) <= 11, starts
    assert starts[-1] - starts[0] >= 2.4 - 0.05 * 2
    held = [e for h in handles for e in app.jobs.history(h.id) if e.status.value == "running"]
    assert len(held) == 25  # each ran once: held-back jobs were never started


def test_job_results_say_how_a_job_ended(stack: Stack) -> None:
    import json

    from tests.acceptance.test_cli import run

    app = producer(stack)
    stack.worker("-c", "2", app=APP)
    ok, bad, busy, idle = (app.definition("outcomes").delay(kind=k)
                           for k in ("success", "failed", "retried", "cancelled"))
    assert ok.get(timeout=30) == 100
    assert app.jobs.history(ok.id)[-1].reason == "processed 100 items"
    failed = bad.wait(timeout=30)
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 1)  # retry=False
    assert failed.error is not None and failed.error.message == "bad input file"
    retried = busy.wait(timeout=30)
    assert (retried.status, retried.attempts) == (JobStatus.FAILED, 4)
    cancelled = idle.wait(timeout=30)
    assert (cancelled.status, cancelled.attempts) == (JobStatus.CANCELLED, 1)
    assert idle.state == "REVOKED"
    shown = run("jobs", "show", ok.id, "-A", APP, "--json", env=stack.env)
    assert json.loads(shown.stdout)["message"] == "processed 100 items"
    human = run("jobs", "show", idle.id, "-A", APP, env=stack.env)
    assert "message: cancelled: nothing to do" in human.stdout


def test_a_crontab_schedule_fires_jobs_on_a_worker(stack: Stack) -> None:
    from jobmaster import crontab
    from jobmaster.beat import Beat

    app = producer(stack)
    every_minute_on_weekdays = crontab(minute="*", day_of_week="mon-fri")
    app.recurring(every_minute_on_weekdays, "quiet", kwargs={"x": 1}, name="cron-quiet")
    beat = Beat(app)
    beat.tick()  # stores the static schedule, with its next fire time
    schedule = app.schedules.get("cron-quiet")
    assert schedule.expression == "* * * * 1-5"
    nxt = schedule.next_fire_at
    assert nxt is not None and nxt.second == 0 and nxt.weekday() < 5
    # bring that minute forward rather than wait for it: the fire itself is beat's
    app.master.update_schedule(app.name, "cron-quiet",
                               next_fire_at=datetime.now(UTC) - timedelta(seconds=1))
    stack.worker("-c", "1", app=APP)
    beat.tick()
    fired = app.jobs.list(definition_id="quiet")
    # the occurrence brought forward, and the next minute's if the tick crossed into it
    assert 1 <= len(fired) <= 2 and all(job.kwargs == {"x": 1} for job in fired)
    assert all(app.handle(job.id).get(timeout=30) is None for job in fired)
    assert {app.handle(job.id).state for job in fired} == {"SUCCESS"}
