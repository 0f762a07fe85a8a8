"""The jobmaster pytest plugin, registered through the ``pytest11`` entry point: installed
with jobmaster, its fixtures are available in every test, and it does nothing in tests
that do not ask for them.

Fixtures:

- ``jobmaster_app``: a fresh app per test (``memory_app``: a SQLite master in a temporary
  directory, a ``memory://`` agent), closed afterwards. Its ``App`` keywords come from
  the ``jobmaster_config`` fixture (override it) and the ``@pytest.mark.jobmaster(...)``
  marker (nearest wins): ``@pytest.mark.jobmaster(eager=True)``. Override
  ``jobmaster_app`` itself to test an app of your own; the other fixtures follow it.
- ``jobmaster_worker``: a real worker running the app's jobs in a thread (a
  ``WorkerThread``), stopped after the test; its ``Worker`` keywords come from the
  ``jobmaster_worker_options`` fixture (``pool``, ``concurrency``, ``lanes``...).
- ``enqueued_jobs``: every job the app enqueued during the test (``EnqueuedJobs``, a
  list of ``EnqueuedJob``; ``enqueued_jobs.of(definition)`` picks one definition's).

jobmaster itself is imported by the fixtures, when a test uses one: loading the plugin
imports nothing but pytest.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from jobmaster.app import App
    from jobmaster.testing.recorder import EnqueuedJobs
    from jobmaster.testing.workers import WorkerThread

__all__ = ["enqueued_jobs", "jobmaster_app", "jobmaster_config", "jobmaster_worker",
           "jobmaster_worker_options"]


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``jobmaster`` marker."""
    config.addinivalue_line(
        "markers",
        "jobmaster(**options): App keywords of the jobmaster_app fixture's app, e.g. "
        "eager=True, name='billing', max_payload_bytes=1024",
    )


@pytest.fixture
def jobmaster_config() -> dict[str, Any]:
    """``App`` keywords of ``jobmaster_app`` (none by default): override this fixture in
    a ``conftest.py`` or test module to set them for many tests at once. Keywords of a
    ``@pytest.mark.jobmaster(...)`` marker go over these."""
    return {}


@pytest.fixture
def jobmaster_app(request: pytest.FixtureRequest, jobmaster_config: dict[str, Any],
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """A fresh app of this test only: a SQLite master in a temporary directory and a
    ``memory://`` agent, with the keywords of ``jobmaster_config`` and of the
    ``jobmaster`` marker (``@pytest.mark.jobmaster(eager=True)``); closed after the
    test."""
    from jobmaster.testing.apps import close_app, memory_app

    options = dict(jobmaster_config)
    for marker in reversed(list(request.node.iter_markers("jobmaster"))):
        if marker.args:
            raise pytest.UsageError("@pytest.mark.jobmaster takes keywords only "
                                    f"(App options), not {marker.args!r}")
        options.update(marker.kwargs)  # the nearest marker (the test's own) comes last
    app = memory_app(directory=tmp_path_factory.mktemp("jobmaster"), **options)
    try:
        yield app
    finally:
        close_app(app)


@pytest.fixture
def jobmaster_worker_options() -> dict[str, Any]:
    """Keywords of ``jobmaster_worker``'s ``WorkerThread`` (default: a ``threads`` pool
    of 2, every lane the app knows): override this fixture to change them, e.g.
    ``{"pool": "solo"}`` or ``{"lanes": ["default", "emails"]}``."""
    return {}


@pytest.fixture
def jobmaster_worker(jobmaster_app: App, jobmaster_worker_options: dict[str, Any]
                     ) -> Iterator[WorkerThread]:
    """A real worker of ``jobmaster_app`` running in a thread of the test's process (a
    started ``WorkerThread``): jobs the test enqueues run on it, ``h.get(timeout=...)``
    waits for them, ``jobmaster_worker.wait_idle()`` waits until nothing is due. Stopped
    after the test (warm: running jobs finish)."""
    from jobmaster.testing.workers import WorkerThread

    thread = WorkerThread(jobmaster_app, **jobmaster_worker_options).start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture
def enqueued_jobs(jobmaster_app: App) -> Iterator[EnqueuedJobs]:
    """Every job ``jobmaster_app`` enqueued during the test, oldest first (jobs enqueued
    by running jobs and workflows too): ``enqueued_jobs.of(send_email)`` lists one
    definition's, each with ``kwargs``, ``lane``, ``priority``, ``due``, ``handle``."""
    from jobmaster.testing.recorder import JobRecorder

    recorder = JobRecorder.install(jobmaster_app)
    try:
        yield recorder.jobs
    finally:
        recorder.stop()
