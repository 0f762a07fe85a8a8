"""The worker's supervisor as a state machine, without processes or services.

Each test drives one ``Worker`` step by step (claim, dispatch, events, timeouts, flush,
shutdown) against an in-memory agent and a SQLite master, with a pool whose slots run
nothing by themselves: the test says how each job ends. Every test checks what the master
recorded, what is left on the agent, and that middleware saw each ending once.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.exc

from jobmaster import App, ConfigurationError, Job, JobStatus
from jobmaster.agents.base import Agent, AgentMessage, Claimed
from jobmaster.envelope import Envelope
from jobmaster.ids import new_job_id
from jobmaster.master.repository import Master
from jobmaster.middleware import Middleware, Settled
from jobmaster.models import JobError
from jobmaster.outcomes import (
    MAX_RETRY_WAIT,
    Cancelled,
    Lost,
    Outcome,
    Raised,
    Rejected,
    Released,
    Succeeded,
    TimedOut,
)
from jobmaster.worker.executor import execute
from jobmaster.worker.messages import (
    Item,
    NotStarted,
    PoolEvent,
    Report,
    RunEnded,
    SlotExited,
)
from jobmaster.worker.pool import POOLS, Pool
from jobmaster.worker.supervisor import Worker
from jobmaster.worker.writer import Writer

BOOM = JobError("RuntimeError", "boom", "Traceback (most recent call last): ...")
ARGS = {"x": 1, "y": 2}


# -- a pool the test controls --------------------------------------------------------------
class ScriptedPool(Pool):
    """Slots that never run anything by themselves. A submitted batch waits in its slot
    (behind another, up to ``depth`` batches, as in a prefork child); ``end``, ``run``,
    ``hand_back``, ``die`` and ``age`` make things happen to the slot's first job, and
    ``poll`` hands over what happened."""

    kind = "scripted"
    batching = True
    stopped_how = "was stopped by the test"

    def __init__(self, app: App, size: int) -> None:
        super().__init__(app, size)
        self.queued: dict[int, list[Item]] = {slot: [] for slot in range(size)}
        self.batches: dict[int, list[int]] = {slot: [] for slot in range(size)}
        self.started: dict[int, float] = {}
        self.events: list[PoolEvent] = []
        self.submitted: list[str] = []
        self.killed: list[tuple[int, bool]] = []
        self.cancel_requests: list[int] = []
        self.on_poll: list[Callable[[], None]] = []
        """Run one per ``poll``, first in first: what happens while the supervisor waits."""
        self.polls = 0

    def start(self) -> None:
        pass

    def idle_slots(self) -> list[int]:
        return sorted((s for s, b in self.batches.items() if len(b) < self.depth),
                      key=lambda s: len(self.batches[s]))

    def submit(self, slot: int, items: Sequence[Item], *, concurrent: bool = False) -> None:
        assert len(self.batches[slot]) < self.depth, f"slot {slot} was given jobs while busy"
        if not self.queued[slot]:
            self.started[slot] = time.monotonic()
        self.queued[slot] += items
        self.batches[slot].append(len(items))
        self.submitted += [Envelope.from_bytes(item.body).id for item in items]

    def current(self, slot: int) -> tuple[int, float] | None:
        items = self.queued.get(slot)
        return (items[0].seq, self.started[slot]) if items else None

    def poll(self, timeout: float) -> list[PoolEvent]:
        self.polls += 1
        assert self.polls < 1000, "the supervisor kept polling: its loop never ended"
        if self.on_poll:
            self.on_poll.pop(0)()
        events, self.events = self.events, []
        return events

    def kill(self, slot: int, respawn: bool = True) -> None:
        self.killed.append((slot, respawn))
        self.queued[slot], self.batches[slot] = [], []

    def request_cancel(self, slot: int) -> None:
        self.cancel_requests.append(slot)

    def shutdown(self) -> None:
        pass

    # -- what the test makes happen to a slot's first job -------------------------------
    def _first(self, slot: int) -> Item:
        assert self.queued[slot], f"slot {slot} holds no job"
        item = self.queued[slot].pop(0)
        self.batches[slot][0] -= 1
        if not self.batches[slot][0]:
            self.batches[slot].pop(0)
        self.started[slot] = time.monotonic()  # the next job of the batch starts now
        return item

    def end(self, slot: int, outcome: Outcome) -> None:
        """The job ends with ``outcome``, as its process would report it."""
        item = self._first(slot)
        now = time.time()
        job_id = Envelope.from_bytes(item.body).id
        self.events.append(RunEnded(slot, item.seq, Report.of(job_id, outcome, now, now)))

    def run(self, slot: int) -> None:
        """The job runs as a real slot runs it: middleware, decoding, handler."""
        item = self._first(slot)
        self.events.append(RunEnded(slot, item.seq, execute(self.app, item.body)))

    def hand_back(self, slot: int) -> None:
        """The job is handed back unstarted (the worker is stopping)."""
        item = self._first(slot)
        self.events.append(NotStarted(slot, item.seq))

    def die(self, slot: int) -> None:
        """The slot's process dies while running its first job."""
        running = self.queued[slot][0].seq
        self.queued[slot], self.batches[slot] = [], []
        self.events.append(SlotExited(slot, "worker process 4711 was killed by signal SIGKILL",
                                      running))

    def age(self, slot: int, seconds: float) -> None:
        """The slot's running job started ``seconds`` ago."""
        self.started[slot] = time.monotonic() - seconds


