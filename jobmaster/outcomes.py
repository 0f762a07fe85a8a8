"""How a run ends, and what follows from it: pure values and pure decisions, no I/O.

A job ends as one of

- ``Succeeded`` — the handler returned;
- ``Raised`` — the handler raised (``jobmaster.Retry`` included);
- ``TimedOut`` — it ran past its timeout and was stopped;
- ``Lost`` — the process running it died;
- ``Cancelled`` — cancelled before or while it ran, or expired before it started;
- ``Rejected`` — it can never run (undecodable, unknown definition): dead-lettered;
- ``Released`` — handed back to its agent unstarted (the worker is stopping);
- ``Superseded`` — not a run at all: a delivery of a job the master shows settled, or
  running under another live worker's lease (``jobmaster.fencing``); it never starts;
- ``Lapsed`` — not a run either: a claim held too long unrenewed (the worker could not
  reach its agent) to be sure its lease still holds; it never starts.

``decide`` turns that, with the job's retry policy, into a ``Decision``: the status to
record, when to retry, the error, and what the agent must do with the message. Every ending
passes through the worker's one settle point with one of these values; middleware sees it
there (``on_outcome``).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

from jobmaster.models import JobError, JobStatus

MAX_RETRY_WAIT = 366 * 86400.0
"""The longest wait before a retry, whatever delay and backoff compute (one year)."""


@dataclass(frozen=True, slots=True)
class Succeeded:
    """The handler returned; ``result`` is the encoded return value, ``message`` what a
    returned ``JobResult.success`` said."""

    result: bytes
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Raised:
    """The handler raised. ``retry_after`` is set when it raised ``jobmaster.Retry``."""

    error: JobError
    retry_after: float | None = None
    retryable: bool = True
    retry_limit: int | None = None
    """Replaces the job's ``max_retries`` for this decision (``self.retry(max_retries=)``)."""


@dataclass(frozen=True, slots=True)
class TimedOut:
    """The job ran past its timeout and was stopped (``how`` says in what way)."""

    timeout: float
    how: str = "its process was killed"


@dataclass(frozen=True, slots=True)
class Lost:
    """The process running the job died (segfault, ``os._exit``, OOM kill)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Cancelled:
    """The job was cancelled before or while it ran; ``reason`` is ``cancelled``,
    ``expired`` (not started before its ``expires`` time) or ``returned`` (the handler
    returned ``JobResult.cancelled``)."""

    reason: str = "cancelled"
    message: str = ""


@dataclass(frozen=True, slots=True)
class Rejected:
    """The job can never run here (its envelope or arguments cannot be decoded, its
    definition is unknown): it is failed and moved to the agent's dead letters."""

    error: JobError


@dataclass(frozen=True, slots=True)
class Released:
    """The job was handed back to its agent without running (the worker is stopping, or a
    rate limit holds it until ``until`` with ``body`` carrying its reserved slot)."""

    reason: str = "worker stopping"
    until: float | None = None
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class Superseded:
    """This delivery duplicates a run that ended or is under way: the master holds the job
    as ``status``. ``held_by``: the live worker running it, so the message is left to its
    lease (which brings it back if that worker dies); ``None``: the job is settled, so the
    message is acknowledged. Nothing is recorded: the job did not end here."""

    status: JobStatus
    held_by: str | None = None


@dataclass(frozen=True, slots=True)
class Lapsed:
    """A claim this worker could not renew for so long that its lease may have run out,
    and the agent may have handed the job to another worker: it does not start here, and
    the message is left to the agent. Nothing is recorded."""

    unrenewed: float
    """Seconds since the claim was made or last renewed."""


RETURNED = "returned"
"""The ``reason`` of a ``Cancelled`` the handler returned (``JobResult.cancelled``): it ran."""

Outcome = (Succeeded | Raised | TimedOut | Lost | Cancelled | Rejected | Released | Superseded
           | Lapsed)


class AgentAction(StrEnum):
    """What the worker does with the agent's message once the outcome is recorded."""

    ACK = "ack"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"
    RELEASE = "release"
    LEAVE = "leave"
    """Nothing: the message stays with the claim that holds it until its lease ends."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A job's retry settings, as carried in its envelope."""

    max_retries: int
    delay: float
    backoff: float
    jitter: float = 0.1
    max_wait: float = MAX_RETRY_WAIT
    """The longest wait, however far backoff grows it (Celery's ``retry_backoff_max``)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What to record for a finished attempt.

    ``status`` is what the master records (``queued`` for a released job); ``retry_at``
    is the Unix time of the next attempt when retrying; ``error`` is the attempt's error;
    ``action`` what the agent does with the message.
    """

    status: JobStatus
    retry_at: float | None = None
    error: JobError | None = None
    action: AgentAction = AgentAction.ACK


