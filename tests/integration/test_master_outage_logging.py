"""While the master is out, a producer's write-behind says so in one line (no traceback),
keeps the jobs, and says when the master answers again and what it wrote."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from jobmaster import App
from tests.conftest import Stack, wait_until


def test_an_outage_is_one_line_then_one_when_it_ends(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    blocked = tmp_path / "m.db"
    blocked.mkdir()  # a directory where the master's file should be: it cannot open
    app = App("outage", master=f"sqlite:///{blocked}", agents={"main": "memory://out"},
              master_sync_seconds=0.02)

    @app.job(definition_id="add")
    def add(x: int, y: int) -> int:
        return x + y

    caplog.set_level(logging.WARNING, logger="jobmaster")
    handles = [add.delay(x=i, y=1) for i in range(5)]
    wait_until(lambda: any("could not write" in r.getMessage() for r in caplog.records),
               10, "the outage to be noticed")
    outage = [r for r in caplog.records if "could not write" in r.getMessage()]
    assert len(outage) == 1 and outage[0].exc_info is None
    assert "5 pushed job(s)" in outage[0].getMessage()

    blocked.rmdir()  # the master can be opened now
    wait_until(lambda: any("answers again" in r.getMessage() for r in caplog.records),
               30, "the master to answer again")
    assert "5 pushed job(s) written" in caplog.records[-1].getMessage()
    assert all(app.jobs.find(h.id) is not None for h in handles)
    assert sum("could not write" in r.getMessage() for r in caplog.records) == 1
    app.close()


def test_a_worker_started_before_its_master_waits_for_it(
        stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory("sqlite")
    path = Path(stack.env["JOBMASTER_MASTER_URL"].removeprefix("sqlite:///"))
    path.mkdir()  # the master cannot be opened yet
    proc = stack.worker("-c", "1")
    wait_until(lambda: "waits for the master" in stack.worker_log(), 30,
               "the worker to say it waits")
    assert proc.poll() is None  # waiting, not exited
    path.rmdir()  # the master comes up
    app: App = stack.app()
    assert app.definition("add").delay(x=2, y=2).wait(timeout=30).result == 4
