"""OpenTelemetry tracing: one trace from the enqueue to the run, across processes.

``App(middleware=[Tracing()])`` — on producers and workers alike (the same app) — makes

- a ``PRODUCER`` span ``enqueue <definition_id>`` around each enqueue, child of whatever
  span is current there (a web request...). Its context is written into the envelope as
  the job option ``trace_context`` (W3C ``traceparent``... by the propagator installed,
  ``opentelemetry.propagate``);
- a ``CONSUMER`` span ``run <definition_id>`` around each run, in the process running the
  job (a worker child, a thread, or the worker itself), whose parent is that context: one
  trace from producer to worker. It is the current span while the handler runs, so spans
  the handler makes — and jobs it enqueues — belong to the same trace.

Needs ``opentelemetry-api`` (``pip install 'jobmaster[otel]'``), imported when a
``Tracing`` is made; spans go wherever the tracer provider (``tracer_provider=``, else the
global one) exports them. In a prefork worker the run span ends in a forked child: use a
span processor that exports in that process: ``SimpleSpanProcessor`` exports as each
span ends (the SDK's ``BatchSpanProcessor`` restarts its thread after a fork, but spans
still buffered when a child exits are lost).

The run span ends in ``after_run``, which a run killed by a crash or a hard timeout never
reaches: such a run leaves no span (``on_outcome`` still sees it). A job held in the master
until it is due (beyond the agent horizon) travels without its envelope's options and
starts a new trace. Tracing never fails a job: an error in it is logged and ignored.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any

from jobmaster.envelope import Envelope
from jobmaster.exceptions import ConfigurationError
from jobmaster.middleware import Middleware
from jobmaster.outcomes import Outcome, Succeeded, outcome_error

log = logging.getLogger("jobmaster.tracing")

_MAX_PENDING = 10_000  # enqueue spans started and not (yet) ended: bounded


class Tracing(Middleware):
    """Spans for enqueues and runs, linked through the job option ``trace_context``."""

    def __init__(self, tracer_provider: Any = None) -> None:
        try:
            from opentelemetry import context, propagate, trace
        except ImportError:
            raise ConfigurationError(
                "tracing needs opentelemetry-api: pip install 'jobmaster[otel]'") from None
        self._trace = trace
        self._context = context
        self._propagate = propagate
        self._provider = tracer_provider
        self._tracer: Any = None
        self._pending: dict[str, Any] = {}  # job id -> its enqueue span
        self._running: dict[int, tuple[Any, Any]] = {}  # thread -> (run span, context token)
        self._lock = threading.Lock()

    @property
    def tracer(self) -> Any:
        """The tracer (from the provider given, else the global one at first use)."""
        if self._tracer is None:
            self._tracer = self._trace.get_tracer("jobmaster", tracer_provider=self._provider)
        return self._tracer

    # -- producer --------------------------------------------------------------------------
    def before_enqueue(self, envelope: Envelope) -> Envelope | None:
        """Start the enqueue span and carry its context in the envelope."""
        try:
            trace = self._trace
            span = self.tracer.start_span(
                f"enqueue {envelope.definition_id}", kind=trace.SpanKind.PRODUCER,
                attributes=_attributes(envelope, "publish"))
            carrier: dict[str, str] = {}
            self._propagate.inject(carrier, context=trace.set_span_in_context(span))
            with self._lock:
                if len(self._pending) >= _MAX_PENDING:  # enqueues that never completed
                    for stale in self._pending.values():
                        stale.end()
                    self._pending.clear()
                self._pending[envelope.id] = span
            if not carrier:  # no propagator installed: nothing to carry
                return None
            return dataclasses.replace(
                envelope, options=dataclasses.replace(envelope.options, trace_context=carrier))
        except Exception:  # noqa: BLE001 - tracing never refuses an enqueue
            log.exception("tracing: could not start the enqueue span of job %s", envelope.id)
            return None

    def after_enqueue(self, envelope: Envelope) -> None:
        """End the enqueue span: the job is stored."""
        with self._lock:
            span = self._pending.pop(envelope.id, None)
        if span is not None:
            span.end()

    # -- worker ----------------------------------------------------------------------------
    def before_run(self, envelope: Envelope) -> None:
        """Start the run span, child of the enqueue span, and make it current."""
        try:
            self._end_running(None)  # a run of this thread that never reached after_run
            trace = self._trace
            parent = self._propagate.extract(envelope.options.trace_context or {})
            span = self.tracer.start_span(
                f"run {envelope.definition_id}", context=parent, kind=trace.SpanKind.CONSUMER,
                attributes=_attributes(envelope, "process"))
            token = self._context.attach(trace.set_span_in_context(span))
            self._running[threading.get_ident()] = (span, token)
        except Exception:  # noqa: BLE001 - tracing never fails a run
            log.exception("tracing: could not start the run span of job %s", envelope.id)

    def after_run(self, envelope: Envelope, outcome: Outcome) -> None:
        """End the run span with the outcome."""
        self._end_running(outcome)

    def _end_running(self, outcome: Outcome | None) -> None:
        entry = self._running.pop(threading.get_ident(), None)
        if entry is None:
            return
        span, token = entry
        try:
            self._context.detach(token)
        finally:
            if outcome is None:
                span.set_attribute("jobmaster.outcome", "unknown")
            else:
                span.set_attribute("jobmaster.outcome", type(outcome).__name__)
                error = outcome_error(outcome)
                if error is not None:
                    span.set_status(self._trace.Status(self._trace.StatusCode.ERROR,
                                                       f"{error.type}: {error.message}"[:500]))
                elif type(outcome) is Succeeded:
                    span.set_status(self._trace.Status(self._trace.StatusCode.OK))
            span.end()


def _attributes(envelope: Envelope, operation: str) -> dict[str, Any]:
    return {
        "messaging.system": "jobmaster", "messaging.operation.type": operation,
        "messaging.destination.name": envelope.lane, "messaging.message.id": envelope.id,
        "jobmaster.definition_id": envelope.definition_id, "jobmaster.job_id": envelope.id,
        "jobmaster.attempt": envelope.attempt, "jobmaster.cluster": envelope.cluster,
    }


__all__ = ["Tracing"]
