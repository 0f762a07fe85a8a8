"""jobmaster's app for the I/O-bound scenario: ``jobmaster worker -A bench.jm_io_app``, the
bench's definitions plus the ``async def`` job ``bench.io`` (see ``bench.jm_app``)."""

from __future__ import annotations

from bench.jm_app import make_app

app = make_app(io=True)