# -- harness ----------------------------------------------------------------------------
class SeenOutcomes(Middleware):
    """Middleware that keeps every ``Settled`` the supervisor shows it."""

    def __init__(self) -> None:
        self.settled: list[Settled] = []

    def on_outcome(self, settled: Settled) -> None:
        self.settled.append(settled)

    def of(self, job_id: str) -> list[Settled]:
        return [s for s in self.settled if s.job_id == job_id]

    def kinds(self, job_id: str) -> list[type]:
        return [type(s.outcome) for s in self.of(job_id)]


@dataclass
class Harness:
    """One app on a SQLite master and a memory agent of its own, its handler's calls,
    what middleware saw, and what the agent accepted back (retries, hand-backs)."""

    app: App
    agent: Agent
    seen: SeenOutcomes
    calls: list[dict[str, Any]]
    requeued: list[AgentMessage] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)

    def worker(self, concurrency: int = 1, **options: Any) -> Worker:
        """A worker on a scripted pool, started as ``run()`` starts one, before its loop."""
        worker = Worker(self.app, concurrency=concurrency, pool="scripted",
                        install_signals=False, **options)
        self.app.master.ensure_ready()
        worker.agent = self.app.agent(worker.agent_name)
        worker.writer = Writer(self.app.master, worker.agent, worker.agent_name)
        worker.pool.start()
        worker._heartbeat(force=True)
        worker._refresh_cancellations(force=True)
        self.workers.append(worker)
        return worker

    def push(self, definition_id: str = "add", payload: bytes = b'{"x":1,"y":2}',
             **fields: Any) -> Envelope:
        """Put a job on the agent directly, as another producer would (the master has no
        record of it)."""
        now = time.time()
        values: dict[str, Any] = {"id": new_job_id(), "cluster": self.app.name,
                                  "encoding": "json", "created_at": now, "due": now}
        values.update(fields)
        env = Envelope.from_fields(definition_id=definition_id, payload=payload, **values)
        self.agent.push([env.to_message()])
        return env

    def job(self, job_id: str) -> Job[Any]:
        return self.app.jobs.get(job_id)

    def take_all(self, lanes: Sequence[str] = ("default",)) -> list[Envelope]:
        """Claim every message due now, as another worker would."""
        claims = self.agent.claim(list(lanes), 100, lease_seconds=30, consumer="test")
        return [Envelope.from_bytes(c.message.body) for c in claims]


