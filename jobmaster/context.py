"""``JobContext``: what a running job may know about itself and tell its worker."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


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
    _progress: Callable[[str, int, str | None], None] | None = field(default=None, repr=False)
    _stop_flag: Callable[[], bool] | None = field(default=None, repr=False)

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
