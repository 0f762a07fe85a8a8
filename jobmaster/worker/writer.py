"""The worker's writer: records outcomes in the master, then settles them on the agent.

The supervisor hands over one ``Batch`` at a time; a single thread writes them in order,
so waiting on the database overlaps with claiming and dispatching. A batch is written to
the master first (one transaction), then acked / retried / dead-lettered on the agent, so
a crash in between runs a job again rather than losing it.

Two threads share the work: one writes batches to the master, in order, and hands each to
the other, which settles them on the agent, in order. An agent that is down (a broker
restart) so holds up only the settling, never the master records behind it: a job finished
elsewhere is seen settled in the master at once, and a duplicate delivery of it is dropped
(``jobmaster.fencing``). A settlement the agent fails is tried again, with backoff, for up to
``SETTLE_PATIENCE`` seconds: an ack that reaches a restarted server in time spares a run.

The worker's start-up thread makes the master ready while the first jobs run: the writer
waits for it to end before its first write.

A master that cannot be reached is waited for, retrying with backoff, while the supervisor
keeps the batch's leases alive. A batch the master refuses for what it holds is split
until the refused job stands alone: the others are written, and the refused job is
recorded ``failed`` with the reason (a stripped-down record, if even that is refused) and
dead-lettered on its agent — never retried forever.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jobmaster.agents.base import Agent, AgentMessage, Claimed
from jobmaster.models import JobStatus

if TYPE_CHECKING:  # the master (and SQLAlchemy) is imported when it is first used
    from jobmaster.master.repository import Master

log = logging.getLogger("jobmaster.worker")

MAX_BACKLOG = 16
"""Batches waiting to be written before the supervisor stops claiming."""
SETTLE_PATIENCE = 30.0
"""Seconds a batch's acks, retries and dead letters are tried again on an agent that
fails them, before the writer gives up (the jobs then come back after their lease)."""
_FORCE_AFTER = 10
"""Failed tries of one batch (with the master answering) after which the jobs it refuses
are failed and dead-lettered even when the error looked transient or hit every job alike
(about a minute of backoff)."""


@dataclass(slots=True)
class Batch:
    """Writes waiting for the next flush: master records, then agent settlements."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    progress: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    acks: list[Claimed] = field(default_factory=list)
    retries: list[tuple[Claimed, AgentMessage]] = field(default_factory=list)
    dead: list[tuple[Claimed, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records) + len(self.acks) + len(self.retries) + len(self.dead)

    def claims(self) -> list[Claimed]:
        """Every claim this batch settles."""
        return [*self.acks, *(c for c, _ in self.retries), *(c for c, _ in self.dead)]

    def dead_letter_instead(self, refused: dict[str, str]) -> None:
        """Dead-letter the jobs whose records the master refused, with the reason, rather
        than acking or retrying them."""
        def keep(claim: Claimed) -> bool:
            return claim.message.id not in refused

        moved = [c for c in self.claims() if not keep(c)]
        self.acks = [c for c in self.acks if keep(c)]
        self.retries = [(c, m) for c, m in self.retries if keep(c)]
        self.dead = [(c, r) for c, r in self.dead if keep(c)]
        self.dead += [(c, f"the master refused the job's record: {refused[c.message.id]}")
                      for c in moved]


def failure_record(row: dict[str, Any], reason: str) -> dict[str, Any]:
    """A stripped-down ``failed`` record of a job whose own record the master refused:
    only what the master must hold, and nothing the job brought."""
    now = datetime.now(UTC)
    safe = dict(row)
    safe.update(
        status=JobStatus.FAILED.value, meta={}, result=None, progress=None,
        progress_message=None, error_type="RecordError", error_traceback=None,
        error_message=f"the master refused this job's record: {reason}"[:2000],
        finished_at=now, updated_at=now, job_key=None, schedule_name=None, occurrence=None,
    )
    for key in ("definition_id", "lane", "agent", "worker", "cluster"):
        if isinstance(safe.get(key), str):
            safe[key] = safe[key].replace("\x00", "")[:100]
    return safe


@dataclass(slots=True)
class _Unwritten:
    """A batch the master did not take (the worker is stopping): not settled, only let go."""

    batch: Batch


class Writer:
    """A thread writing batches of outcomes, in order.

    ``master`` is the master, or what gives it once ``after`` (the worker's start-up
    thread, which makes it ready) has ended: nothing is written before that."""

    def __init__(self, master: Master | Callable[[], Master], agent: Agent, agent_name: str,
                 *, after: threading.Thread | None = None) -> None:
        self._master = master
        self._after = after
        self.agent = agent
        self.agent_name = agent_name
        self._queue: queue.SimpleQueue[Batch | None] = queue.SimpleQueue()
        self._inflight: deque[Batch] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._settling: queue.SimpleQueue[Batch | _Unwritten | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="jobmaster-writer", daemon=True)
        self._settler = threading.Thread(target=self._run_settles, name="jobmaster-settler",
                                         daemon=True)
        self._thread.start()
        self._settler.start()

    @property
    def backlog(self) -> int:
        """Batches handed over and not yet written."""
        with self._lock:
            return len(self._inflight)

    def submit(self, batch: Batch) -> None:
        """Write ``batch`` after those before it."""
        with self._lock:
            self._inflight.append(batch)
        self._queue.put(batch)

    def claims(self) -> list[Claimed]:
        """Claims whose outcome is not settled yet: their leases must be kept alive."""
        with self._lock:
            batches = list(self._inflight)
        result: list[Claimed] = []
        for b in batches:
            result += b.claims()
        return result

    def close(self, timeout: float) -> bool:
        """Write what is queued (giving up on an unreachable master after ``timeout``
        seconds) and stop. Returns whether everything was written."""
        self._queue.put(None)
        deadline = time.monotonic() + timeout
        self._thread.join(timeout)
        self._settler.join(max(deadline - time.monotonic(), 0.0))
        if self._thread.is_alive() or self._settler.is_alive():
            self._stopping.set()
            self._thread.join(5.0)
            self._settler.join(5.0)
        return self.backlog == 0

    @property
    def master(self) -> Master:
        """The master the batches are written to."""
        master = self._master
        return master() if callable(master) else master

    def _run(self) -> None:
        after = self._after
        while after is not None and after.is_alive() and not self._stopping.is_set():
            after.join(0.1)  # the start-up thread makes the master ready
        while True:
            batch = self._queue.get()
            if batch is None:
                self._settling.put(None)
                return
            written = False
            try:
                written = self._write(batch)
            except Exception:  # noqa: BLE001 - the writer thread must outlive any batch
                log.exception("could not write a batch of %d job record(s); those jobs run "
                              "again after their lease", len(batch.records))
            # settled in order after those before it (or only let go, if not written)
            self._settling.put(batch if written else _Unwritten(batch))

    def _run_settles(self) -> None:
        while True:
            item = self._settling.get()
            if item is None:
                return
            if isinstance(item, Batch):
                try:
                    self._settle(item)
                except Exception:  # noqa: BLE001 - the thread must outlive any batch
                    log.exception("could not settle a batch of %d job(s) on agent %s",
                                  len(item), self.agent_name)
            with self._lock:
                self._inflight.popleft()

    def _write(self, batch: Batch) -> bool:
        """Record the batch in the master; ``False`` if the worker gave up (stopping)."""
        pause, tries = 0.2, 0
        while True:
            try:
                refused = self.master.record_isolating(
                    list(batch.records.values()), batch.attempts,
                    list(batch.progress.values()), batch.events,
                    force=tries >= _FORCE_AFTER)
                break
            except Exception as exc:  # noqa: BLE001 - keep the batch and try again
                if self._stopping.is_set():
                    log.error("gave up writing %d job record(s) to the master: %s; those "
                              "jobs run again after their lease", len(batch.records), exc)
                    return False
                if self.master.reachable():
                    tries += 1
                log.error("could not write %d job record(s) to the master: %s; retrying in "
                          "%.1f s", len(batch.records), exc, pause)
                self._stopping.wait(pause)
                pause = min(pause * 2, 5.0)
        if refused:
            self._refused(batch, refused)
        return True

    def _refused(self, batch: Batch, refused: dict[str, str]) -> None:
        from jobmaster.master.repository import event_row  # loaded with the master by now

        for job_id, reason in refused.items():
            log.error("the master refused the record of job %s: %s; recording it as failed "
                      "and dead-lettering it", job_id, reason, extra={"job_id": job_id})
            row = batch.records.get(job_id)
            if row is None:
                continue
            failed = failure_record(row, reason)
            try:
                self.master.record([failed], event_rows=[event_row(
                    job_id, failed["status"], failed["finished_at"],
                    error_type=failed["error_type"], error_message=failed["error_message"],
                    worker=row.get("worker"), reason="the master refused its record")])
            except Exception as exc:  # noqa: BLE001 - the dead letter still keeps the reason
                log.error("the master refused even a bare failure record of job %s: %s",
                          job_id, exc, extra={"job_id": job_id})
        batch.dead_letter_instead(refused)

    def _settle(self, batch: Batch) -> None:
        """Ack, retry and dead-letter the batch's claims on the agent, each step tried
        again with backoff while the agent fails it, for ``SETTLE_PATIENCE`` seconds."""
        steps: list[Callable[[], None]] = [
            lambda: self.agent.ack(batch.acks), lambda: self.agent.retry(batch.retries),
            lambda: self.agent.dead_letter(batch.dead)]
        deadline = time.monotonic() + SETTLE_PATIENCE
        pause, failed = 0.1, False
        while steps:
            try:
                steps[0]()
            except Exception as exc:  # noqa: BLE001 - leases expire; jobs come back
                if self._stopping.is_set() or time.monotonic() + pause > deadline:
                    log.error("could not acknowledge %d job(s) on agent %s: %s (they will "
                              "run again after their lease)",
                              len(batch.acks) + len(batch.retries), self.agent_name, exc)
                    return
                if not failed:
                    log.warning("could not settle %d job(s) on agent %s: %s; trying again "
                                "for up to %g s", len(batch), self.agent_name, exc,
                                SETTLE_PATIENCE)
                failed = True
                self._stopping.wait(pause)
                pause = min(pause * 2, 2.0)
                continue
            steps.pop(0)
        if failed:
            log.info("settled %d job(s) on agent %s after it failed", len(batch),
                     self.agent_name)
