"""Eager mode (``App(..., eager=True)`` or ``JOBMASTER_EAGER=1``): a job runs inline when
it is enqueued, in the caller's process and thread, the way a worker runs it.

The producer records the job ``queued`` and shows it to ``after_enqueue`` middleware, then
hands it to ``run_inline``. From there on it is a worker's path: the envelope travels as
bytes through the worker's executor (``jobmaster.worker.executor.execute``), so arguments
are decoded by the app's serializer, ``before_run``/``after_run`` middleware and the
``JobContext`` are the same, ``Retry``/``Reject``/``JobResult`` end the run the same way,
and a result the serializer cannot encode fails the job. The ending is decided by the
same pure code (``jobmaster.outcomes.decide``), recorded in the master with its audit
trail, and shown to ``on_outcome`` middleware, so ``h.get()``, ``h.state``,
``app.jobs.history`` and workflows (chains, chords) work.

What differs from a worker, on purpose (as Celery's ``task_always_eager``):

- retries run at once, one after the other, without waiting for their delay; the record
  of each failed attempt still says when a worker would have run it again;
- ``countdown``/``eta``/``at``/``after`` are not waited for: the job runs now;
- a hard ``timeout`` is not enforced on a plain function (nothing can stop the caller's
  thread); ``soft_time_limit`` works in the main thread, and an ``async def`` job's
  timeout cancels it, as on a worker; rate limits are not applied;
- a job that fails does not raise at enqueue: ``h.get()`` raises ``JobFailedError``.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from jobmaster.envelope import Envelope, EnvelopeError
from jobmaster.master.repository import event_row
from jobmaster.master.rows import envelope_from_row, job_row
from jobmaster.master.workflows import WORKFLOW_KEY, Workflows
from jobmaster.middleware import Settled
from jobmaster.models import JobError, JobStatus
from jobmaster.outcomes import (
    MAX_RETRY_WAIT,
    AgentAction,
    Decision,
    Outcome,
    RetryPolicy,
    Succeeded,
    decide,
    explain,
)
from jobmaster.worker.executor import execute, safe_text

if TYPE_CHECKING:
    from jobmaster.app import App

__all__ = ["run_inline"]


def run_inline(app: App, envelopes: Sequence[Envelope]) -> None:
    """Run each job now, in this thread, and record how it ended (its retries included)
    in the master. The jobs are already recorded (``queued``, or ``scheduled`` for a
    workflow's or a keyed job) by whatever enqueued them."""
    for env in envelopes:
        _run(app, env)


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _policy(app: App, env: Envelope) -> RetryPolicy:
    """The retry policy a worker applies to ``env`` (the same fields, the same defaults)."""
    options = env.options
    return RetryPolicy(
        options.max_retries or 0, options.retry_delay or 0.0, options.retry_backoff or 1.0,
        app.config.retry_jitter if options.retry_jitter is None else options.retry_jitter,
        MAX_RETRY_WAIT if options.retry_backoff_max is None else options.retry_backoff_max)


def _run(app: App, env: Envelope) -> None:
    """Run ``env`` until it ends for good (succeeded, failed, cancelled), retrying at once."""
    worker = f"{app.name}@{socket.gethostname()}:{os.getpid()}/eager"
    while True:
        progress: dict[str, Any] = {}

        def sink(job_id: str, percent: int, message: str | None,
                 progress: dict[str, Any] = progress) -> None:
            progress.update(progress=percent, progress_message=message)

        started = time.time()
        report = execute(app, env.to_bytes(), progress=sink)
        outcome = report.outcome()
        finished = time.time()
        policy = _policy(app, env)
        decision = decide(outcome, attempt=env.attempt, policy=policy, now=finished)
        _record(app, env, outcome, decision, policy, worker, started, finished, progress)
        if app.pipeline.on_outcome:
            app.pipeline.settled(Settled(env.id, env, outcome, decision, worker, started,
                                         finished))
        if decision.action is not AgentAction.RETRY:
            if decision.status.is_final and WORKFLOW_KEY in (env.options.metadata or {}):
                _advance_workflow(app, env)
            return
        env = env.next_attempt(time.time())  # at once: eager mode does not wait


def _advance_workflow(app: App, env: Envelope) -> None:
    """A job of a workflow (chain, group, chord, link) ended: decide the steps waiting for
    it, as the worker's middleware does, then run the released ones now: they wait in the
    master as ``scheduled`` for beat to push them, so every ``scheduled`` job of the
    cluster runs here, whatever its time (eager mode waits for no delay)."""
    Workflows(app.master, app.serializers, app.config.max_payload_bytes).advance([env.id])
    horizon = datetime.now(UTC) + timedelta(days=366 * 100)  # delays are not waited for
    while True:
        rows = app.master.due_scheduled_jobs(app.name, horizon, 100)
        ran = False
        for row in rows:
            try:
                step = envelope_from_row(row)
            except EnvelopeError as exc:
                app.master.fail_unrunnable([(str(row["id"]), str(exc))], fence=None)
                continue
            if app.master.mark_promoted([step.id], fence=None):  # not run by another thread
                ran = True
                _run(app, step)
        if not ran:
            return


def _record(app: App, env: Envelope, outcome: Outcome, decision: Decision,
            policy: RetryPolicy, worker: str, started: float, finished: float,
            progress: dict[str, Any]) -> None:
    """Write one attempt as a worker would: the job's row, its audit trail (running, then
    how it ended) and, for a failed attempt, its error history."""
    status = decision.status
    error = decision.error
    reason = explain(outcome, decision, attempt=env.attempt, max_retries=policy.max_retries)
    if decision.action is AgentAction.RETRY:
        reason = f"{reason} (eager mode: retried at once)"
    row = job_row(env, status, datetime.now(UTC))
    row.update(
        attempts=1, worker=worker, started_at=_dt(started),
        finished_at=_dt(finished) if status.is_final else None,
        result=outcome.result if isinstance(outcome, Succeeded) else None,
        progress=progress.get("progress"), progress_message=progress.get("progress_message"),
    )
    if decision.retry_at is not None:
        row["scheduled_at"] = _dt(decision.retry_at)
    if error is not None:
        row.update(error_type=safe_text(error.type, 200),
                   error_message=safe_text(error.message, 10_000),
                   error_traceback=safe_text(error.traceback, 50_000))
    if status is JobStatus.SUCCEEDED and progress:
        row["progress"] = 100  # a job that reported progress and finished is done
    if progress.get("progress_message") is not None:
        row["progress_message"] = safe_text(progress["progress_message"], 500)
    events = [
        _event(env, JobStatus.RUNNING, started, worker),
        _event(env, status, finished, worker, error=error, reason=reason),
    ]
    attempts = [] if error is None else [{
        "job_id": env.id, "attempt": env.attempt, "worker": worker,
        "started_at": _dt(started), "finished_at": _dt(finished),
        "outcome": status.value, "error_type": error.type[:200],
        "error_message": safe_text(error.message, 10_000),
        "error_traceback": safe_text(error.traceback, 50_000),
    }]
    app.master.record([row], attempts, (), events)


def _event(env: Envelope, status: JobStatus, at: float, worker: str, *,
           error: JobError | None = None, reason: str | None = None) -> dict[str, Any]:
    return event_row(env.id, status.value, datetime.fromtimestamp(at, UTC), env.attempt,
                     worker=worker, error_type=None if error is None else error.type,
                     error_message=None if error is None else error.message, reason=reason)
