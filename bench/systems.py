"""The systems under test, behind one small interface the scenarios drive.

``Jobmaster(ctx, agent)`` is jobmaster with a PostgreSQL master (the run's own database) and
one agent kind: ``redis``, ``postgres``, ``nats`` or ``sqlite``. The peers: Celery,
Dramatiq, RQ, arq, taskiq (taskiq-redis) and huey on the same Redis, procrastinate and
PgQueuer on PostgreSQL databases of the run's own. Every system runs the handlers of
``bench/handlers.py``.

A scenario step calls ``open(step)`` (fresh cluster / namespace, so nothing of an earlier
step is seen), enqueues, starts workers with ``start_workers``, and ``close()`` removes what
the step left (agent keys, streams, queues, rows).

Jobs come in three kinds: ``noop`` (count one run), ``io`` (wait ``arg`` seconds, then
count) and ``cpu`` (hash ``arg`` rounds, then count); workers start in the matching mode:
``noop`` (each system's throughput configuration at the scenario's concurrency), ``io``
(ONE worker process at ``concurrency`` jobs at once, by the system's own means for waiting
jobs: async slots, greenlets) and ``cpu`` (``concurrency`` processes, or slots).
"""

from __future__ import annotations

import abc
import asyncio
import inspect
import json
import sys
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from bench.harness import Context, Spawned, delete_keys

AGENTS = ("redis", "postgres", "nats", "sqlite")
PEERS = ("celery", "dramatiq", "rq", "arq", "taskiq", "huey", "procrastinate", "pgqueuer")
ASYNC_PEERS = ("arq", "taskiq", "procrastinate", "pgqueuer")
POSTGRES_PEERS = ("procrastinate", "pgqueuer")
# What each peer needs from PyPI (also the nox session ``bench``'s list, noxfile.py).
PEER_PACKAGES: dict[str, tuple[str, ...]] = {
    "celery": ("celery[redis]", "gevent"),
    "dramatiq": ("dramatiq[redis]", "gevent"),
    "rq": ("rq",),
    "arq": ("arq",),
    "taskiq": ("taskiq", "taskiq-redis"),
    "huey": ("huey", "gevent"),
    "procrastinate": ("procrastinate",),
    "pgqueuer": ("pgqueuer[asyncpg]",),
}
# The module each peer's app imports first: missing means the peer is not installed.
PEER_MODULES = {"celery": "celery", "dramatiq": "dramatiq", "rq": "rq", "arq": "arq",
                "taskiq": "taskiq_redis", "huey": "huey", "procrastinate": "procrastinate",
                "pgqueuer": "pgqueuer"}
KINDS = ("noop", "io", "cpu")
T = TypeVar("T")


class System(abc.ABC):
    """One framework (and for jobmaster, one agent) as the scenarios see it."""

    key: str
    label: str
    is_jobmaster = False
    library = ""  # the package whose ``import`` is timed
    app_module = ""  # the module a worker imports: the library plus the bench's app
    bulk_method = ""
    async_method = "the one-job call from a thread pool of one thread per coroutine"
    worker_modes: dict[str, str] = {}  # mode → the worker command, for the notes

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def open(self, step: str) -> None:  # noqa: B027 - optional
        """Fresh isolation for one step."""

    def close(self) -> None:  # noqa: B027 - optional
        """Remove what the step created."""

    @abc.abstractmethod
    def delay(self, key: str) -> None:
        """Enqueue one no-op job, the framework's one-job call."""

    @abc.abstractmethod
    def delay_latency(self, key: str, enqueued_at: float) -> None:
        """Enqueue one latency job."""

    @abc.abstractmethod
    def bulk(self, key: str, n: int, kind: str = "noop", arg: float = 0.0) -> None:
        """Enqueue ``n`` jobs of ``kind`` with the framework's batch path."""

    def enqueue_loop(self, key: str, n: int) -> None:
        """``n`` one-job calls, one after the other (for async-only frameworks: awaited one
        after the other inside one event loop)."""
        for _ in range(n):
            self.delay(key)

    def produce_concurrently(self, key: str, n: int, coroutines: int) -> None:
        """``n`` no-op jobs from ``coroutines`` coroutines enqueueing at once. Frameworks
        without an async producer: each coroutine awaits the one-job call in a thread
        pool of one thread per coroutine (``loop.run_in_executor``)."""
        executor = ThreadPoolExecutor(max_workers=coroutines)

        async def one(count: int) -> None:
            loop = asyncio.get_running_loop()
            for _ in range(count):
                await loop.run_in_executor(executor, self.delay, key)

        async def main() -> None:
            await asyncio.gather(*(one(c) for c in _shares(n, coroutines)))

        try:
            asyncio.run(main())
        finally:
            executor.shutdown(wait=True)

    def recorded(self) -> None:  # noqa: B027 - only jobmaster has a master
        """Return once every enqueued job is recorded where the framework keeps records."""

    def succeeded(self) -> int:
        """Jobs recorded succeeded (jobmaster's master); peers record nothing."""
        raise NotImplementedError

    @abc.abstractmethod
    def start_workers(self, processes: int, concurrency: int,
                      wrap: Sequence[str] | None = None, mode: str = "noop") -> list[Spawned]:
        """Start ``processes`` worker commands of ``concurrency`` each, in ``mode``."""


