"""Middleware: one pipeline that sees every enqueue and every run.

``App(middleware=[...])`` takes objects with any of these hooks (subclass ``Middleware``
and override what you need; the others cost nothing)::

    before_enqueue(envelope) -> Envelope | None   producer, before the push; return a
                                                  changed envelope, or raise to refuse
    after_enqueue(envelope)                       producer, once the job is stored
    before_run(envelope)                          the process running the job, before the
                                                  handler; raise ``EndRun(outcome)`` to end
                                                  the job without running it
    after_run(envelope, outcome)                  the same process, after the handler
    on_outcome(settled)                           the worker's supervisor: every ending of
                                                  every job (success, failure, retry,
                                                  timeout, crash, cancel, expiry,
                                                  dead-letter, release at shutdown)

Hooks run in the order the middleware is listed, after jobmaster's own (``Expiry``). An
exception in ``before_enqueue`` refuses the enqueue; in ``before_run`` it fails the run like
the handler's own; in the other hooks it is logged and ignored, so a broken middleware
never loses a job or stops a worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from jobmaster.envelope import Envelope
from jobmaster.models import JobError, JobStatus
from jobmaster.outcomes import Decision, Outcome

log = logging.getLogger("jobmaster")

_HOOKS = ("before_enqueue", "after_enqueue", "before_run", "after_run", "on_outcome")


class EndRun(Exception):  # noqa: N818 - a request, not an error
    """Raised by ``before_run`` to end a job without running it, with ``outcome``
    (e.g. ``Cancelled("expired")``)."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome)
        self.outcome = outcome


@dataclass(frozen=True, slots=True)
class Settled:
    """How one job ended, as the worker records it: what ``on_outcome`` receives.

    ``envelope`` is ``None`` only for a message that was not a jobmaster envelope at all
    (``job_id`` is then the agent's message id)."""

    job_id: str
    envelope: Envelope | None
    outcome: Outcome
    decision: Decision
    worker: str
    started: float | None
    finished: float

    @property
    def status(self) -> JobStatus:
        """The status recorded."""
        return self.decision.status

    @property
    def error(self) -> JobError | None:
        """The attempt's error, if it failed."""
        return self.decision.error

    @property
    def definition_id(self) -> str | None:
        """The job's definition id (``None`` for a message that was no envelope)."""
        return None if self.envelope is None else self.envelope.definition_id


class Middleware:
    """Base class of middleware: every hook does nothing until overridden."""

    def before_enqueue(self, envelope: Envelope) -> Envelope | None:
        """Before a job is pushed: return a replacement envelope, ``None`` to keep it, or
        raise to refuse the enqueue."""
        return None

    def after_enqueue(self, envelope: Envelope) -> None:
        """After a job was stored (on its agent, or in the master when held for later)."""

    def before_run(self, envelope: Envelope) -> None:
        """In the process running the job, before its handler; raise ``EndRun`` to end it
        without running."""

    def after_run(self, envelope: Envelope, outcome: Outcome) -> None:
        """In the process running the job, after its handler (not after a crash or hard
        timeout: ``on_outcome`` sees those)."""

    def on_outcome(self, settled: Settled) -> None:
        """In the worker's supervisor, once for every ending of every job."""


class Pipeline:
    """The hooks of a list of middleware, resolved once: only overridden hooks run."""

    def __init__(self, middleware: Sequence[Any]) -> None:
        self.middleware = list(middleware)
        for m in self.middleware:
            if not any(callable(getattr(m, hook, None)) for hook in _HOOKS):
                raise TypeError(f"{m!r} is not middleware: it has none of the hooks "
                                f"{', '.join(_HOOKS)}")
        self.before_enqueue = self._hooks("before_enqueue")
        self.after_enqueue = self._hooks("after_enqueue")
        self.before_run = self._hooks("before_run")
        self.after_run = self._hooks("after_run")
        self.on_outcome = self._hooks("on_outcome")

    def _hooks(self, name: str) -> list[Callable[..., Any]]:
        base = getattr(Middleware, name)
        hooks = []
        for m in self.middleware:
            method = getattr(type(m), name, None)
            if method is not None and method is not base:
                hooks.append(getattr(m, name))
        return hooks

    def enqueueing(self, envelope: Envelope) -> Envelope:
        """Run ``before_enqueue``; exceptions propagate (the enqueue is refused)."""
        for hook in self.before_enqueue:
            replaced = hook(envelope)
            if replaced is not None:
                if not isinstance(replaced, Envelope):
                    raise TypeError(f"{hook.__qualname__} returned {type(replaced).__name__}, "
                                    "not an Envelope or None")
                envelope = replaced
        return envelope

    def enqueued(self, envelopes: Sequence[Envelope]) -> None:
        """Run ``after_enqueue`` for each envelope; failures are logged."""
        for hook in self.after_enqueue:
            for envelope in envelopes:
                _guarded(hook, envelope)

    def finished_run(self, envelope: Envelope, outcome: Outcome) -> None:
        """Run ``after_run``; failures are logged."""
        for hook in self.after_run:
            _guarded(hook, envelope, outcome)

    def settled(self, settled: Settled) -> None:
        """Run ``on_outcome``; failures are logged."""
        for hook in self.on_outcome:
            _guarded(hook, settled)


def _guarded(hook: Callable[..., Any], *args: Any) -> None:
    try:
        hook(*args)
    except Exception:  # noqa: BLE001 - a broken middleware never stops a producer or worker
        log.exception("middleware %s failed", getattr(hook, "__qualname__", hook))


__all__ = ["EndRun", "Middleware", "Pipeline", "Settled"]
