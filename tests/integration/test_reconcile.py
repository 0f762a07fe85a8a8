"""A producer killed before its write-behind: the jobs it pushed reach the master through
beat's reconciliation, on every agent that can list what it holds."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from jobmaster import App, JobStatus
from jobmaster.beat import Beat
from tests.conftest import ROOT, Stack

KILLED_AFTER_PUSH = textwrap.dedent("""
    import os, signal
    from tests.fixtures.workapp import make_app
    app = make_app()
    ids = [app.definition("add").delay(x=i, y=1).id for i in range(30)]
    print(" ".join(ids), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # before the write-behind wrote them
""")


@pytest.mark.parametrize("name", ["sqlite", "redis", "postgres", "mysql"])
def test_jobs_of_a_killed_producer_reach_the_master(
        name: str, stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory(name, master_sync_seconds="60")
    app: App = stack.app()
    app.migrate()
    done = subprocess.run([sys.executable, "-c", KILLED_AFTER_PUSH], cwd=ROOT,
                          env={**os.environ, **stack.env}, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == -9, done.stderr
    ids = done.stdout.split()
    assert len(ids) == 30 and app.agent().length() == 30
    assert sum(1 for i in ids if app.jobs.find(i) is not None) == 0  # only on the agent

    beat = Beat(app)
    later = datetime.now(UTC) + timedelta(seconds=130)  # past the write-behind's grace
    assert beat.reconcile(datetime.now(UTC)) == 0  # too young: still their producer's
    recorded = 0
    for _ in range(5):  # a page per call, going on where the last stopped
        recorded += beat.reconcile(later)
    assert recorded == 30
    assert {app.jobs.status(i) for i in ids} == {JobStatus.QUEUED}
    assert beat.reconcile(later) == 0  # nothing twice
    stack.worker("-c", "2")
    assert app.handle(ids[-1]).wait(timeout=30).result == 30
