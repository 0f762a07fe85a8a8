"""``App``: the registry of job definitions and the entry point to master and agents.

Creating an app and decorating functions does no I/O: the master and agents are opened
on first use (and opened again in a forked child).
"""

from __future__ import annotations

import asyncio
import atexit
import fnmatch
import logging
import os
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, cast, overload

from jobmaster.agents.base import Agent, resolve_agent
from jobmaster.config import Config, env_overrides
from jobmaster.context import JobContext
from jobmaster.dead_letters import DeadLettersAPI
from jobmaster.definitions import Handling, JobDefinition, celery_options
from jobmaster.exceptions import (
    ArgumentsError,
    ConfigurationError,
    DefinitionError,
    InvalidOptionError,
    UnknownDefinitionError,
)
from jobmaster.fanout import FanOut
from jobmaster.forking import after_fork
from jobmaster.jobs import JobHandle, JobsAPI
from jobmaster.lanes import LanesAPI
from jobmaster.locks import Lock
from jobmaster.middleware import Middleware, Pipeline
from jobmaster.middleware.canvas import WorkflowSteps
from jobmaster.middleware.continuous import OneAtATime
from jobmaster.middleware.expiry import Expiry
from jobmaster.options import NO_OPTIONS, JobOptions, check_name
from jobmaster.producer import Producer
from jobmaster.registry import Definitions
from jobmaster.serialization import JSONSerializer, Serializer, make_serializer
from jobmaster.workers_api import WorkersAPI

if TYPE_CHECKING:
    from jobmaster.master.repository import Master
    from jobmaster.scheduling import SchedulesAPI, SchedulesHost

P = ParamSpec("P")
R = TypeVar("R")

log = logging.getLogger("jobmaster")

_APPS: list[weakref.ref[App]] = []
"""Every app made in this process, oldest first."""
_SHARED: list[SharedJob[Any, Any]] = []
"""Every ``@jobmaster.job`` definition made in this process."""


