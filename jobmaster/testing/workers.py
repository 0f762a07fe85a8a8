"""Real workers inside a test's process: ``WorkerThread`` runs ``jobmaster.worker.Worker``
in a thread (no signal handlers, a ``threads`` or ``solo`` pool), and ``drain`` runs what
is queued until nothing is due.

Nothing here settles jobs itself: claiming, running (the worker's executor), recording
outcomes, retries and dead letters are the worker's own code, as in ``jobmaster worker``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from jobmaster.app import App
from jobmaster.exceptions import JobTimeoutError
from jobmaster.testing.apps import lanes_of
from jobmaster.worker.supervisor import Worker

__all__ = ["WorkerThread", "drain"]


class WorkerThread:
    """A ``Worker`` of ``app`` running in a thread of this process, for tests.

    ``WorkerThread(app).start()`` returns once the worker is claiming; ``stop()`` stops it
    warm (running jobs finish) and waits for it. Also a context manager. ``lanes``
    defaults to every lane the app knows (``lanes_of``); ``pool`` is ``"threads"`` or
    ``"solo"`` (a ``prefork`` pool forks, which a test's process should not do).
    Other keywords go to ``Worker`` (``prefetch``, ``beat``...).
    """

    def __init__(
        self,
        app: App,
        *,
        pool: str = "threads",
        concurrency: int = 2,
        lanes: Sequence[str] | None = None,
        agent: str | None = None,
        **options: Any,
    ) -> None:
        if pool not in ("threads", "solo"):
            raise ValueError(f"pool={pool!r}: a worker in a thread uses 'threads' or 'solo'")
        self.app = app
        self.worker = Worker(app, pool=pool, concurrency=concurrency,
                             lanes=list(lanes) if lanes else lanes_of(app), agent=agent,
                             install_signals=False, **options)
        """The ``Worker`` itself (``processed`` counts the jobs it settled)."""
        self.error: BaseException | None = None
        """What ended the worker's thread with an exception, if anything did."""
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<WorkerThread {self.worker.id} {self.worker.pool_kind} {state}>"

    @property
    def running(self) -> bool:
        """Whether the worker's thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def processed(self) -> int:
        """Jobs the worker settled so far."""
        return self.worker.processed

    def start(self, timeout: float = 30.0) -> WorkerThread:
        """Start the worker; return once it is ready to claim (or raise what stopped it)."""
        if self._thread is not None:
            raise RuntimeError("this WorkerThread was started already")
        self._thread = threading.Thread(target=self._run, name="jobmaster-test-worker",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not hasattr(self.worker, "writer"):  # set by Worker.run once it is set up
            if not self._thread.is_alive():
                self._raise()
                raise RuntimeError("the worker stopped before it started")
            if time.monotonic() > deadline:
                raise JobTimeoutError(f"the worker did not start within {timeout:g} s")
            time.sleep(0.005)
        return self

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as exc:  # noqa: BLE001 - shown to the test by stop()/start()
            self.error = exc

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def idle(self) -> bool:
        """Whether the worker holds no job and has nothing left to write."""
        w = self.worker
        writer = getattr(w, "writer", None)
        return (not w.held and not w.slots and not w.waiting and not len(w.batch)
                and (writer is None or writer.backlog == 0))

    def wait_idle(self, timeout: float = 30.0, *, quiet: float = 0.2) -> int:
        """Wait until nothing is due on the worker's agent: the worker holds nothing and
        either its agent holds nothing or no job started for ``quiet`` seconds (what is
        left is due later). Return how many jobs it settled meanwhile;
        ``JobTimeoutError`` after ``timeout`` seconds."""
        w = self.worker
        before = last = w.processed
        calm_since = time.monotonic()
        deadline = calm_since + timeout
        agent = self.app.agent(w.agent_name)
        while True:
            if not self.running:
                self._raise()
                raise RuntimeError("the worker is not running")
            now = time.monotonic()
            if w.processed != last or not self.idle():
                last, calm_since = w.processed, now
            elif agent.length() == 0 or now - calm_since >= quiet:
                if self.idle() and w.processed == last:
                    return w.processed - before
            if now > deadline:
                raise JobTimeoutError(
                    f"jobs were still due or running after {timeout:g} s (a job that keeps "
                    "enqueueing others, or a lane no worker serves?)")
            time.sleep(0.01)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the worker warm (running jobs finish), wait for its thread, and raise
        what ended it, if it failed."""
        if self._thread is None:
            return
        self.worker.stop()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.worker.stop(cold=True)
            self._thread.join(5.0)
        self._raise()

    def __enter__(self) -> WorkerThread:
        return self.start() if self._thread is None else self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def drain(
    app: App,
    *,
    lanes: Sequence[str] | None = None,
    agents: Sequence[str] | None = None,
    pool: str = "solo",
    concurrency: int = 1,
    timeout: float = 30.0,
    quiet: float = 0.2,
) -> int:
    """Run the jobs queued on the app's agents in this process until none is due, with
    real workers (one per agent, in threads); return how many jobs were settled.

    ``lanes`` defaults to every lane the app knows (``lanes_of``), ``agents`` to all of
    the app's agents. Jobs due later (a retry waiting for its delay, ``countdown=``) stay
    queued: call ``drain`` again once they are due. ``JobTimeoutError`` if jobs are still
    due after ``timeout`` seconds."""
    names = list(agents) if agents is not None else list(app.config.agents)
    threads = [WorkerThread(app, pool=pool, concurrency=concurrency, lanes=lanes,
                            agent=name) for name in names]
    started: list[WorkerThread] = []
    try:
        for thread in threads:
            started.append(thread.start(timeout))
        deadline = time.monotonic() + timeout
        while True:
            done = [t.wait_idle(max(deadline - time.monotonic(), 0.0), quiet=quiet)
                    for t in started]
            # a job run on one agent may have enqueued jobs on another: go round again
            if len(started) == 1 or not any(done):
                # every job they settled, those settled while the others were starting too
                return sum(t.processed for t in started)
    finally:
        errors: list[BaseException] = []
        for thread in started:
            try:
                thread.stop()
            except BaseException as exc:  # noqa: BLE001 - stop the others first
                errors.append(exc)
        if errors:
            raise errors[0]