@pytest.fixture
def h(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    seen = SeenOutcomes()
    app = App("supervised", master=f"sqlite:///{tmp_path}/m.db",
              agents={"main": f"memory://{tmp_path}"}, middleware=[seen], environ={})
    calls: list[dict[str, Any]] = []

    @app.job(definition_id="add")
    def add(x: int, y: int) -> int:
        calls.append({"x": x, "y": y})
        return x + y

    harness = Harness(app, app.agent(), seen, calls)
    original = harness.agent.retry

    def retry(items: Sequence[tuple[Claimed, AgentMessage]]) -> None:
        original(items)
        harness.requeued.extend(message for _, message in items)

    monkeypatch.setattr(harness.agent, "retry", retry)
    monkeypatch.setitem(POOLS, "scripted", ScriptedPool)
    yield harness
    for worker in harness.workers:
        worker.writer.close(timeout=5.0)
    app.close()


def claim(worker: Worker) -> None:
    """One claim from the agent (it returns at once when jobs are due)."""
    worker._fill()


def deliver(worker: Worker) -> None:
    """Hand what the pool reported to the supervisor, then let it check timeouts."""
    for event in worker.pool.poll(0.0):
        worker._on_event(event)
    worker._check_timeouts()


def written(worker: Worker, timeout: float = 5.0) -> None:
    """Flush the supervisor's batch and wait until the writer recorded it in the master
    and settled it on the agent."""
    worker._flush()
    deadline = time.monotonic() + timeout
    while worker.writer.backlog:
        assert time.monotonic() < deadline, "the writer did not finish its batches"
        time.sleep(0.002)


def claim_until(worker: Worker, done: Callable[[], bool], what: str,
                between: Callable[[], None] = lambda: None) -> None:
    """Claim until ``done()`` (a job given up elsewhere comes back once its lease ends);
    ``between`` runs before each claim."""
    deadline = time.monotonic() + 5.0
    while not done():
        assert time.monotonic() < deadline, what
        between()
        claim(worker)


def pool(worker: Worker) -> ScriptedPool:
    assert isinstance(worker.pool, ScriptedPool)
    return worker.pool


def enqueue(h: Harness, **options: Any) -> str:
    job_id: str = h.app.definitions["add"].apply((), ARGS, **options).id
    return job_id


# -- running to an end ------------------------------------------------------------------
def test_claimed_job_that_succeeds_is_recorded_and_acked(h: Harness) -> None:
    job_id = enqueue(h)
    worker = h.worker()
    claim(worker)
    worker._dispatch()
    assert pool(worker).submitted == [job_id]
    pool(worker).end(0, Succeeded(b"3"))
    deliver(worker)
    written(worker)

    job = h.job(job_id)
    assert (job.status, job.attempts, job.result, job.error) == (JobStatus.SUCCEEDED, 1, 3, None)
    assert h.agent.length() == 0 and h.agent.dead_letters() == []
    assert h.seen.kinds(job_id) == [Succeeded]
    assert worker.held == {} and worker.slots == {}


def test_failure_with_retries_left_comes_back_later_as_the_next_attempt(h: Harness) -> None:
    job_id = enqueue(h, max_retries=1, retry_delay=0.3)
    worker = h.worker()
    claim(worker)
    worker._dispatch()
    pool(worker).end(0, Raised(BOOM))
    deliver(worker)
    written(worker)
    failed_at = time.time()

    job = h.job(job_id)
    assert (job.status, job.attempts) == (JobStatus.RETRYING, 1)
    assert job.error is not None and (job.error.type, job.error.message) == ("RuntimeError", "boom")
    assert job.scheduled_at is not None
    retry_at = job.scheduled_at.timestamp()
    assert failed_at - 0.1 < retry_at - 0.3 < failed_at + 0.1
    [message] = h.requeued
    assert Envelope.from_bytes(message.body).attempt == 2
    assert message.due == pytest.approx(retry_at, abs=0.01)
    assert h.agent.length() == 1 and h.agent.dead_letters() == []
    assert h.seen.kinds(job_id) == [Raised]
    assert h.seen.of(job_id)[0].status is JobStatus.RETRYING

    claim(worker)  # nothing is due until the retry time: the claim waits for it
    assert time.time() >= message.due
    worker._dispatch()
    assert pool(worker).submitted == [job_id, job_id]
    pool(worker).end(0, Succeeded(b"3"))
    deliver(worker)
    written(worker)

    job = h.job(job_id)
    assert (job.status, job.attempts, job.result) == (JobStatus.SUCCEEDED, 2, 3)
    assert [e.type for e in job.errors] == ["RuntimeError"]
    assert h.agent.length() == 0
    assert h.seen.kinds(job_id) == [Raised, Succeeded]


def test_failure_without_retries_left_fails_the_job(h: Harness) -> None:
    job_id = enqueue(h, max_retries=0)
    worker = h.worker()
    claim(worker)
    worker._dispatch()
    pool(worker).end(0, Raised(BOOM))
    deliver(worker)
    written(worker)

    job = h.job(job_id)
    assert (job.status, job.attempts) == (JobStatus.FAILED, 1)
    assert job.error is not None and (job.error.type, job.error.message) == ("RuntimeError", "boom")
    assert h.agent.length() == 0 and h.agent.dead_letters() == [] and h.requeued == []
    assert h.seen.kinds(job_id) == [Raised]


@pytest.mark.parametrize("after", [math.inf, math.nan, 1e12, -1.0],
                         ids=["inf", "nan", "1e12", "negative"])
def test_retry_after_out_of_range_gives_a_finite_retry_within_a_year(
    h: Harness, after: float
) -> None:
    job_id = enqueue(h, max_retries=1)
    worker = h.worker()
    claim(worker)
    worker._dispatch()
    pool(worker).end(0, Raised(BOOM, retry_after=after))
    deliver(worker)
    written(worker)
    now = time.time()

    job = h.job(job_id)
    assert job.status is JobStatus.RETRYING
    assert job.scheduled_at is not None
    retry_at = job.scheduled_at.timestamp()
    assert now < retry_at <= now + MAX_RETRY_WAIT
    [message] = h.requeued
    assert math.isfinite(message.due) and message.due == pytest.approx(retry_at, abs=0.01)
    assert Envelope.from_bytes(message.body).attempt == 2
    [settled] = h.seen.of(job_id)
    assert isinstance(settled.outcome, Raised) and settled.decision.retry_at is not None
    assert math.isfinite(settled.decision.retry_at)


@pytest.mark.parametrize("attempt", [1, 200])
def test_retry_delay_and_backoff_that_overflow_are_capped_at_the_longest_wait(
    h: Harness, attempt: int
) -> None:
    # ten years is over the cap; ten years × 1000 ** 199 (attempt 200) overflows a float
    env = h.push(attempt=attempt, max_retries=1_000_000, retry_delay=10 * 366 * 86400.0,
                 retry_backoff=1000.0)
    worker = h.worker()
    claim(worker)
    worker._dispatch()
    pool(worker).end(0, Raised(BOOM))
    deliver(worker)
    written(worker)
    now = time.time()

    job = h.job(env.id)
    assert job.status is JobStatus.RETRYING
    assert job.scheduled_at is not None
    assert job.scheduled_at.timestamp() == pytest.approx(now + MAX_RETRY_WAIT, abs=5)
    [message] = h.requeued
    assert message.due == pytest.approx(now + MAX_RETRY_WAIT, abs=5)
    assert Envelope.from_bytes(message.body).attempt == attempt + 1
    assert h.seen.kinds(env.id) == [Raised]


# -- a slot that overruns or dies --------------------------------------------------------
@pytest.mark.parametrize(("max_retries", "status"),
                         [(0, JobStatus.FAILED), (1, JobStatus.RETRYING)])
def test_timeout_kills_the_slot_and_the_jobs_batched_behind_wait_for_another_slot(
    h: Harness, max_retries: int, status: JobStatus
) -> None:
    slow = enqueue(h, timeout=5.0, max_retries=max_retries)
    behind = [enqueue(h), enqueue(h)]
    worker = h.worker()
    worker._avg_duration = 1e-4  # short jobs: several travel to the slot in one batch
    claim(worker)
    worker._dispatch()
    assert pool(worker).submitted == [slow, *behind]

    worker._check_timeouts()
    assert pool(worker).killed == []  # not yet out of time
    pool(worker).age(0, 6.0)
    worker._check_timeouts()
    assert pool(worker).killed == [(0, True)]
    written(worker)

    job = h.job(slow)
    assert (job.status, job.attempts) == (status, 1)
    assert job.error is not None and job.error.type == "TimeoutError"
    assert job.error.message == "job exceeded its timeout of 5 s and was stopped by the test"
    assert h.seen.kinds(slow) == [TimedOut]
    _behind_run_next(h, worker, behind)
    assert h.take_all() == []  # nothing went back to the agent (a retry is due later)
    assert h.agent.length() == max_retries


def test_slot_that_dies_fails_its_running_job_and_runs_the_rest_elsewhere(
    h: Harness,
) -> None:
    running = enqueue(h)
    behind = [enqueue(h), enqueue(h)]
    worker = h.worker()
    worker._avg_duration = 1e-4
    claim(worker)
    worker._dispatch()
    pool(worker).die(0)
    deliver(worker)
    written(worker)

    job = h.job(running)
    assert (job.status, job.attempts) == (JobStatus.FAILED, 1)
    assert job.error is not None and job.error.type == "WorkerLostError"
    assert "killed by signal SIGKILL" in job.error.message and running in job.error.message
    assert h.seen.kinds(running) == [Lost]
    _behind_run_next(h, worker, behind)
    assert h.agent.length() == 0 and h.agent.dead_letters() == []


def _behind_run_next(h: Harness, worker: Worker, behind: list[str]) -> None:
    """The jobs queued in a lost slot behind its running one never started: still held,
    first in line for the next slot, they run there (nothing ended for them meanwhile)."""
    assert [held.env.id for held in worker.waiting] == behind
    assert worker.slots == {} and worker.by_seq == {}
    for job_id in behind:
        assert (h.job(job_id).status, h.job(job_id).attempts) == (JobStatus.QUEUED, 0)
        assert h.seen.kinds(job_id) == []
    worker._dispatch()
    assert pool(worker).submitted[-len(behind):] == behind
    for _ in behind:
        pool(worker).end(0, Succeeded(b"3"))
    deliver(worker)
    written(worker)
    for job_id in behind:
        assert (h.job(job_id).status, h.job(job_id).attempts) == (JobStatus.SUCCEEDED, 1)
        assert h.seen.kinds(job_id) == [Succeeded]
    assert worker.held == {} and worker.slots == {} and worker.by_seq == {}


def test_slot_holding_two_batches_that_dies_gives_back_every_job_it_had_not_reported(
    h: Harness,
) -> None:
    first = [enqueue(h), enqueue(h), enqueue(h)]
    worker = h.worker()
    worker._avg_duration = 1e-4  # short jobs: a slot holds a second batch behind its first
    claim(worker)
    worker._dispatch()
    assert pool(worker).batches[0] == [3] and pool(worker).idle_slots() == [0]
    second = [enqueue(h), enqueue(h)]
    claim(worker)
    worker._dispatch()
    assert pool(worker).batches[0] == [3, 2] and pool(worker).idle_slots() == []
    third = enqueue(h)
    claim(worker)
    worker._dispatch()  # two batches are all a slot holds: the next one waits here
    assert pool(worker).submitted == [*first, *second]
    assert [held.env.id for held in worker.slots[0]] == [*first, *second]

    pool(worker).end(0, Succeeded(b"3"))
    deliver(worker)
    pool(worker)._first(0)  # ran, but its report was never sent
    pool(worker).die(0)  # while running the last job of its first batch
    deliver(worker)
    written(worker)

    assert h.job(first[0]).status is JobStatus.SUCCEEDED
    unreported = h.job(first[1])  # it may have run: back to the agent, to run again
    assert (unreported.status, unreported.attempts) == (JobStatus.QUEUED, 0)
    assert h.seen.kinds(first[1]) == [Released]
    lost = h.job(first[2])
    assert (lost.status, lost.attempts) == (JobStatus.FAILED, 1)
    assert lost.error is not None and lost.error.type == "WorkerLostError"
    assert h.seen.kinds(first[2]) == [Lost]
    for job_id in second:  # never started: still held, first in line
        assert (h.job(job_id).status, h.job(job_id).attempts) == (JobStatus.QUEUED, 0)
        assert h.seen.kinds(job_id) == []
    assert worker.slots == {} and worker.by_seq == {}
    assert [held.env.id for held in worker.waiting] == [*second, third]
    assert [e.id for e in h.take_all()] == [first[1]]


def test_lone_job_queued_behind_another_is_not_recorded_running_until_it_ran(
    h: Harness,
) -> None:
    running = enqueue(h)
    worker = h.worker()
    worker._avg_duration = 0.01  # one job a batch, short enough to queue one behind
    claim(worker)
    worker._dispatch()
    behind = enqueue(h)
    claim(worker)
    worker._dispatch()
    assert pool(worker).batches[0] == [1, 1]
    written(worker)
    assert h.job(running).status is JobStatus.RUNNING  # a lone job: recorded at dispatch
    assert h.job(behind).status is JobStatus.QUEUED  # waiting in the slot, not running

    pool(worker).end(0, Succeeded(b"3"))
    pool(worker).end(0, Succeeded(b"3"))
    deliver(worker)
    written(worker)
    for job_id in (running, behind):
        job = h.job(job_id)
        assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 1)
        assert [e.status for e in h.app.jobs.history(job_id)] == [
            JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED]


