"""The handlers every system runs, so the bench compares the frameworks, not the work.

``noop`` increments a counter key in Redis; ``latency`` pushes how long ago the job was
enqueued (``time.time() - enqueued_at``) onto a list; ``io_wait`` waits ``seconds`` (the
I/O-bound job) and ``cpu_hash`` hashes ``rounds`` times (the CPU-bound job), each then
counting one run like ``noop``. The ``*_async`` twins do the same for the systems whose jobs
are coroutines (jobmaster's ``async def`` jobs, arq, taskiq, procrastinate, PgQueuer), with
``redis.asyncio`` and ``asyncio.sleep`` so they never block their event loop.

The Redis clients are created lazily: every worker process (or forked child) opens its own
connection once, and every event loop its own asyncio client. Redis URL: ``BENCH_REDIS_URL``
(set by bench/run.py for the workers it starts).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from typing import Any

import redis

_client: redis.Redis | None = None
_pid = 0
_async_clients: dict[tuple[int, int], Any] = {}


def _url() -> str:
    return os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")


def client() -> redis.Redis:
    """This process's Redis client (opened on first use, again after a fork)."""
    global _client, _pid
    if _client is None or _pid != os.getpid():
        _client = redis.Redis.from_url(_url())
        _pid = os.getpid()
    return _client


def aclient() -> Any:
    """This process's and this event loop's ``redis.asyncio`` client."""
    import redis.asyncio

    key = (os.getpid(), id(asyncio.get_running_loop()))
    found = _async_clients.get(key)
    if found is None:  # a pool that makes a job wait for a connection, not fail without one
        pool = redis.asyncio.BlockingConnectionPool.from_url(_url(), max_connections=100,
                                                             timeout=None)
        found = _async_clients[key] = redis.asyncio.Redis(connection_pool=pool)
    return found


def burn(rounds: int) -> bytes:
    """The CPU-bound work: ``rounds`` chained SHA-256 digests of 64 bytes."""
    digest = b"x" * 64
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest


def calibrate(seconds: float) -> int:
    """How many ``burn`` rounds take ``seconds`` on this machine (best of five)."""
    probe = 20_000
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        burn(probe)
        best = min(best, time.perf_counter() - t0)
    return max(1, round(probe * seconds / best))


def noop(key: str) -> None:
    """The no-op job: count one run."""
    client().incr(key)


def latency(key: str, enqueued_at: float) -> None:
    """Record the enqueue→start delay of this run, in seconds."""
    client().rpush(key, time.time() - enqueued_at)


def io_wait(key: str, seconds: float) -> None:
    """The I/O-bound job for thread and greenlet workers: a blocking wait, then count."""
    time.sleep(seconds)
    client().incr(key)


def cpu_hash(key: str, rounds: int) -> None:
    """The CPU-bound job: hash, then count."""
    burn(rounds)
    client().incr(key)


async def noop_async(key: str) -> None:
    await aclient().incr(key)


async def latency_async(key: str, enqueued_at: float) -> None:
    await aclient().rpush(key, time.time() - enqueued_at)


async def io_wait_async(key: str, seconds: float) -> None:
    await asyncio.sleep(seconds)
    await aclient().incr(key)


async def cpu_hash_async(key: str, rounds: int) -> None:
    burn(rounds)
    await aclient().incr(key)
