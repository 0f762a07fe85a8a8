"""Celery's side of the bench: ``celery -A bench.peers.celery_app worker -P prefork -c 2``
(``-P gevent -c 100`` for the I/O-bound jobs, as Celery's docs recommend for them).

Configured for throughput as Celery's docs recommend for many short tasks: prefork pool,
``task_acks_late=True`` (at-least-once, like jobmaster), a high
``worker_prefetch_multiplier`` (docs, "Optimizing": with many short tasks, prefetch many),
results ignored. Broker: ``BENCH_REDIS_URL``; every key carries ``BENCH_PREFIX``
(kombu's ``global_keyprefix``) so a run touches only its own keys.
"""

from __future__ import annotations

import os

from celery import Celery

from bench import handlers

PREFIX = os.environ.get("BENCH_PREFIX", "jmbench:")
QUEUE = "bench"
PREFETCH_MULTIPLIER = int(os.environ.get("BENCH_CELERY_PREFETCH", "64"))

app = Celery("bench", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11"))
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=PREFETCH_MULTIPLIER,
    task_ignore_result=True,
    result_backend=None,
    task_default_queue=QUEUE,
    broker_transport_options={"global_keyprefix": PREFIX, "visibility_timeout": 43200},
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
    task_send_sent_event=False,
)


@app.task(name="bench.noop")
def noop(key: str) -> None:
    handlers.noop(key)


@app.task(name="bench.latency")
def latency(key: str, enqueued_at: float) -> None:
    handlers.latency(key, enqueued_at)


@app.task(name="bench.io")
def io_wait(key: str, seconds: float) -> None:
    handlers.io_wait(key, seconds)


@app.task(name="bench.cpu")
def cpu_hash(key: str, rounds: int) -> None:
    handlers.cpu_hash(key, rounds)