def test_long_jobs_never_wait_in_a_slot_behind_another(h: Harness) -> None:
    jobs = [enqueue(h), enqueue(h)]
    worker = h.worker()
    worker._avg_duration = 1.0
    claim(worker)
    worker._dispatch()
    worker._dispatch()
    assert pool(worker).submitted == jobs[:1]  # the other waits for a free slot
    assert [held.env.id for held in worker.waiting] == jobs[1:]
    assert worker._poll_timeout() > 0  # and the loop waits for the slot's report


# -- jobs that must not run --------------------------------------------------------------
def test_job_cancelled_before_dispatch_never_runs(h: Harness) -> None:
    job_id = enqueue(h)
    kept = enqueue(h)
    worker = h.worker()
    claim(worker)
    assert h.app.jobs.cancel(job_id) is JobStatus.CANCELLED
    worker._refresh_cancellations(force=True)
    worker._dispatch()
    assert pool(worker).submitted == [kept]
    written(worker)

    job = h.job(job_id)
    assert (job.status, job.attempts, job.started_at) == (JobStatus.CANCELLED, 0, None)
    assert h.seen.kinds(job_id) == [Cancelled]
    assert h.agent.length() == 1  # only the job still running; the cancelled one is acked
    assert h.agent.dead_letters() == []


