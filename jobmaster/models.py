"""The values jobmaster passes around: statuses, errors and the job record (and
``Priority``, from ``jobmaster.priority``)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from jobmaster.options import JobOptions
from jobmaster.priority import Priority

__all__ = ["FINAL_STATUSES", "Job", "JobError", "JobEvent", "JobResult", "JobStatus",
           "Priority"]

R = TypeVar("R")


class JobStatus(enum.StrEnum):
    """Where a job is in its life.

    ``scheduled`` (held in the master until due) → ``queued`` (on an agent) → ``running`` →
    ``succeeded`` | ``failed`` | ``cancelled``; a failed attempt with retries left is
    ``retrying`` until its next run.
    """

    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """True for statuses a job never leaves on its own."""
        return self in FINAL_STATUSES

    def __str__(self) -> str:
        return self.value


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


@dataclass(frozen=True, slots=True)
class JobError:
    """Why an attempt failed: the exception's type, message and traceback."""

    type: str
    message: str
    traceback: str = ""


@dataclass(frozen=True, slots=True)
class JobResult:
    """What a handler may return to say how its job ended, with a message kept in the job's
    history (``jobs show``, ``jobs history``): ``JobResult.success(message, result=...)``
    (``result`` is the job's result), ``JobResult.failed(message, retry=True)`` (a failure
    with retries as usual, or with ``retry=False`` none), ``JobResult.cancelled(message)``.
    """

    outcome: str
    message: str | None = None
    result: Any = None
    retry: bool = True

    @classmethod
    def success(cls, message: str | None = None, *, result: Any = None) -> JobResult:
        """The job succeeded; ``result`` is recorded as its result."""
        return cls("success", _message(message), result)

    @classmethod
    def failed(cls, message: str, *, retry: bool = True) -> JobResult:
        """The job failed with ``message`` as its error; ``retry=False`` spends no retry."""
        return cls("failed", _message(message) or "failed", None, bool(retry))

    @classmethod
    def cancelled(cls, message: str | None = None) -> JobResult:
        """The job had nothing to do: it ends ``cancelled``, never retried."""
        return cls("cancelled", _message(message))


def _message(value: Any) -> str | None:
    return None if value is None else str(value)[:2000]


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One entry of a job's audit trail: the ``status`` it entered ``at`` (aware UTC), in
    ``attempt`` (0 before its first run), on ``worker``, with the attempt's ``error`` and a
    ``reason`` in words (why it was retried, failed, requeued, recovered...)."""

    status: JobStatus
    at: datetime
    attempt: int
    worker: str | None = None
    error: JobError | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (ISO time)."""
        return {"status": self.status.value, "at": self.at.isoformat(),
                "attempt": self.attempt, "worker": self.worker,
                "error_type": None if self.error is None else self.error.type,
                "error_message": None if self.error is None else self.error.message,
                "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Job(Generic[R]):
    """A job as the master records it: what to run, its status, its outcome and timings."""

    id: str
    cluster: str
    definition_id: str
    lane: str
    priority: Priority | int
    status: JobStatus
    kwargs: dict[str, Any] | None
    metadata: dict[str, Any]
    attempts: int
    max_retries: int
    timeout: float | None
    job_key: str | None
    created_at: datetime
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    worker: str | None
    result: R | None
    error: JobError | None
    progress: int | None = None
    progress_message: str | None = None
    schedule_name: str | None = None
    occurrence: datetime | None = None
    errors: tuple[JobError, ...] = field(default=())
    options: JobOptions | None = None
    """Every option the job was enqueued with, resolved (``options.expires``...)."""

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish of the last run, if it has both."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()
