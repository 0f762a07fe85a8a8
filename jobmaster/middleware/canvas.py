"""Workflow steps: when a job of a workflow ends, the jobs waiting for it are decided.

``on_outcome`` runs in the worker's supervisor before the job's record reaches the master
(the writer thread writes it), so it only notes the job; a thread of its own then asks the
master (``Workflows.advance``) to release or abandon the steps waiting for it, once the
master holds the job as ended — results are read from the master, never from memory. A job
the master does not show as ended yet is asked about again a little later, for up to
``_PATIENCE`` seconds. Whatever this thread misses (the worker was killed, the master was
out of reach) beat's ``sweep`` finds: every waiting step whose parents all ended.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import TYPE_CHECKING

from jobmaster.forking import after_fork
from jobmaster.host import AppResources
from jobmaster.middleware import Middleware, Settled

if TYPE_CHECKING:
    from jobmaster.master.repository import Fence
    from jobmaster.master.workflows import Advanced, Workflows

log = logging.getLogger("jobmaster.workflows")

_PATIENCE = 60.0
"""How long a job that ended is asked about while the master does not show it ended."""
_SWEEP_EVERY = 2.0
"""Seconds between two sweeps by beat (each one query when nothing waits)."""
_FORGET_EVERY = 300.0


class WorkflowSteps(Middleware):
    """Releases or abandons the steps waiting for a job of a workflow when it ends."""

    def __init__(self, app: AppResources) -> None:
        self.app = app
        self._queue: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._next_sweep = 0.0
        self._next_forget = 0.0
        after_fork(self, WorkflowSteps._forget)

    def _forget(self) -> None:
        self._queue = queue.SimpleQueue()
        self._thread = None
        self._lock = threading.Lock()

    def _store(self) -> Workflows:
        from jobmaster.master.workflows import Workflows

        app = self.app
        return Workflows(app.master, app.serializers, app.config.max_payload_bytes)

    # -- in the worker --------------------------------------------------------------------
    def on_outcome(self, settled: Settled) -> None:
        """Note a job of a workflow that ended; the steps after it are decided off the
        supervisor's thread."""
        from jobmaster.master.workflows import WORKFLOW_KEY

        env = settled.envelope
        if env is None or not settled.status.is_final:
            return
        metadata = env.options.metadata
        if not metadata or WORKFLOW_KEY not in metadata:
            return
        self._queue.put(settled.job_id)
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, daemon=True,
                                                    name="jobmaster-workflows")
                    self._thread.start()

    def _run(self) -> None:
        from jobmaster.master.workflows import Advanced

        waiting: dict[str, tuple[float, float, float]] = {}  # id -> (next try, pause, give up)
        store = self._store()
        while True:
            now = time.monotonic()
            due = min((t for t, _, _ in waiting.values()), default=now + 1.0)
            fresh: list[str] = []
            try:
                fresh.append(self._queue.get(timeout=max(due - now, 0.0)))
                while True:
                    fresh.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            now = time.monotonic()
            for job_id in fresh:
                waiting[job_id] = (now, 0.05, now + _PATIENCE)
            ready = [i for i, (t, _, _) in waiting.items() if t <= now]
            if not ready:
                continue
            try:
                report = store.advance(ready)
            except Exception as exc:  # noqa: BLE001 - the master may be out of reach: later
                log.warning("could not advance workflows yet: %s", exc)
                report = Advanced(unsettled=ready)
            unsettled = set(report.unsettled or ())
            for job_id in ready:
                _, pause, give_up = waiting.pop(job_id)
                if job_id in unsettled:
                    if now >= give_up:
                        log.info("job %s is not recorded as ended after %g s; beat's sweep "
                                 "will decide the steps after it", job_id, _PATIENCE,
                                 extra={"job_id": job_id})
                        continue
                    waiting[job_id] = (now + pause, min(pause * 2, 2.0), give_up)

    # -- in beat ----------------------------------------------------------------------------
    def sweep(self, fence: Fence | None = None, *, force: bool = False) -> Advanced | None:
        """Decide every waiting step of the cluster that can be decided (at most every
        ``_SWEEP_EVERY`` seconds unless ``force``); ``None`` when it was not time."""
        from jobmaster.master.repository import LeadershipLost

        clock = time.monotonic()
        if not force and clock < self._next_sweep:
            return None
        self._next_sweep = clock + _SWEEP_EVERY
        store = self._store()
        try:
            report = store.sweep(self.app.name, fence=fence)
            if clock >= self._next_forget:
                self._next_forget = clock + _FORGET_EVERY
                store.forget_finished(self.app.name)
        except LeadershipLost:
            raise
        except Exception as exc:  # noqa: BLE001 - beat's other duties go on
            log.error("could not sweep waiting workflow steps: %s", exc)
            return None
        if report.released or report.abandoned:
            log.info("workflows: %d step(s) released, %d abandoned by the sweep",
                     report.released, report.abandoned)
        return report


def sweep_workflows(app: AppResources, fence: Fence | None = None) -> int:
    """Beat's part: release or abandon the waiting workflow steps of ``app``'s cluster
    whose parents ended (fenced on beat's lease); return how many."""
    for middleware in app.pipeline.middleware:
        if isinstance(middleware, WorkflowSteps):
            report = middleware.sweep(fence)
            return 0 if report is None else report.released + report.abandoned
    return 0