def _shares(n: int, parts: int) -> list[int]:
    """``n`` split into ``parts`` near-equal counts."""
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


class _Loop:
    """One event loop for a system's calls from the bench (async-only clients keep their
    connections on it), run in the bench's own thread."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
        return self.loop.run_until_complete(coro)


async def _gather_chunks(make: Callable[[int], Awaitable[Any]], n: int,
                         chunk: int = 500) -> None:
    """``make(i)`` for i < n, ``chunk`` of them awaited at once."""
    for start in range(0, n, chunk):
        await asyncio.gather(*(make(i) for i in range(start, min(start + chunk, n))))


async def _from_coroutines(call: Callable[[], Awaitable[Any]], n: int,
                           coroutines: int) -> None:
    async def one(count: int) -> None:
        for _ in range(count):
            await call()

    await asyncio.gather(*(one(c) for c in _shares(n, coroutines)))


class Jobmaster(System):
    """jobmaster: PostgreSQL master, one agent kind."""

    is_jobmaster = True
    library = "jobmaster"
    app_module = "bench.jm_app"
    bulk_method = "`definition.delay_many([...])`"
    async_method = "`definition.delay_async(...)`"
    worker_modes = {
        "noop": "`jobmaster worker -A bench.jm_app -c 2 --pool prefork`",
        "io": ("`jobmaster worker -A bench.jm_io_app -c 1 --async-slots 100` (an app of one "
               "`async def` job: run in the worker process)"),
        "cpu": "`jobmaster worker -A bench.jm_app -c 2 --pool prefork`",
    }

    def __init__(self, ctx: Context, agent: str) -> None:
        super().__init__(ctx)
        if agent not in AGENTS:
            raise ValueError(f"unknown agent {agent!r}; use one of {AGENTS}")
        self.agent = agent
        self.key = f"jm-{agent}"
        self.label = f"jobmaster·{agent}"
        self.app: Any = None
        self.env: dict[str, str] = {}

    @property
    def master_url(self) -> str:
        assert self.ctx.db is not None
        return self.ctx.db.sqlalchemy_url

    def agent_url(self, step: str) -> str:
        services = self.ctx.services
        if self.agent == "redis":
            return services.redis_url
        if self.agent == "postgres":
            assert self.ctx.db is not None
            return self.ctx.db.url
        if self.agent == "nats":
            return services.nats_url
        return f"sqlite:///{self.ctx.workdir / f'agent-{step}.db'}"

    def open(self, step: str) -> None:
        from bench.jm_app import make_app

        cluster = f"b{self.ctx.run_id}_{step}"
        namespace = f"jmb{self.ctx.run_id}_{step}"
        agent_url = self.agent_url(step)
        self.app = make_app(cluster, io=True, master=self.master_url,
                            agents={"main": agent_url}, namespace=namespace)
        self.noop = self.app.definition("bench.noop")
        self.lat = self.app.definition("bench.latency")
        self.kinds = {"noop": self.noop, "io": self.app.definition("bench.io"),
                      "cpu": self.app.definition("bench.cpu")}
        self.env = {
            "JOBMASTER_NAME": cluster,
            "JOBMASTER_MASTER_URL": self.master_url,
            "JOBMASTER_AGENT_URL": agent_url,
            "JOBMASTER_NAMESPACE": namespace,
        }

    def close(self) -> None:
        if self.app is None:
            return
        app, self.app = self.app, None
        try:
            app.flush()
            app.agent().purge()
        finally:
            app.close()

    def delay(self, key: str) -> None:
        self.noop.delay(key=key)

    def delay_latency(self, key: str, enqueued_at: float) -> None:
        self.lat.delay(key=key, enqueued_at=enqueued_at)

    def bulk(self, key: str, n: int, kind: str = "noop", arg: float = 0.0) -> None:
        calls: list[dict[str, Any]] = [{"key": key}]
        if kind == "io":
            calls = [{"key": key, "seconds": arg}]
        elif kind == "cpu":
            calls = [{"key": key, "rounds": int(arg)}]
        self.kinds[kind].delay_many(calls * n)

    def produce_concurrently(self, key: str, n: int, coroutines: int) -> None:
        noop = self.noop

        async def main() -> None:
            await _from_coroutines(lambda: noop.delay_async(key=key), n, coroutines)

        asyncio.run(main())

    def recorded(self) -> None:
        self.app.flush()

    def succeeded(self) -> int:
        return int(self.app.jobs.counts().get("succeeded", 0))

    def schedule(self, key: str, n: int, first_due: float, spread: float,
                 batch: int = 5000) -> str:
        """Store ``n`` jobs due between ``first_due`` and ``first_due + spread`` (Unix
        time), each its own due time, in batches of ``batch``. Uses ``delay_many(calls,
        at=[...])`` when this jobmaster has it; otherwise the batch path under it,
        ``App._submit_many`` with one ``at`` per batch. Returns the path used."""
        from datetime import UTC, datetime

        calls = [{"key": key}] * batch
        gap = spread / max(n, 1)
        has_at = "at" in inspect.signature(self.noop.delay_many).parameters
        for start in range(0, n, batch):
            count = min(batch, n - start)
            if has_at:
                times = [datetime.fromtimestamp(first_due + (start + i) * gap, UTC)
                         for i in range(count)]
                self.noop.delay_many(calls[:count], at=times)
            else:
                at = datetime.fromtimestamp(first_due + start * gap, UTC)
                self.app._submit_many(self.noop, calls[:count], at=at)
        if has_at:
            return f"`delay_many(calls, at=[one datetime per job])` in batches of {batch:,}"
        return (f"`delay_many` takes no `at=`: `App._submit_many(definition, calls, at=...)` "
                f"(private), one due time per batch of {batch:,}")

    def apply_at(self, key: str, n: int, first_due: float) -> None:
        """``n`` future jobs, one public ``apply(at=...)`` call each."""
        from datetime import UTC, datetime

        for i in range(n):
            self.noop.apply(kwargs={"key": key},
                            at=datetime.fromtimestamp(first_due + i, UTC))

    def start_workers(self, processes: int, concurrency: int,
                      wrap: Sequence[str] | None = None, mode: str = "noop") -> list[Spawned]:
        if mode == "io":
            argv = ["-A", "bench.jm_io_app", "-c", "1", "--async-slots", str(concurrency)]
        else:
            argv = ["-A", "bench.jm_app", "-c", str(concurrency)]
        return [
            self.ctx.spawn(f"{self.key}-worker{i}",
                           ["-m", "jobmaster", "worker", *argv, "--pool", "prefork", "-l",
                            "WARNING"],
                           env=self.env, wrap=wrap)
            for i in range(processes)
        ]

    def start_beat(self) -> Spawned:
        return self.ctx.spawn(f"{self.key}-beat",
                              ["-m", "jobmaster", "beat", "-A", "bench.jm_app", "-l", "WARNING"],
                              env=self.env)


class CeleryPeer(System):
    """Celery 5, Redis broker, prefork, acks_late, prefetch multiplier from the docs."""

    key = "celery"
    label = "Celery"
    library = "celery"
    app_module = "bench.peers.celery_app"
    bulk_method = "`group(sig for each job).apply_async()`"
    worker_modes = {"noop": "`celery worker -P prefork -c 2`",
                    "io": "`celery worker -P gevent -c 100`",
                    "cpu": "`celery worker -P prefork -c 2`"}

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        from bench.peers import celery_app

        self.m = celery_app
        self.queue_key = ctx.prefix + celery_app.QUEUE
        self.kinds = {"noop": self.m.noop, "io": self.m.io_wait, "cpu": self.m.cpu_hash}

    def close(self) -> None:
        delete_keys(self.ctx.redis(), self.ctx.prefix + "*")

    def delay(self, key: str) -> None:
        self.m.noop.delay(key)

    def delay_latency(self, key: str, enqueued_at: float) -> None:
        self.m.latency.delay(key, enqueued_at)

    def bulk(self, key: str, n: int, kind: str = "noop", arg: float = 0.0) -> None:
        from celery import group

        task = self.kinds[kind]
        args = (key,) if kind == "noop" else (key, int(arg) if kind == "cpu" else arg)
        group(task.s(*args) for _ in range(n)).apply_async()

    def bulk_eta(self, key: str, n: int, first_countdown: float, spread: float) -> None:
        """``n`` tasks with countdowns spread over ``spread`` seconds, in groups."""
        from celery import group

        for start in range(0, n, 10_000):
            count = min(10_000, n - start)
            group(
                self.m.noop.s(key).set(countdown=first_countdown + (start + i) * spread / n)
                for i in range(count)
            ).apply_async()

    def start_workers(self, processes: int, concurrency: int,
                      wrap: Sequence[str] | None = None, mode: str = "noop") -> list[Spawned]:
        pool = "gevent" if mode == "io" else "prefork"
        return [
            self.ctx.spawn(f"celery-worker{i}",
                           ["-m", "celery", "-A", "bench.peers.celery_app", "worker", "-P",
                            pool, "-c", str(concurrency), "-l", "warning", "-Q",
                            self.m.QUEUE, "-n", f"bench{i}-{self.ctx.run_id}@%h",
                            "--without-gossip", "--without-mingle", "--without-heartbeat"],
                           wrap=wrap)
            for i in range(processes)
        ]


class DramatiqPeer(System):
    """Dramatiq 2, RedisBroker, ``dramatiq`` CLI with processes × threads."""

    key = "dramatiq"
    label = "Dramatiq"
    library = "dramatiq"
    app_module = "bench.peers.dramatiq_app"
    bulk_method = ("no batch API: the broker's own enqueue script, called once per message "
                   "inside one Redis pipeline per 1,000 messages (what `actor.send` does, "
                   "minus a round trip each)")
    worker_modes = {"noop": "`dramatiq --processes 2 --threads 8`",
                    "io": "`dramatiq-gevent --processes 1 --threads 100`",
                    "cpu": "`dramatiq --processes 2 --threads 1`"}

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        from bench.peers import dramatiq_app

        self.m = dramatiq_app
        self.threads = 8
        self.kinds = {"noop": self.m.noop, "io": self.m.io_wait, "cpu": self.m.cpu_hash}

    def close(self) -> None:
        delete_keys(self.ctx.redis(), self.ctx.prefix + "*")

    def delay(self, key: str) -> None:
        self.m.noop.send(key)

    def delay_latency(self, key: str, enqueued_at: float) -> None:
        self.m.latency.send(key, enqueued_at)

    def bulk(self, key: str, n: int, kind: str = "noop", arg: float = 0.0,
             delay_ms: Sequence[int] | None = None) -> None:
        """Pipelined enqueue: the same script call ``broker.enqueue`` makes per message."""
        from dramatiq.common import current_millis, dq_name

        broker = self.m.broker
        dispatch = broker.scripts["dispatch"]
        keys = [broker.namespace]
        unpack = broker._max_unpack_size()
        actor = self.kinds[kind]
        args = (key,) if kind == "noop" else (key, int(arg) if kind == "cpu" else arg)
        for start in range(0, n, 1000):
            pipe = broker.client.pipeline(transaction=False)
            for i in range(start, min(start + 1000, n)):
                message = actor.message(*args)
                message = message.copy(options={"redis_message_id": str(uuid.uuid4())})
                queue = message.queue_name
                if delay_ms is not None:
                    queue = dq_name(queue)
                    message = message.copy(queue_name=queue,
                                           options={"eta": current_millis() + delay_ms[i]})
                args_ = ["enqueue", current_millis(), queue, broker.broker_id,
                         broker.heartbeat_timeout, broker.dead_message_ttl, 0, unpack,
                         message.options["redis_message_id"], message.encode()]
                dispatch(args=args_, keys=keys, client=pipe)
            pipe.execute()

    def start_workers(self, processes: int, concurrency: int,
                      wrap: Sequence[str] | None = None, mode: str = "noop") -> list[Spawned]:
        # Dramatiq runs ``processes`` processes of ``threads`` threads in one command: the
        # scenarios' "concurrency 2" is 2 processes × 8 threads, as the issue fixes it; I/O:
        # one process of ``concurrency`` greenlets (dramatiq-gevent); CPU: processes only.
        if mode == "io":  # the dramatiq-gevent script: gevent's monkey-patching, then the CLI
            script = str(Path(sys.executable).parent / "dramatiq-gevent")
            argv = [script, "bench.peers.dramatiq_app", "--processes", "1", "--threads",
                    str(concurrency)]
        else:
            threads = 1 if mode == "cpu" else self.threads
            argv = ["-m", "dramatiq", "bench.peers.dramatiq_app", "--processes",
                    str(concurrency), "--threads", str(threads)]
        return [self.ctx.spawn(f"dramatiq-worker{i}", argv, wrap=wrap)
                for i in range(processes)]


class RQPeer(System):
    """RQ: ``SimpleWorker``s (no fork per job) in a worker pool."""

    key = "rq"
    label = "RQ"
    library = "rq"
    app_module = "bench.peers.rq_app"
    bulk_method = "`Queue.enqueue_many([Queue.prepare_data(...)...])` per 1,000"
    worker_modes = {"noop": "`rq worker-pool -n 2 -w rq.worker.SimpleWorker`",
                    "io": "`rq worker -w rq.worker.SimpleWorker` (RQ runs one job at a time "
                          "per process)",
                    "cpu": "`rq worker-pool -n 2 -w rq.worker.SimpleWorker`"}

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        from bench import handlers
        from bench.peers import rq_app

        self.m = rq_app
        self.handlers = handlers
        self.conn = rq_app.connection()
        self.queue = rq_app.queue(self.conn)

    def close(self) -> None:
        delete_keys(self.conn, "rq:*")

    def delay(self, key: str) -> None:
        self.queue.enqueue(self.handlers.noop, key, result_ttl=self.m.RESULT_TTL)

    def delay_latency(self, key: str, enqueued_at: float) -> None:
        self.queue.enqueue(self.handlers.latency, key, enqueued_at,
                           result_ttl=self.m.RESULT_TTL)

    def bulk(self, key: str, n: int, kind: str = "noop", arg: float = 0.0) -> None:
        from rq import Queue

        func = self.m.FUNCTIONS[kind]
        args = (key,) if kind == "noop" else (key, int(arg) if kind == "cpu" else arg)
        for start in range(0, n, 1000):
            self.queue.enqueue_many([Queue.prepare_data(func, args,
                                                        result_ttl=self.m.RESULT_TTL)
                                     for _ in range(min(1000, n - start))])

    def start_workers(self, processes: int, concurrency: int,
                      wrap: Sequence[str] | None = None, mode: str = "noop") -> list[Spawned]:
        common = ["-w", "rq.worker.SimpleWorker", "-u", self.m.REDIS_URL]
        if mode == "io" or concurrency == 1:
            argv = ["-m", "rq.cli", "worker", *common, "--logging_level", "WARNING",
                    self.m.QUEUE]
        else:
            argv = ["-m", "rq.cli", "worker-pool", "-n", str(concurrency), *common, "-l",
                    "WARNING", self.m.QUEUE]
        return [self.ctx.spawn(f"rq-worker{i}", argv, wrap=wrap) for i in range(processes)]


class ArqPeer(System):
    """arq: asyncio workers, one process each; the bench starts ``concurrency`` of them for
    the no-op and CPU scenarios (arq has no multi-process mode) and one for I/O."""

    key = "arq"
    label = "arq"
    library = "arq"
    app_module = "bench.peers.arq_app"
    bulk_method = "no batch API: `await pool.enqueue_job(...)`, 50 at once (`asyncio.gather`; "\
        "more exhaust its connection pool)"
    async_method = "`await pool.enqueue_job(...)` (arq's only producer API)"
    worker_modes = {"noop": "2 × `arq WorkerSettings` (max_jobs 100, poll_delay 0.05 s)",
                    "io": "1 × `arq WorkerSettings` (max_jobs 100)",
                    "cpu": "2 × `arq WorkerSettings`"}

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        from bench.peers import arq_app

        self.m = arq_app
        self.loop = _Loop()
        self.pool: Any = None

    def _pool(self) -> Any:
        if self.pool is None:
            from arq import create_pool

            self.pool = self.loop.run(create_pool(self.m.settings(),
                                                  default_queue_name=self.m.QUEUE))
        return self.pool

    def close(self) -> None:
        client = self.ctx.redis_at(self.m.REDIS_URL)
        delete_keys(client, "arq:*")
        delete_keys(client, self.m.QUEUE + "*")

    def delay(self, key: str) -> None:
        self.loop.run(self._pool().enqueue_job("bench.noop", key))

    def delay_latency(self, key: str, enqueued_at: float) -> None:
        self.loop.run(self._pool().enqueue_job("bench.latency", key, enqueued_at))

    def enqueue_loop(self, key: str, n: int) -> None:
        pool = self._pool()

        async def main() -> None:
            for _ in range(n):
                await pool.enqueue_job("bench.noop", key)

        self.loop.run(main())

    def bulk(self, key: str, n: int, kind: str = "noop", arg: float = 0.0) -> None:
        pool = self._pool()
        args = (key,) if kind == "noop" else (key, int(arg) if kind == "cpu" else arg)
        self.loop.run(_gather_chunks(lambda i: pool.enqueue_job(f"bench.{kind}", *args), n,
                                     chunk=50))

    def produce_concurrently(self, key: str, n: int, coroutines: int) -> None:
        pool = self._pool()
        self.loop.run(_from_coroutines(lambda: pool.enqueue_job("bench.noop", key), n,
                                       coroutines))

    def start_workers(self, processes: int, concurrency: int,
                      wrap: Sequence[str] | None = None, mode: str = "noop") -> list[Spawned]:
        count = processes if mode == "io" else processes * concurrency
        env = {"BENCH_ARQ_MAX_JOBS": str(concurrency if mode == "io" else 100)}
        return [self.ctx.spawn(f"arq-worker{i}", ["-m", "arq",
                                                  "bench.peers.arq_app.WorkerSettings"],
                               env=env, wrap=wrap)
                for i in range(count)]


class TaskiqPeer(System):
    """taskiq with taskiq-redis's ``RedisStreamBroker``."""

    key = "taskiq"
    label = "taskiq"
    library = "taskiq"
    app_module = "bench.peers.taskiq_app"
    bulk_method = "no batch API: `await task.kiq(...)`, 500 at once (`asyncio.gather`)"
    async_method = "`await task.kiq(...)` (taskiq's only producer API)"
    worker_modes = {"noop": "`taskiq worker --workers 2` (100 async tasks each)",
                    "io": "`taskiq worker --workers 1 --max-async-tasks 100`",
                    "cpu": "`taskiq worker --workers 2`"}

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        from bench.peers import taskiq_app

        self.m = taskiq_app
        self.loop = _Loop()
        self.started = False
        self.kinds = {"noop": self.m.noop, "io": self.m.io_wait, "cpu": self.m.cpu_hash}

    def _broker(self) -> Any:
        if not self.started:
            self.loop.run(self.m.broker.startup())
            self.started = True
        return self.m.broker

    def close(self) -> None:
        delete_keys(self.ctx.redis(), self.ctx.prefix + "*")

    def delay(self, key: str) -> None:
        self._broker()
        self.loop.run(self.m.noop.kiq(key))

    def delay_latency(self, key: str, enqueued_at: float) -> None:
        self._broker()
        self.loop.run(self.m.latency.kiq(key, enqueued_at))

    def enqueue_loop(self, key: str, n: int) -> None:
        self._broker()
        noop = self.m.noop

        async def main() -> None:
            for _ in range(n):
                await noop.kiq(key)

        self.loop.run(main())

    def bulk(self, key: str, n: int, kind: str = "noop", arg: float = 0.0) -> None:
        self._broker()
        task = self.kinds[kind]
        args = (key,) if kind == "noop" else (key, int(arg) if kind == "cpu" else arg)
        self.loop.run(_gather_chunks(lambda i: task.kiq(*args), n))

    def produce_concurrently(self, key: str, n: int, coroutines: int) -> None:
        self._broker()
        noop = self.m.noop
        self.loop.run(_from_coroutines(lambda: noop.kiq(key), n, coroutines))

    def start_workers(self, processes: int, concurrency: int,
                      wrap: Sequence[str] | None = None, mode: str = "noop") -> list[Spawned]:
        argv = ["-m", "taskiq", "worker", "bench.peers.taskiq_app:broker", "--log-level",
                "WARNING"]
        if mode == "io":
            argv += ["--workers", "1", "--max-async-tasks", str(concurrency)]
        else:
            argv += ["--workers", str(concurrency)]
        return [self.ctx.spawn(f"taskiq-worker{i}", argv, wrap=wrap) for i in range(processes)]