class App:
    """A jobmaster application: one cluster, its job definitions, master and agents.

    ``App("billing", master="postgresql+psycopg://localhost/db",
    agents={"main": "redis://localhost:6379/0"})``. Every keyword of ``Config`` is
    accepted; ``JOBMASTER_<NAME>`` environment variables override them.
    """

    def __init__(
        self,
        name: str = "default",
        master: str | None = None,
        agents: Mapping[str, str] | str | None = None,
        *,
        middleware: Sequence[Middleware] = (),
        event_log: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        default: bool | None = None,
        **options: Any,
    ) -> None:
        if isinstance(agents, str):
            agents = {"main": agents}
        values: dict[str, Any] = {"name": name, **options}
        if master is not None:
            values["master_url"] = master
        if agents is not None:
            values["agents"] = dict(agents)
        unknown = set(values) - set(Config.__dataclass_fields__)
        if unknown:
            raise ConfigurationError(
                f"App() got unknown option(s) {sorted(unknown)}; see Config for the options"
            )
        env = env_overrides(environ)
        main_url = env.pop("agents_main", None)
        values.update(env)
        if main_url is not None:
            merged = dict(values.get("agents") or {})
            target = "main"
            if merged and "main" not in merged:  # the URL of the default agent, renamed
                target = values.get("default_agent") or next(iter(merged))
            merged[target] = main_url
            values["agents"] = merged
        try:
            self.config = Config(**values)
        except ConfigurationError as exc:
            message = str(exc)
            for field_name in env:
                alias = "master" if field_name == "master_url" else field_name
                if message.startswith(field_name + "=") or message.startswith(alias + "="):
                    raise ConfigurationError(
                        f"environment variable JOBMASTER_{field_name.upper()}: {message}"
                    ) from None
            if main_url is not None and "agents[" in message:
                raise ConfigurationError(
                    f"environment variable JOBMASTER_AGENT_URL: {message}") from None
            raise
        self.definitions = Definitions(self)
        self.static_schedules: dict[str, dict[str, Any]] = {}
        self.child_init_hooks: list[Callable[[], None]] = []
        self.middleware: list[Middleware] = list(middleware)
        if event_log is not None:  # one JSONL line per job event, in that directory
            from jobmaster.middleware.event_log import EventLog

            self.middleware.append(EventLog(event_log))
        self.pipeline = Pipeline([Expiry(), WorkflowSteps(self), *self.middleware])
        self.producer = Producer(self)
        self.jobs = JobsAPI(self)
        self.dead_letters = DeadLettersAPI(self)
        self.workers = WorkersAPI(self)
        self.lanes = LanesAPI(self)
        self._schedules: SchedulesAPI | None = None
        self._serializer: Serializer | None = None
        self._serializers: dict[str, Serializer] | None = None
        self._master: Master | None = None
        self._agents: dict[str, Agent] = {}
        self._clusters: dict[str, App] = {}
        self._lock = threading.RLock()
        after_fork(self, App._forget_connections)
        self.default = default
        """``True``: the app ``@jobmaster.job`` definitions are used with (the latest such
        app); ``False``: never (an app made for another cluster); ``None``: when it is the
        only app."""
        _APPS[:] = [ref for ref in _APPS if ref() is not None]
        _APPS.append(weakref.ref(self))
        for shared in list(_SHARED):  # @jobmaster.job definitions belong to every app
            shared.register(self)

    def __repr__(self) -> str:
        return f"<App {self.name!r} jobs={len(self.definitions)}>"

    @property
    def name(self) -> str:
        """The cluster id."""
        return self.config.name

    # -- definitions -----------------------------------------------------------------
    @overload
    def job(self, func: Callable[Concatenate[JobContext, P], R], /) -> JobDefinition[P, R]: ...

    @overload
    def job(self, func: Callable[P, R], /) -> JobDefinition[P, R]: ...

    @overload
    def job(self, *, definition_id: str | None = None, **options: Any) -> _Decorator: ...

    def job(  # type: ignore[misc]
        self,
        func: Callable[..., Any] | None = None,
        /,
        *,
        definition_id: str | None = None,
        **options: Any,
    ) -> Any:
        """Register a function as a job definition. Use as ``@app.job`` or
        ``@app.job(definition_id=..., lane=..., priority=..., timeout=..., max_retries=...,
        retry_delay=..., retry_backoff=..., metadata=..., agent=..., expires=...)`` — every
        field of ``JobOptions``. Does no I/O."""
        options = dict(options)
        shared = bool(options.pop("_shared", False))
        handling = Handling.take(options)
        job_options = JobOptions.build(options)
        if job_options.agent is not None and job_options.agent not in self.config.agents:
            raise ConfigurationError(
                f"agent={job_options.agent!r} is not one of this app's agents "
                f"{sorted(self.config.agents)}"
            )

        def register(fn: Callable[..., Any]) -> JobDefinition[Any, Any]:
            if not callable(fn):
                raise DefinitionError(f"@app.job decorates functions, not {fn!r}")
            def_id = (f"{fn.__module__}.{fn.__qualname__}" if definition_id is None
                      else definition_id)
            try:
                check_name(def_id, "definition_id")
            except InvalidOptionError as exc:
                raise DefinitionError(str(exc)) from None
            existing = self.definitions.get(def_id)
            if existing is not None and getattr(existing, "shared", False) and not shared:
                existing = None  # the app's own definition wins over a module-level one
            if existing is not None and not _same_function(existing.func, fn):
                raise DefinitionError(
                    f"definition id {def_id!r} is already registered by "
                    f"{existing.func.__module__}.{existing.func.__qualname__}; cannot register "
                    f"{fn.__module__}.{fn.__qualname__} under it too: give one of them "
                    "another definition_id"
                )
            routed = job_options
            lane = self.route(def_id)
            if lane is not None and job_options.lane is None:
                routed = job_options.over(JobOptions.build(lane=lane))
            definition: JobDefinition[Any, Any] = JobDefinition(
                self, fn, definition_id=def_id, options=routed, handling=handling
            )
            definition.shared = shared
            self.definitions[def_id] = definition
            return definition

        if func is not None:
            return register(func)
        return register

    task = job
    """Celery's name for ``job``: ``@app.task`` is ``@app.job``."""

    def route(self, definition_id: str) -> str | None:
        """The lane ``task_routes`` gives a definition id (first matching pattern), if any."""
        for pattern, lane in self.config.task_routes.items():
            if fnmatch.fnmatchcase(definition_id, pattern):
                return str(lane)
        return None

    def add_middleware(self, middleware: Middleware) -> None:
        """Add a middleware after those given to ``App(middleware=...)``, e.g. from the
        command line (``jobmaster worker --metrics-port``). Add it before starting the
        worker: processes forked earlier keep the pipeline they had."""
        self.middleware.append(middleware)
        self.pipeline = Pipeline([Expiry(), WorkflowSteps(self), *self.middleware])

    def on_worker_process_start(self, func: Callable[[], None]) -> Callable[[], None]:
        """Register a function run in each worker process (forked child) when it starts,
        before it runs any job: open per-process clients, seed random generators..."""
        self.child_init_hooks.append(func)
        return func

    def definition(self, definition_id: str) -> JobDefinition[Any, Any]:
        """The registered definition with this id; ``UnknownDefinitionError`` otherwise."""
        try:
            return self.definitions[definition_id]
        except KeyError:
            known = ", ".join(sorted(self.definitions)[:20]) or "none"
            raise UnknownDefinitionError(
                f"no job definition {definition_id!r} in app {self.name!r} (known: {known})"
            ) from None

    # -- resources (lazy, fork-aware) ------------------------------------------------------
    @property
    def serializer(self) -> Serializer:
        """The serializer new jobs are encoded with."""
        if self._serializer is None:
            self._serializer = make_serializer(self.config.serializer, self.config.secret)
        return self._serializer

    @property
    def serializers(self) -> dict[str, Serializer]:
        """Serializers by encoding name, for decoding what is stored."""
        if self._serializers is None:
            self._serializers = self._make_serializers()
        return self._serializers

    def _make_serializers(self) -> dict[str, Serializer]:
        result: dict[str, Serializer] = {"json": JSONSerializer()}
        if self.config.serializer == "pickle" or self.config.secret:
            try:
                result["pickle"] = make_serializer("pickle", self.config.secret)
            except ConfigurationError:
                pass
        result[self.serializer.name] = self.serializer
        return result

    @property
    def master(self) -> Master:
        """The master repository (opened on first use)."""
        if self._master is None:
            from jobmaster.master.repository import Master  # SQLAlchemy: on first use

            with self._lock:
                if self._master is None:
                    self._master = Master(self.config.master_url,
                                          auto_migrate=self.config.auto_migrate)
        return self._master

    def agent(self, name: str | None = None) -> Agent:
        """The agent with this name (default: the app's default agent), opened on first use."""
        name = name or self.config.default_agent
        agent = self._agents.get(name)
        if agent is None:
            url = self.config.agents.get(name)
            if url is None:
                raise ConfigurationError(
                    f"agent {name!r} is not configured; agents are {sorted(self.config.agents)}"
                )
            with self._lock:
                agent = self._agents.get(name)
                if agent is None:
                    agent = resolve_agent(url, name=name,
                                          namespace=self.config.agent_namespace)
                    self._agents[name] = agent
        return agent

    def migrate(self) -> str | None:
        """Create or upgrade the master schema; return the revision it was at before."""
        return self.master.migrate()

    def after_fork(self) -> None:
        """Forget connections inherited from a parent process. Runs on its own in every
        forked child (``jobmaster.forking``); calling it again is harmless."""
        self._forget_connections()

    def _forget_connections(self) -> None:
        self._agents = {}  # each agent forgets its own connections (jobmaster.forking)
        self._lock = threading.RLock()

    def close(self) -> None:
        """Write pending records, then close master and agent connections."""
        self.flush()
        for agent in self._agents.values():
            agent.close()
        self._agents = {}
        if self._master is not None:
            self._master.dispose()

    def flush(self) -> int:
        """Write the jobs this process pushed to agents into the master now; return how
        many. Runs on its own every ``master_sync_seconds`` and at exit."""
        return self.producer.flush()

    # -- enqueueing ------------------------------------------------------------------------
    def enqueue(
        self,
        definition_id: str,
        kwargs: Mapping[str, Any] | None = None,
        *,
        args: Sequence[Any] = (),
        cluster: str | None = None,
        **options: Any,
    ) -> JobHandle[Any]:
        """Enqueue a job by definition id, without importing its handler. Takes the same
        options as ``JobDefinition.apply``. If the definition is registered here, its
        defaults and signature apply; otherwise, on this cluster, the master's registry of
        definitions (what workers registered, looked up at most every few seconds) gives
        them: an id no worker registered raises ``UnknownDefinitionError`` naming the close
        matches, arguments that do not fit ``ArgumentsError``. On another cluster
        (``cluster=...``) the keyword arguments are sent as given."""
        check_name(definition_id, "definition_id")  # before the lookup: say what is wrong
        definition = self.definitions.get(definition_id)
        if definition is not None:
            return definition.apply(args, kwargs, cluster=cluster, **options)
        target = self.cluster(cluster)
        if args:
            raise ArgumentsError(
                f"job {definition_id!r} is not registered in this process, so positional "
                "arguments cannot be matched to its parameters; pass kwargs={...}")
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise ArgumentsError(f"kwargs must be a dict, not {type(kwargs).__name__}")
        at, after, job_key = (options.pop(k, None) for k in ("at", "after", "job_key"))
        call = JobOptions.build(options) if options else NO_OPTIONS
        base, values = NO_OPTIONS, dict(kwargs or {})
        if target is self:  # checked against what this cluster's workers registered
            registered = self.definitions.registered(definition_id)
            values = registered.bind(kwargs)
            base = registered.job_options()
            lane = self.route(definition_id)
            if lane is not None and call.lane is None:
                call = call.over(JobOptions.build(lane=lane))
        job_id = target.producer.submit(definition_id, values, base, call,
                                        at=at, after=after, job_key=job_key)
        return JobHandle(target.jobs, job_id, definition_id)

    async def enqueue_async(
        self,
        definition_id: str,
        kwargs: Mapping[str, Any] | None = None,
        *,
        args: Sequence[Any] = (),
        **options: Any,
    ) -> JobHandle[Any]:
        """``enqueue`` for coroutines: returns once the job is pushed to its agent. A
        definition registered here shares the round trip with the other calls made
        meanwhile on the event loop (``delay_async``); one known only from the master's
        registry is looked up and sent from a thread."""
        definition = self.definitions.get(definition_id)
        if definition is None or options.get("cluster") not in (None, self.name):
            return await asyncio.to_thread(self.enqueue, definition_id, kwargs, args=args,
                                           **options)
        options.pop("cluster", None)
        values = definition.bind(args, kwargs)
        at, after, job_key = (options.pop(k, None) for k in ("at", "after", "job_key"))
        call = JobOptions.build(options) if options else NO_OPTIONS
        job_id = await self.producer.submit_async(definition_id, values, definition.options,
                                                  call, at=at, after=after, job_key=job_key)
        return JobHandle(self.jobs, job_id, definition_id)

    def send_task(self, definition_id: str, args: Sequence[Any] = (),
                  kwargs: Mapping[str, Any] | None = None, **options: Any) -> JobHandle[Any]:
        """Celery's ``send_task``: enqueue by definition id, with ``apply_async``'s options
        (``countdown``, ``eta``, ``expires``, ``queue``, ``priority``, ``job_key`` and every
        job option). Positional ``args`` need the definition registered here or in the
        master's registry (they are matched to its parameter names)."""
        options = celery_options(options)
        definition = self.definitions.get(definition_id)
        if definition is not None:
            return definition.apply(args, kwargs, **options)
        if args:
            registered = self.definitions.registered(definition_id)
            kwargs = registered.bind(kwargs, args=args)
        return self.enqueue(definition_id, kwargs, **options)

    def continuous(self, *, interval: float | timedelta, iterations: int | None = None,
                   name: str | None = None, **options: Any
                   ) -> Callable[[Callable[..., Any]], JobDefinition[Any, Any]]:
        """Declare a continuous job: one run at a time across the cluster, started again
        ``interval`` seconds after each run ends (the first at once), by beat; a run whose
        worker dies runs again elsewhere; ``iterations`` runs in all (``None``: for ever);
        ``app.schedules.pause(name)`` stops it. ``name`` (default: the definition id) names
        both the definition and its schedule; ``options`` are job options."""
        seconds = interval.total_seconds() if isinstance(interval, timedelta) else interval

        def register(fn: Callable[..., Any]) -> JobDefinition[Any, Any]:
            definition = self.job(definition_id=name, **options)(fn)
            schedule = definition.definition_id
            self.recurring(timedelta(seconds=max(int(seconds or 0), 1)), definition,
                           name=schedule,
                           continuous={"interval": seconds, "iterations": iterations})
            definition.continuous = schedule
            if not any(isinstance(m, OneAtATime) for m in self.middleware):
                self.add_middleware(OneAtATime(self))
            return definition

        return register

    def fan_out(self, expression: str | timedelta | None, *,
                job: JobDefinition[Any, Any] | str, name: str, batch_size: int = 1000,
                **options: Any) -> Callable[[Callable[..., Any]], JobDefinition[Any, Any]]:
        """Declare a fan-out: the decorated generator (or async generator) yields kwargs
        dicts, and each becomes a job of ``job``. The query itself runs as the job ``name``
        on a worker — on the recurring ``expression`` (beat), and whenever
        ``app.fan_out_now(name)`` is called (``expression=None``: only then). Items are
        enqueued ``batch_size`` at a time, each exactly once per query run even if the
        query runs again after a crash (see ``jobmaster.fanout``)."""
        target = job.definition_id if isinstance(job, JobDefinition) else job
        if not isinstance(target, str):
            raise DefinitionError(f"fan_out job={job!r} must be a job definition or its id")

        def register(query: Callable[..., Any]) -> JobDefinition[Any, Any]:
            runner = FanOut(self, query, target, batch_size)
            definition = self.job(definition_id=name, bind=True, **options)(runner)
            if expression is not None:
                self.recurring(expression, definition, name=name)
            return definition

        return register

    def fan_out_now(self, name: str, **kwargs: Any) -> JobHandle[Any]:
        """Run the fan-out query ``name`` once now (on a worker), with these arguments."""
        return self.definition(name).delay(**kwargs)

    def lock(self, name: str, *, ttl: float = 60.0, wait: float | None = None) -> Lock:
        """A lock named ``name`` across the cluster, kept in the master, with a fencing
        ``token``: ``with app.lock("nightly-report", ttl=60, wait=10) as lock: ...``
        (``LockNotAcquiredError`` after ``wait`` seconds), or ``acquire``/``release``/
        ``extend``/``check``. See ``jobmaster.locks``."""
        return Lock(self, name, ttl=ttl, wait=wait)

    def handle(self, job_id: str, definition_id: str = "") -> JobHandle[Any]:
        """A handle on a job of this cluster by its id (e.g. one stored earlier): ``get``,
        ``wait``, ``state``, ``cancel``..."""
        return self.jobs.handle(job_id, definition_id)

    AsyncResult = handle
    """Celery's name for ``handle``."""

    def cluster(self, name: str | None) -> App:
        """This app (``None`` or its own name), or the app of another configured cluster
        (``App(clusters={...})``); ``InvalidOptionError`` for an unknown one."""
        if name is None or name == self.name:
            return self
        target = self._clusters.get(name)
        if target is None:
            spec = self.config.clusters.get(name)
            if spec is None:
                raise InvalidOptionError(
                    f"cluster={name!r} is not configured on app {self.name!r}; add "
                    f"App(clusters={{{name!r}: {{'master': ..., 'agents': ...}}}})"
                )
            # another cluster's settings come from its spec only, not this process's env
            try:
                target = spec if isinstance(spec, App) else App(name, environ={},
                                                               default=False, **dict(spec))
            except ConfigurationError as exc:
                raise InvalidOptionError(f"cluster={name!r}: {exc}") from None
            self._clusters[name] = target
        return target

    # -- recurring -----------------------------------------------------------------------
    @property
    def schedules(self) -> SchedulesAPI:
        """Recurring schedules of this cluster: list, get, pause, resume, update, delete."""
        if self._schedules is None:  # imported here: croniter loads only when schedules are used
            from jobmaster.scheduling import SchedulesAPI

            # SchedulesHost declares a plain dict of definitions; Definitions is one
            self._schedules = SchedulesAPI(cast("SchedulesHost", self))
        return self._schedules

    def recurring(self, expression: str | timedelta, job: JobDefinition[Any, Any] | str, *,
                  name: str, kwargs: Mapping[str, Any] | None = None, **options: Any) -> None:
        """Declare a static recurring schedule in code. Beat creates or updates it when it
        starts and deactivates (keeping history) static schedules no longer declared."""
        self.schedules.declare_static(expression, job, name=name, kwargs=kwargs, **options)


