"""Event log: one JSON line per job event, in files rotated by size.

``App(event_log="/var/log/jobmaster/")`` (or ``middleware=[EventLog(dir, max_bytes=...,
keep=...)]``) appends to ``<dir>/jobmaster-events.jsonl``::

    {"event":"enqueued","at":...,"job_id":"...","definition_id":"add","lane":"default",...}
    {"event":"settled","at":...,"job_id":"...","status":"succeeded","attempt":1,...}

``enqueued`` lines are written where jobs are enqueued (the producer), ``settled`` lines in
the worker's supervisor: every ending of every job, with its status, outcome, error,
attempt, worker and timings. Every line is one ``write`` to a file opened with
``O_APPEND``, so producers and workers on one machine can share a directory without their
lines mixing. When the file has reached ``max_bytes`` it is renamed ``.1`` (``.1`` to
``.2``..., up to ``keep`` files), under an ``flock`` so two processes never rotate at once.

Writing never fails a job: an error is logged (at most once a minute) and the event
dropped.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from typing import Any

from jobmaster.envelope import Envelope
from jobmaster.middleware import Middleware, Settled
from jobmaster.outcomes import Outcome

log = logging.getLogger("jobmaster.event_log")

FILENAME = "jobmaster-events.jsonl"
MAX_MESSAGE = 2000
"""Longest error message written (longer ones are cut)."""


class EventLog(Middleware):
    """Writes job events to ``directory``/``filename`` as JSON lines, rotated by size."""

    def __init__(self, directory: str | os.PathLike[str], *, max_bytes: int = 50 * 2**20,
                 keep: int = 5, filename: str = FILENAME) -> None:
        if max_bytes < 1 or keep < 1:
            raise ValueError("max_bytes and keep must be at least 1")
        self.directory = os.fspath(directory)
        self.path = os.path.join(self.directory, filename)
        self.max_bytes = max_bytes
        self.keep = keep
        self._host = socket.gethostname()
        self._warned = 0.0

    # -- hooks -----------------------------------------------------------------------------
    def after_enqueue(self, envelope: Envelope) -> None:
        """An ``enqueued`` line (producer side)."""
        options = envelope.options
        self.write({
            "event": "enqueued", "at": time.time(), "job_id": envelope.id,
            "cluster": envelope.cluster, "definition_id": envelope.definition_id,
            "lane": envelope.lane, "priority": envelope.priority, "agent": envelope.agent,
            "due": envelope.due, "attempt": envelope.attempt, "job_key": envelope.job_key,
            "schedule": envelope.schedule_name, "metadata": options.metadata or {},
            "host": self._host, "pid": os.getpid(),
        })

    def on_outcome(self, settled: Settled) -> None:
        """A ``settled`` line (worker's supervisor)."""
        env = settled.envelope
        decision = settled.decision
        error = settled.error
        started = settled.started
        self.write({
            "event": "settled", "at": settled.finished, "job_id": settled.job_id,
            "cluster": None if env is None else env.cluster,
            "definition_id": settled.definition_id,
            "lane": None if env is None else env.lane,
            "status": settled.status.value, "outcome": _outcome_name(settled.outcome),
            "action": decision.action.value, "retry_at": decision.retry_at,
            "error": None if error is None else {
                "type": error.type, "message": error.message[:MAX_MESSAGE]},
            "attempt": None if env is None else env.attempt, "worker": settled.worker,
            "due": None if env is None else env.due, "started": started,
            "finished": settled.finished,
            "duration": None if started is None else round(settled.finished - started, 6),
            "queue_wait": None if started is None or env is None
            else round(max(started - env.due, 0.0), 6),
        })

    # -- writing ---------------------------------------------------------------------------
    def write(self, event: dict[str, Any]) -> None:
        """Append one event as a line; rotate when the file is full. Errors are logged."""
        try:
            line = json.dumps(event, separators=(",", ":"), default=str) + "\n"
            self._append(line.encode("utf-8", "replace"))
        except Exception as exc:  # noqa: BLE001 - the log never fails a job
            now = time.monotonic()
            if now - self._warned >= 60.0 or not self._warned:
                self._warned = now
                log.warning("event log %s: could not write an event: %s", self.path, exc)

    def _append(self, data: bytes) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except FileNotFoundError:
            os.makedirs(self.directory, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            full = os.fstat(fd).st_size >= self.max_bytes
        finally:
            os.close(fd)
        if full:
            self.rotate()

    def rotate(self) -> None:
        """Rename the file ``.1`` (older ones one number up, the oldest beyond ``keep``
        dropped), if it is still full once the rotation lock is held."""
        lock = os.open(self.path + ".lock", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if os.stat(self.path).st_size < self.max_bytes:
                    return  # another process rotated it meanwhile
            except FileNotFoundError:
                return
            for n in range(self.keep - 1, 0, -1):
                older = f"{self.path}.{n}"
                if os.path.exists(older):
                    os.replace(older, f"{self.path}.{n + 1}")
            os.replace(self.path, self.path + ".1")
        finally:
            os.close(lock)  # releases the flock


def _outcome_name(outcome: Outcome) -> str:
    name = type(outcome).__name__.lower()
    reason = getattr(outcome, "reason", None)
    return f"{name}:{reason}" if name == "cancelled" and reason else name


__all__ = ["FILENAME", "EventLog"]