class HueyPeer(System):
    """huey: ``RedisHuey``, the consumer with processes, threads or greenlets."""

    key = "huey"
    label = "huey"
    library = "huey"
    app_module = "bench.peers.huey_app"
    bulk_method = ("no batch API: huey's own serialized message, `LPUSH`ed inside one Redis "
                   "pipeline per 1,000 (what `task(...)` does, minus a round trip each)")
    worker_modes = {"noop": "`huey_consumer -k process -w 2`",
                    "io": "`huey_consumer -k greenlet -w 100`",
                    "cpu": "`huey_consumer -k process -w 2`"}

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        from bench.peers import huey_app

        self.m = huey_app
        self.kinds = {"noop": self.m.noop, "io": self.m.io_wait, "cpu": self.m.cpu_hash}

    def close(self) -> None:
        delete_keys(self.ctx.redis(), f"*{self.m.NAME}*")

    def delay(self, key: str) -> None:
        self.m.noop(key)

    def delay_latency(self, key: str, enqueued_at: float) -> None:
        self.m.latency(key, enqueued_at)

    def bulk(self, key: str, n: int, kind: str = "noop", arg: float = 0.0) -> None:
        huey = self.m.huey
        task = self.kinds[kind]
        args = (key,) if kind == "noop" else (key, int(arg) if kind == "cpu" else arg)
        storage = huey.storage
        for start in range(0, n, 1000):
            pipe = storage.conn.pipeline(transaction=False)
            for _ in range(min(1000, n - start)):
                pipe.lpush(storage.queue_key, huey.serialize_task(task.s(*args)))
            pipe.execute()

    def start_workers(self, processes: int, concurrency: int,
                      wrap: Sequence[str] | None = None, mode: str = "noop") -> list[Spawned]:
        kind = "greenlet" if mode == "io" else "process"
        argv = ["-m", "huey.bin.huey_consumer", "bench.peers.huey_app.huey", "-k", kind, "-w",
                str(concurrency), "-q"]
        if kind == "greenlet":  # huey's consumer script patches for greenlets itself
            argv = ["-c", "from gevent import monkey; monkey.patch_all(); import sys; "
                    "from huey.bin.huey_consumer import consumer_main; "
                    "sys.argv[0] = 'huey_consumer'; consumer_main()", *argv[2:]]
        return [self.ctx.spawn(f"huey-worker{i}", argv, wrap=wrap) for i in range(processes)]