@pytest.mark.parametrize("ending", ["raised", "slot-died"])
def test_job_cancelled_while_running_is_not_retried_however_it_ends(
    h: Harness, ending: str
) -> None:
    job_id = enqueue(h, max_retries=3, retry_delay=0.0)
    worker = h.worker()
    claim(worker)
    worker._dispatch()
    written(worker)
    h.app.jobs.cancel(job_id)
    worker._refresh_cancellations(force=True)
    assert pool(worker).cancel_requests == [0]  # ctx.should_stop() turns true in the job
    if ending == "raised":
        pool(worker).end(0, Raised(BOOM))
    else:
        pool(worker).die(0)
    deliver(worker)
    written(worker)

    assert h.job(job_id).status is JobStatus.CANCELLED
    assert h.seen.kinds(job_id) == [Cancelled]
    assert h.requeued == [] and h.agent.length() == 0 and h.agent.dead_letters() == []


def test_job_cancelled_while_running_is_not_handed_back_at_a_cold_shutdown(h: Harness) -> None:
    job_id = enqueue(h)
    worker = h.worker()
    claim(worker)
    worker._dispatch()
    written(worker)
    h.app.jobs.cancel(job_id)
    worker._refresh_cancellations(force=True)
    worker.stop()
    worker.stop()
    worker._loop()
    worker._shutdown()

    assert h.requeued == [] and h.agent.length() == 0
    assert h.job(job_id).status is JobStatus.CANCELLED
    assert h.seen.kinds(job_id) == [Cancelled]


