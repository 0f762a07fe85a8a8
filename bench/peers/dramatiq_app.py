"""Dramatiq's side of the bench: ``dramatiq bench.peers.dramatiq_app --processes 2 --threads 8``
(``dramatiq-gevent ... --processes 1 --threads 100`` for the I/O-bound jobs, as Dramatiq's
docs recommend for them).

RedisBroker with the default middleware, keys under the namespace ``BENCH_PREFIX`` +
``dramatiq`` so a run touches only its own keys. Retries off (``max_retries=0``), as in
the other systems.
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench import handlers

NAMESPACE = os.environ.get("BENCH_PREFIX", "jmbench:") + "dramatiq"

broker = RedisBroker(url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11"),
                     namespace=NAMESPACE)
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="bench.noop", max_retries=0)
def noop(key: str) -> None:
    handlers.noop(key)


@dramatiq.actor(actor_name="bench.latency", max_retries=0)
def latency(key: str, enqueued_at: float) -> None:
    handlers.latency(key, enqueued_at)


@dramatiq.actor(actor_name="bench.io", max_retries=0)
def io_wait(key: str, seconds: float) -> None:
    handlers.io_wait(key, seconds)


@dramatiq.actor(actor_name="bench.cpu", max_retries=0)
def cpu_hash(key: str, rounds: int) -> None:
    handlers.cpu_hash(key, rounds)
