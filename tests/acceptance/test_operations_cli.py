"""Operating a cluster with real worker processes: ``app.workers.list()``, ``jobmaster
workers``, ``jobmaster status`` (and ``--watch``), ``jobmaster enqueue``,
``app.jobs.purge`` and ``jobmaster jobs purge``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import jobmaster
from jobmaster import JobStatus, Priority
from jobmaster.exceptions import JobmasterError
from tests.acceptance.test_cli import assert_one_line_error
from tests.conftest import Stack, wait_until

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.fixtures.workapp"


def cli(stack: Stack, *args: str, input: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    """``python -m jobmaster ARGS -A workapp`` on ``stack``'s master and agent."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBMASTER_")}
    env.update(stack.env)
    return subprocess.run([sys.executable, "-m", "jobmaster", *args, "-A", APP], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60, input=input)


def json_lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stdout + result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def status_json(stack: Stack) -> dict[str, Any]:
    (snapshot,) = json_lines(cli(stack, "status", "--json"))
    return snapshot


def depth(snapshot: dict[str, Any], lane: str, priority: str | None = None) -> int:
    (entry,) = [e for e in snapshot["depth"] if e["agent"] == "main" and e["lane"] == lane]
    return int(entry["total"] if priority is None else entry["priorities"][priority])


