"""Running one job: decode its arguments, call the handler, report how it ended.

This runs in a pool slot (a forked child, a thread, or the worker itself). It never
touches the master or the agent: it returns a ``Report`` and the supervisor records it.
Middleware's ``before_run`` and ``after_run`` hooks run here, around the handler.

Whatever the handler does, a report comes back: an exception that cannot even be
formatted is reported by its type name; a handler that forks and returns in the forked
copy has that copy exit at once, so it never takes the slot's next job.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobmaster.context import JobContext, Reject, Retry, SoftTimeLimitExceeded
from jobmaster.envelope import Envelope
from jobmaster.middleware import EndRun
from jobmaster.models import JobError, JobResult
from jobmaster.outcomes import RETURNED, Cancelled, Outcome, Raised, Rejected, Succeeded
from jobmaster.worker.messages import Report

if TYPE_CHECKING:
    from jobmaster.app import App
    from jobmaster.definitions import JobDefinition

MAX_ERROR_MESSAGE = 10_000
MAX_TRACEBACK = 50_000


class HardTimeout(BaseException):  # noqa: N818 - a signal, not an error
    """Raised inside a job whose time ran out (solo pool); never reported as its error."""


ProgressSink = Callable[[str, int, str | None], None]


def safe_text(text: str, limit: int) -> str:
    """Text any master column takes: no NUL, at most ``limit`` characters."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    return text if len(text) <= limit else text[: limit - 15] + "... (truncated)"


def describe(exc: BaseException) -> JobError:
    """The error of an exception, even one whose ``__str__`` or traceback raises."""
    name = type(exc).__qualname__
    try:
        message = str(exc)
    except BaseException:  # noqa: BLE001 - a broken __str__ must not hide the failure
        message = f"<{name} whose message could not be formatted>"
    try:
        tb = "".join(traceback.format_exception(exc))
    except BaseException:  # noqa: BLE001
        try:
            tb = "".join(traceback.format_tb(exc.__traceback__)) + f"{name}: {message}\n"
        except BaseException:  # noqa: BLE001
            tb = ""
    return JobError(safe_text(name, 200), safe_text(message, MAX_ERROR_MESSAGE),
                    safe_text(tb, MAX_TRACEBACK))


def execute(
    app: App,
    body: bytes,
    *,
    progress: ProgressSink | None = None,
    stop_flag: Callable[[], bool] | None = None,
) -> Report:
    """Run the job in ``body`` (an envelope) and report how it ended. An ``async def``
    handler runs to completion on an event loop of its own (``execute_async`` runs many
    on one loop)."""
    started = time.time()
    run = _prepare(app, body, progress, stop_flag)
    if isinstance(run, _Run):
        pid = os.getpid()
        try:
            with soft_limit(run.definition.handling.soft_time_limit):
                value = run.call()
                if inspect.isawaitable(value):
                    value = asyncio.run(_awaited(value, run.env.timeout))
        except HardTimeout:
            raise
        except BaseException as exc:  # noqa: BLE001 - a handler's SystemExit fails the job only
            _forked_copy_exits(pid)
            return _ended(app, run.env, _raised(exc, run), started)
        _forked_copy_exits(pid)
        return _ended(app, run.env, _succeeded(app, run, value), started)
    return _ended(app, None, run, started)


async def execute_async(
    app: App,
    body: bytes,
    *,
    progress: ProgressSink | None = None,
    stop_flag: Callable[[], bool] | None = None,
) -> Report:
    """``execute`` for a job of an ``async def`` definition, awaited on the running event
    loop beside others; its ``timeout`` cancels the task."""
    started = time.time()
    run = _prepare(app, body, progress, stop_flag)
    if not isinstance(run, _Run):
        return _ended(app, None, run, started)
    try:
        value = run.call()
        if inspect.isawaitable(value):
            value = await _awaited(value, run.env.timeout)
    except BaseException as exc:  # noqa: BLE001 - a handler's SystemExit fails the job only
        if isinstance(exc, asyncio.CancelledError) and not _timed_out(exc):
            raise  # the loop itself is being stopped
        return _ended(app, run.env, _raised(exc, run), started)
    return _ended(app, run.env, _succeeded(app, run, value), started)


@dataclass(slots=True)
class _Run:
    """A job ready to run: its envelope, definition, and the call of its handler."""

    env: Envelope
    definition: JobDefinition[Any, Any]
    call: Callable[[], Any]


class _TaskTimedOut(Exception):  # noqa: N818 - carries the timeout out of the task
    def __init__(self, timeout: float) -> None:
        super().__init__(f"job exceeded its timeout of {timeout:g} s and its task was "
                         "cancelled")


def _timed_out(exc: BaseException) -> bool:
    return isinstance(exc, _TaskTimedOut)


async def _awaited(awaitable: Any, timeout: float | None) -> Any:
    """The value of a handler's coroutine, cancelled after ``timeout`` seconds."""
    if timeout is None:
        return await awaitable
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except TimeoutError:
        raise _TaskTimedOut(timeout) from None


