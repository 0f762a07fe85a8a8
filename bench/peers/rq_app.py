"""RQ's side of the bench: ``rq worker-pool -n 2 -w rq.worker.SimpleWorker QUEUE``.

RQ's performance notes: ``SimpleWorker`` (the job runs in the worker process, no fork per
job) is the worker for jobs of a few milliseconds; ``rq worker-pool -n N`` runs N of them.
RQ has no concurrency inside a worker process (no threads, no greenlets), so the I/O-bound
scenario runs one ``SimpleWorker`` at concurrency 1. Results are not kept
(``result_ttl=0``), as Celery's are ignored.

RQ's keys all start with ``rq:`` and cannot be prefixed, so RQ gets a Redis database of its
own, ``BENCH_PEER_REDIS_URL`` (default db 12), whose ``rq:*`` keys the bench deletes after
each step; the handlers count in ``BENCH_REDIS_URL`` like every other system's.
"""

from __future__ import annotations

import os

from redis import Redis
from rq import Queue

from bench import handlers

REDIS_URL = os.environ.get("BENCH_PEER_REDIS_URL", "redis://127.0.0.1:6379/12")
QUEUE = os.environ.get("BENCH_PREFIX", "jmbench:").strip(":").replace(":", "-") + "-rq"
RESULT_TTL = 0

FUNCTIONS = {"noop": handlers.noop, "latency": handlers.latency, "io": handlers.io_wait,
             "cpu": handlers.cpu_hash}


def connection() -> Redis:
    return Redis.from_url(REDIS_URL)


def queue(conn: Redis | None = None) -> Queue:
    return Queue(QUEUE, connection=conn or connection())
