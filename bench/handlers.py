"""The one handler every system runs, so the bench compares the frameworks, not the work.

``noop`` increments a counter key in Redis; ``latency`` pushes how long ago the job was
enqueued (``time.time() - enqueued_at``) onto a list. The Redis client is module level and
created lazily, so every worker process (or forked child) opens its own connection once.
Redis URL: ``BENCH_REDIS_URL`` (set by bench/run.py for the workers it starts).
"""

from __future__ import annotations

import os
import time

import redis

_client: redis.Redis | None = None
_pid = 0


def client() -> redis.Redis:
    """This process's Redis client (opened on first use, again after a fork)."""
    global _client, _pid
    if _client is None or _pid != os.getpid():
        _client = redis.Redis.from_url(
            os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
        )
        _pid = os.getpid()
    return _client


def noop(key: str) -> None:
    """The no-op job: count one run."""
    client().incr(key)


def latency(key: str, enqueued_at: float) -> None:
    """Record the enqueue→start delay of this run, in seconds."""
    client().rpush(key, time.time() - enqueued_at)
