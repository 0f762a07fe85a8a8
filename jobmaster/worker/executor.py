"""Running one job: decode its arguments, call the handler, report how it ended.

This runs in a pool slot (a forked child, a thread, or the worker itself). It never
touches the master or the agent: it returns a report tuple and the supervisor records it.

Reports (plain tuples of str, bytes and numbers, sent across a pipe with ``marshal``)::

    ("done", job_id, result_bytes, started, finished)
    ("error", job_id, type, message, traceback, retry_after, retryable, started, finished)
    ("progress", job_id, percent, message)
    ("undecodable", job_id, type, message, started, finished)   -> dead-lettered
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jobmaster.context import JobContext
from jobmaster.definitions import Retry
from jobmaster.envelope import Envelope

if TYPE_CHECKING:
    from jobmaster.app import App

Report = tuple[Any, ...]


class HardTimeout(BaseException):  # noqa: N818 - a signal, not an error
    """Raised inside a job whose time ran out (solo pool); never reported as its error."""
ProgressSink = Callable[[str, int, str | None], None]


def _error(env_id: str, exc: BaseException, started: float, *, retry_after: float | None = None,
           retryable: bool = True, message: str | None = None) -> Report:
    return (
        "error", env_id, type(exc).__qualname__, message if message is not None else str(exc),
        "".join(traceback.format_exception(exc)), retry_after, retryable, started, time.time(),
    )


def execute(
    app: App,
    body: bytes,
    *,
    progress: ProgressSink | None = None,
    stop_flag: Callable[[], bool] | None = None,
) -> Report:
    """Run the job in ``body`` (an envelope) and report how it ended."""
    started = time.time()
    env = Envelope.from_bytes(body)
    definition = app.definitions.get(env.definition_id)
    if definition is None:
        return ("error", env.id, "UnknownDefinitionError",
                f"no job definition {env.definition_id!r} in this worker's app", "", None,
                False, started, time.time())
    serializer = app.serializers.get(env.encoding)
    try:
        if serializer is None:
            raise ValueError(f"payload encoding {env.encoding!r} is not enabled in this app")
        kwargs = serializer.loads(env.payload)
        if not isinstance(kwargs, dict):
            raise ValueError("payload is not a mapping of arguments")
    except Exception as exc:  # noqa: BLE001 - any decode failure fails the job, not the worker
        return ("undecodable", env.id, type(exc).__qualname__,
                f"arguments could not be decoded: {exc}", started, time.time())
    if definition.context_param is not None:
        deadline = None if env.timeout is None else time.monotonic() + env.timeout
        kwargs[definition.context_param] = JobContext.for_envelope(
            env, deadline=deadline, _progress=progress, _stop_flag=stop_flag
        )
    try:
        value = definition.func(**kwargs)
    except Retry as exc:
        return _error(env.id, exc, started, retry_after=exc.after)
    except HardTimeout:
        raise
    except BaseException as exc:  # noqa: BLE001 - a handler's SystemExit fails the job only
        return _error(env.id, exc, started)
    finished = time.time()
    try:
        result = app.serializer.dumps(value)
    except (TypeError, ValueError) as exc:
        return ("error", env.id, "SerializationError",
                f"the result of job {env.definition_id!r} ({type(value).__qualname__}) cannot "
                f"be serialized with {app.serializer.name}: {exc}", "", None, False, started,
                finished)
    return ("done", env.id, result, started, finished)
