"""jobmaster's side of the bench: ``jobmaster worker -A bench.jm_app``.

Workers get their cluster, master, agent and namespace from ``JOBMASTER_*`` environment
variables (bench/run.py sets them); the bench itself builds one app per step with
``make_app(...)``, registering the same definitions: ``bench.noop``, ``bench.latency`` and
``bench.cpu`` (plain functions). The I/O-bound scenario's ``async def`` job ``bench.io``
lives in ``bench.jm_io_app``: a worker whose app has an ``async def`` job sizes its claims
for async slots, and the other scenarios measure the plain worker.
"""

from __future__ import annotations

from typing import Any

from bench import handlers
from jobmaster import App


def make_app(name: str = "bench", io: bool = False, io_only: bool = False,
             **options: Any) -> App:
    """An app with the bench's definitions (``io``: also the ``async def`` ``bench.io``;
    ``io_only``: that job alone, an I/O worker's app, whose worker runs its jobs in its
    own process: no forked child)."""
    app = App(name, **options)
    if io or io_only:
        app.job(definition_id="bench.io")(handlers.io_wait_async)
    if io_only:
        return app
    app.job(definition_id="bench.noop")(handlers.noop)
    app.job(definition_id="bench.latency")(handlers.latency)
    app.job(definition_id="bench.cpu")(handlers.cpu_hash)
    return app


app = make_app()
