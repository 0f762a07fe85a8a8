"""huey's side of the bench: ``huey_consumer bench.peers.huey_app.huey -k process -w 2``.

``RedisHuey`` (blocking pops), results off (``results=False``, as Celery's are ignored).
huey's consumer runs ``-w`` workers of one kind (``-k``): processes for CPU-bound tasks,
greenlets for I/O-bound ones (huey's docs), threads by default. The queue is named after
the run (``BENCH_PREFIX``).
"""

from __future__ import annotations

import os

from huey import RedisHuey

from bench import handlers

NAME = "jmbench" + os.environ.get("BENCH_PREFIX", "jmbench:").split(":")[1] + "huey"

huey = RedisHuey(NAME, url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11"),
                 results=False)


@huey.task(name="bench.noop")
def noop(key: str) -> None:
    handlers.noop(key)


@huey.task(name="bench.latency")
def latency(key: str, enqueued_at: float) -> None:
    handlers.latency(key, enqueued_at)


@huey.task(name="bench.io")
def io_wait(key: str, seconds: float) -> None:
    handlers.io_wait(key, seconds)


@huey.task(name="bench.cpu")
def cpu_hash(key: str, rounds: int) -> None:
    handlers.cpu_hash(key, rounds)