def test_job_cancelled_while_its_worker_was_lost_is_dropped_by_the_next(h: Harness) -> None:
    h.app.config.lease_seconds = 0.2
    job_id = enqueue(h)
    lost = h.worker()
    claim(lost)
    lost._dispatch()
    written(lost)  # recorded running; then its worker vanishes and its lease runs out
    h.app.jobs.cancel(job_id)

    worker = h.worker()
    claim_until(worker, lambda: bool(worker.held), "the lost worker's job never came back")
    worker._dispatch()
    written(worker)

    assert pool(worker).submitted == []
    assert h.job(job_id).status is JobStatus.CANCELLED
    assert h.seen.kinds(job_id) == [Cancelled]
    assert h.agent.length() == 0


# -- deliveries that duplicate a run (jobmaster.fencing) ---------------------------------
def test_delivery_of_a_job_that_succeeded_is_acked_without_running(h: Harness) -> None:
    # the first worker ran it and recorded it, but its ack was lost (the agent restarted)
    h.app.config.lease_seconds = 0.2
    job_id = enqueue(h)
    first = h.worker()
    claim(first)
    first._dispatch()
    pool(first).end(0, Succeeded(b"3"))
    deliver(first)
    agent = first.writer.agent
    agent.ack = lambda claims: None  # type: ignore[method-assign]
    written(first)
    del agent.ack
    assert h.job(job_id).status is JobStatus.SUCCEEDED

    second = h.worker()
    claim_until(second, lambda: bool(second.batch.acks), "the job never came back")
    second._dispatch()
    written(second)

    assert pool(second).submitted == [] and second.held == {}
    job = h.job(job_id)
    assert (job.status, job.attempts, job.result) == (JobStatus.SUCCEEDED, 1, 3)
    assert h.seen.kinds(job_id) == [Succeeded]  # one ending, seen once
    assert h.agent.length() == 0


def test_delivery_inside_a_live_workers_run_is_left_to_its_lease(h: Harness) -> None:
    # the agent hands the job out again while its first worker still runs it and
    # heartbeats (as a NATS server restarted meanwhile can): the second worker neither
    # runs it nor settles it; the first one's outcome ends it
    h.app.config.lease_seconds = 0.3
    job_id = enqueue(h)
    first = h.worker()
    claim(first)
    first._dispatch()
    written(first)  # recorded running under the first worker
    time.sleep(0.35)  # its lease on the agent runs out while it works

    second = h.worker()
    second.id = "supervised@elsewhere:2"  # another process (both run in this one here)
    claimed: list[Claimed] = []
    take = second.agent.claim

    def claim_and_keep(*args: Any, **kwargs: Any) -> list[Claimed]:
        got = take(*args, **kwargs)
        claimed.extend(got)
        return got

    second.agent.claim = claim_and_keep  # type: ignore[method-assign]
    claim_until(second, lambda: bool(claimed), "the agent never handed the job out again",
                # the first worker is alive, though its lease lapsed
                between=lambda: h.app.master.worker_seen(first._worker_row("running")))
    del second.agent.claim
    assert [c.message.id for c in claimed] == [job_id] and claimed[0].deliveries == 2
    second._dispatch()
    written(second)
    assert pool(second).submitted == [] and second.held == {}
    assert second.batch.acks == [] and h.agent.length() == 1  # left, not acked
    assert h.job(job_id).status is JobStatus.RUNNING

    pool(first).end(0, Succeeded(b"3"))
    deliver(first)
    written(first)
    job = h.job(job_id)
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 1)
    assert h.seen.kinds(job_id) == [Succeeded]
    deadline = time.monotonic() + 5.0
    while h.agent.length():  # the first ack, or the next delivery's, empties the agent
        assert time.monotonic() < deadline, "the job stayed on the agent"
        claim(second)
        written(second)
        time.sleep(0.01)
    assert pool(second).submitted == []


def test_a_job_held_while_the_agent_was_unreachable_past_its_lease_is_not_started(
        h: Harness) -> None:
    # cut off from its agent, the worker could not renew its claims: by the time a slot
    # frees, the agent may have given the waiting job to another worker
    first_id, second_id = enqueue(h), enqueue(h)
    worker = h.worker()
    claim(worker)
    worker._dispatch()
    assert pool(worker).submitted == [first_id] and len(worker.waiting) == 1
    unrenewed = h.app.config.lease_seconds
    worker.waiting[0].claimed_at -= unrenewed
    worker.vitals.agent_ok = time.monotonic() - unrenewed
    pool(worker).end(0, Succeeded(b"3"))
    deliver(worker)
    worker._dispatch()
    written(worker)

    assert pool(worker).submitted == [first_id]  # the second never started
    assert worker.held == {} and not worker.waiting
    assert h.job(second_id).status is JobStatus.QUEUED  # nothing recorded for it
    assert h.agent.length() == 1  # left to the agent, not acked nor pushed again
    assert h.requeued == []
    assert h.seen.kinds(second_id) == []


