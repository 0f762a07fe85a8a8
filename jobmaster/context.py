"""``JobContext``: what a running job may know about itself and tell its worker."""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn


class Retry(Exception):  # noqa: N818 - a request, not an error
    """Raise from a handler to retry the job, counting against its ``max_retries``; the
    reason is recorded as its error, or ``exc``'s type and message when given (as Celery's
    ``self.retry(exc=...)``). ``after`` (seconds or a ``timedelta``) sets the wait;
    without it (or when it is not a finite number of seconds) the job's own
    ``retry_delay`` and backoff apply. ``max_retries`` replaces the job's own limit for
    this decision: past it, the job fails with ``exc``."""

    def __init__(self, reason: str = "retry requested", *,
                 after: float | timedelta | None = None, exc: BaseException | None = None,
                 max_retries: int | None = None) -> None:
        super().__init__(reason)
        self.exc = exc
        self.max_retries = max_retries if isinstance(max_retries, int) and not isinstance(
            max_retries, bool) and 0 <= max_retries <= 1_000_000 else None
        self.after: float | None = None
        try:
            value = after.total_seconds() if isinstance(after, timedelta) else \
                None if after is None else float(after)
        except (TypeError, ValueError, OverflowError):
            value = None
        if value is not None and math.isfinite(value) and value >= 0:
            self.after = value


class SoftTimeLimitExceeded(Exception):  # noqa: N818 - Celery's name
    """Raised inside a handler whose ``soft_time_limit`` ran out (prefork and solo pools),
    before the hard ``timeout`` stops it: catch it to clean up. Uncaught, the run fails
    with it."""


class Reject(Exception):  # noqa: N818 - a request, not an error
    """Raise from a handler to fail the job now, without the retries it has left (Celery's
    ``Reject``); ``reason`` is recorded as its error."""

    def __init__(self, reason: str = "rejected by the handler", *,
                 exc: BaseException | None = None) -> None:
        super().__init__(reason)
        self.exc = exc


@dataclass(slots=True)
class JobContext:
    """Injected into a handler that has a parameter annotated ``JobContext``.

    ``deadline`` is the monotonic time the job's timeout runs out (``None``: no timeout).
    ``stopping`` turns true when the worker is shutting down or the job was cancelled:
    a long handler should check ``should_stop()`` between steps and return early.
    """

    job_id: str
    definition_id: str
    attempt: int
    max_retries: int
    lane: str
    priority: int
    metadata: dict[str, Any]
    enqueued_at: datetime
    deadline: float | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    """The job's arguments, by name."""
    _progress: Callable[[str, int, str | None], None] | None = field(default=None, repr=False)
    _stop_flag: Callable[[], bool] | None = field(default=None, repr=False)

    @property
    def request(self) -> JobContext:
        """Celery's ``self.request``: this context, with ``id``, ``retries``, ``args``,
        ``kwargs`` and ``hostname``."""
        return self

    @property
    def id(self) -> str:
        """The job id (Celery's ``request.id``)."""
        return self.job_id

    @property
    def retries(self) -> int:
        """How many times this job was retried so far (Celery's ``request.retries``)."""
        return self.attempt - 1

    @property
    def args(self) -> tuple[Any, ...]:
        """Positional arguments: always empty, jobs are stored by argument name."""
        return ()

    @property
    def hostname(self) -> str:
        """The host running the job."""
        return socket.gethostname()

    def retry(self, *, countdown: float | timedelta | None = None,
              exc: BaseException | None = None, max_retries: int | None = None,
              reason: str | None = None) -> NoReturn:
        """Celery's ``self.retry``: end this run and retry the job after ``countdown``
        seconds (default: its retry delay and backoff), recording ``exc``'s type and
        message. ``max_retries`` replaces the job's limit; past it the job fails with
        ``exc``. Raises; ``raise self.retry(...)`` reads as in Celery."""
        message = reason or (f"{type(exc).__name__}: {exc}" if exc is not None
                             else "retry requested")
        raise Retry(message, after=countdown, exc=exc, max_retries=max_retries)

    @property
    def is_retry(self) -> bool:
        """True from the second attempt on."""
        return self.attempt > 1

    @property
    def time_left(self) -> float | None:
        """Seconds until the job's timeout, or ``None`` if it has none."""
        if self.deadline is None:
            return None
        return max(self.deadline - time.monotonic(), 0.0)

    def should_stop(self) -> bool:
        """True when the worker asked running jobs to stop, the job was cancelled, or its
        timeout has run out."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return True
        return bool(self._stop_flag and self._stop_flag())

    def report_progress(self, percent: int | float, message: str | None = None) -> None:
        """Record how far the job is (0–100) and an optional message, in the master.

        Reports are batched by the worker; only the latest per job is kept."""
        if (not isinstance(percent, int | float) or isinstance(percent, bool)
                or percent != percent):
            raise TypeError(f"percent={percent!r} must be a number from 0 to 100")
        value = int(min(max(percent, 0), 100))
        if self._progress is not None:
            self._progress(self.job_id, value, None if message is None else str(message)[:500])

    @classmethod
    def for_envelope(cls, env: Any, **extra: Any) -> JobContext:
        """A context for one run of an envelope."""
        return cls(
            job_id=env.id,
            definition_id=env.definition_id,
            attempt=env.attempt,
            max_retries=env.options.max_retries or 0,
            lane=env.lane,
            priority=env.priority,
            metadata=dict(env.options.metadata or {}),
            enqueued_at=datetime.fromtimestamp(env.created_at, UTC),
            **extra,
        )
