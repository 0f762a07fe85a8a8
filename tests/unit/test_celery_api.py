"""The Celery-shaped API without I/O: option names, handling settings, the app in use,
self.request / self.retry, retry caps and per-retry limits."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from jobmaster import App, ConfigurationError, DefinitionError, JobContext, Reject, Retry, job
from jobmaster.app import SharedJob, current_app
from jobmaster.definitions import Handling, celery_options
from jobmaster.exceptions import ArgumentsError
from jobmaster.models import JobError, JobStatus
from jobmaster.outcomes import MAX_RETRY_WAIT, Raised, RetryPolicy, decide, retry_delay


def make(**kwargs: object) -> App:
    return App(f"u{uuid.uuid4().hex[:6]}", master="sqlite:///:memory:",
               agents={"main": f"memory://{uuid.uuid4().hex}"}, **kwargs)  # type: ignore[arg-type]


def test_celery_option_names_become_jobmasters() -> None:
    assert celery_options({"countdown": 5, "eta": None, "queue": "math", "priority": 3}) == \
        {"after": 5, "lane": "math", "priority": 3}
    with pytest.raises(ArgumentsError, match="give countdown= or after=, not both"):
        celery_options({"countdown": 5, "after": 3})


def test_handling_settings_are_checked() -> None:
    handling = Handling.take({"bind": True, "autoretry_for": (OSError,),
                              "dont_autoretry_for": TimeoutError, "ignore_result": True})
    assert handling.bind and not handling.store_result
    assert handling.retries(ConnectionError()) and not handling.retries(ValueError())
    assert not handling.retries(TimeoutError())  # an OSError, but never retried
    for bad, message in (({"bind": "yes"}, "bind='yes'"),
                         ({"autoretry_for": ("ValueError",)}, "not an exception class"),
                         ({"autoretry_for": 3}, "must be exception classes"),
                         ({"store_result": 0}, "store_result=0")):
        with pytest.raises(DefinitionError, match=message):
            Handling.take(dict(bad))


def test_unknown_options_are_still_refused() -> None:
    app = make()
    with pytest.raises(Exception, match="unknown job option"):
        app.job(definition_id="x", rate_limt="1/s")(lambda: None)


def test_bind_needs_a_positional_first_parameter() -> None:
    app = make()
    with pytest.raises(DefinitionError, match="bind=True passes the JobContext"):
        app.job(definition_id="b", bind=True)(lambda *, x: x)

    @app.job(definition_id="bound", bind=True)
    def bound(self: JobContext, x: int) -> tuple[str, int, int]:
        return self.request.id, self.request.retries, x

    assert bound.signature.parameters.keys() == {"x"}
    assert bound(x=4) == ("local", 0, 4)  # called directly: a made-up context


def test_self_retry_raises_a_retry_carrying_the_exception() -> None:
    ctx = JobContext("j", "d", attempt=3, max_retries=5, lane="default", priority=2,
                     metadata={}, enqueued_at=None, kwargs={"a": 1})  # type: ignore[arg-type]
    assert (ctx.request.id, ctx.request.retries, ctx.request.args, ctx.request.kwargs) == \
        ("j", 2, (), {"a": 1})
    error = OSError("down")
    with pytest.raises(Retry) as caught:
        ctx.retry(countdown=timedelta(seconds=7), exc=error, max_retries=9)
    assert (caught.value.after, caught.value.exc, caught.value.max_retries) == (7.0, error, 9)
    assert str(caught.value) == "OSError: down"
    assert Retry("x", max_retries=-1).max_retries is None  # nonsense is ignored
    assert str(Reject("bad input")) == "bad input"


def test_retry_limit_of_one_retry_replaces_the_jobs_own() -> None:
    policy = RetryPolicy(0, 1.0, 1.0, 0.0)
    error = JobError("TimeoutError", "slow")
    assert decide(Raised(error, 1.0), attempt=1, policy=policy, now=0.0).status \
        is JobStatus.FAILED
    more = decide(Raised(error, 1.0, True, 2), attempt=2, policy=policy, now=0.0)
    assert more.status is JobStatus.RETRYING and more.retry_at == 1.0
    assert decide(Raised(error, 1.0, True, 2), attempt=3, policy=policy, now=0.0).status \
        is JobStatus.FAILED


def test_backoff_max_caps_the_wait() -> None:
    capped = RetryPolicy(10, 1.0, 2.0, 0.0, max_wait=5.0)
    assert [retry_delay(capped, n, 0.0) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert retry_delay(RetryPolicy(10, 1.0, 1000.0, 0.5, max_wait=30.0), 9, 0.99) == 30.0
    assert retry_delay(RetryPolicy(10, 1.0, 2.0, 0.0), 10_000, 0.0) == MAX_RETRY_WAIT


@pytest.fixture(autouse=True)
def _no_leftover_shared_jobs() -> object:
    """Module-level jobs made here are forgotten afterwards (they would join every later
    app of the test run)."""
    import jobmaster.app as module

    saved = list(module._SHARED)
    yield
    module._SHARED[:] = saved


def test_the_app_in_use_for_module_level_jobs() -> None:
    @job(definition_id="shared-double")
    def double(x: int) -> int:
        return 2 * x

    assert isinstance(double, SharedJob) and double(x=2) == 4
    first = make(default=True)
    other = make()
    assert current_app() is first
    assert double.definition.app is first and "shared-double" in other.definitions
    latest = make(default=True)
    assert current_app() is latest and double.definition.app is latest
    assert double.definition_id == "shared-double"
    assert make(default=False).definitions["shared-double"].func is double.func


def test_an_apps_own_definition_wins_over_a_module_level_one() -> None:
    @job(definition_id="shared-triple")
    def triple(x: int) -> int:
        return 3 * x

    app = make(default=True)
    assert app.definitions["shared-triple"].shared

    @app.job(definition_id="shared-triple")
    def own(x: int) -> int:
        return -x

    assert app.definitions["shared-triple"].func is own.func
    assert triple.definition is app.definitions["shared-triple"]
    later = make(default=True)

    @later.job(definition_id="shared-triple")
    def later_own(x: int) -> int:
        return x

    assert later.definitions["shared-triple"].func is later_own.func


def test_no_app_in_use_is_said_clearly() -> None:
    import jobmaster.app as module

    saved = list(module._APPS)
    module._APPS.clear()
    try:
        with pytest.raises(ConfigurationError, match="no App exists yet"):
            current_app()
        a, b = make(), make()
        with pytest.raises(ConfigurationError, match=r"2 apps exist .* default=True"):
            current_app()
        del a, b
    finally:
        module._APPS[:] = saved


def test_task_routes_and_include_are_checked() -> None:
    app = make(task_routes={"billing.*": {"queue": "billing"}, "x": "fast"})
    assert app.config.task_routes == {"billing.*": "billing", "x": "fast"}
    charge = app.job(definition_id="billing.charge")(lambda amount: amount)
    assert charge.options.lane == "billing"
    pinned = app.job(definition_id="billing.pinned", lane="slow")(lambda: None)
    assert pinned.options.lane == "slow"
    with pytest.raises(ConfigurationError, match="task_routes"):
        make(task_routes={"a.*": 3})
    with pytest.raises(ConfigurationError, match=r"task_routes\['a'\]"):
        make(task_routes={"a": "bad lane!"})
    with pytest.raises(ConfigurationError, match="include="):
        make(include="proj.tasks")


def test_crontab_is_importable_from_the_package() -> None:
    from jobmaster import Schedule, crontab

    every_3h = crontab(minute=0, hour="*/3")
    assert str(every_3h) == "0 */3 * * *"
    assert Schedule.parse(every_3h).describe().startswith("0 */3 * * *") or \
        "0 */3" in Schedule.parse(every_3h).describe()


def test_soft_limit_raises_and_puts_the_hard_timer_back() -> None:
    import signal
    import time

    from jobmaster import SoftTimeLimitExceeded
    from jobmaster.worker.executor import soft_limit

    def hard(signum: int, frame: object) -> None:
        raise AssertionError("the hard timer must not fire in this test")

    previous = signal.signal(signal.SIGALRM, hard)
    try:
        signal.setitimer(signal.ITIMER_REAL, 30.0)
        with pytest.raises(SoftTimeLimitExceeded, match="soft time limit of 0.05 s"), \
                soft_limit(0.05):
            time.sleep(5)
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 29.0 < left < 30.0 and signal.getsignal(signal.SIGALRM) is hard
        with soft_limit(10.0):
            time.sleep(0.01)
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 28.9 < left < 30.0 and signal.getsignal(signal.SIGALRM) is hard
        with soft_limit(60.0):  # the hard limit comes first: no soft timer at all
            assert signal.getsignal(signal.SIGALRM) is hard
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    with soft_limit(None):
        pass


@pytest.mark.parametrize(("rate", "interval"), [
    ("100/m", 0.6), ("10/s", 0.1), ("2/h", 1800.0), ("1/d", 86400.0), (4, 0.25),
    ("0.5/s", 2.0), (" 3 / minute ", 20.0), ("5", 0.2)])
def test_rates_read_as_celery_writes_them(rate: object, interval: float) -> None:
    from jobmaster.ratelimit import parse_rate

    assert parse_rate(rate) == pytest.approx(interval)


@pytest.mark.parametrize("rate", ["fast", "10/w", "0/s", "-1/s", True, None, "1e9/s",
                                  float("inf"), "10/s/s"])
def test_bad_rates_are_refused_naming_the_argument(rate: object) -> None:
    from jobmaster.ratelimit import parse_rate

    with pytest.raises(DefinitionError, match="rate_limit="):
        parse_rate(rate)


def test_slots_are_spaced_after_those_reserved_before() -> None:
    from jobmaster.ratelimit import reserve

    assert reserve(None, 100.0, 3, 0.5) == ([100.0, 100.5, 101.0], 101.5)
    assert reserve(90.0, 100.0, 1, 0.5) == ([100.0], 100.5)  # a slot long past is not owed
    assert reserve(103.0, 100.0, 2, 1.0) == ([103.0, 104.0], 105.0)
    assert reserve(103.0, 100.0, 0, 1.0) == ([], 103.0)


def test_rate_limit_is_a_definition_setting() -> None:
    app = make()
    limited = app.job(definition_id="limited", rate_limit="120/m")(lambda: None)
    assert limited.handling.rate_limit == pytest.approx(0.5)
    with pytest.raises(DefinitionError, match="rate_limit='lots'"):
        app.job(definition_id="bad", rate_limit="lots")(lambda: None)


def test_app_task_is_app_job() -> None:
    app = make()

    @app.task(definition_id="celery-named", max_retries=2)
    def add(x: int, y: int) -> int:
        return x + y

    assert app.definitions["celery-named"] is add and add.max_retries == 2
