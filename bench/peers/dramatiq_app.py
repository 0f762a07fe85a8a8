"""Dramatiq's side of the bench: ``dramatiq bench.peers.dramatiq_app --processes 2 --threads 8``.

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
