"""Job definitions (the decorated functions) and handles to enqueued jobs."""

from __future__ import annotations

import inspect
import time
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from jobmaster.context import JobContext
from jobmaster.exceptions import ArgumentsError, DefinitionError, JobTimeoutError
from jobmaster.models import Job, JobStatus, Priority

if TYPE_CHECKING:
    from jobmaster.app import App

P = ParamSpec("P")
R = TypeVar("R")


class Retry(Exception):  # noqa: N818 - a request, not an error
    """Raise from a handler to retry the job, counting against its ``max_retries``; the
    reason is recorded as its error. ``after`` (seconds or a ``timedelta``) sets the wait;
    without it the job's own ``retry_delay`` and backoff apply."""

    def __init__(self, reason: str = "retry requested", *,
                 after: float | timedelta | None = None) -> None:
        super().__init__(reason)
        self.after: float | None = (
            after.total_seconds() if isinstance(after, timedelta)
            else None if after is None else float(after)
        )


class JobHandle(Generic[R]):
    """A job that was enqueued: its id, and ways to follow it in the master."""

    __slots__ = ("_app", "definition_id", "id")

    def __init__(self, app: App, job_id: str, definition_id: str) -> None:
        self._app = app
        self.id = job_id
        self.definition_id = definition_id

    def __repr__(self) -> str:
        return f"<JobHandle {self.definition_id} {self.id}>"

    def status(self) -> JobStatus:
        """The job's current status (``queued`` while the master has not heard of it yet)."""
        return self._app.jobs.status(self.id)

    def get(self) -> Job[R]:
        """The job's record in the master, as it is now."""
        self._app.flush()
        return typing.cast(Job[R], self._app.jobs.get(self.id))

    def wait(self, timeout: float | timedelta | None = None, *, interval: float = 0.05) -> Job[R]:
        """Block until the job succeeded, failed or was cancelled; return its record.

        Raises ``JobTimeoutError`` if that takes longer than ``timeout`` seconds."""
        limit = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        deadline = None if limit is None else time.monotonic() + limit
        self._app.flush()
        pause = min(interval, 0.01)
        while True:
            job = self._app.jobs.find(self.id)
            if job is not None and job.status.is_final:
                return typing.cast(Job[R], job)
            if deadline is not None and time.monotonic() >= deadline:
                status = "unknown to the master" if job is None else job.status.value
                raise JobTimeoutError(
                    f"job {self.id} ({self.definition_id}) is still {status} after "
                    f"{limit:g} s; is a worker running for its lane?"
                )
            time.sleep(pause)
            pause = min(pause * 2, interval)

    def result(self, timeout: float | timedelta | None = None) -> R:
        """Wait for the job and return its result; raise ``JobFailedError`` if it did not
        succeed."""
        from jobmaster.exceptions import JobFailedError

        job = self.wait(timeout)
        if job.status is not JobStatus.SUCCEEDED:
            detail = f": {job.error.type}: {job.error.message}" if job.error else ""
            raise JobFailedError(f"job {self.id} ({self.definition_id}) {job.status}{detail}",
                                 job=job)
        return typing.cast(R, job.result)

    def cancel(self) -> JobStatus:
        """Cancel the job unless it already finished; return its status afterwards."""
        return self._app.jobs.cancel(self.id)


def context_parameter(func: Callable[..., Any]) -> str | None:
    """The name of the parameter annotated ``JobContext``, if any."""
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # noqa: BLE001 - unresolvable annotations: fall back to raw ones
        hints = getattr(func, "__annotations__", {})
    for name, hint in hints.items():
        if name != "return" and (hint is JobContext or hint == "JobContext"):
            return name
    return None


