"""Workers whose clocks disagree with the master's: heartbeats are stamped and judged by
the master's clock (its database server's), so a worker ten minutes behind is not taken
for dead while it runs a job, and one ten minutes ahead is not taken for alive once it
died. The skewed worker is a real worker process whose wall clock is set off
(``tests.fixtures.skewed``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from jobmaster import JobStatus
from jobmaster.beat import Beat
from tests.conftest import ROOT, Stack, wait_until


def _worker(stack: Stack, skew: float) -> subprocess.Popen[bytes]:
    """A real worker process of ``stack`` whose wall clock is ``skew`` seconds off
    (``tests.fixtures.skewed``)."""
    out = open(stack.directory / f"worker-{len(stack.workers)}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fixtures.skewed", str(skew), "worker", "-A",
         "tests.fixtures.workapp", "-c", "1"],
        cwd=ROOT, env={**os.environ, **stack.env}, stdout=out, stderr=subprocess.STDOUT)
    stack.workers.append(proc)
    return proc


def test_a_worker_whose_clock_is_behind_is_not_reaped_while_it_runs(
        stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory("redis")  # PostgreSQL master, Redis agent, 3 s leases
    app = stack.app()
    _worker(stack, -600.0)
    handle = app.definition("sleeper").delay(seconds=8.0, tag="long")
    wait_until(lambda: any(line.startswith("start long") for line in stack.lines()),
               what="the job started")
    first = next(line for line in stack.lines() if line.startswith("start long"))
    stack.worker("-c", "1")  # a worker on time, to run the job if it were pushed again
    beat = Beat(app)
    reaped = 0
    while handle.status() is JobStatus.RUNNING or handle.status() is JobStatus.QUEUED:
        reaped += beat.reap()  # every lease and more: the skewed worker still lives
        time.sleep(0.5)
    assert reaped == 0
    assert handle.wait(timeout=30).result == "long"
    starts = [line for line in stack.lines() if line.startswith("start long")]
    assert starts == [first], "the job ran again while its first worker still ran it"
    app.close()


def test_a_dead_worker_whose_clock_was_ahead_gives_its_job_up_in_time(
        stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory("redis")
    app = stack.app()
    ahead = _worker(stack, +600.0)
    handle = app.definition("sleeper").delay(seconds=60.0, tag="stuck")
    wait_until(lambda: any(line.startswith("start stuck") for line in stack.lines()),
               what="the job started")
    wait_until(lambda: handle.status() is JobStatus.RUNNING and any(
        w["id"] == app.master.get_job(handle.id)["worker"]
        for w in app.master.list_workers(cluster=app.name)), what="recorded running")
    stack.worker("-c", "1")
    time.sleep(2.0)  # the skewed worker heartbeats meanwhile
    ahead.send_signal(signal.SIGKILL)  # its supervisor and its child with it
    ahead.wait(timeout=10)
    died = time.monotonic()
    # the lease (3 s) runs out and the worker on time claims the job again: its
    # heartbeat, stamped by the master, shows the dead worker gone
    wait_until(lambda: len([line for line in stack.lines()
                            if line.startswith("start stuck")]) == 2,
               timeout=40, what="the dead worker's job ran again elsewhere")
    assert time.monotonic() - died < 30
    wait_until(lambda: handle.status() is JobStatus.RUNNING, what="recorded running again")
    app.close()
