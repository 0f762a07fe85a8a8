"""One run at a time for continuous jobs (``app.continuous``): a run holds the cluster
lock ``continuous:<name>`` while its handler works, extending it as it goes, so a run
delivered again while another still works (its worker only seemed lost) ends at once,
``cancelled``, instead of running beside it. A worker that dies stops extending, and the
lock frees itself after ``lease_seconds``."""

from __future__ import annotations

import logging
import threading
from typing import Any

from jobmaster.envelope import Envelope
from jobmaster.exceptions import LockLostError
from jobmaster.locks import Lock
from jobmaster.middleware import EndRun, Middleware
from jobmaster.outcomes import Cancelled, Outcome

log = logging.getLogger("jobmaster.worker")


class OneAtATime(Middleware):
    """Holds a continuous job's lock around each of its runs (in the worker process)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._held: dict[str, tuple[Lock, threading.Event]] = {}

    def before_run(self, envelope: Envelope) -> None:
        """Take the job's lock, or end the run: another one is working."""
        definition = self.app.definitions.get(envelope.definition_id)
        name = getattr(definition, "continuous", None)
        if name is None:
            return
        ttl = max(float(self.app.config.lease_seconds), 1.0)
        lock = Lock(self.app, f"continuous:{name}", ttl=ttl)
        if not lock.acquire(blocking=False):
            raise EndRun(Cancelled("cancelled", f"another run of continuous job {name!r} "
                                   "is still working"))
        stop = threading.Event()
        threading.Thread(target=_keep, args=(lock, stop, ttl / 3), daemon=True,
                         name=f"jobmaster-continuous-{name}").start()
        self._held[envelope.id] = (lock, stop)

    def after_run(self, envelope: Envelope, outcome: Outcome) -> None:
        """Let the lock go once the run ended."""
        held = self._held.pop(envelope.id, None)
        if held is None:
            return
        lock, stop = held
        stop.set()
        if lock.locked():
            lock.release()


def _keep(lock: Lock, stop: threading.Event, every: float) -> None:
    while not stop.wait(every):
        try:
            lock.extend()
        except LockLostError:
            log.error("continuous job lock %r was lost while its run worked", lock.name)
            return
        except Exception as exc:  # noqa: BLE001 - try again at the next turn
            log.warning("could not extend continuous job lock %r: %s", lock.name, exc)
