"""procrastinate's side of the bench:
``procrastinate --app bench.peers.procrastinate_app.app worker --concurrency N``.

PostgreSQL database ``BENCH_PROCRASTINATE_URL`` of the run's own (created and dropped by the
bench, schema applied with procrastinate's own ``apply_schema``). Tasks are coroutines, as
procrastinate's docs write them; one worker process runs up to ``--concurrency`` of them at
once (default 1) and is woken by LISTEN/NOTIFY; jobs are kept (procrastinate's default,
its ``procrastinate_jobs`` table is its record of them, as jobmaster's master is).
"""

from __future__ import annotations

import os
from typing import Any

from procrastinate import App, PsycopgConnector

from bench import handlers

QUEUE = "bench"
URL = os.environ.get("BENCH_PROCRASTINATE_URL",
                     "postgresql://postgres@127.0.0.1:5432/procrastinate_bench")


def make_app(**pool: Any) -> App:
    """An app with the bench's tasks; ``pool``: arguments of its psycopg pool."""
    app = App(connector=PsycopgConnector(conninfo=URL, **pool))

    @app.task(name="bench.noop", queue=QUEUE)
    async def noop(key: str) -> None:
        await handlers.noop_async(key)

    @app.task(name="bench.latency", queue=QUEUE)
    async def latency(key: str, enqueued_at: float) -> None:
        await handlers.latency_async(key, enqueued_at)

    @app.task(name="bench.io", queue=QUEUE)
    async def io_wait(key: str, seconds: float) -> None:
        await handlers.io_wait_async(key, seconds)

    @app.task(name="bench.cpu", queue=QUEUE)
    async def cpu_hash(key: str, rounds: int) -> None:
        await handlers.cpu_hash_async(key, rounds)

    return app


app = make_app()
