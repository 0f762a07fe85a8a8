"""The pytest plugin's fixtures, used as any project's tests use them: nothing here
declares the plugin, pytest loads it through jobmaster's ``pytest11`` entry point."""

from __future__ import annotations

from typing import Any

import pytest

from jobmaster import App, JobStatus
from jobmaster.testing import EnqueuedJobs, WorkerThread


def test_jobmaster_app_is_a_fresh_memory_app(jobmaster_app: App) -> None:
    assert jobmaster_app.config.agents["main"].startswith("memory://")
    assert jobmaster_app.config.master_url.startswith("sqlite:///")
    assert jobmaster_app.config.eager is False
    assert list(jobmaster_app.definitions) == ["module-level"]  # this module's override
    assert jobmaster_app.jobs.count() == 0


@pytest.mark.jobmaster(eager=True, name="billing")
def test_the_marker_sets_app_options(jobmaster_app: App) -> None:
    assert jobmaster_app.config.eager is True
    assert jobmaster_app.name == "billing"

    @jobmaster_app.job()
    def add(x: int, y: int) -> int:
        return x + y

    assert add.delay(1, 2).get() == 3


@pytest.mark.jobmaster(default_max_retries=4)
class TestOverridingTheConfig:
    @pytest.fixture
    def jobmaster_config(self) -> dict[str, Any]:
        return {"default_max_retries": 2, "max_payload_bytes": 4096}

    def test_the_override_fixture_and_the_class_marker(self, jobmaster_app: App) -> None:
        assert jobmaster_app.config.max_payload_bytes == 4096
        assert jobmaster_app.config.default_max_retries == 4  # the marker goes over it

    @pytest.mark.jobmaster(default_max_retries=1)
    def test_the_nearest_marker_wins(self, jobmaster_app: App) -> None:
        assert jobmaster_app.config.default_max_retries == 1


def test_jobmaster_worker_runs_the_apps_jobs(jobmaster_app: App,
                                             jobmaster_worker: WorkerThread) -> None:
    @jobmaster_app.job()
    def report(month: str) -> str:
        return f"report {month}"

    assert report.delay(month="2026-11").get(timeout=10) == "report 2026-11"
    assert jobmaster_worker.running
    assert jobmaster_worker.worker.pool_kind == "threads"
    assert jobmaster_worker.worker.lanes == ["default", "imports"]


class TestWorkerOptions:
    @pytest.fixture
    def jobmaster_worker_options(self) -> dict[str, Any]:
        return {"pool": "solo", "concurrency": 1, "lanes": ["default", "reports"]}

    def test_they_are_overridable(self, jobmaster_app: App,
                                  jobmaster_worker: WorkerThread) -> None:
        # a job defined after the worker started, on a lane named in the options
        @jobmaster_app.job(lane="reports")
        def report(month: str) -> str:
            return f"report {month}"

        assert jobmaster_worker.worker.pool_kind == "solo"
        assert report.delay(month="2026-12").get(timeout=10) == "report 2026-12"


@pytest.fixture
def jobmaster_app(jobmaster_app: App) -> App:
    """Jobs defined before the worker starts, as a project's are (at import): the worker
    serves their lanes."""

    @jobmaster_app.job(definition_id="module-level", lane="imports")
    def module_level() -> str:
        return "served"

    return jobmaster_app


def test_the_worker_serves_the_lanes_of_jobs_defined_before_it(
        jobmaster_app: App, jobmaster_worker: WorkerThread) -> None:
    assert "imports" in jobmaster_worker.worker.lanes
    assert jobmaster_app.send_task("module-level").get(timeout=10) == "served"


def test_enqueued_jobs_records_what_the_test_enqueued(
        jobmaster_app: App, enqueued_jobs: EnqueuedJobs,
        jobmaster_worker: WorkerThread) -> None:
    @jobmaster_app.job()
    def send(to: str, subject: str = "hi") -> str:
        return to

    @jobmaster_app.job()
    def signup(user: str) -> str:
        return send.delay(to=user, subject="welcome").id

    assert len(enqueued_jobs) == 0
    h = signup.delay(user="ada")
    h.get(timeout=10)
    jobmaster_worker.wait_idle()
    assert enqueued_jobs.definition_ids == [signup.definition_id, send.definition_id]
    [mail] = enqueued_jobs.of(send)
    assert mail.kwargs == {"to": "ada", "subject": "welcome"}
    assert mail.lane == "default" and mail.job_key is None
    assert mail.handle.get(timeout=10) == "ada"
    assert mail.record().status is JobStatus.SUCCEEDED
    assert enqueued_jobs.of(signup.definition_id)[0].id == h.id
    assert enqueued_jobs[0].id == h.id and list(enqueued_jobs)[1] is mail
    enqueued_jobs.clear()
    assert enqueued_jobs == []


@pytest.mark.jobmaster(eager=True)
def test_enqueued_jobs_in_eager_mode(jobmaster_app: App, enqueued_jobs: EnqueuedJobs) -> None:
    @jobmaster_app.job()
    def child(n: int) -> int:
        return n

    @jobmaster_app.job()
    def parent() -> int:
        return child.delay(n=7).get()

    assert parent.delay().get() == 7
    # recorded at enqueue, before each ran: the parent first
    assert [j.definition_id for j in enqueued_jobs] == [parent.definition_id,
                                                       child.definition_id]
    assert enqueued_jobs.of(child)[0].kwargs == {"n": 7}