# -- workers ------------------------------------------------------------------------------
def test_workers_list_shows_details_and_the_running_job(
        stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory()
    app = stack.app()
    handle = app.definition("patient").delay(seconds=60)
    app.flush()
    proc = stack.worker("-c", "2", "--lane", "default,extra")

    def running_it() -> bool:
        return any(handle.id in w.running for w in app.workers.list())

    wait_until(running_it, what="the worker to report the running job")
    (info,) = app.workers.list()
    assert info.pid == proc.pid
    assert info.id == f"{app.name}@{info.host}:{proc.pid}"
    assert info.status == "running" and info.alive
    assert info.lanes == ("default", "extra")
    assert info.agent == "main"
    assert info.concurrency == 2
    assert info.pool == "prefork"
    assert info.version == jobmaster.__version__
    assert info.started <= info.last_seen
    assert info.running == (handle.id,)

    (row,) = json_lines(cli(stack, "workers", "--json"))
    assert row["id"] == info.id and row["pid"] == proc.pid and row["status"] == "running"
    assert row["running"] == [handle.id] and row["pool"] == "prefork"
    assert row["lanes"] == ["default", "extra"] and row["version"] == jobmaster.__version__
    datetime.fromisoformat(row["started"]), datetime.fromisoformat(row["last_seen"])
    human = cli(stack, "workers")
    assert human.returncode == 0, human.stderr
    assert info.id in human.stdout and handle.id in human.stdout

    # once the job ends, the next heartbeat says nothing runs there
    app.jobs.cancel(handle.id)
    handle.wait(timeout=30)
    wait_until(lambda: app.workers.list()[0].running == (), what="running ids to clear")
    assert app.workers.list()[0].processed >= 1


def test_killed_worker_is_lost_and_stopped_worker_stopped(
        stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory(lease_seconds="1")
    app = stack.app()
    killed = stack.worker("-c", "1")
    stopped = stack.worker("-c", "1")
    wait_until(lambda: len(app.workers.list()) == 2, what="both workers to report")
    assert {w.status for w in app.workers.list()} == {"running"}
    killed.send_signal(signal.SIGKILL)
    killed.wait(10)
    stopped.send_signal(signal.SIGTERM)
    stopped.wait(15)

    def by_pid() -> dict[int, str]:
        return {w.pid: w.status for w in app.workers.list()}

    # nothing marks it: "lost" comes from not being seen for two leases
    wait_until(lambda: by_pid().get(killed.pid) == "lost", timeout=15,
               what="the killed worker to show as lost")
    assert by_pid()[stopped.pid] == "stopped"
    assert all(w.running == () for w in app.workers.list())
    assert app.workers.list(include_stopped=False) == []

    assert json_lines(cli(stack, "workers", "--json")) == []
    rows = {r["pid"]: r["status"] for r in json_lines(cli(stack, "workers", "--all", "--json"))}
    assert rows == {killed.pid: "lost", stopped.pid: "stopped"}
    snapshot = status_json(stack)
    assert snapshot["workers"]["alive"] == 0 and snapshot["workers"]["lost"] == 1


# -- status -------------------------------------------------------------------------------
def test_status_depth_workers_and_throughput_move(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory()
    app = stack.app()
    adds = [app.definition("add").apply(kwargs={"x": i, "y": i}, priority=Priority.HIGH)
            for i in range(3)]
    fails = app.definition("always-fails").delay()
    app.flush()

    before = status_json(stack)
    assert before["cluster"] == app.name and before["master"] == "sqlite"
    assert before["jobs"]["queued"] == 4
    assert depth(before, "default", "HIGH") == 3
    assert depth(before, "default", "MEDIUM") == 1
    assert depth(before, "default") == 4
    assert before["workers"]["alive"] == 0
    assert before["last_minute"] == {"finished": 0, "succeeded": 0, "failed": 0,
                                     "cancelled": 0}
    human = cli(stack, "status")
    assert human.returncode == 0, human.stderr
    row = next(line for line in human.stdout.splitlines() if "main/default" in line)
    assert row.split()[1:] == ["0", "0", "1", "3", "0", "4"]  # VERY_LOW..CRITICAL, total

    stack.worker("-c", "1", "--lane", "default,extra")
    for h in adds:
        assert h.wait(timeout=30).status is JobStatus.SUCCEEDED
    assert fails.wait(timeout=30).status is JobStatus.FAILED
    wait_until(lambda: status_json(stack)["workers"]["alive"] == 1, what="a live worker")

    after = status_json(stack)
    assert depth(after, "default") == 0
    assert depth(after, "extra") == 0  # a lane only the worker serves is measured too
    assert after["jobs"]["succeeded"] == 3 and after["jobs"]["failed"] == 1
    assert after["last_minute"] == {"finished": 4, "succeeded": 3, "failed": 1,
                                    "cancelled": 0}
    human = cli(stack, "status")
    assert human.returncode == 0, human.stderr
    assert "last minute: 4 finished (3 succeeded, 1 failed, 0 cancelled)" in human.stdout
    assert "1 alive, 0 lost, 1 seen" in human.stdout
    assert any("main/extra" in line for line in human.stdout.splitlines())


def test_status_watch_refreshes_until_ctrl_c(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory()
    out = stack.directory / "watch.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBMASTER_")}
    with open(out, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobmaster", "status", "-A", APP, "--watch", "0.2"],
            cwd=ROOT, env={**env, **stack.env}, stdout=sink, stderr=subprocess.PIPE)
        try:
            wait_until(lambda: out.read_text().count("queue depth") >= 3,
                       what="three refreshes")
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    assert b"Traceback" not in err


def test_status_watch_json_is_one_object_per_refresh(
        stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory()
    out = stack.directory / "watch.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBMASTER_")}
    with open(out, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobmaster", "status", "-A", APP, "--json", "--watch"],
            cwd=ROOT, env={**env, **stack.env}, stdout=sink, stderr=subprocess.PIPE)
        try:
            wait_until(lambda: out.read_text().count("\n") >= 2, timeout=20,
                       what="two refreshes at the default interval")
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    snapshots = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(snapshots) >= 2 and all(s["cluster"] for s in snapshots)


# -- enqueue ------------------------------------------------------------------------------
def test_enqueue_prints_the_id_and_the_job_runs(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory()
    app = stack.app()
    stack.worker("-c", "1")
    result = cli(stack, "enqueue", "add", "--kwargs", '{"x": 2, "y": 3}')
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    assert len(result.stdout.splitlines()) == 1
    job = app.jobs.handle(job_id).wait(timeout=30)
    assert job.status is JobStatus.SUCCEEDED and job.result == 5

    (obj,) = json_lines(cli(stack, "enqueue", "echo", "--kwargs", '{"value": [1, "a"]}',
                            "--json"))
    assert obj["definition_id"] == "echo" and obj["status"] in ("queued", "running",
                                                                 "succeeded")
    assert app.jobs.handle(obj["id"]).wait(timeout=30).result == [1, "a"]


def test_enqueue_later_and_on_a_lane_with_a_priority(
        stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory()
    app = stack.app()
    later = cli(stack, "enqueue", "add", "--kwargs", '{"x": 1, "y": 1}', "--after", "2h")
    assert later.returncode == 0, later.stderr
    job = app.jobs.get(later.stdout.strip())
    assert job.status is JobStatus.SCHEDULED
    assert job.scheduled_at is not None
    expected = datetime.now(UTC) + timedelta(hours=2)
    assert abs((job.scheduled_at - expected).total_seconds()) < 60

    (obj,) = json_lines(cli(stack, "enqueue", "add", "--kwargs", '{"x": 1, "y": 1}',
                            "--at", "2031-01-02T03:04:05", "--json"))
    assert obj["status"] == "scheduled"
    assert app.jobs.get(obj["id"]).scheduled_at == datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)

    parked = cli(stack, "enqueue", "record", "--kwargs", '{"tag": "p"}', "--lane", "parked",
                 "--priority", "high")
    assert parked.returncode == 0, parked.stderr
    job = app.jobs.get(parked.stdout.strip())
    assert job.lane == "parked" and job.priority == Priority.HIGH
    assert job.status is JobStatus.QUEUED


@pytest.mark.parametrize(("args", "expected"), [
    (["add", "--kwargs", '{"x": 1,'], "not valid JSON"),
    (["add", "--kwargs", "[1, 2]"], "JSON object"),
    (["add", "--kwargs", '"x"'], "JSON object"),
    (["no-such-job", "--kwargs", "{}"], "no-such-job"),
    (["add", "--kwargs", '{"x": 1, "y": 2}', "--at", "next tuesday"], "--at"),
    (["add", "--kwargs", '{"x": 1, "y": 2}', "--after", "5 parsecs"], "--after"),
    (["add", "--kwargs", '{"x": 1, "y": 2}', "--at", "2031-01-01", "--after", "5m"],
     "not both"),
    (["add", "--kwargs", '{"x": 1, "y": 2}', "--priority", "urgent"], "--priority"),
    (["add", "--kwargs", '{"x": 1, "y": 2}', "--lane", "bad lane!"], "lane"),
    (["add", "--kwargs", '{"x": 1}'], "y"),
])
def test_enqueue_bad_arguments_are_one_line(stack_factory: Callable[..., Stack],
                                            args: list[str], expected: str) -> None:
    stack = stack_factory()
    assert_one_line_error(cli(stack, "enqueue", *args), expected)
    assert stack.app().jobs.counts() == {}  # nothing was enqueued


# -- purge --------------------------------------------------------------------------------
def finished_stack(stack_factory: Callable[..., Stack]) -> tuple[Stack, Any, dict[str, list[str]]]:
    """A stack where a worker failed three jobs (with attempt history), succeeded two, and
    one job waits on a lane nobody serves."""
    stack = stack_factory()
    app = stack.app()
    failed = [app.definition("always-fails").delay() for _ in range(3)]
    succeeded = [app.definition("add").delay(x=i, y=1) for i in range(2)]
    queued = app.definition("record").apply(kwargs={"tag": "q"}, lane="parked")
    app.flush()
    stack.worker("-c", "2")
    for h in failed + succeeded:
        h.wait(timeout=30)
    ids = {"failed": [h.id for h in failed], "succeeded": [h.id for h in succeeded],
           "queued": [queued.id]}
    return stack, app, ids


def test_purge_api_counts_batches_and_history(stack_factory: Callable[..., Stack]) -> None:
    stack, app, ids = finished_stack(stack_factory)
    assert all(len(app.master.job_errors(i)) == 3 for i in ids["failed"])  # 3 attempts each

    long_ago = datetime.now(UTC) - timedelta(days=1)
    assert app.jobs.purge(status="failed", before=long_ago) == 0
    assert app.jobs.purge(status="failed", before=timedelta(days=1)) == 0
    assert app.jobs.purge(status="failed", dry_run=True) == 3
    assert app.jobs.counts()["failed"] == 3

    batches: list[int] = []
    assert app.jobs.purge(status="failed", before=datetime.now(UTC) + timedelta(seconds=1),
                          batch_size=2, on_batch=batches.append) == 3
    assert batches == [2, 1]
    for job_id in ids["failed"]:
        assert app.jobs.find(job_id) is None
        assert app.master.job_errors(job_id) == []  # the history went with the job
    assert app.jobs.counts() == {"succeeded": 2, "queued": 1}

    assert app.jobs.purge() == 2  # default: every finished status
    assert app.jobs.counts() == {"queued": 1}

    with pytest.raises(JobmasterError, match="refusing to purge queued"):
        app.jobs.purge(status=["queued", "succeeded"])
    assert app.jobs.counts() == {"queued": 1}
    with pytest.raises(JobmasterError, match="status="):
        app.jobs.purge(status="gone")
    assert app.jobs.purge(status="queued", force=True) == 1
    assert app.jobs.counts() == {}


def test_purge_refuses_a_running_job(stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory()
    app = stack.app()
    handle = app.definition("patient").delay(seconds=60)
    app.flush()
    stack.worker("-c", "1")
    wait_until(lambda: handle.status() is JobStatus.RUNNING, what="the job to run")
    with pytest.raises(JobmasterError, match="refusing to purge running"):
        app.jobs.purge(status="running")
    assert handle.status() is JobStatus.RUNNING
    result = cli(stack, "jobs", "purge", "--status", "running", "--yes")
    assert_one_line_error(result, "refusing to purge running", "--force")
    assert handle.status() is JobStatus.RUNNING
    app.jobs.cancel(handle.id)


def test_purge_cli_confirms_shows_progress_and_deletes(
        stack_factory: Callable[..., Stack]) -> None:
    stack, app, ids = finished_stack(stack_factory)

    declined = cli(stack, "jobs", "purge", "--status", "failed", input="n\n")
    assert declined.returncode != 0
    assert "Delete 3 failed job(s)" in declined.stdout
    assert app.jobs.counts()["failed"] == 3

    none = cli(stack, "jobs", "purge", "--status", "failed", "--older-than", "1d", "--yes")
    assert none.returncode == 0, none.stderr
    assert "purged 0" in none.stdout and app.jobs.counts()["failed"] == 3

    other = cli(stack, "jobs", "purge", "--status", "failed", "--definition", "add", "--yes")
    assert "purged 0" in other.stdout and app.jobs.counts()["failed"] == 3

    done = cli(stack, "jobs", "purge", "--status", "failed", "--definition", "always-fails",
               "--older-than", "0s", "--batch-size", "2", input="y\n")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "deleted 2/3" in lines[-3] and "deleted 3/3" in lines[-2]
    assert lines[-1] == "purged 3"
    assert all(app.master.job_errors(i) == [] and app.jobs.find(i) is None
               for i in ids["failed"])
    assert app.jobs.counts() == {"succeeded": 2, "queued": 1}

    future = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    rest = cli(stack, "jobs", "purge", "--before", future, "--yes")
    assert rest.stdout.splitlines()[-1] == "purged 2"
    assert app.jobs.counts() == {"queued": 1}


@pytest.mark.parametrize(("args", "expected"), [
    (["--before", "yesterday"], "--before"),
    (["--older-than", "a while"], "--older-than"),
    (["--before", "2026-01-01", "--older-than", "1d"], "not both"),
    (["--status", "queued"], "refusing to purge queued"),
    (["--status", "nonsense"], "status="),
])
def test_purge_cli_bad_arguments_are_one_line(stack_factory: Callable[..., Stack],
                                              args: list[str], expected: str) -> None:
    stack = stack_factory()
    assert_one_line_error(cli(stack, "jobs", "purge", "--yes", *args), expected)