def _ended(app: App, env: Envelope | None, outcome: Outcome, started: float) -> Report:
    finished = time.time()
    if env is not None and app.pipeline.after_run:
        app.pipeline.finished_run(env, outcome)
    return Report.of("" if env is None else env.id, outcome, started, finished)


def _prepare(app: App, body: bytes, progress: ProgressSink | None,
             stop_flag: Callable[[], bool] | None) -> _Run | Outcome:
    """Decode the job, run the ``before_run`` middleware and bind its handler's call; or
    the outcome that ends it already."""
    try:
        env = Envelope.from_checked_bytes(body)  # the supervisor checked these very bytes
    except (ValueError, TypeError, KeyError) as exc:
        return Rejected(JobError("InvalidEnvelope", f"not a jobmaster envelope: "
                                 f"{describe(exc).message}"))
    definition = app.definitions.get(env.definition_id)
    if definition is None:
        return Rejected(JobError("UnknownDefinitionError",
                                 f"no job definition {env.definition_id!r} in this worker's app"))
    serializer = app.serializers.get(env.encoding)
    try:
        if serializer is None:
            raise ValueError(f"payload encoding {env.encoding!r} is not enabled in this app")
        kwargs = serializer.loads(env.payload)
        if type(kwargs) is not dict or (serializer.name != "json"  # JSON keys are str
                                        and not all(isinstance(k, str) for k in kwargs)):
            raise ValueError("payload is not a mapping of argument names to values")
    except Exception as exc:  # noqa: BLE001 - any decode failure fails the job, not the worker
        error = describe(exc)
        return Rejected(JobError(error.type, f"arguments could not be decoded: {error.message}"))
    try:
        for hook in app.pipeline.before_run:
            hook(env)
    except EndRun as exc:
        return exc.outcome
    except BaseException as exc:  # noqa: BLE001 - a failing middleware fails the run only
        return Raised(describe(exc))
    func = definition.func
    if definition.context_param is None:
        return _Run(env, definition, lambda: func(**kwargs))
    deadline = None if env.timeout is None else time.monotonic() + env.timeout
    ctx = JobContext.for_envelope(env, deadline=deadline, kwargs=dict(kwargs),
                                  _progress=progress, _stop_flag=stop_flag)
    if definition.handling.bind:
        return _Run(env, definition, lambda: func(ctx, **kwargs))
    kwargs[definition.context_param] = ctx
    return _Run(env, definition, lambda: func(**kwargs))


def _raised(exc: BaseException, run: _Run) -> Outcome:
    """The outcome of a handler that raised ``exc``."""
    match exc:
        case EndRun():
            return exc.outcome
        case Retry():
            return Raised(describe(exc if exc.exc is None else exc.exc), exc.after, True,
                          exc.max_retries)
        case Reject():
            return Raised(describe(exc if exc.exc is None else exc.exc), None, False)
        case _TaskTimedOut():
            return Raised(JobError("TimeoutError", str(exc)))
    return Raised(describe(exc), None, run.definition.handling.retries(exc))


def _succeeded(app: App, run: _Run, value: Any) -> Outcome:
    """The outcome of a handler that returned ``value`` (a ``JobResult`` says which)."""
    message = None
    if isinstance(value, JobResult):
        if value.outcome == "failed":
            return Raised(JobError("JobFailed", value.message or "failed"), None, value.retry)
        if value.outcome == "cancelled":
            return Cancelled(RETURNED, value.message or "")
        value, message = value.result, value.message
    if not run.definition.handling.store_result:
        return Succeeded(b"null", message)
    try:
        return Succeeded(app.serializer.dumps(value), message)
    except Exception as exc:  # noqa: BLE001 - an unencodable result fails the job only
        return Raised(JobError(
            "SerializationError",
            f"the result of job {run.env.definition_id!r} ({type(value).__qualname__}) "
            f"cannot be serialized with {app.serializer.name}: {describe(exc).message}"),
            None, False)


@contextmanager
def soft_limit(seconds: float | None) -> Iterator[None]:
    """Raise ``SoftTimeLimitExceeded`` in the running handler after ``seconds`` (with
    ``SIGALRM``: in a process's main thread only, so under the prefork and solo pools).
    A hard limit already timed with ``SIGALRM`` (the solo pool) is put back afterwards,
    counting the time spent; one due first leaves the soft limit out."""
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    hard, _ = signal.getitimer(signal.ITIMER_REAL)
    if hard and hard <= seconds:
        yield
        return
    previous = signal.getsignal(signal.SIGALRM)
    fired = False

    def on_alarm(signum: int, frame: Any) -> None:
        nonlocal fired
        fired = True
        signal.signal(signal.SIGALRM, previous)
        if hard:
            signal.setitimer(signal.ITIMER_REAL, max(hard - seconds, 0.001))
        raise SoftTimeLimitExceeded(f"the job ran past its soft time limit of {seconds:g} s")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        if not fired:
            left, _ = signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            if hard:
                signal.setitimer(signal.ITIMER_REAL, max(hard - (seconds - left), 0.001))


def _forked_copy_exits(pid: int) -> None:
    """A handler that called ``os.fork()`` and returned in the copy: the copy leaves now,
    so two processes never serve one slot."""
    if os.getpid() != pid:
        os._exit(0)