class ProcrastinatePeer(System):
    """procrastinate on its own PostgreSQL database, psycopg connector."""

    key = "procrastinate"
    label = "procrastinate"
    library = "procrastinate"
    app_module = "bench.peers.procrastinate_app"
    bulk_method = "`task.batch_defer(*kwargs)` per 1,000"
    async_method = "`await task.defer_async(...)` on an async pool of 20 connections"
    worker_modes = {"noop": "2 × `procrastinate worker --concurrency 10`",
                    "io": "1 × `procrastinate worker --concurrency 100`",
                    "cpu": "2 × `procrastinate worker --concurrency 1`"}
    noop_concurrency = 10

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        from bench.peers import procrastinate_app

        self.m = procrastinate_app
        self.app = procrastinate_app.app
        self.opened = False
        self.kinds = {kind: self.app.tasks[f"bench.{kind}"] for kind in KINDS}

    def close(self) -> None:
        import psycopg

        with psycopg.connect(self.ctx.peer_db_url("procrastinate"), autocommit=True) as conn:
            conn.execute("truncate procrastinate_jobs restart identity cascade")

    def open(self, step: str) -> None:
        if not self.opened:  # the sync connector, for ``defer`` and ``batch_defer``
            self.app.open()
            self.opened = True

    def delay(self, key: str) -> None:
        self.kinds["noop"].defer(key=key)

    def delay_latency(self, key: str, enqueued_at: float) -> None:
        self.app.tasks["bench.latency"].defer(key=key, enqueued_at=enqueued_at)

    def bulk(self, key: str, n: int, kind: str = "noop", arg: float = 0.0) -> None:
        task = self.kinds[kind]
        kwargs: dict[str, Any] = {"key": key}
        if kind == "io":
            kwargs["seconds"] = arg
        elif kind == "cpu":
            kwargs["rounds"] = int(arg)
        for start in range(0, n, 1000):
            task.batch_defer(*([kwargs] * min(1000, n - start)))

    def produce_concurrently(self, key: str, n: int, coroutines: int) -> None:
        app = self.m.make_app(min_size=20, max_size=20)  # the sync app stays as it is
        noop = app.tasks["bench.noop"]

        async def main() -> None:
            async with app.open_async():
                await _from_coroutines(lambda: noop.defer_async(key=key), n, coroutines)

        asyncio.run(main())

    def start_workers(self, processes: int, concurrency: int,
                      wrap: Sequence[str] | None = None, mode: str = "noop") -> list[Spawned]:
        count = processes if mode == "io" else processes * concurrency
        slots = concurrency if mode == "io" else (1 if mode == "cpu" else self.noop_concurrency)
        argv = ["-m", "procrastinate", "--app", "bench.peers.procrastinate_app.app", "worker",
                "--concurrency", str(slots)]
        return [self.ctx.spawn(f"procrastinate-worker{i}", argv, wrap=wrap)
                for i in range(count)]


