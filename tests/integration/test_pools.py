"""The threads and solo pools run the same jobs with the same outcomes as prefork; the
prefork pool's bookkeeping of batches queued in a child, and of ``async def`` jobs waiting
their turn in one."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing import Pipe
from pathlib import Path
from typing import Any

import pytest

from jobmaster import App, JobStatus
from jobmaster.envelope import Envelope
from jobmaster.ids import new_job_id
from jobmaster.testing import close_app, memory_app
from jobmaster.worker import pool as pools
from jobmaster.worker.messages import Item, NotStarted, PoolEvent, Reports, RunEnded, SlotExited
from jobmaster.worker.pool import LoopPool, PreforkPool, ThreadPool
from jobmaster.worker.supervisor import Worker
from tests.conftest import Stack, wait_until


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_pool_runs_retries_and_times_out(pool: str, stack_factory: Callable[..., Stack]) -> None:
    stack = stack_factory("sqlite")
    app = stack.app()
    adds = [app.definition("add").delay(x=i, y=1) for i in range(20)]
    flaky = app.definition("flaky").delay(fails=1)
    slow = app.definition("sleeper").apply(kwargs={"seconds": 30, "tag": "slow"}, timeout=1)
    progress = app.definition("progress").delay()
    stack.worker("-c", "2", "--pool", pool)
    assert [h.wait(timeout=30).result for h in adds] == [i + 1 for i in range(20)]
    assert flaky.wait(timeout=30).result == 2
    job = slow.wait(timeout=30)
    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.type == "TimeoutError"
    expected = "was abandoned" if pool == "threads" else "was interrupted"
    assert expected in job.error.message
    assert progress.wait(timeout=30).progress_message == "forty"
    after = app.definition("add").delay(x=5, y=5)
    assert after.wait(timeout=30).result == 10


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_pool_warm_shutdown_hands_back_waiting_jobs(
    pool: str, stack_factory: Callable[..., Stack]
) -> None:
    stack = stack_factory("sqlite")
    app = stack.app()
    handles = [app.definition("sleeper").delay(seconds=0.3, tag=f"t{i}") for i in range(8)]
    worker = stack.worker("-c", "1", "--pool", pool)
    wait_until(lambda: any(line.startswith("done") for line in stack.lines()),
               what="a job to finish")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    stack.worker("-c", "2", "--pool", pool)
    for h in handles:
        assert h.wait(timeout=60).status is JobStatus.SUCCEEDED
    tags = sorted(line.split()[1] for line in stack.lines() if line.startswith("done"))
    assert tags == sorted(f"t{i}" for i in range(8))


def test_a_failing_process_start_hook_stops_the_worker_with_a_clear_error(
    stack_factory: Callable[..., Stack],
) -> None:
    stack = stack_factory("sqlite")
    worker = stack.worker("-c", "1", app="tests.fixtures.badhook")
    assert worker.wait(60) != 0
    log = stack.worker_log(0)
    assert "on_worker_process_start hook" in log
    assert "cannot connect to the warehouse" in log
    assert "died before they were ready" in log


def test_solo_job_is_seen_running_and_can_be_cancelled(
    stack_factory: Callable[..., Stack],
) -> None:
    stack = stack_factory("sqlite", lease_seconds="1.5")
    app = stack.app()
    handle = app.definition("patient").delay(seconds=30)
    stack.worker("-c", "1", "--pool", "solo")
    wait_until(lambda: handle.status() is JobStatus.RUNNING, what="the solo job to run")
    handle.cancel()
    job = handle.wait(timeout=30)
    assert job.status is JobStatus.CANCELLED
    wait_until(lambda: any(line.startswith("patient stopped") for line in stack.lines()),
               what="the job to see should_stop()")


# -- the prefork pool, driven directly ----------------------------------------------------
def _pool_app(tmp_path: Path, **options: Any) -> App:
    app = App("pools", master=f"sqlite:///{tmp_path}/m.db",
              agents={"main": f"memory://{tmp_path}"}, environ={}, **options)

    @app.job(definition_id="add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.job(definition_id="sleep")
    def sleep(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @app.job(definition_id="nap")
    async def nap(seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds

    return app


def _item(app: App, seq: int, definition_id: str, *, timeout: float | None = None,
          **kwargs: Any) -> Item:
    now = time.time()
    env = Envelope.from_fields(definition_id=definition_id, id=new_job_id(), cluster=app.name,
                               encoding="json", payload=json.dumps(kwargs).encode(),
                               created_at=now, due=now, timeout=timeout)
    return Item(seq, env.to_bytes(), timeout, app.definitions[definition_id].is_async)


def _run_async(app: App, conn: Any, items: list[Item],
               at_start: Callable[[asyncio.AbstractEventLoop], Any] = lambda loop: None,
               ) -> tuple[int, list[list[Item]], dict[int, Any]]:
    """A child's async runner over ``items``, one slot at a time, on a loop of its own:
    how many ran, those left for later, and each one's report by seq (``None``: handed
    back unstarted)."""
    sent: list[Any] = []
    loop = asyncio.new_event_loop()
    at_start(loop)
    try:
        ran, later = pools._run_concurrently(app, loop, conn, items, lambda *_: None,
                                             sent.append, 1)
    finally:
        loop.close()
    reports = dict(item for message in sent if isinstance(message, Reports)
                   for item in message.items)
    return ran, later, reports


def _poll_until(pool: PreforkPool, done: Callable[[list[PoolEvent]], bool],
                timeout: float = 30.0) -> list[PoolEvent]:
    events: list[PoolEvent] = []
    deadline = time.monotonic() + timeout
    while not done(events):
        assert time.monotonic() < deadline, f"the pool never got there: {events}"
        events += pool.poll(0.05)
    return events


def test_prefork_child_holding_two_batches_that_dies_is_charged_its_running_job_only(
    tmp_path: Path,
) -> None:
    app = _pool_app(tmp_path)
    pool = PreforkPool(app, 1)
    pool.depth = 2
    pool.start()
    try:
        _poll_until(pool, lambda _: pool.idle_slots() == [0])  # ready
        # (the first long enough for its report to go out before the next job starts)
        pool.submit(0, [_item(app, 1, "sleep", seconds=0.05), _item(app, 2, "sleep", seconds=30)])
        assert pool.idle_slots() == [0]  # a second batch may wait behind the first
        pool.submit(0, [_item(app, 3, "add", x=2, y=2), _item(app, 4, "add", x=3, y=2)])
        assert pool.idle_slots() == []
        events = _poll_until(pool, lambda _: (pool.current(0) or (0, 0.0))[0] == 2)
        pid = pool.children[0].pid
        os.kill(pid, signal.SIGKILL)
        events += _poll_until(pool, lambda got: any(isinstance(e, SlotExited) for e in got))
        assert [e.seq for e in events if isinstance(e, RunEnded)] == [1]
        exited = [e for e in events if isinstance(e, SlotExited)]
        assert [(e.slot, e.running_seq) for e in exited] == [(0, 2)]
        assert "killed by signal SIGKILL" in exited[0].reason
        _poll_until(pool, lambda _: pool.idle_slots() == [0])  # replaced, holding nothing
        assert pool.children[0].pid != pid and not pool.children[0].outstanding
    finally:
        pool.shutdown()


def test_prefork_child_that_recycles_hands_back_the_batch_queued_behind(
    tmp_path: Path,
) -> None:
    app = _pool_app(tmp_path, max_jobs_per_child=1)
    pool = PreforkPool(app, 1)
    pool.depth = 2
    pool.start()
    try:
        _poll_until(pool, lambda _: pool.idle_slots() == [0])
        pid = pool.children[0].pid
        pool.submit(0, [_item(app, 1, "sleep", seconds=0.3), _item(app, 2, "add", x=1, y=1)])
        pool.submit(0, [_item(app, 3, "add", x=2, y=2)])
        events = _poll_until(pool, lambda _: pool.children[0].pid != pid
                             and pool.idle_slots() == [0])
        assert [e.seq for e in events if isinstance(e, RunEnded)] == [1]
        assert [e.seq for e in events if isinstance(e, NotStarted)] == [2, 3]
        assert not [e for e in events if isinstance(e, SlotExited)]  # not lost: handed back
    finally:
        pool.shutdown()


def test_async_jobs_beyond_the_slots_wait_their_turn_timed_from_their_start(
    tmp_path: Path,
) -> None:
    app = _pool_app(tmp_path)
    _, conn = Pipe()
    items = [_item(app, seq, "nap", timeout=0.5, seconds=0.3) for seq in (1, 2, 3)]
    ran, later, reports = _run_async(app, conn, items)
    assert (ran, later, sorted(reports)) == (3, [], [1, 2, 3])
    # one at a time; each within its 0.5 s from its start, not from its arrival (0.9 s)
    assert [r.kind for r in reports.values()] == ["succeeded"] * 3
    starts = sorted(r.started for r in reports.values())
    assert all(b - a >= 0.25 for a, b in zip(starts, starts[1:], strict=False))


def test_async_jobs_waiting_their_turn_are_handed_back_when_the_worker_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = _pool_app(tmp_path)
    _, conn = Pipe()
    items = [_item(app, seq, "nap", seconds=0.2) for seq in (1, 2, 3)]
    monkeypatch.setattr(pools, "_STOP_REQUESTED", False)
    ran, _, reports = _run_async(  # a warm stop 50 ms in
        app, conn, items, at_start=lambda loop: loop.call_later(
            0.05, lambda: setattr(pools, "_STOP_REQUESTED", True)))
    assert ran == 1
    assert reports[1] is not None and reports[1].kind == "succeeded"  # it finished
    assert reports[2] is None and reports[3] is None  # never started: handed back


def test_async_slots_bound_what_runs_at_once_and_timeouts_count_from_the_start(
    stack_factory: Callable[..., Stack],
) -> None:
    stack = stack_factory("sqlite")
    app = stack.app("tests.fixtures.asyncapp")
    handles = [app.definition("nap").apply(kwargs={"seconds": 0.3, "tag": str(i)},
                                           timeout=0.5) for i in range(6)]
    stack.worker("-c", "1", "--async-slots", "2", app="tests.fixtures.asyncapp")
    assert [h.get(timeout=60) for h in handles] == [str(i) for i in range(6)]
    starts = sorted(h.record().started_at for h in handles)
    # each runs 0.3 s: two at a time means the third starts once the first ended
    assert all((c - a).total_seconds() >= 0.25
               for a, c in zip(starts, starts[2:], strict=False))


def test_warm_stop_finishes_running_async_jobs_and_hands_back_those_waiting_their_turn(
    stack_factory: Callable[..., Stack],
) -> None:
    stack = stack_factory("sqlite")
    app = stack.app("tests.fixtures.asyncapp")
    handles = app.definition("nap").delay_many(
        [{"seconds": 1.0, "tag": str(i)} for i in range(6)])
    worker = stack.worker("-c", "1", "--async-slots", "2", app="tests.fixtures.asyncapp")
    wait_until(lambda: "lane default:" in stack.worker_log(0), what="the worker to start")
    time.sleep(0.6)  # two of them are running now, the others wait their turn
    worker.send_signal(signal.SIGTERM)
    stopping = time.monotonic()
    assert worker.wait(30) == 0
    assert time.monotonic() - stopping < 2.5, "the waiting jobs did not run meanwhile"
    statuses = [h.status() for h in handles]
    assert statuses.count(JobStatus.SUCCEEDED) <= 2, statuses  # the running ones finished
    assert statuses.count(JobStatus.SUCCEEDED) + statuses.count(JobStatus.QUEUED) == 6
    stack.worker("-c", "1", "--async-slots", "2", app="tests.fixtures.asyncapp")
    assert sorted(h.get(timeout=60) for h in handles) == [str(i) for i in range(6)]
    assert {h.record().attempts for h in handles} == {1}  # handed back: not an attempt


# -- an all-async worker at concurrency 1: one process ----------------------------------------
@pytest.fixture
def async_only(tmp_path: Path) -> Iterator[App]:
    app = memory_app("loop", directory=tmp_path)

    @app.job(definition_id="nap")
    async def nap(seconds: float, tag: str = "") -> str:
        await asyncio.sleep(seconds)
        return tag

    yield app
    close_app(app)


def _running(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return thread


def test_an_all_async_worker_at_concurrency_one_runs_its_jobs_in_its_own_process(
    async_only: App,
) -> None:
    app = async_only
    assert isinstance(Worker(app, concurrency=2, install_signals=False).pool, PreforkPool)
    assert isinstance(Worker(app, concurrency=1, pool="threads", install_signals=False).pool,
                      ThreadPool)
    worker = Worker(app, concurrency=1, install_signals=False, async_slots=2)
    assert isinstance(worker.pool, LoopPool) and worker.pool_kind == "loop"
    handles = [app.definition("nap").apply(kwargs={"seconds": 0.3, "tag": str(i)},
                                           timeout=0.5) for i in range(6)]
    thread = _running(worker)
    try:
        assert [h.get(timeout=30) for h in handles] == [str(i) for i in range(6)]
    finally:
        worker.stop()
        thread.join(30)
    assert not thread.is_alive()
    starts = sorted(t for h in handles if (t := h.record().started_at) is not None)
    assert len(starts) == 6
    # two at a time, each within its 0.5 s counted from its start (three rounds: 0.9 s)
    assert all((c - a).total_seconds() >= 0.25
               for a, c in zip(starts, starts[2:], strict=False))


def test_the_loop_pool_hands_the_gil_over_sooner_while_it_runs(async_only: App) -> None:
    # the supervisor's threads share the process with the loop: a job's wake-up must not
    # wait out Python's default 5 ms before the loop gets the GIL back
    import sys

    before = sys.getswitchinterval()
    pool = LoopPool(async_only)
    pool.start()
    try:
        assert sys.getswitchinterval() <= 0.0005 < before
    finally:
        pool.shutdown()
    assert sys.getswitchinterval() == before


def test_an_all_async_workers_timeout_cancels_the_jobs_task(async_only: App) -> None:
    app = async_only
    handle = app.definition("nap").apply(kwargs={"seconds": 5}, timeout=0.2, max_retries=0)
    worker = Worker(app, concurrency=1, install_signals=False)
    thread = _running(worker)
    try:
        job = handle.wait(timeout=30)
    finally:
        worker.stop()
        thread.join(30)
    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.type == "TimeoutError"
    assert "task was cancelled" in job.error.message


@pytest.mark.parametrize("cold", [False, True])
def test_an_all_async_worker_stopping_hands_back_what_it_did_not_finish(
    async_only: App, cold: bool,
) -> None:
    app = async_only
    handles = app.definition("nap").delay_many([{"seconds": 1.0} for _ in range(6)])
    worker = Worker(app, concurrency=1, install_signals=False, async_slots=2)
    thread = _running(worker)
    assert isinstance(worker.pool, LoopPool)
    wait_until(lambda: len(worker.pool.tasks) == 2, what="two jobs to run")  # type: ignore[attr-defined]
    worker.stop()
    if cold:
        worker.stop(cold=True)  # a second signal: the running ones are stopped too
    thread.join(30)
    assert not thread.is_alive()
    app.flush()
    statuses = [h.status() for h in handles]
    finished = 0 if cold else 2
    assert statuses.count(JobStatus.SUCCEEDED) == finished, statuses
    assert statuses.count(JobStatus.QUEUED) == 6 - finished, statuses
    again = Worker(app, concurrency=1, install_signals=False, async_slots=6)
    thread = _running(again)
    try:
        for h in handles:
            assert h.wait(timeout=30).status is JobStatus.SUCCEEDED
    finally:
        again.stop()
        thread.join(30)
    assert {h.record().attempts for h in handles} == {1}  # handed back: not an attempt
