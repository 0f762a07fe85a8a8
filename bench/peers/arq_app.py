"""arq's side of the bench: ``arq bench.peers.arq_app.WorkerSettings`` (one asyncio process;
the bench starts as many as the scenario's concurrency asks for processes).

arq's knobs for throughput are ``max_jobs`` (jobs run at once by one worker, default 10) and
through it ``queue_read_limit`` (job ids read per poll, ``max_jobs × 5``), plus
``poll_delay`` (between polls of the queue, default 0.5 s): the bench sets
``max_jobs=BENCH_ARQ_MAX_JOBS`` (100 by default, 100 for the I/O-bound jobs) and
``poll_delay=BENCH_ARQ_POLL_DELAY`` (default 0.05 s), results not kept
(``keep_result=0``), no retries.

arq's keys (``arq:job:…``, ``arq:in-progress:…``) cannot be prefixed: arq gets the Redis
database ``BENCH_PEER_REDIS_URL`` (default db 12) and a queue named after the run; the
handlers count in ``BENCH_REDIS_URL`` like every other system's.
"""

from __future__ import annotations

import os
from typing import Any

from arq import func
from arq.connections import RedisSettings

from bench import handlers

REDIS_URL = os.environ.get("BENCH_PEER_REDIS_URL", "redis://127.0.0.1:6379/12")
QUEUE = os.environ.get("BENCH_PREFIX", "jmbench:") + "arq"


async def noop(ctx: dict[str, Any], key: str) -> None:
    await handlers.noop_async(key)


async def latency(ctx: dict[str, Any], key: str, enqueued_at: float) -> None:
    await handlers.latency_async(key, enqueued_at)


async def io_wait(ctx: dict[str, Any], key: str, seconds: float) -> None:
    await handlers.io_wait_async(key, seconds)


async def cpu_hash(ctx: dict[str, Any], key: str, rounds: int) -> None:
    await handlers.cpu_hash_async(key, rounds)


def settings() -> RedisSettings:
    return RedisSettings.from_dsn(REDIS_URL)


class WorkerSettings:
    functions = [func(noop, name="bench.noop", keep_result=0, max_tries=1),  # type: ignore[arg-type]
                 func(latency, name="bench.latency", keep_result=0, max_tries=1),  # type: ignore[arg-type]
                 func(io_wait, name="bench.io", keep_result=0, max_tries=1),  # type: ignore[arg-type]
                 func(cpu_hash, name="bench.cpu", keep_result=0, max_tries=1)]  # type: ignore[arg-type]
    redis_settings = settings()
    queue_name = QUEUE
    max_jobs = int(os.environ.get("BENCH_ARQ_MAX_JOBS", "100"))
    poll_delay = float(os.environ.get("BENCH_ARQ_POLL_DELAY", "0.05"))
    keep_result = 0
    health_check_interval = 3600
