"""Continuous jobs with real worker processes: one run at a time across the cluster, again
``interval`` after each end, a limited number of runs, paused from the schedules API, and
resumed elsewhere after a kill -9 of the worker running it — on SQLite and PostgreSQL +
Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from jobmaster import App
from jobmaster.beat import Beat
from tests.conftest import Stack, wait_until

APP = "tests.fixtures.continuousapp"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "redis"])
def stack(request: pytest.FixtureRequest, stack_factory: Callable[..., Stack]) -> Stack:
    return stack_factory(request.param)


def runs(stack: Stack) -> list[tuple[str, float, float | None]]:
    """(job id, start, end or None) of every run of "poll" the log shows, by start: an end
    closes the latest open start of its job (a run cut short by a kill never ends)."""
    events = []
    for line in stack.lines():
        kind, _, rest = line.partition(" ")
        if kind in ("start", "end"):
            job_id, at = rest.split()
            events.append((float(at), kind, job_id))
    out: list[list[object]] = []
    for at, kind, job_id in sorted(events):
        if kind == "start":
            out.append([job_id, at, None])
        else:
            run = next(r for r in reversed(out) if r[0] == job_id and r[2] is None)
            run[2] = at
    return [(str(j), float(s), e if e is None else float(e))  # type: ignore[arg-type]
            for j, s, e in out]


def test_runs_one_at_a_time_a_number_of_times_and_pauses(stack: Stack) -> None:
    app: App = stack.app(APP)
    beat = Beat(app)
    stack.worker("-c", "2", app=APP)

    def tick_until(predicate: Callable[[], bool], what: str) -> None:
        wait_until(lambda: beat.tick() is not None and predicate(), timeout=60, what=what)

    tick_until(lambda: sum(1 for r in runs(stack) if r[2] is not None) >= 3,
               "three runs of poll")
    tick_until(lambda: app.schedules.get("thrice").next_fire_at is None,
               "thrice to be done")
    assert [line.split()[0] for line in stack.lines()].count("thrice") == 3
    for _ in range(3):
        beat.tick()
    assert app.master.schedule_runs(app.name, "thrice") == 3  # and no more

    done = runs(stack)
    for before, after in zip(done, done[1:], strict=False):
        assert before[2] is not None and before[2] <= after[1], (before, after)  # never two
        assert after[1] - before[2] >= 0.2 - 0.05  # again interval after each end

    app.schedules.pause("poll")
    tick_until(lambda: all(j.status.is_final for j in app.jobs.list(definition_id="poll")),
               "the last run to end")
    made = app.master.schedule_runs(app.name, "poll")
    for _ in range(5):
        beat.tick()
    assert app.master.schedule_runs(app.name, "poll") == made  # paused: no new run


def test_a_killed_worker_run_resumes_elsewhere_never_two_at_once(stack: Stack) -> None:
    env = {**os.environ, **stack.env, "JM_POLL_SECONDS": "1.5",
           "JOBMASTER_BEAT_INTERVAL": "0.2"}
    beat = subprocess.Popen([sys.executable, "-m", "jobmaster", "beat", "-A", APP, "-l",
                             "WARNING"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        first = subprocess.Popen([sys.executable, "-m", "jobmaster", "worker", "-A", APP,
                                  "-c", "1", "-l", "WARNING"], cwd=ROOT, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: any(r[2] is None for r in runs(stack)), timeout=60,
                   what="a run of poll to start on the first worker")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = max(r[1] for r in runs(stack)) + 0.001
        second = subprocess.Popen([sys.executable, "-m", "jobmaster", "worker", "-A", APP,
                                   "-c", "2", "-l", "WARNING"], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stack.workers.append(second)
        wait_until(lambda: sum(1 for r in runs(stack) if r[2] is not None) >= 2, timeout=90,
                   what="two runs to end on the second worker")
    finally:
        beat.terminate()
        beat.wait(30)
    done = runs(stack)
    cut = [r for r in done if r[2] is None]
    assert len(cut) >= 1  # the run the kill cut short never ended...
    spans = [(start, end if end is not None else max(killed_at, start)) for _, start, end
             in done if end is not None or start < killed_at]
    spans.sort()
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert end <= start, spans  # ...and no run overlapped another