class PgQueuerPeer(System):
    """PgQueuer on its own PostgreSQL database: asyncpg in the workers, psycopg (its sync
    driver) for the bench's one-job and batch enqueues, an asyncpg pool for coroutines."""

    key = "pgqueuer"
    label = "PgQueuer"
    library = "pgqueuer"
    app_module = "bench.peers.pgqueuer_app"
    bulk_method = "`SyncQueries.enqueue([entrypoints], [payloads], [priorities])` per 5,000"
    async_method = "`await Queries.enqueue(...)` on an asyncpg pool of 20 connections"
    worker_modes = {"noop": "2 × `PgQueuer.run(batch_size=100)` (`pgq run`'s loop)",
                    "io": "1 × `PgQueuer.run(batch_size=50, max_concurrent_tasks=100)`",
                    "cpu": "2 × `PgQueuer.run(batch_size=10)`"}

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        from bench.peers import pgqueuer_app

        self.m = pgqueuer_app
        self.conn: Any = None
        self.queries: Any = None

    @property
    def dsn(self) -> str:
        return self.ctx.peer_db_url("pgqueuer")

    def open(self, step: str) -> None:
        if self.conn is None:
            import psycopg
            from pgqueuer.adapters.drivers.psycopg import SyncPsycopgDriver
            from pgqueuer.queries import SyncQueries

            self.conn = psycopg.connect(self.dsn, autocommit=True)
            self.queries = SyncQueries(SyncPsycopgDriver(self.conn))

    def close(self) -> None:
        if self.conn is not None:
            self.conn.execute("truncate pgqueuer")

    @staticmethod
    def payload(key: str, kind: str = "noop", arg: float = 0.0) -> bytes:
        args: dict[str, Any] = {"key": key}
        if kind == "io":
            args["seconds"] = arg
        elif kind == "cpu":
            args["rounds"] = int(arg)
        return json.dumps(args).encode()

    def delay(self, key: str) -> None:
        self.queries.enqueue("bench.noop", self.payload(key))

    def delay_latency(self, key: str, enqueued_at: float) -> None:
        self.queries.enqueue("bench.latency",
                             json.dumps({"key": key, "enqueued_at": enqueued_at}).encode())

    def bulk(self, key: str, n: int, kind: str = "noop", arg: float = 0.0) -> None:
        payload = self.payload(key, kind, arg)
        for start in range(0, n, 5000):
            count = min(5000, n - start)
            self.queries.enqueue([f"bench.{kind}"] * count, [payload] * count, [0] * count)

    def produce_concurrently(self, key: str, n: int, coroutines: int) -> None:
        import asyncpg
        from pgqueuer.db import AsyncpgPoolDriver
        from pgqueuer.queries import Queries

        payload = self.payload(key)

        async def main() -> None:
            async with asyncpg.create_pool(self.dsn, min_size=20, max_size=20) as pool:
                queries = Queries(AsyncpgPoolDriver(pool))
                await _from_coroutines(lambda: queries.enqueue("bench.noop", payload), n,
                                       coroutines)

        asyncio.run(main())

    def start_workers(self, processes: int, concurrency: int,
                      wrap: Sequence[str] | None = None, mode: str = "noop") -> list[Spawned]:
        if mode == "io":
            count, extra = processes, ["--batch-size", str(max(concurrency // 2, 1)),
                                       "--max-concurrent-tasks", str(concurrency)]
        elif mode == "cpu":
            count, extra = processes * concurrency, ["--batch-size", "10"]
        else:
            count, extra = processes * concurrency, ["--batch-size", "100"]
        argv = ["-m", "bench.peers.pgqueuer_app", *extra]
        return [self.ctx.spawn(f"pgqueuer-worker{i}", argv, wrap=wrap) for i in range(count)]


PEER_CLASSES: dict[str, type[System]] = {
    "celery": CeleryPeer, "dramatiq": DramatiqPeer, "rq": RQPeer, "arq": ArqPeer,
    "taskiq": TaskiqPeer, "huey": HueyPeer, "procrastinate": ProcrastinatePeer,
    "pgqueuer": PgQueuerPeer,
}


def make_systems(ctx: Context, agents: Sequence[str], peers: Sequence[str]) -> dict[str, System]:
    """The systems of this run, by key (jobmaster variants first). A peer's app module is
    imported here: ``ImportError`` if the peer is not installed."""
    systems: dict[str, System] = {}
    for agent in agents:
        systems[f"jm-{agent}"] = Jobmaster(ctx, agent)
    for peer in peers:
        if peer not in PEER_CLASSES:
            raise ValueError(f"unknown peer {peer!r}; use {','.join(PEERS)}, all or none")
        systems[peer] = PEER_CLASSES[peer](ctx)
    return systems
