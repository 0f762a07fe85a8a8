"""The examples tested the way a project tests its own jobs: with jobmaster's pytest plugin.

The examples make their app at import (``app = App("quickstart")``), as projects do, so
``jobmaster_app`` is overridden here: the example's ``tasks`` module is imported with
``memory_environ`` settings (a SQLite master in the test's directory, a ``memory://``
agent, eager mode when the test's ``jobmaster`` marker asks for it), and its app is the
one ``jobmaster_worker`` and ``enqueued_jobs`` work on.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from jobmaster import App, JobStatus
from jobmaster.testing import EnqueuedJobs, WorkerThread, close_app, memory_environ

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.fixture
def example_name() -> str:
    """The example under test (overridden by the scheduling tests)."""
    return "quickstart"


@pytest.fixture
def example(request: pytest.FixtureRequest, example_name: str, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The example's ``tasks`` module, imported afresh on this test's own master and
    agent; eager when the test's ``jobmaster`` marker says ``eager=True``."""
    marker = request.node.get_closest_marker("jobmaster")
    eager = bool(marker is not None and marker.kwargs.get("eager"))
    for key in list(os.environ):
        if key.startswith("JOBMASTER_"):
            monkeypatch.delenv(key)
    for key, value in memory_environ(tmp_path, eager=eager).items():
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(EXAMPLES / example_name))
    sys.modules.pop("tasks", None)  # both examples name their module "tasks"
    module = importlib.import_module("tasks")
    try:
        yield module
    finally:
        sys.modules.pop("tasks", None)


@pytest.fixture
def jobmaster_app(example: ModuleType) -> Iterator[App]:
    """The plugin's app fixture, overridden: the example's own app."""
    app: App = example.app
    try:
        yield app
    finally:
        close_app(app)


def rates(monkeypatch: pytest.MonkeyPatch, example: ModuleType, draws: list[float]) -> None:
    """Make ``fetch_rate``'s coin flips ``draws`` (below 0.5 fails), then always succeed."""
    left = list(draws)
    coin = SimpleNamespace(random=lambda: left.pop(0) if left else 0.9)
    monkeypatch.setattr(example, "random", coin)  # the example's module only


# -- quickstart, with a worker ------------------------------------------------------------
def test_quickstart_jobs_run_on_a_worker(example: ModuleType, jobmaster_app: App,
                                         jobmaster_worker: WorkerThread,
                                         enqueued_jobs: EnqueuedJobs,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    rates(monkeypatch, example, [0.1])  # EUR fails once, then every rate is fetched
    adds = [example.add.delay(x=i, y=i * 10) for i in range(1, 6)]
    fetches = [example.fetch_rate.delay(currency=c) for c in ("EUR", "GBP", "JPY")]
    report = example.build_report.delay(month="2026-11", pages=4)

    assert [h.get(timeout=20) for h in adds] == [11, 22, 33, 44, 55]
    assert [h.get(timeout=20) for h in fetches] == [1.08, 1.27, 0.0067]
    assert report.get(timeout=20).startswith("report 2026-11: 4 pages")
    assert report.record().progress == 100
    assert sum(h.record().attempts for h in fetches) == 4  # one retry in all

    assert len(enqueued_jobs) == 9
    assert [j.kwargs for j in enqueued_jobs.of(example.add)] == [
        {"x": i, "y": i * 10} for i in range(1, 6)]
    [job] = enqueued_jobs.of("build-report")
    assert job.kwargs == {"month": "2026-11", "pages": 4}
    assert job.priority == 3  # Priority.HIGH, from the definition
    jobmaster_worker.wait_idle()
    assert jobmaster_app.jobs.counts() == {"succeeded": 9}


# -- quickstart, eagerly ------------------------------------------------------------------
@pytest.mark.jobmaster(eager=True)
def test_quickstart_jobs_run_eagerly(example: ModuleType, jobmaster_app: App,
                                     enqueued_jobs: EnqueuedJobs,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    assert jobmaster_app.config.eager
    assert example.add.delay(x=1, y=10).get() == 11

    rates(monkeypatch, example, [0.1, 0.2])  # two failures: retried at once, no delay
    h = example.fetch_rate.delay(currency="GBP")
    assert h.get() == 1.27
    assert h.record().attempts == 3
    assert [e.status for e in jobmaster_app.jobs.history(h.id)].count(JobStatus.RETRYING) == 2

    report = example.build_report.delay(month="2026-12", pages=2)
    assert report.get() == f"report 2026-12: 2 pages (job {report.id[:8]}, attempt 1)"
    assert report.state == "SUCCESS"
    assert enqueued_jobs.definition_ids == ["tasks.add", "fetch-rate", "build-report"]


@pytest.mark.jobmaster(eager=True)
def test_quickstart_rate_that_never_comes_fails_after_its_retries(
        example: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    rates(monkeypatch, example, [0.0] * 10)
    h = example.fetch_rate.delay(currency="EUR")
    error = h.get(propagate=False)
    assert error.type == "ConnectionError" and "EUR" in error.message
    assert h.record().attempts == 6  # max_retries=5


# -- scheduling: its static schedule fires on a worker with embedded beat ------------------
class TestScheduling:
    @pytest.fixture
    def example_name(self) -> str:
        return "scheduling"

    @pytest.fixture
    def jobmaster_worker_options(self) -> dict[str, Any]:
        return {"beat": True}

    def test_the_static_schedule_fires(self, jobmaster_app: App,
                                       jobmaster_worker: WorkerThread) -> None:
        def heartbeats() -> list[Any]:
            return [j for j in jobmaster_app.jobs.list(definition_id="heartbeat")
                    if j.status is JobStatus.SUCCEEDED]

        wait_for(lambda: bool(heartbeats()), timeout=20)
        [first, *_] = heartbeats()
        assert first.schedule_name == "heartbeat-api"
        assert str(first.result).startswith("api is alive at ")

    @pytest.mark.jobmaster(eager=True)
    def test_its_jobs_run_eagerly(self, example: ModuleType) -> None:
        h = example.sync_prices.delay(source="ecb")
        assert h.get() == f"prices synced from ecb (job {h.id[:8]})"


def wait_for(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not true after {timeout:g} s")
        time.sleep(0.1)
