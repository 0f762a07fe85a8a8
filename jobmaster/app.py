"""``App``: the registry of job definitions and the entry point to master and agents.

Creating an app and decorating functions does no I/O: the master and agents are opened
on first use (and opened again in a forked child).
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, overload

from jobmaster.agents.base import Agent, resolve_agent
from jobmaster.config import Config, env_overrides, seconds
from jobmaster.context import JobContext
from jobmaster.definitions import JobDefinition, JobHandle
from jobmaster.envelope import Envelope
from jobmaster.exceptions import (
    ConfigurationError,
    DefinitionError,
    EnqueueError,
    InvalidOptionError,
    JobmasterError,
    UnknownDefinitionError,
)
from jobmaster.ids import new_job_id
from jobmaster.jobs import JobsAPI
from jobmaster.master.repository import Master, utcnow
from jobmaster.master.rows import job_row
from jobmaster.models import JobStatus, Priority
from jobmaster.serialization import (
    JSONSerializer,
    Serializer,
    encode_arguments,
    make_serializer,
)

if TYPE_CHECKING:
    from jobmaster.scheduling import SchedulesAPI

P = ParamSpec("P")
R = TypeVar("R")

log = logging.getLogger("jobmaster")

_LANE = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_APPS: weakref.WeakSet[App] = weakref.WeakSet()


def _check_lane(lane: str, argument: str = "lane") -> str:
    if not isinstance(lane, str) or not _LANE.match(lane):
        raise ConfigurationError(
            f"{argument}={lane!r} is not a lane name; use 1-100 letters, digits, '_' or '-'"
        )
    return lane


def _check_metadata(metadata: Mapping[str, Any] | None, argument: str = "metadata"
                    ) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise ConfigurationError(f"{argument} must be a dict, not {type(metadata).__name__}")
    result = dict(metadata)
    for key, value in result.items():
        if not isinstance(key, str):
            raise ConfigurationError(f"{argument} keys must be str, got {key!r}")
        if not isinstance(value, str | int | float | bool | type(None)):
            raise ConfigurationError(
                f"{argument}[{key!r}]={value!r}: metadata values must be str, int, float, "
                "bool or None so they can be queried"
            )
    return result


def _check_retries(value: int | None, argument: str = "max_retries") -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigurationError(f"{argument}={value!r} must be an int >= 0")
    return value


def _check_backoff(value: float | None) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 1.0:
        raise ConfigurationError(f"retry_backoff={value!r} must be a number >= 1.0")
    return float(value)


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
        environ: Mapping[str, str] | None = None,
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
        self.definitions: dict[str, JobDefinition[Any, Any]] = {}
        self.static_schedules: dict[str, dict[str, Any]] = {}
        self.child_init_hooks: list[Callable[[], None]] = []
        self.jobs = JobsAPI(self)
        self._serializer: Serializer | None = None
        self._serializers: dict[str, Serializer] | None = None
        self._master: Master | None = None
        self._agents: dict[str, Agent] = {}
        self._clusters: dict[str, App] = {}
        self._lock = threading.RLock()
        self._pending: list[tuple[Envelope, datetime]] = []  # pushed, not yet in the master
        self._pending_ids: set[str] = set()
        self._flusher: threading.Thread | None = None
        self._flusher_pid = 0
        self._wake = threading.Event()
        self._schedules: SchedulesAPI | None = None
        _APPS.add(self)

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
    def job(
        self,
        *,
        definition_id: str | None = None,
        lane: str | None = None,
        priority: Priority | int | str = Priority.MEDIUM,
        timeout: float | timedelta | None = None,
        max_retries: int | None = None,
        retry_delay: float | timedelta | None = None,
        retry_backoff: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        agent: str | None = None,
    ) -> _Decorator: ...

    def job(  # type: ignore[misc]
        self,
        func: Callable[..., Any] | None = None,
        /,
        *,
        definition_id: str | None = None,
        lane: str | None = None,
        priority: Priority | int | str = Priority.MEDIUM,
        timeout: float | timedelta | None = None,
        max_retries: int | None = None,
        retry_delay: float | timedelta | None = None,
        retry_backoff: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        agent: str | None = None,
    ) -> Any:
        """Register a function as a job definition. Use as ``@app.job`` or
        ``@app.job(definition_id=..., lane=..., priority=..., timeout=..., max_retries=...,
        retry_delay=..., retry_backoff=..., metadata=...)``. Does no I/O."""
        options: dict[str, Any] = {
            "lane": None if lane is None else _check_lane(lane),
            "priority": Priority.coerce(priority),
            "timeout": seconds(timeout, "timeout"),
            "max_retries": _check_retries(max_retries),
            "retry_delay": seconds(retry_delay, "retry_delay", allow_zero=True),
            "retry_backoff": _check_backoff(retry_backoff),
            "metadata": _check_metadata(metadata),
            "agent": agent,
        }
        if agent is not None and agent not in self.config.agents:
            raise ConfigurationError(
                f"agent={agent!r} is not one of this app's agents {sorted(self.config.agents)}"
            )

        def register(fn: Callable[..., Any]) -> JobDefinition[Any, Any]:
            if not callable(fn):
                raise DefinitionError(f"@app.job decorates functions, not {fn!r}")
            def_id = (f"{fn.__module__}.{fn.__qualname__}" if definition_id is None
                      else definition_id)
            if not isinstance(def_id, str) or not def_id.strip() or len(def_id) > 200:
                raise DefinitionError(f"definition_id={def_id!r} must be a non-empty str "
                                      "of at most 200 characters")
            existing = self.definitions.get(def_id)
            if existing is not None and not _same_function(existing.func, fn):
                raise DefinitionError(
                    f"definition id {def_id!r} is already registered by "
                    f"{existing.func.__module__}.{existing.func.__qualname__}; cannot register "
                    f"{fn.__module__}.{fn.__qualname__} under it too: give one of them "
                    "another definition_id"
                )
            definition: JobDefinition[Any, Any] = JobDefinition(
                self, fn, definition_id=def_id, **options
            )
            self.definitions[def_id] = definition
            return definition

        if func is not None:
            return register(func)
        return register

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
        """Forget connections inherited from a parent process (called in forked children)."""
        self._agents = {}
        if self._master is not None:
            _ = self._master.engine  # replaced because the pid changed
        self._pending = []
        self._pending_ids = set()
        self._flusher = None
        self._wake = threading.Event()
        self._lock = threading.RLock()

    def close(self) -> None:
        """Write pending records, then close master and agent connections."""
        self.flush()
        for agent in self._agents.values():
            agent.close()
        self._agents = {}
        if self._master is not None:
            self._master.dispose()

    # -- enqueueing ------------------------------------------------------------------------
    def enqueue(
        self,
        definition_id: str,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> JobHandle[Any]:
        """Enqueue a job by definition id, without importing its handler. Takes the same
        options as ``JobDefinition.apply``. If the definition is registered here, its
        defaults and signature apply; otherwise the arguments are sent as given."""
        definition = self.definitions.get(definition_id)
        if definition is not None:
            return definition.apply((), kwargs, **options)
        cluster = options.get("cluster")
        if cluster is None or cluster == self.name:
            raise UnknownDefinitionError(
                f"no job definition {definition_id!r} in app {self.name!r}; register it with "
                "@app.job, or pass cluster=... to enqueue it on another cluster"
            )
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise EnqueueError(f"kwargs must be a dict, not {type(kwargs).__name__}")
        job_id = self._submit(definition_id, dict(kwargs or {}), **options)
        return JobHandle(self, job_id, definition_id)

    def _target(self, cluster: str | None) -> App:
        try:
            return self._cluster_app(cluster)
        except InvalidOptionError:
            raise
        except ConfigurationError as exc:
            raise InvalidOptionError(str(exc)) from None

    def _cluster_app(self, cluster: str | None) -> App:
        if cluster is None or cluster == self.name:
            return self
        target = self._clusters.get(cluster)
        if target is None:
            spec = self.config.clusters.get(cluster)
            if spec is None:
                raise ConfigurationError(
                    f"cluster={cluster!r} is not configured on app {self.name!r}; add "
                    f"App(clusters={{{cluster!r}: {{'master': ..., 'agents': ...}}}})"
                )
            # another cluster's settings come from its spec only, not this process's env
            target = spec if isinstance(spec, App) else App(cluster, environ={}, **dict(spec))
            self._clusters[cluster] = target
        return target

    def _build(self, *args: Any, **kwargs: Any) -> Envelope:
        try:
            return self._build_envelope(*args, **kwargs)
        except InvalidOptionError:
            raise
        except ConfigurationError as exc:
            raise InvalidOptionError(str(exc)) from None

    def _build_envelope(
        self,
        definition: JobDefinition[Any, Any] | str,
        values: Mapping[str, Any],
        *,
        now: float,
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
        schedule_name: str | None = None,
        occurrence: float | None = None,
    ) -> Envelope:
        cfg = self.config
        is_def = isinstance(definition, JobDefinition)
        d = definition if isinstance(definition, JobDefinition) else None
        def_id = definition.definition_id if isinstance(definition, JobDefinition) else definition
        if at is not None and after is not None:
            raise EnqueueError("pass at= or after=, not both")
        if at is not None:
            if not isinstance(at, datetime):
                raise EnqueueError(f"at={at!r} must be a datetime")
            due = (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()
        elif after is not None:
            due = now + (seconds(after, "after", allow_zero=True) or 0.0)
        else:
            due = now
        lane_ = _check_lane(lane) if lane is not None else (d.lane if d and d.lane else
                                                            cfg.default_lane)
        prio = Priority.coerce(priority) if priority is not None else (
            d.priority if d else Priority.MEDIUM)
        meta = dict(d.metadata) if d else {}
        meta.update(_check_metadata(metadata))
        if timeout is not None:
            timeout_ = seconds(timeout, "timeout")
        else:
            timeout_ = d.timeout if d and d.timeout is not None else cfg.default_timeout
        retries = _check_retries(max_retries)
        if retries is None:
            retries = d.max_retries if d and d.max_retries is not None else \
                cfg.default_max_retries
        delay = seconds(retry_delay, "retry_delay", allow_zero=True)
        if delay is None:
            delay = d.retry_delay if d and d.retry_delay is not None else \
                cfg.default_retry_delay
        backoff = _check_backoff(retry_backoff)
        if backoff is None:
            backoff = d.retry_backoff if d and d.retry_backoff is not None else \
                cfg.default_retry_backoff
        if job_key is not None and (not isinstance(job_key, str) or not job_key
                                    or len(job_key) > 200):
            raise EnqueueError(f"job_key={job_key!r} must be a non-empty str of at most 200 "
                               "characters")
        agent_name = agent or (d.agent if d else None) or cfg.routes.get(lane_) or \
            cfg.default_agent
        if agent_name not in cfg.agents:
            raise ConfigurationError(
                f"agent={agent_name!r} is not one of the agents of app {self.name!r}: "
                f"{sorted(cfg.agents)}"
            )
        payload = encode_arguments(self.serializer, def_id, values, cfg.max_payload_bytes)
        del is_def
        return Envelope(
            id=new_job_id(),
            cluster=self.name,
            definition_id=def_id,
            lane=lane_,
            priority=int(prio),
            encoding=self.serializer.name,
            payload=payload,
            created_at=now,
            due=due,
            max_retries=retries,
            timeout=timeout_,
            retry_delay=float(delay),
            retry_backoff=float(backoff),
            metadata=meta,
            job_key=job_key,
            agent=agent_name,
            schedule_name=schedule_name,
            occurrence=occurrence,
        )

    def _submit(self, definition: JobDefinition[Any, Any] | str, values: Mapping[str, Any],
                *, cluster: str | None = None, **options: Any) -> str:
        target = self._target(cluster)
        env = target._build(definition, values, now=time.time(), **options)
        if env.job_key is not None:
            return target._submit_keyed(env)
        target._dispatch([env])
        return env.id

    def _submit_many(self, definition: JobDefinition[Any, Any],
                     values: Sequence[Mapping[str, Any]], times: Sequence[datetime | None],
                     **options: Any) -> list[str]:
        if not values:
            return []
        now = time.time()
        first = self._build(definition, values[0], now=now, at=times[0], **options)
        envs = [first]
        if len(values) > 1:
            # the options were checked once, on the first job; the rest share them
            serializer, limit = self.serializer, self.config.max_payload_bytes
            def_id, after = first.definition_id, options.get("after")
            delay = seconds(after, "after", allow_zero=True) or 0.0 if after is not None \
                else 0.0
            for v, at in zip(values[1:], times[1:], strict=True):
                if at is None:
                    due = now + delay
                elif isinstance(at, datetime):
                    due = (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()
                else:
                    raise InvalidOptionError(f"at={at!r} must be a datetime")
                envs.append(Envelope(
                    new_job_id(), first.cluster, def_id, first.lane, first.priority,
                    first.encoding, encode_arguments(serializer, def_id, v, limit), now, due,
                    1, first.max_retries, first.timeout, first.retry_delay,
                    first.retry_backoff, first.metadata, None, first.agent, None, None,
                ))
        for start in range(0, len(envs), 5000):
            self._dispatch(envs[start : start + 5000])
        return [e.id for e in envs]

    def _submit_keyed(self, env: Envelope) -> str:
        """A job with a ``job_key``: the master's unique key decides, before any push."""
        held = env.due - time.time() > self.config.agent_horizon
        status = JobStatus.SCHEDULED if held else JobStatus.QUEUED
        existing = self.master.insert_job_unique(job_row(env, status, utcnow()))
        if existing is not None:
            return existing
        if not held:
            try:
                self._push([env])
            except BaseException:
                self.master.delete_job(env.id)  # free the key: the enqueue did not happen
                raise
        return env.id

    def _dispatch(self, envs: Sequence[Envelope]) -> None:
        """Push due-soon jobs to their agents (recorded in the master shortly after);
        store far-future ones in the master only, as ``scheduled``."""
        horizon = time.time() + self.config.agent_horizon
        later = [e for e in envs if e.due > horizon]
        soon = [e for e in envs if e.due <= horizon] if later else list(envs)
        if later:
            now = utcnow()
            self.master.insert_jobs([job_row(e, JobStatus.SCHEDULED, now) for e in later])
        if soon:
            self._push(soon)
            now = utcnow()  # rows are built by the flusher, off the caller's path
            with self._lock:
                self._pending.extend((e, now) for e in soon)
                self._pending_ids.update(e.id for e in soon)
            self._ensure_flusher()

    def _push(self, envs: Iterable[Envelope]) -> None:
        by_agent: dict[str, list[Envelope]] = defaultdict(list)
        for env in envs:
            by_agent[env.agent].append(env)
        for name, group in by_agent.items():
            self.agent(name).push([e.to_message() for e in group])

    # -- save pending: producer → master -----------------------------------------------
    def _is_pending(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._pending_ids

    def _ensure_flusher(self) -> None:
        pid = os.getpid()
        if self._flusher is not None and self._flusher_pid == pid:
            return
        with self._lock:
            if self._flusher is not None and self._flusher_pid == pid:
                return
            self._flusher_pid = pid
            self._flusher = threading.Thread(target=self._flush_loop, name="jobmaster-sync",
                                             daemon=True)
            self._flusher.start()

    def _flush_loop(self) -> None:
        while True:
            self._wake.wait(self.config.master_sync_seconds)
            self._wake.clear()
            try:
                self.flush()
            except JobmasterError as exc:
                log.warning("could not write pushed jobs to the master yet: %s", exc)
            except Exception:  # noqa: BLE001 - keep the loop alive; rows are kept
                log.exception("could not write pushed jobs to the master yet")

    def flush(self) -> int:
        """Write the jobs this process pushed to agents into the master now; return how
        many. Runs on its own every ``master_sync_seconds`` and at exit."""
        with self._lock:
            pending, self._pending = self._pending, []
        if not pending:
            return 0
        try:
            for start in range(0, len(pending), 2000):
                self.master.insert_jobs([job_row(e, JobStatus.QUEUED, at)
                                         for e, at in pending[start : start + 2000]])
        except BaseException:
            with self._lock:
                self._pending[:0] = pending
            raise
        with self._lock:
            self._pending_ids.difference_update(e.id for e, _ in pending)
        return len(pending)

    # -- recurring -----------------------------------------------------------------------
    @property
    def schedules(self) -> SchedulesAPI:
        """Recurring schedules of this cluster: list, get, pause, resume, update, delete."""
        if self._schedules is None:
            from jobmaster.scheduling import SchedulesAPI

            self._schedules = SchedulesAPI(self)
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
    for app in list(_APPS):
        try:
            app.flush()
        except Exception:  # noqa: BLE001 - best effort at exit
            log.exception("could not write pushed jobs to the master at exit")
