"""Job definitions (the decorated functions)."""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

from jobmaster.context import JobContext
from jobmaster.exceptions import ArgumentsError, DefinitionError
from jobmaster.host import AppResources
from jobmaster.jobs import JobHandle, JobsAPI
from jobmaster.options import NO_OPTIONS, OPTIONS, JobOptions
from jobmaster.producer import Producer

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ["JobDefinition", "JobHandle", "Retry", "context_parameter"]


class Retry(Exception):  # noqa: N818 - a request, not an error
    """Raise from a handler to retry the job, counting against its ``max_retries``; the
    reason is recorded as its error. ``after`` (seconds or a ``timedelta``) sets the wait;
    without it (or when it is not a finite number of seconds) the job's own
    ``retry_delay`` and backoff apply."""

    def __init__(self, reason: str = "retry requested", *,
                 after: float | timedelta | None = None) -> None:
        super().__init__(reason)
        self.after: float | None = None
        try:
            value = after.total_seconds() if isinstance(after, timedelta) else \
                None if after is None else float(after)
        except (TypeError, ValueError, OverflowError):
            value = None
        if value is not None and math.isfinite(value) and value >= 0:
            self.after = value


class _Schedules(Protocol):
    def create(self, expression: Any, job: Any, *, name: str,
               kwargs: Mapping[str, Any] | None = None, static: bool = False,
               **options: Any) -> Any: ...


class DefinitionHost(AppResources, Protocol):
    """What a job definition needs from its app."""

    @property
    def producer(self) -> Producer: ...

    @property
    def jobs(self) -> JobsAPI: ...

    @property
    def schedules(self) -> _Schedules: ...

    def cluster(self, name: str | None) -> DefinitionHost: ...


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
    ``delay`` / ``apply_at`` / ``apply_after`` / ``apply`` it to run it on a worker.

    Its options (``lane``, ``timeout``, every field of ``JobOptions``) are in ``options``
    and readable as attributes: ``send_email.timeout``."""

    def __init__(
        self,
        app: DefinitionHost,
        func: Callable[..., R],
        *,
        definition_id: str,
        options: JobOptions = NO_OPTIONS,
    ) -> None:
        if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
            raise DefinitionError(
                f"job {definition_id!r}: {getattr(func, '__qualname__', func)} is an async "
                "function; jobs are plain functions for now (call asyncio.run(...) inside a "
                "plain function to run a coroutine)"
            )
        self.app = app
        self.func = func
        self.definition_id = definition_id
        self.options = options
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

    def __getattr__(self, name: str) -> Any:
        if name in OPTIONS:  # send_email.timeout, send_email.lane...
            return getattr(self.options, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        return f"<JobDefinition {self.definition_id}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function directly, in this process (a context is made up if needed)."""
        if self.context_param is not None and self.context_param not in kwargs:
            options = self.options
            ctx = JobContext(
                job_id="local", definition_id=self.definition_id, attempt=1,
                max_retries=0, lane=options.lane or self.app.config.default_lane,
                priority=2 if options.priority is None else options.priority,
                metadata=dict(options.metadata or {}),
                enqueued_at=datetime.now().astimezone(),
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
        values = self.bind(args, kwargs)
        app = self.app
        job_id = app.producer.submit(self.definition_id, values, self.options, NO_OPTIONS)
        return JobHandle(app.jobs, job_id, self.definition_id)

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
        job_key: str | None = None,
        cluster: str | None = None,
        **options: Any,
    ) -> JobHandle[R]:
        """Enqueue with per-call overrides of the definition's options.

        ``at``/``after`` delay the start; ``job_key`` makes the enqueue idempotent (a
        second job with the same key returns the first one's handle); ``cluster`` sends
        the job to another cluster configured on this app. Every job option
        (``JobOptions``: ``priority``, ``lane``, ``metadata``, ``timeout``,
        ``max_retries``, ``retry_delay``, ``retry_backoff``, ``agent``, ``expires``...)
        may be given to override the definition's.
        """
        values = self.bind(args, kwargs)
        call = JobOptions.build(options) if options else NO_OPTIONS
        target = self.app.cluster(cluster)
        job_id = target.producer.submit(self.definition_id, values, self.options, call,
                                        at=at, after=after, job_key=job_key)
        return JobHandle(target.jobs, job_id, self.definition_id)

    def delay_many(
        self,
        calls: Iterable[Mapping[str, Any]],
        *,
        at: datetime | Sequence[datetime] | None = None,
        after: timedelta | float | None = None,
        **options: Any,
    ) -> list[JobHandle[R]]:
        """Enqueue one job per mapping of keyword arguments, in batches: one agent round
        trip and one master write per batch rather than per job.

        ``at`` is one start time for all, or one per call; ``after`` delays them all; job
        options (``priority``, ``lane``, ``metadata``...) apply to all. Every call is
        checked before any is stored: one bad call stores nothing."""
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
        call = JobOptions.build(options) if options else NO_OPTIONS
        app = self.app
        ids = app.producer.submit_many(self.definition_id, bound, self.options, call, times,
                                       after=after)
        return [JobHandle(app.jobs, i, self.definition_id) for i in ids]

    def recurring(self, expression: str | timedelta, *, name: str,
                  kwargs: Mapping[str, Any] | None = None, **options: Any) -> Any:
        """Create or update a dynamic recurring schedule of this job, persisted in the master
        (see ``app.schedules``)."""
        return self.app.schedules.create(expression, self, name=name, kwargs=kwargs,
                                         static=False, **options)
