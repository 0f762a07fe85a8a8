"""PgQueuer's side of the bench: ``python -m bench.peers.pgqueuer_app --batch-size N``, what
``pgq run bench.peers.pgqueuer_app:main --batch-size N`` does (``PgQueuer.run`` with
SIGINT/SIGTERM setting its shutdown event); ``pgq run`` itself exits at start-up in PgQueuer
1.6.0 (its ``--log-level`` default is handed to the logger set-up as a string).

PostgreSQL database ``BENCH_PGQUEUER_URL`` of the run's own (created and dropped by the
bench, PgQueuer's tables installed with its own ``Queries.install``), asyncpg driver.
Entrypoints are coroutines, as PgQueuer's docs write them; a worker dequeues
``--batch-size`` jobs per query (default 10) and runs what it picked concurrently, up to
``--max-concurrent-tasks``. Payloads are JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal

import asyncpg
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job

from bench import handlers

DSN = os.environ.get("BENCH_PGQUEUER_URL",
                     "postgresql://postgres@127.0.0.1:5432/pgqueuer_bench")


def _args(job: Job) -> dict:
    return json.loads(job.payload or b"{}")


async def main() -> PgQueuer:
    connection = await asyncpg.connect(DSN)
    pgq = PgQueuer(AsyncpgDriver(connection))

    @pgq.entrypoint("bench.noop")
    async def noop(job: Job) -> None:
        await handlers.noop_async(_args(job)["key"])

    @pgq.entrypoint("bench.latency")
    async def latency(job: Job) -> None:
        a = _args(job)
        await handlers.latency_async(a["key"], a["enqueued_at"])

    @pgq.entrypoint("bench.io")
    async def io_wait(job: Job) -> None:
        a = _args(job)
        await handlers.io_wait_async(a["key"], a["seconds"])

    @pgq.entrypoint("bench.cpu")
    async def cpu_hash(job: Job) -> None:
        a = _args(job)
        await handlers.cpu_hash_async(a["key"], a["rounds"])

    return pgq


def run_worker(argv: list[str] | None = None) -> None:
    """Run one PgQueuer worker until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(description="one PgQueuer worker of the bench")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--max-concurrent-tasks", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    async def go() -> None:
        pgq = await main()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, pgq.shutdown.set)
        await pgq.run(batch_size=args.batch_size, max_concurrent_tasks=args.max_concurrent_tasks)

    asyncio.run(go())


if __name__ == "__main__":
    run_worker()
