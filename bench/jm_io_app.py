"""jobmaster's app for the I/O-bound scenario: ``jobmaster worker -A bench.jm_io_app``, only
the ``async def`` job ``bench.io`` (see ``bench.jm_app``): an app of nothing but ``async
def`` jobs at ``-c 1`` runs them on an event loop in the worker process itself."""

from __future__ import annotations

from bench.jm_app import make_app

app = make_app(io_only=True)
