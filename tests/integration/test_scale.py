"""Workers on production agents: crash recovery, scale-out, routing, master sync."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable

import pytest

from jobmaster import App, JobStatus
from tests.conftest import Stack, wait_until
from tests.services import POSTGRES_URL, REDIS_URL, require


@pytest.mark.parametrize("backend", ["redis", "postgres", "nats"])
def test_kill_9_mid_job_loses_nothing(backend: str, stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory(backend, lease_seconds="2")
    app = stack.app()
    handles = [app.definition("sleeper").delay(seconds=0.1, tag=f"j{i}") for i in range(60)]
    first = stack.worker("-c", "2")
    wait_until(lambda: sum(1 for line in stack.lines() if line.startswith("done")) >= 10,
               what="some jobs to finish on the first worker")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    stack.worker("-c", "2")
    for h in handles:
        assert h.wait(timeout=90).status is JobStatus.SUCCEEDED
    done = Counter(line.split()[1] for line in stack.lines() if line.startswith("done"))
    assert set(done) == {f"j{i}" for i in range(60)}, "every job finished"
    assert app.jobs.counts() == {"succeeded": 60}


@pytest.mark.parametrize("backend", ["redis", "postgres", "nats", "mysql"])
def test_three_workers_run_2000_jobs_exactly_once(
    backend: str, stack_factory: Callable[..., Stack]
) -> None:
    stack = stack_factory(backend, lease_seconds="60")
    app = stack.app()
    app.migrate()
    for _ in range(3):
        stack.worker("-c", "2")
    wait_until(lambda: len(app.master.list_workers(cluster=app.name)) == 3, timeout=60,
               what="three workers to report")
    record = app.definition("record")
    handles = record.delay_many([{"tag": f"r{i}"} for i in range(2000)])
    app.flush()
    wait_until(lambda: app.jobs.counts().get("succeeded", 0) == 2000, timeout=180,
               what="2,000 jobs to succeed")
    ran = Counter(line.split()[1] for line in stack.lines() if line.startswith("record"))
    assert len(ran) == 2000
    assert max(ran.values()) == 1, f"ran twice: {[t for t, n in ran.items() if n > 1][:5]}"
    workers = {job.worker for job in app.jobs.list(limit=2000)}
    assert len(workers) >= 2, "the work was shared between the workers"
    assert app.jobs.counts() == {"succeeded": 2000}
    assert len(handles) == 2000


def test_pushed_jobs_reach_the_master_within_two_seconds(
    stack_factory: Callable[..., Stack],
) -> None:
    stack = stack_factory("redis")
    app = stack.app()
    started = time.monotonic()
    handle = app.definition("add").delay(x=1, y=2)
    assert app.agent().length() == 1  # on the agent at once
    wait_until(lambda: app.master.job_status(handle.id) == "queued", timeout=2.0,
               what="the master to hear of the job without a flush")
    assert time.monotonic() - started < 2.0


def test_lanes_route_to_named_agents(tmp_path, stack_factory: Callable[..., Stack]) -> None:
    require("redis")
    require("postgres")
    stack = stack_factory("postgres", agents=f"main={POSTGRES_URL},fast={REDIS_URL}",
                          routes="emails=fast")
    app = stack.app()
    assert set(app.config.agents) == {"main", "fast"}
    mail = app.definition("record").apply(kwargs={"tag": "mail"}, lane="emails")
    report = app.definition("record").delay(tag="report")
    forced = app.definition("record").apply(kwargs={"tag": "forced"}, agent="fast")
    assert app.agent("fast").length() == 2
    assert app.agent("main").length() == 1
    stack.worker("-c", "1", "--agent", "fast", "--lane", "emails", "--lane", "default")
    assert mail.wait(timeout=30).status is JobStatus.SUCCEEDED
    assert forced.wait(timeout=30).status is JobStatus.SUCCEEDED
    app.flush()
    assert report.status() is JobStatus.QUEUED  # its agent has no worker yet
    stack.worker("-c", "1", "--agent", "main")
    assert report.wait(timeout=30).status is JobStatus.SUCCEEDED
    assert mail.record().worker != report.record().worker


def test_enqueue_on_another_cluster(stack_factory: Callable[..., Stack]) -> None:
    home = stack_factory("sqlite")
    other = stack_factory("sqlite")
    other_app = other.app()
    app = App("home", master=home.env["JOBMASTER_MASTER_URL"],
              agents={"main": home.env["JOBMASTER_AGENT_URL"]},
              clusters={other_app.name: {"master": other.env["JOBMASTER_MASTER_URL"],
                                         "agents": {"main": other.env["JOBMASTER_AGENT_URL"]},
                                         "namespace": other.env["JOBMASTER_NAMESPACE"]}})
    handle = app.enqueue("add", kwargs={"x": 20, "y": 22}, cluster=other_app.name)
    other.worker("-c", "1")
    job = other_app.definition("add").app.jobs.get(handle.id) if False else None
    del job
    wait_until(lambda: other_app.master.job_status(handle.id) == "succeeded", timeout=30,
               what="the other cluster to run the job")
    assert other_app.jobs.get(handle.id).result == 42
    assert app.master.job_status(handle.id) is None