def retry_delay(policy: RetryPolicy, attempt: int, rand: float) -> float:
    """Seconds before retrying after failed attempt number ``attempt`` (1-based).

    ``delay * backoff ** (attempt - 1)``, stretched by ``rand * jitter`` (``rand`` in
    [0, 1)): with delay 10 and backoff 2, the retries wait 10 s, 20 s, 40 s plus up to 10 %.
    Never more than ``policy.max_wait`` (at most ``MAX_RETRY_WAIT``), however large the
    numbers.
    """
    longest = min(policy.max_wait, MAX_RETRY_WAIT)
    try:
        base = min(policy.delay * policy.backoff ** max(attempt - 1, 0), longest)
        wait = base * (1.0 + policy.jitter * rand)
    except OverflowError:
        return longest
    if not math.isfinite(wait) or wait > longest:
        return longest
    return max(wait, 0.0)


def outcome_error(outcome: Outcome) -> JobError | None:
    """The error an outcome carries, if it failed."""
    match outcome:
        case Raised(error=error) | Rejected(error=error):
            return error
        case TimedOut(timeout=timeout, how=how):
            return JobError("TimeoutError", f"job exceeded its timeout of {timeout:g} s "
                            f"and {how}")
        case Lost(reason=reason):
            return JobError("WorkerLostError", reason)
        case Cancelled(reason="expired", message=message):
            return JobError("JobExpired", message or "not started before it expired")
        case _:
            return None


def decide(
    outcome: Outcome,
    *,
    attempt: int,
    policy: RetryPolicy,
    now: float,
    rand: float | None = None,
) -> Decision:
    """What follows from attempt number ``attempt`` ending with ``outcome`` at ``now``."""
    if isinstance(outcome, Raised) and outcome.retry_limit is not None:
        policy = replace(policy, max_retries=outcome.retry_limit)
    match outcome:
        case Succeeded():
            return Decision(JobStatus.SUCCEEDED)
        case Cancelled():
            return Decision(JobStatus.CANCELLED, error=outcome_error(outcome))
        case Released():
            return Decision(JobStatus.QUEUED, action=AgentAction.RELEASE)
        case Superseded(status=status, held_by=None):
            return Decision(status)
        case Superseded(status=status):
            return Decision(status, action=AgentAction.LEAVE)
        case Lapsed():
            return Decision(JobStatus.QUEUED, action=AgentAction.LEAVE)
        case Rejected(error=reason):
            return Decision(JobStatus.FAILED, error=reason, action=AgentAction.DEAD_LETTER)
        case Raised(retryable=False):
            return Decision(JobStatus.FAILED, error=outcome_error(outcome))
        case Raised(retry_after=after) if after is not None and attempt <= policy.max_retries:
            requested = min(after, MAX_RETRY_WAIT) if math.isfinite(after) and after >= 0 \
                else None
            if requested is not None:
                return Decision(JobStatus.RETRYING, retry_at=now + requested,
                                error=outcome_error(outcome), action=AgentAction.RETRY)
    error = outcome_error(outcome)
    if attempt <= policy.max_retries:
        wait = retry_delay(policy, attempt, random.random() if rand is None else rand)  # noqa: S311
        return Decision(JobStatus.RETRYING, retry_at=now + wait, error=error,
                        action=AgentAction.RETRY)
    return Decision(JobStatus.FAILED, error=error)


def explain(outcome: Outcome, decision: Decision, *, attempt: int, max_retries: int
            ) -> str | None:
    """Why a run ended the way ``decision`` says, in words for the job's audit trail
    (``None`` when the status says it all: a success)."""
    if isinstance(outcome, Raised) and outcome.retry_limit is not None:
        max_retries = outcome.retry_limit
    match outcome:
        case Succeeded(message=message):
            return message
        case Released(reason=reason):
            return f"handed back unstarted: {reason}"
        case Rejected():
            return "cannot run here: moved to the dead letters"
        case Superseded(status=status, held_by=None):
            return f"delivered again after it ended ({status}): not run"
        case Superseded(held_by=worker):
            return f"delivered again while worker {worker} runs it: not run"
        case Lapsed(unrenewed=seconds):
            return (f"its lease was not renewed for {seconds:.1f} s (the agent could not be "
                    "reached) and may have passed to another worker: not started")
        case Cancelled(reason="expired"):
            return "expired before it started"
        case Cancelled(message=message):
            return f"cancelled: {message}" if message else "cancelled"
    if decision.retry_at is not None:
        when = datetime.fromtimestamp(decision.retry_at, UTC).isoformat(timespec="seconds")
        return f"attempt {attempt} of {max_retries + 1} failed; next attempt at {when}"
    if isinstance(outcome, Raised) and not outcome.retryable:
        return "failed without retrying, as the handler asked"
    if max_retries == 0:
        return "failed; the job allows no retries"
    return f"failed; all {max_retries + 1} attempts used"
