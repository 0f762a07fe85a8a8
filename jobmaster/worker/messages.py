"""The messages a worker's parts exchange, as typed values.

Between the supervisor and a forked child they travel as plain tuples encoded with
``marshal`` (``encode`` / ``decode``): nothing on the pipe is ever unpickled, so no message
can run code. Between a pool and the supervisor (one process) they are the values below.
"""

from __future__ import annotations

import marshal
from typing import Any, NamedTuple

from jobmaster.models import JobError
from jobmaster.outcomes import Cancelled, Outcome, Raised, Rejected, Succeeded


class Item(NamedTuple):
    """A job handed to a slot: the worker's number for it, its envelope, its timeout."""

    seq: int
    body: bytes
    timeout: float | None
    concurrent: bool = False
    """An ``async def`` job: run on the child's event loop beside the others."""


class Report(NamedTuple):
    """How a run ended in the process that ran it."""

    job_id: str
    kind: str
    """``succeeded``, ``raised``, ``cancelled`` or ``rejected``."""
    result: bytes | None
    error_type: str
    error_message: str
    error_traceback: str
    retry_after: float | None
    retryable: bool
    started: float
    finished: float
    retry_limit: int | None = None

    @classmethod
    def of(cls, job_id: str, outcome: Outcome, started: float, finished: float) -> Report:
        """The report of an outcome (one the running process can reach)."""
        if type(outcome) is Succeeded and outcome.message is None:  # the common case first
            return cls(job_id, "succeeded", outcome.result, "", "", "", None, True, started,
                       finished)
        match outcome:
            case Succeeded(result=result, message=message):
                return cls(job_id, "succeeded", result, "", message or "", "", None, True,
                           started, finished)
            case Raised(error=e, retry_after=after, retryable=retryable, retry_limit=limit):
                return cls(job_id, "raised", None, e.type, e.message, e.traceback, after,
                           retryable, started, finished, limit)
            case Cancelled(reason=reason, message=message):
                return cls(job_id, "cancelled", None, reason, message, "", None, False,
                           started, finished)
            case Rejected(error=e):
                return cls(job_id, "rejected", None, e.type, e.message, e.traceback, None,
                           False, started, finished)
        raise TypeError(f"a run cannot report {outcome!r}")

    def outcome(self) -> Outcome:
        """The outcome this report stands for."""
        if self.kind == "succeeded":
            return Succeeded(self.result or b"null", self.error_message or None)
        if self.kind == "cancelled":
            return Cancelled(self.error_type, self.error_message)
        error = JobError(self.error_type, self.error_message, self.error_traceback)
        if self.kind == "rejected":
            return Rejected(error)
        return Raised(error, self.retry_after, self.retryable, self.retry_limit)


# -- child ↔ supervisor (over a pipe) ---------------------------------------------------
class Ready(NamedTuple):
    """A child finished starting and takes jobs."""

    pid: int


class Reports(NamedTuple):
    """Runs a child finished (a ``None`` report: not started, handed back)."""

    items: list[tuple[int, Report | None]]


class Progress(NamedTuple):
    """A running job reported progress."""

    job_id: str
    percent: int
    message: str | None


class Recycle(NamedTuple):
    """A child will exit on purpose (``max_jobs_per_child``, memory) once it has reported
    every job it was given. Sent before those reports, so its slot never looks idle (and
    gets a job it will not run) in between."""

    reason: str


_CHILD_MESSAGES: dict[str, type[Any]] = {
    "ready": Ready, "reports": Reports, "progress": Progress, "recycle": Recycle,
}
_TAGS = {cls: tag for tag, cls in _CHILD_MESSAGES.items()}
ChildMessage = Ready | Reports | Progress | Recycle


def encode(message: ChildMessage) -> bytes:
    """A child's message as bytes for the pipe."""
    if isinstance(message, Reports):
        fields: tuple[Any, ...] = ([(seq, None if r is None else tuple(r))
                                    for seq, r in message.items],)
    else:
        fields = tuple(message)
    return marshal.dumps((_TAGS[type(message)], *fields))


def decode(data: bytes) -> ChildMessage:
    """A child's message from the pipe (plain values only; ``ValueError`` if malformed)."""
    raw = marshal.loads(data)  # noqa: S302 - plain values, never code
    if not isinstance(raw, tuple) or not raw or raw[0] not in _CHILD_MESSAGES:
        raise ValueError(f"not a worker message: {raw!r:.80}")
    tag, fields = raw[0], raw[1:]
    if tag == "reports":
        return Reports([(seq, None if r is None else Report(*r)) for seq, r in fields[0]])
    message: ChildMessage = _CHILD_MESSAGES[tag](*fields)
    return message


def encode_items(items: list[Item]) -> bytes:
    """Jobs for a child, as bytes for the pipe."""
    return marshal.dumps([tuple(i) for i in items])


def decode_items(data: bytes) -> list[Item]:
    """Jobs from the supervisor."""
    return [Item(*i) for i in marshal.loads(data)]  # noqa: S302 - plain values


# -- pool → supervisor (in process) ---------------------------------------------------
class RunEnded(NamedTuple):
    """A job ran in ``slot`` and ended as ``report`` says."""

    slot: int
    seq: int
    report: Report


class NotStarted(NamedTuple):
    """A job was handed back unstarted by ``slot`` (the worker is stopping)."""

    slot: int
    seq: int


class SlotProgress(NamedTuple):
    """A job running in ``slot`` reported progress."""

    slot: int
    job_id: str
    percent: int
    message: str | None


class SlotExited(NamedTuple):
    """The slot's process died; ``running_seq`` is the job it was running, if known; its
    other jobs never ran."""

    slot: int
    reason: str
    running_seq: int | None


class SlotTimedOut(NamedTuple):
    """A solo job was interrupted by its timeout."""

    slot: int
    seq: int


PoolEvent = RunEnded | NotStarted | SlotProgress | SlotExited | SlotTimedOut