def test_expired_job_is_cancelled_in_its_slot_without_running(h: Harness) -> None:
    job_id = enqueue(h, expires=datetime.now(UTC) - timedelta(seconds=1))
    worker = h.worker()
    claim(worker)
    worker._dispatch()
    pool(worker).run(0)
    deliver(worker)
    written(worker)

    job = h.job(job_id)
    assert job.status is JobStatus.CANCELLED
    assert job.error is not None and job.error.type == "JobExpired"
    assert "expired" in job.error.message
    assert h.calls == []
    [settled] = h.seen.of(job_id)
    assert settled.outcome == Cancelled("expired", job.error.message)
    assert h.agent.length() == 0 and h.agent.dead_letters() == []


def _with(**changes: Any) -> Callable[[], bytes]:
    """The body of a well-formed envelope whose header fields are changed as given."""
    def body() -> bytes:
        now = time.time()
        header = Envelope.from_fields(id="poison", cluster="supervised", definition_id="add",
                                      encoding="json", payload=b"", created_at=now,
                                      due=now).header()
        return json.dumps({**header, **changes}).encode() + b"\n" + json.dumps(ARGS).encode()

    return body


def _without_separator() -> bytes:
    return _with()().replace(b"\n", b" ")


POISON: dict[str, tuple[Callable[[], bytes], str]] = {
    "not-an-envelope": (lambda: b"\x80\x04 not an envelope at all", "no header line"),
    "no-separator": (_without_separator, "no header line"),
    "header-not-json": (lambda: b"{'id': 1}\n{}", "not JSON"),
    "header-a-list": (lambda: b"[1, 2]\n{}", "not a JSON object"),
    "due-a-string": (_with(due="soon"), "due="),
    "attempt-a-string": (_with(attempt="1"), "attempt="),
    "definition-id-a-list": (_with(definition_id=["add"]), "definition_id="),
    "max-retries-null": (_with(max_retries=None), "max_retries"),
    "priority-out-of-range": (_with(priority=9), "priority"),
    "metadata-a-list": (_with(metadata=[1]), "metadata"),
}
"""Bodies no worker can run, and what the dead letter's reason must name."""


@pytest.mark.parametrize("case", list(POISON))
def test_poison_message_is_dead_lettered_and_its_batch_still_runs(h: Harness, case: str) -> None:
    make_body, named = POISON[case]
    body = make_body()
    good = [enqueue(h)]
    h.agent.push([AgentMessage("poison-1", "default", 2, time.time(), body)])
    good.append(enqueue(h))
    worker = h.worker(concurrency=2)
    claim(worker)
    worker._dispatch()
    assert sorted(pool(worker).submitted) == sorted(good)
    pool(worker).end(0, Succeeded(b"3"))
    pool(worker).end(1, Succeeded(b"3"))
    deliver(worker)
    written(worker)

    [dead] = h.agent.dead_letters()
    assert dead.message.id == "poison-1" and dead.message.body == body
    assert dead.reason.startswith("InvalidEnvelope: ") and named in dead.reason
    [settled] = h.seen.of("poison-1")
    assert settled.envelope is None and isinstance(settled.outcome, Rejected)
    assert h.app.jobs.find("poison-1") is None
    for job_id in good:
        assert h.job(job_id).status is JobStatus.SUCCEEDED
        assert h.seen.kinds(job_id) == [Succeeded]
    assert h.agent.length() == 0


def test_unknown_definition_fails_and_is_dead_lettered(h: Harness) -> None:
    env = h.push(definition_id="not-registered")
    worker = h.worker()
    claim(worker)
    worker._dispatch()
    assert pool(worker).submitted == []
    written(worker)

    job = h.job(env.id)
    assert (job.status, job.attempts) == (JobStatus.FAILED, 0)
    assert job.error is not None and job.error.type == "UnknownDefinitionError"
    assert "'not-registered'" in job.error.message
    [dead] = h.agent.dead_letters()
    assert dead.message.id == env.id and dead.reason.startswith("UnknownDefinitionError: ")
    assert h.seen.kinds(env.id) == [Rejected]
    assert h.agent.length() == 0


def test_arguments_that_cannot_be_decoded_fail_and_are_dead_lettered(h: Harness) -> None:
    env = h.push(payload=b"\xff{ not json")
    worker = h.worker()
    claim(worker)
    worker._dispatch()
    pool(worker).run(0)
    deliver(worker)
    written(worker)

    job = h.job(env.id)
    assert job.status is JobStatus.FAILED
    assert job.error is not None and "arguments could not be decoded" in job.error.message
    assert h.calls == []
    [dead] = h.agent.dead_letters()
    assert dead.message.id == env.id and "arguments could not be decoded" in dead.reason
    assert h.seen.kinds(env.id) == [Rejected]
    assert h.agent.length() == 0 and h.requeued == []


