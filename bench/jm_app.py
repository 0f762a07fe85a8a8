"""jobmaster's side of the bench: ``jobmaster worker -A bench.jm_app``.

Workers get their cluster, master, agent and namespace from ``JOBMASTER_*`` environment
variables (bench/run.py sets them); the bench itself builds one app per step with
``make_app(...)``, registering the same two definitions.
"""

from __future__ import annotations

from typing import Any

from bench import handlers
from jobmaster import App


def make_app(name: str = "bench", **options: Any) -> App:
    """An app with the bench's definitions: ``bench.noop`` and ``bench.latency``."""
    app = App(name, **options)
    app.job(definition_id="bench.noop")(handlers.noop)
    app.job(definition_id="bench.latency")(handlers.latency)
    return app


app = make_app()
