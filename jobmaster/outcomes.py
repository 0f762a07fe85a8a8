"""How a run ends, and what follows from it: pure values and pure decisions, no I/O.

A run ends as one of ``Succeeded``, ``Raised``, ``TimedOut``, ``Lost`` (the process running
it died) or ``Cancelled``. ``decide`` turns that, with the job's retry policy, into what
the worker records: the job succeeded, retries at a time, or failed for good.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from jobmaster.models import JobError, JobStatus


@dataclass(frozen=True, slots=True)
class Succeeded:
    """The handler returned; ``result`` is the encoded return value."""

    result: bytes


@dataclass(frozen=True, slots=True)
class Raised:
    """The handler raised. ``retry_after`` is set when it raised ``jobmaster.Retry``."""

    error: JobError
    retry_after: float | None = None
    retryable: bool = True


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
    """The job was cancelled before or while it ran."""


Outcome = Succeeded | Raised | TimedOut | Lost | Cancelled


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A job's retry settings, as carried in its envelope."""

    max_retries: int
    delay: float
    backoff: float
    jitter: float = 0.1


@dataclass(frozen=True, slots=True)
class Decision:
    """What to record for a finished attempt.

    ``status`` is ``succeeded``, ``retrying``, ``failed`` or ``cancelled``; ``retry_at`` is
    the Unix time of the next attempt when retrying; ``error`` is the attempt's error.
    """

    status: JobStatus
    retry_at: float | None = None
    error: JobError | None = None


def retry_delay(policy: RetryPolicy, attempt: int, rand: float) -> float:
    """Seconds before retrying after failed attempt number ``attempt`` (1-based).

    ``delay * backoff ** (attempt - 1)``, stretched by ``rand * jitter`` (``rand`` in
    [0, 1)): with delay 10 and backoff 2, the retries wait 10 s, 20 s, 40 s plus up to 10 %.
    """
    base = policy.delay * policy.backoff ** max(attempt - 1, 0)
    return base * (1.0 + policy.jitter * rand)


def outcome_error(outcome: Outcome) -> JobError | None:
    """The error an outcome carries, if it failed."""
    match outcome:
        case Raised(error=error):
            return error
        case TimedOut(timeout=timeout, how=how):
            return JobError("TimeoutError", f"job exceeded its timeout of {timeout:g} s "
                            f"and {how}")
        case Lost(reason=reason):
            return JobError("WorkerLostError", reason)
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
    match outcome:
        case Succeeded():
            return Decision(JobStatus.SUCCEEDED)
        case Cancelled():
            return Decision(JobStatus.CANCELLED)
        case Raised(retryable=False):
            return Decision(JobStatus.FAILED, error=outcome_error(outcome))
        case Raised(retry_after=after) if after is not None and attempt <= policy.max_retries:
            return Decision(JobStatus.RETRYING, retry_at=now + after,
                            error=outcome_error(outcome))
    error = outcome_error(outcome)
    if attempt <= policy.max_retries:
        wait = retry_delay(policy, attempt, random.random() if rand is None else rand)  # noqa: S311
        return Decision(JobStatus.RETRYING, retry_at=now + wait, error=error)
    return Decision(JobStatus.FAILED, error=error)
