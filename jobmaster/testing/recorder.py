"""What an app enqueued, for a test's assertions: a middleware (``JobRecorder``) that keeps
every envelope shown to ``after_enqueue``, read as a list of ``EnqueuedJob``.

    recorder = JobRecorder.install(app)
    send_welcome.delay(user_id=7)
    [job] = recorder.jobs.of(send_welcome)
    assert job.kwargs == {"user_id": 7}
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, overload

from jobmaster.app import App
from jobmaster.definitions import JobDefinition
from jobmaster.envelope import Envelope
from jobmaster.jobs import JobHandle
from jobmaster.middleware import Middleware
from jobmaster.models import Job

__all__ = ["EnqueuedJob", "EnqueuedJobs", "JobRecorder"]


@dataclass(frozen=True, slots=True)
class EnqueuedJob:
    """One job as it was enqueued: its id, definition, arguments (decoded from the encoded
    payload, so as a worker will see them) and resolved options."""

    id: str
    definition_id: str
    kwargs: dict[str, Any]
    lane: str
    priority: int
    due: datetime
    """When the job was due to start (now, or its ``countdown``/``at``)."""
    metadata: dict[str, Any]
    job_key: str | None
    envelope: Envelope = field(repr=False)
    app: App = field(repr=False, compare=False)

    @property
    def handle(self) -> JobHandle[Any]:
        """A handle on the job: ``get``, ``wait``, ``state``..."""
        return self.app.handle(self.id, self.definition_id)

    def record(self) -> Job[Any]:
        """The job's record in the master, as it is now."""
        return self.app.jobs.get(self.id)


class EnqueuedJobs(Sequence[EnqueuedJob]):
    """The jobs an app enqueued, oldest first: a read-only list, with ``of`` to pick those
    of one definition."""

    def __init__(self) -> None:
        self._items: list[EnqueuedJob] = []
        self._lock = threading.Lock()

    def _add(self, job: EnqueuedJob) -> None:
        with self._lock:
            self._items.append(job)

    def _snapshot(self) -> list[EnqueuedJob]:
        with self._lock:
            return list(self._items)

    @overload
    def __getitem__(self, index: int) -> EnqueuedJob: ...

    @overload
    def __getitem__(self, index: slice) -> list[EnqueuedJob]: ...

    def __getitem__(self, index: int | slice) -> EnqueuedJob | list[EnqueuedJob]:
        return self._snapshot()[index]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __iter__(self) -> Iterator[EnqueuedJob]:
        return iter(self._snapshot())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EnqueuedJobs):
            return self._snapshot() == other._snapshot()
        if isinstance(other, list):
            return self._snapshot() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"EnqueuedJobs({self._snapshot()!r})"

    def of(self, definition: str | JobDefinition[Any, Any]) -> list[EnqueuedJob]:
        """The jobs of one definition (its id, or the definition itself), oldest first."""
        wanted = definition if isinstance(definition, str) else definition.definition_id
        return [job for job in self._snapshot() if job.definition_id == wanted]

    @property
    def ids(self) -> list[str]:
        """The ids of the jobs, oldest first."""
        return [job.id for job in self._snapshot()]

    @property
    def definition_ids(self) -> list[str]:
        """The definition id of each job, oldest first (repeated for repeated jobs)."""
        return [job.definition_id for job in self._snapshot()]

    def clear(self) -> None:
        """Forget the jobs recorded so far."""
        with self._lock:
            self._items.clear()


class JobRecorder(Middleware):
    """Middleware that records every job its app enqueues (``after_enqueue``), including
    jobs enqueued by running jobs and by workflows, until ``stop()``."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.jobs = EnqueuedJobs()
        """What was recorded."""
        self.active = True

    @classmethod
    def install(cls, app: App) -> JobRecorder:
        """A recorder added to ``app``'s middleware, recording from now on."""
        recorder = cls(app)
        app.add_middleware(recorder)
        return recorder

    def stop(self) -> None:
        """Record nothing more (the middleware stays in place, inert)."""
        self.active = False

    def after_enqueue(self, envelope: Envelope) -> None:
        """Keep the job, its arguments decoded by the serializer a worker will use."""
        if not self.active:
            return
        serializer = self.app.serializers.get(envelope.encoding)
        loaded = {} if serializer is None else serializer.loads(envelope.payload)
        self.jobs._add(EnqueuedJob(
            id=envelope.id, definition_id=envelope.definition_id,
            kwargs=dict(loaded) if isinstance(loaded, dict) else {},
            lane=envelope.lane, priority=envelope.priority,
            due=datetime.fromtimestamp(envelope.due, UTC),
            metadata=dict(envelope.options.metadata or {}), job_key=envelope.job_key,
            envelope=envelope, app=self.app))
