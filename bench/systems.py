"""The systems under test, behind one small interface the scenarios drive.

``Jobmaster(ctx, agent)`` is jobmaster with a PostgreSQL master (the run's own database) and
one agent kind: ``redis``, ``postgres``, ``nats`` or ``sqlite``. ``CeleryPeer`` and
``DramatiqPeer`` are the peers on the same Redis. Every system runs the handler of
``bench/handlers.py``.

A scenario step calls ``open(step)`` (fresh cluster / namespace, so nothing of an earlier
step is seen), enqueues, starts workers with ``start_workers``, and ``close()`` removes what
the step left (agent keys, streams, queues).
"""

from __future__ import annotations

import abc
import inspect
import uuid
from collections.abc import Sequence
from typing import Any

from bench.harness import Context, Spawned, delete_keys

AGENTS = ("redis", "postgres", "nats", "sqlite")
PEERS = ("celery", "dramatiq")


class System(abc.ABC):
    """One framework (and for jobmaster, one agent) as the scenarios see it."""

    key: str
    label: str
    is_jobmaster = False

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
    def bulk(self, key: str, n: int) -> None:
        """Enqueue ``n`` no-op jobs with the framework's batch path."""

    def recorded(self) -> None:  # noqa: B027 - only jobmaster has a master
        """Return once every enqueued job is recorded where the framework keeps records."""

    def succeeded(self) -> int:
        """Jobs recorded succeeded (jobmaster's master); peers record nothing."""
        raise NotImplementedError

    @abc.abstractmethod
    def start_workers(self, processes: int, concurrency: int,
                      wrap: Sequence[str] | None = None) -> list[Spawned]:
        """Start ``processes`` worker processes of ``concurrency`` slots each."""

    bulk_method = ""


class Jobmaster(System):
    """jobmaster: PostgreSQL master, one agent kind."""

    is_jobmaster = True
    bulk_method = "`definition.delay_many([...])`"

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
        self.app = make_app(cluster, master=self.master_url, agents={"main": agent_url},
                            namespace=namespace)
        self.noop = self.app.definition("bench.noop")
        self.lat = self.app.definition("bench.latency")
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

    def bulk(self, key: str, n: int) -> None:
        self.noop.delay_many([{"key": key}] * n)

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
                      wrap: Sequence[str] | None = None) -> list[Spawned]:
        return [
            self.ctx.spawn(f"{self.key}-worker{i}",
                           ["-m", "jobmaster", "worker", "-A", "bench.jm_app", "-c",
                            str(concurrency), "--pool", "prefork", "-l", "WARNING"],
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
    bulk_method = "`group(sig for each job).apply_async()`"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        from bench.peers import celery_app

        self.m = celery_app
        self.queue_key = ctx.prefix + celery_app.QUEUE

    def close(self) -> None:
        delete_keys(self.ctx.redis(), self.ctx.prefix + "*")

    def delay(self, key: str) -> None:
        self.m.noop.delay(key)

    def delay_latency(self, key: str, enqueued_at: float) -> None:
        self.m.latency.delay(key, enqueued_at)

    def bulk(self, key: str, n: int) -> None:
        from celery import group

        group(self.m.noop.s(key) for _ in range(n)).apply_async()

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
                      wrap: Sequence[str] | None = None) -> list[Spawned]:
        return [
            self.ctx.spawn(f"celery-worker{i}",
                           ["-m", "celery", "-A", "bench.peers.celery_app", "worker", "-P",
                            "prefork", "-c", str(concurrency), "-l", "warning", "-Q",
                            self.m.QUEUE, "-n", f"bench{i}-{self.ctx.run_id}@%h",
                            "--without-gossip", "--without-mingle", "--without-heartbeat"],
                           wrap=wrap)
            for i in range(processes)
        ]


class DramatiqPeer(System):
    """Dramatiq 2, RedisBroker, ``dramatiq`` CLI with processes × threads."""

    key = "dramatiq"
    label = "Dramatiq"
    bulk_method = ("no batch API: the broker's own enqueue script, called once per message "
                   "inside one Redis pipeline per 1,000 messages (what `actor.send` does, "
                   "minus a round trip each)")

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        from bench.peers import dramatiq_app

        self.m = dramatiq_app
        self.threads = 8

    def close(self) -> None:
        delete_keys(self.ctx.redis(), self.ctx.prefix + "*")

    def delay(self, key: str) -> None:
        self.m.noop.send(key)

    def delay_latency(self, key: str, enqueued_at: float) -> None:
        self.m.latency.send(key, enqueued_at)

    def bulk(self, key: str, n: int, delay_ms: Sequence[int] | None = None) -> None:
        """Pipelined enqueue: the same script call ``broker.enqueue`` makes per message."""
        from dramatiq.common import current_millis, dq_name

        broker = self.m.broker
        dispatch = broker.scripts["dispatch"]
        keys = [broker.namespace]
        unpack = broker._max_unpack_size()
        for start in range(0, n, 1000):
            pipe = broker.client.pipeline(transaction=False)
            for i in range(start, min(start + 1000, n)):
                message = self.m.noop.message(key)
                message = message.copy(options={"redis_message_id": str(uuid.uuid4())})
                queue = message.queue_name
                if delay_ms is not None:
                    queue = dq_name(queue)
                    message = message.copy(queue_name=queue,
                                           options={"eta": current_millis() + delay_ms[i]})
                args = ["enqueue", current_millis(), queue, broker.broker_id,
                        broker.heartbeat_timeout, broker.dead_message_ttl, 0, unpack,
                        message.options["redis_message_id"], message.encode()]
                dispatch(args=args, keys=keys, client=pipe)
            pipe.execute()

    def start_workers(self, processes: int, concurrency: int,
                      wrap: Sequence[str] | None = None) -> list[Spawned]:
        # Dramatiq runs ``processes`` processes of ``threads`` threads in one command: the
        # scenarios' "concurrency 2" is 2 processes × 8 threads, as the issue fixes it.
        return [
            self.ctx.spawn(f"dramatiq-worker{i}",
                           ["-m", "dramatiq", "bench.peers.dramatiq_app", "--processes",
                            str(concurrency), "--threads", str(self.threads)],
                           wrap=wrap)
            for i in range(processes)
        ]


def make_systems(ctx: Context, agents: Sequence[str], peers: Sequence[str]) -> dict[str, System]:
    """The systems of this run, by key (jobmaster variants first)."""
    systems: dict[str, System] = {}
    for agent in agents:
        systems[f"jm-{agent}"] = Jobmaster(ctx, agent)
    for peer in peers:
        if peer == "celery":
            systems["celery"] = CeleryPeer(ctx)
        elif peer == "dramatiq":
            systems["dramatiq"] = DramatiqPeer(ctx)
        else:
            raise ValueError(f"unknown peer {peer!r}; use {PEERS} or none")
    return systems