# -- stopping ----------------------------------------------------------------------------
def test_warm_shutdown_finishes_the_running_job_and_releases_the_others(h: Harness) -> None:
    ids = [enqueue(h) for _ in range(4)]
    worker = h.worker()
    worker._avg_duration = 0.002  # two jobs travel to the slot together
    claim(worker)
    worker._dispatch()
    assert pool(worker).submitted == ids[:2]
    assert [held.env.id for held in worker.waiting] == ids[2:]

    def while_the_slot_runs() -> None:
        # the stopping loop's first wait: the jobs not started are already handed back
        assert [h.seen.kinds(job_id) for job_id in ids[2:]] == [[Released], [Released]]
        assert h.seen.kinds(ids[0]) == []
        pool(worker).end(0, Succeeded(b"3"))
        pool(worker).hand_back(0)  # the slot saw the stop before its second job

    pool(worker).on_poll.append(while_the_slot_runs)
    worker.stop()
    worker._loop()  # returns once the slot reported everything
    worker._shutdown()

    assert worker.writer.backlog == 0
    assert h.job(ids[0]).status is JobStatus.SUCCEEDED
    assert h.seen.kinds(ids[0]) == [Succeeded]
    for job_id in ids[1:]:
        job = h.job(job_id)
        assert (job.status, job.attempts) == (JobStatus.QUEUED, 0)
        assert h.seen.kinds(job_id) == [Released]
    back = {e.id: e.attempt for e in h.take_all()}
    assert back == dict.fromkeys(ids[1:], 1)
    assert h.agent.length() == 3


def test_cold_shutdown_releases_the_running_job(h: Harness) -> None:
    job_id = enqueue(h, max_retries=0)
    worker = h.worker()
    claim(worker)
    worker._dispatch()
    written(worker)
    assert h.job(job_id).status is JobStatus.RUNNING

    worker.stop()
    worker.stop()  # a second signal: cold
    assert worker.cold
    worker._loop()
    worker._shutdown()

    assert pool(worker).killed == [(0, False)]
    job = h.job(job_id)
    # back to queued; Job.attempts counts the interrupted run (docs/workers.md)
    assert (job.status, job.attempts, job.error) == (JobStatus.QUEUED, 1, None)
    assert h.seen.kinds(job_id) == [Released]
    [env] = h.take_all()
    assert (env.id, env.attempt) == (job_id, 1)  # no retry used up


# -- the master refusing a record --------------------------------------------------------
def test_record_the_master_refuses_fails_that_job_only(h: Harness) -> None:
    holder = h.app.definitions["add"].apply((), ARGS, job_key="k").id
    # a second job with the same key, put on the agent without the master's key check
    refused = h.push(job_key="k")
    other = enqueue(h)
    worker = h.worker(concurrency=3)
    claim(worker)
    worker._dispatch()
    for slot in range(3):
        pool(worker).end(slot, Succeeded(b"3"))
    deliver(worker)
    written(worker)

    for job_id in (holder, other):
        assert h.job(job_id).status is JobStatus.SUCCEEDED
    job = h.job(refused.id)
    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.type == "RecordError"
    assert "IntegrityError" in job.error.message
    [dead] = h.agent.dead_letters()
    assert dead.message.id == refused.id
    assert dead.reason.startswith("the master refused the job's record: IntegrityError")
    assert h.agent.length() == 0 and h.requeued == []
    assert h.seen.kinds(refused.id) == [Succeeded]


def test_job_whose_every_record_is_refused_is_dead_lettered_not_retried(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = h.push()
    others = [enqueue(h), enqueue(h)]
    record = Master.record

    def refusing(self: Master, rows: Sequence[Any], *args: Any) -> None:
        if any(row["id"] == refused.id for row in rows):
            raise sqlalchemy.exc.IntegrityError("INSERT INTO jobmaster_jobs", {},
                                                Exception("CHECK constraint failed"))
        record(self, rows, *args)

    monkeypatch.setattr(Master, "record", refusing)
    worker = h.worker(concurrency=3)
    claim(worker)
    worker._dispatch()
    for slot in range(3):
        pool(worker).end(slot, Raised(BOOM))
    deliver(worker)
    written(worker)

    for job_id in others:
        assert h.job(job_id).status is JobStatus.FAILED
    assert h.app.jobs.find(refused.id) is None
    [dead] = h.agent.dead_letters()
    assert dead.message.id == refused.id
    assert "the master refused the job's record" in dead.reason
    assert "CHECK constraint failed" in dead.reason
    assert h.agent.length() == 0 and h.requeued == []


# -- configuration -----------------------------------------------------------------------
def test_comma_separated_lanes_are_each_served(h: Harness) -> None:
    on = {lane: enqueue(h, lane=lane) for lane in ("a", "b", "c")}
    worker = h.worker(concurrency=2, lanes=["a,b"])
    assert worker.lanes == ["a", "b"]
    claim(worker)
    assert sorted(worker.held) == sorted([on["a"], on["b"]])
    assert [e.id for e in h.take_all(["c"])] == [on["c"]]


def test_a_bad_lane_name_is_a_configuration_error(h: Harness) -> None:
    with pytest.raises(ConfigurationError, match="bad lane"):
        Worker(h.app, lanes=["bad lane"], install_signals=False)