class _Decorator:
    """The type of ``app.job(...)`` with options: a decorator keeping the signature."""

    @overload
    def __call__(self, func: Callable[Concatenate[JobContext, P], R], /
                 ) -> JobDefinition[P, R]: ...

    @overload
    def __call__(self, func: Callable[P, R], /) -> JobDefinition[P, R]: ...

    def __call__(self, func: Callable[..., Any], /) -> Any: ...


def _same_function(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    """True when two functions are the same definition imported twice (e.g. a module run
    as ``__main__`` and imported by name)."""
    return (getattr(a, "__qualname__", None) == getattr(b, "__qualname__", None)
            and getattr(getattr(a, "__code__", None), "co_filename", 1)
            == getattr(getattr(b, "__code__", None), "co_filename", 2))


@atexit.register
def _flush_all() -> None:
    for ref in list(_APPS):
        app = ref()
        if app is None:
            continue
        try:
            app.flush()
        except Exception:  # noqa: BLE001 - best effort at exit
            log.exception("could not write pushed jobs to the master at exit")


def current_app() -> App:
    """The app ``@jobmaster.job`` definitions are used with: the latest made with
    ``App(..., default=True)``, else the only app of this process."""
    apps = [a for a in (ref() for ref in _APPS) if a is not None and a.default is not False]
    chosen = [a for a in apps if a.default]
    if chosen:
        return chosen[-1]
    if len(apps) == 1:
        return apps[0]
    if not apps:
        raise ConfigurationError(
            "no App exists yet: @jobmaster.job definitions are used with the app of this "
            "process; create App(...) first")
    raise ConfigurationError(
        f"{len(apps)} apps exist ({', '.join(repr(a.name) for a in apps)}); make the one "
        "@jobmaster.job definitions belong to with App(..., default=True)")


class SharedJob(Generic[P, R]):
    """A job defined with the module-level ``@jobmaster.job`` (Celery's ``shared_task``):
    registered in every app of the process, and used (``delay``, ``apply_async``,
    options...) through the app in use (``current_app()``)."""

    def __init__(self, func: Callable[..., R], definition_id: str | None,
                 options: Mapping[str, Any]) -> None:
        self.func = func
        self._definition_id = definition_id
        self._options = dict(options)
        self._by_app: weakref.WeakKeyDictionary[App, JobDefinition[P, R]] = \
            weakref.WeakKeyDictionary()
        self.__name__ = getattr(func, "__name__", "job")
        self.__qualname__ = getattr(func, "__qualname__", self.__name__)
        self.__doc__ = func.__doc__
        self.__module__ = func.__module__
        self.__wrapped__ = func

    def register(self, app: App) -> JobDefinition[P, R]:
        """This job's definition in ``app`` (registered there the first time)."""
        definition = self._by_app.get(app)
        if definition is not None and \
                app.definitions.get(definition.definition_id) is not definition:
            return app.definitions[definition.definition_id]  # replaced by the app's own
        if definition is None:
            own = app.definitions.get(self._definition_id or
                                      f"{self.func.__module__}.{self.func.__qualname__}")
            if own is not None and not getattr(own, "shared", False):
                return own  # the app defines this id itself: its own definition wins
            definition = app.job(definition_id=self._definition_id, _shared=True,
                                 **self._options)(self.func)
            self._by_app[app] = definition
        return definition

    @property
    def definition(self) -> JobDefinition[P, R]:
        """The definition in the app in use."""
        return self.register(current_app())

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("func", "_definition_id", "_options",
                                             "_by_app"):
            raise AttributeError(name)
        return getattr(self.definition, name)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here and now, as ``JobDefinition.__call__`` does (no app is
        needed for that: any app's registration will do, or the plain function)."""
        for definition in list(self._by_app.values()):
            return definition(*args, **kwargs)
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<SharedJob {self._definition_id or self.__qualname__}>"


@overload
def job(func: Callable[P, R], /) -> SharedJob[P, R]: ...


@overload
def job(*, definition_id: str | None = None, **options: Any
        ) -> Callable[[Callable[P, R]], SharedJob[P, R]]: ...


def job(func: Callable[..., Any] | None = None, /, *, definition_id: str | None = None,
        **options: Any) -> Any:
    """Define a job without an app at hand, like Celery's ``shared_task``: it is registered
    in every ``App`` of the process (those made before and after), and calls use the app
    in use (``App(..., default=True)``, or the only one). Takes ``@app.job``'s options."""
    def register(fn: Callable[..., Any]) -> SharedJob[Any, Any]:
        if not callable(fn):
            raise DefinitionError(f"@jobmaster.job decorates functions, not {fn!r}")
        shared: SharedJob[Any, Any] = SharedJob(fn, definition_id, options)
        _SHARED.append(shared)
        for ref in list(_APPS):
            app = ref()
            if app is not None:
                shared.register(app)
        return shared

    if func is not None:
        return register(func)
    return register
