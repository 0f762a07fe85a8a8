"""The worker's writer: records outcomes in the master, then settles them on the agent.

The supervisor hands over one batch at a time; a single thread writes them in order, so
waiting on the database overlaps with claiming and dispatching. A batch is written to the
master first (one transaction), then acked / retried / dead-lettered on the agent, so a
crash in between runs a job again rather than losing it. A master that cannot be reached
is retried with backoff; meanwhile the supervisor keeps the batch's leases alive.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from jobmaster.agents.base import Agent, Claimed

if TYPE_CHECKING:
    from jobmaster.master import Master
    from jobmaster.worker.supervisor import _Batch

log = logging.getLogger("jobmaster.worker")

MAX_BACKLOG = 16
"""Batches waiting to be written before the supervisor stops claiming."""


class Writer:
    """A thread writing batches of outcomes, in order."""

    def __init__(self, master: Master, agent: Agent, agent_name: str) -> None:
        self.master = master
        self.agent = agent
        self.agent_name = agent_name
        self._queue: queue.SimpleQueue[_Batch | None] = queue.SimpleQueue()
        self._inflight: deque[_Batch] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jobmaster-writer", daemon=True)
        self._thread.start()

    @property
    def backlog(self) -> int:
        """Batches handed over and not yet written."""
        with self._lock:
            return len(self._inflight)

    def submit(self, batch: _Batch) -> None:
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
            result += b.acks
            result += [c for c, _ in b.retries]
            result += [c for c, _ in b.dead]
        return result

    def close(self, timeout: float) -> bool:
        """Write what is queued (giving up on an unreachable master after ``timeout``
        seconds) and stop. Returns whether everything was written."""
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._stopping.set()
            self._thread.join(5.0)
        return self.backlog == 0

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            self._write(batch, self._settle)
            with self._lock:
                self._inflight.popleft()

    def _write(self, batch: _Batch, then: Callable[[_Batch], None]) -> None:
        pause = 0.2
        while True:
            try:
                self.master.record(list(batch.records.values()), batch.attempts,
                                   list(batch.progress.values()))
                break
            except Exception as exc:  # noqa: BLE001 - keep the batch and try again
                if self._stopping.is_set():
                    log.error("gave up writing %d job record(s) to the master: %s; those "
                              "jobs run again after their lease", len(batch.records), exc)
                    return
                log.error("could not write %d job record(s) to the master: %s; retrying in "
                          "%.1f s", len(batch.records), exc, pause)
                self._stopping.wait(pause)
                pause = min(pause * 2, 5.0)
        then(batch)

    def _settle(self, batch: _Batch) -> None:
        try:
            self.agent.ack(batch.acks)
            self.agent.retry(batch.retries)
            self.agent.dead_letter(batch.dead)
        except Exception as exc:  # noqa: BLE001 - leases expire; jobs come back
            log.error("could not acknowledge %d job(s) on agent %s: %s (they will run again "
                      "after their lease)", len(batch.acks) + len(batch.retries),
                      self.agent_name, exc)
