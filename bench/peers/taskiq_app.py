"""taskiq's side of the bench: ``taskiq worker bench.peers.taskiq_app:broker --workers 2``.

taskiq-redis's ``RedisStreamBroker`` (the one its README recommends: Redis streams with
acknowledgements; ``ListQueueBroker`` has none), no result backend. Tasks are coroutines, as
taskiq's docs write them; ``--workers`` processes each run up to ``--max-async-tasks`` of
them at once (default 100). The stream and its consumer group are named after the run
(``BENCH_PREFIX``); the group reads the stream from its start (``consumer_id="0"``), so
jobs enqueued before the worker started are delivered too.
"""

from __future__ import annotations

import os

from taskiq_redis import RedisStreamBroker

from bench import handlers

PREFIX = os.environ.get("BENCH_PREFIX", "jmbench:")

broker = RedisStreamBroker(url=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11"),
                           queue_name=PREFIX + "taskiq", consumer_group_name=PREFIX + "taskiq",
                           consumer_id="0")


@broker.task(task_name="bench.noop")
async def noop(key: str) -> None:
    await handlers.noop_async(key)


@broker.task(task_name="bench.latency")
async def latency(key: str, enqueued_at: float) -> None:
    await handlers.latency_async(key, enqueued_at)


@broker.task(task_name="bench.io")
async def io_wait(key: str, seconds: float) -> None:
    await handlers.io_wait_async(key, seconds)


@broker.task(task_name="bench.cpu")
async def cpu_hash(key: str, rounds: int) -> None:
    await handlers.cpu_hash_async(key, rounds)