class JobDefinition(Generic[P, R]):
    """A function registered with ``@app.job``: call it to run it here and now, or
    ``delay`` / ``apply_at`` / ``apply_after`` / ``apply`` it to run it on a worker."""

    def __init__(
        self,
        app: App,
        func: Callable[..., R],
        *,
        definition_id: str,
        lane: str | None,
        priority: Priority,
        timeout: float | None,
        max_retries: int | None,
        retry_delay: float | None,
        retry_backoff: float | None,
        metadata: Mapping[str, Any],
        agent: str | None,
    ) -> None:
        self.app = app
        self.func = func
        self.definition_id = definition_id
        self.lane = lane
        self.priority = priority
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.retry_backoff = retry_backoff
        self.metadata = dict(metadata)
        self.agent = agent
        self.context_param = context_parameter(func)
        signature = inspect.signature(func)
        first = next(iter(signature.parameters.values()), None)
        self._context_first = (
            first is not None and first.name == self.context_param
            and first.kind in (inspect.Parameter.POSITIONAL_ONLY,
                               inspect.Parameter.POSITIONAL_OR_KEYWORD)
        )
        params = [p for name, p in signature.parameters.items() if name != self.context_param]
        for p in params:
            if p.kind is inspect.Parameter.VAR_POSITIONAL:
                raise DefinitionError(
                    f"job {definition_id!r}: *{p.name} is not supported; jobs take named "
                    "arguments so they can be stored and inspected"
                )
        self.signature = signature.replace(parameters=params)
        keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        self._simple = all(p.kind in keyword for p in params)
        self._names = frozenset(p.name for p in params)
        self._required = frozenset(p.name for p in params if p.default is p.empty)
        self.__name__ = getattr(func, "__name__", definition_id)
        self.__qualname__ = getattr(func, "__qualname__", definition_id)
        self.__doc__ = func.__doc__
        self.__module__ = func.__module__
        self.__wrapped__ = func

    def __repr__(self) -> str:
        return f"<JobDefinition {self.definition_id}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function directly, in this process (a context is made up if needed)."""
        if self.context_param is not None and self.context_param not in kwargs:
            ctx = JobContext(
                job_id="local", definition_id=self.definition_id, attempt=1,
                max_retries=0, lane=self.lane or self.app.config.default_lane,
                priority=int(self.priority),
                metadata=dict(self.metadata), enqueued_at=datetime.now().astimezone(),
            )
            if self._context_first:
                return self.func(ctx, *args, **kwargs)
            kwargs[self.context_param] = ctx
        return self.func(*args, **kwargs)

    def bind(self, args: Iterable[Any] = (), kwargs: Mapping[str, Any] | None = None
             ) -> dict[str, Any]:
        """Map call arguments to parameter names, refusing what the signature does not
        accept (``ArgumentsError`` naming the missing or unexpected argument)."""
        if not args and kwargs is not None and self._simple:
            # the common case, keyword arguments only: a set check instead of Signature.bind
            keys = kwargs.keys()
            if self._required <= keys and keys <= self._names:
                return dict(kwargs)
        try:
            bound = self.signature.bind(*args, **(kwargs or {}))
        except TypeError as exc:
            raise ArgumentsError(
                f"arguments do not fit job {self.definition_id!r}{self.signature}: {exc}"
            ) from None
        values = dict(bound.arguments)
        for name, param in self.signature.parameters.items():
            if param.kind is inspect.Parameter.VAR_KEYWORD and name in values:
                values.update(values.pop(name))
        return values

    # -- enqueueing ------------------------------------------------------------------
    def delay(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """Run the job on a worker as soon as possible."""
        return self.apply(args, kwargs)

    def apply_at(self, when: datetime, /, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """Run the job at ``when`` (aware datetime; a naive one is taken as UTC)."""
        return self.apply(args, kwargs, at=when)

    def apply_after(
        self, delay: timedelta | float, /, *args: P.args, **kwargs: P.kwargs
    ) -> JobHandle[R]:
        """Run the job after ``delay`` (a ``timedelta`` or seconds)."""
        return self.apply(args, kwargs, after=delay)

    def apply(
        self,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        at: datetime | None = None,
        after: timedelta | float | None = None,
        priority: Priority | int | str | None = None,
        lane: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        timeout: float | timedelta | None = None,
        max_retries: int | None = None,
        retry_delay: float | timedelta | None = None,
        retry_backoff: float | None = None,
        job_key: str | None = None,
        cluster: str | None = None,
        agent: str | None = None,
    ) -> JobHandle[R]:
        """Enqueue with per-call overrides of the definition's options.

        ``at``/``after`` delay the start; ``job_key`` makes the enqueue idempotent (a
        second job with the same key returns the first one's handle); ``cluster`` sends
        the job to another cluster configured on this app; ``agent`` picks an agent by name.
        """
        values = self.bind(args, kwargs)
        job_id = self.app._submit(
            self, values, at=at, after=after, priority=priority, lane=lane,
            metadata=metadata, timeout=timeout, max_retries=max_retries,
            retry_delay=retry_delay, retry_backoff=retry_backoff, job_key=job_key,
            cluster=cluster, agent=agent,
        )
        return JobHandle(self.app, job_id, self.definition_id)

    def delay_many(
        self,
        calls: Iterable[Mapping[str, Any]],
        *,
        at: datetime | Sequence[datetime] | None = None,
        after: timedelta | float | None = None,
        priority: Priority | int | str | None = None,
        lane: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[JobHandle[R]]:
        """Enqueue one job per mapping of keyword arguments, in batches: one agent round
        trip and one master write per batch rather than per job.

        ``at`` is one start time for all, or one per call; ``after`` delays them all.
        Every call is checked before any is stored: one bad call stores nothing."""
        bound = [self.bind((), call) for call in calls]
        if at is not None and not isinstance(at, datetime):
            times = list(at)
            if len(times) != len(bound):
                raise ArgumentsError(
                    f"delay_many got {len(times)} start times for {len(bound)} calls; pass "
                    "one datetime for all, or one per call"
                )
        else:
            times = [at] * len(bound)  # type: ignore[list-item]
        ids = self.app._submit_many(self, bound, times, after=after, priority=priority,
                                    lane=lane, metadata=metadata)
        return [JobHandle(self.app, i, self.definition_id) for i in ids]

    def recurring(self, expression: str | timedelta, *, name: str,
                  kwargs: Mapping[str, Any] | None = None, **options: Any) -> Any:
        """Create or update a dynamic recurring schedule of this job, persisted in the master
        (see ``app.schedules``)."""
        return self.app.schedules.create(expression, self, name=name, kwargs=kwargs,
                                         static=False, **options)
