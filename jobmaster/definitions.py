"""Job definitions (the decorated functions)."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

from jobmaster.canvas import Canvas, Signature
from jobmaster.context import JobContext, Reject, Retry
from jobmaster.exceptions import ArgumentsError, DefinitionError, InvalidOptionError
from jobmaster.host import AppResources
from jobmaster.jobs import JobHandle, JobsAPI
from jobmaster.options import NO_OPTIONS, OPTIONS, JobOptions, duration
from jobmaster.producer import Producer
from jobmaster.ratelimit import parse_rate

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ["Handling", "JobDefinition", "JobHandle", "Reject", "Retry", "context_parameter"]


@dataclass(frozen=True, slots=True)
class Handling:
    """How a definition's handler is called and its exceptions read: settings of the
    definition itself, not of each job (they do not travel with the job).

    ``bind``: the ``JobContext`` is the first argument (Celery's ``bind=True``, the
    context's ``request`` and ``retry`` as on Celery's task). ``autoretry_for``: only
    these exception types are retried (default: every exception); ``dont_autoretry_for``:
    these fail at once. ``store_result=False``: the return value is not recorded
    (Celery's ``ignore_result``)."""

    bind: bool = False
    autoretry_for: tuple[type[BaseException], ...] | None = None
    dont_autoretry_for: tuple[type[BaseException], ...] = ()
    store_result: bool = True
    soft_time_limit: float | None = None
    """Seconds after which ``SoftTimeLimitExceeded`` is raised inside the handler."""
    rate_limit: float | None = None
    """Seconds between two starts of this definition across the cluster (from
    ``rate_limit="100/m"``)."""

    @classmethod
    def take(cls, options: dict[str, Any]) -> Handling:
        """Pop the handling settings out of ``@app.job(**options)``, checked."""
        bind = options.pop("bind", False)
        if not isinstance(bind, bool):
            raise DefinitionError(f"bind={bind!r} must be True or False")
        store = options.pop("store_result", True)
        ignore = options.pop("ignore_result", None)
        if ignore is not None:
            if not isinstance(ignore, bool):
                raise DefinitionError(f"ignore_result={ignore!r} must be True or False")
            store = not ignore
        if not isinstance(store, bool):
            raise DefinitionError(f"store_result={store!r} must be True or False")
        retry_for = options.pop("autoretry_for", None)
        never = options.pop("dont_autoretry_for", ())
        soft = options.pop("soft_time_limit", None)
        if soft is not None:
            try:
                soft = duration(soft, "soft_time_limit")
            except InvalidOptionError as exc:
                raise DefinitionError(str(exc)) from None
        rate = options.pop("rate_limit", None)
        return cls(bind, None if retry_for is None else _exception_types(retry_for,
                                                                         "autoretry_for"),
                   _exception_types(never, "dont_autoretry_for"), store, soft,
                   None if rate is None else parse_rate(rate))

    def retries(self, exc: BaseException) -> bool:
        """Whether ``exc`` raised by the handler may be retried."""
        if isinstance(exc, self.dont_autoretry_for):
            return False
        return self.autoretry_for is None or isinstance(exc, self.autoretry_for)


def _exception_types(value: Any, argument: str) -> tuple[type[BaseException], ...]:
    items = (value,) if isinstance(value, type) else value
    try:
        types = tuple(items)
    except TypeError:
        raise DefinitionError(f"{argument}={value!r} must be exception classes") from None
    for item in types:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise DefinitionError(f"{argument} holds {item!r}, which is not an exception class")
    return types


def celery_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``apply_async``/``send_task`` options in jobmaster's words: ``countdown`` →
    ``after``, ``eta`` → ``at``, ``queue`` → ``lane``; the rest (``expires``,
    ``priority``, ``job_key``, every job option) as they are. Giving both names of one
    option is refused."""
    values = dict(options)
    for celery, ours in (("countdown", "after"), ("eta", "at"), ("queue", "lane")):
        if celery in values:
            value = values.pop(celery)
            if value is None:
                continue
            if values.get(ours) is not None:
                raise ArgumentsError(f"give {celery}= or {ours}=, not both")
            values[ours] = value
    return values


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
        handling: Handling = Handling(),
    ) -> None:
        if inspect.isasyncgenfunction(func) or inspect.isgeneratorfunction(func):
            raise DefinitionError(
                f"job {definition_id!r}: {getattr(func, '__qualname__', func)} is a "
                "generator; a job is a function (or an async def) that returns its result")
        self.is_async = inspect.iscoroutinefunction(func)
        """An ``async def`` handler: prefork workers run many at once on an event loop."""
        self.app = app
        self.func = func
        self.definition_id = definition_id
        self.options = options
        self.handling = handling
        self.shared = False
        self.continuous: str | None = None
        """The schedule name of a continuous job (``app.continuous``), else ``None``."""
        """Registered by a module-level ``@jobmaster.job`` (an app's own definition of the
        same id replaces it)."""
        signature = inspect.signature(func)
        first = next(iter(signature.parameters.values()), None)
        if handling.bind:
            if first is None or first.kind not in (inspect.Parameter.POSITIONAL_ONLY,
                                                   inspect.Parameter.POSITIONAL_OR_KEYWORD):
                raise DefinitionError(
                    f"job {definition_id!r}: bind=True passes the JobContext as the first "
                    "argument, but the function takes no positional parameter for it")
            self.context_param: str | None = first.name
        else:
            self.context_param = context_parameter(func)
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

    async def delay_async(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """``delay`` for coroutines (FastAPI handlers...): returns once the job is pushed to
        its agent; the calls of many coroutines made meanwhile share the round trip."""
        values = self.bind(args, kwargs)
        app = self.app
        job_id = await app.producer.submit_async(self.definition_id, values, self.options,
                                                 NO_OPTIONS)
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
        using: Any = None,
        **options: Any,
    ) -> JobHandle[R]:
        """Enqueue with per-call overrides of the definition's options.

        ``using`` (a SQLAlchemy ``Connection`` or ``Session`` open on the master's own
        database) writes the job in that transaction: it exists if and only if the
        transaction commits, and is pushed after the commit (see ``jobmaster.outbox``).

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
                                        at=at, after=after, job_key=job_key, using=using)
        return JobHandle(target.jobs, job_id, self.definition_id)

    def apply_async(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        *,
        countdown: timedelta | float | None = None,
        eta: datetime | None = None,
        expires: float | datetime | None = None,
        queue: str | None = None,
        priority: int | str | None = None,
        job_key: str | None = None,
        link: Canvas | Sequence[Canvas] | None = None,
        link_error: Signature[Any] | Sequence[Signature[Any]] | None = None,
        **options: Any,
    ) -> JobHandle[R]:
        """Celery's ``apply_async``: ``args``/``kwargs``; ``countdown`` (seconds or a
        ``timedelta``) or ``eta`` (a datetime) to start later; ``expires`` (seconds or a
        datetime: not started by then, it is cancelled); ``queue`` is the lane;
        ``priority`` a ``Priority``, its name or 0-4 (higher runs first, unlike Celery on
        Redis); ``job_key`` dedupes; every other job option as in ``apply``. ``link``:
        signature(s) run after the job succeeded, with its result; ``link_error``: run if
        it failed, with its id (see ``jobmaster.canvas``)."""
        if link is not None or link_error is not None:
            if job_key is not None:
                raise ArgumentsError("job_key= cannot dedupe a job with link=/link_error=")
            sig: Signature[R] = Signature(self, args or (), kwargs, options={
                "countdown": countdown, "eta": eta, "queue": queue, "expires": expires,
                "priority": priority, **options})
            return sig.apply_async(link=link, link_error=link_error)
        values = celery_options({"countdown": countdown, "eta": eta, "queue": queue,
                                 **options})
        for name, value in (("expires", expires), ("priority", priority)):
            if value is not None:
                values[name] = value
        return self.apply(args or (), kwargs, job_key=job_key, **values)

    def s(self, *args: Any, **kwargs: Any) -> Signature[R]:
        """A signature: this job with some of its arguments, to run in a workflow (the
        result of the job before it comes first): ``chain(add.s(1, 2), add.s(10))``."""
        return Signature(self, args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature[R]:
        """An immutable signature: in a workflow it ignores the result before it."""
        return Signature(self, args, kwargs, immutable=True)

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
