"""Expiry: a job not started by its ``expires`` time is cancelled and never runs.

``apply(..., expires=60)`` (seconds after enqueue) or ``expires=datetime``; also a
definition option. The producer resolves it to an absolute time (``JobOptions.expires``);
this middleware checks it right before each run, retries included.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from jobmaster.envelope import Envelope
from jobmaster.middleware import EndRun, Middleware
from jobmaster.outcomes import Cancelled


class Expiry(Middleware):
    """Ends jobs whose ``expires`` time has passed as ``Cancelled("expired")``."""

    def before_run(self, envelope: Envelope) -> None:
        """Refuse to start a job past its expiry."""
        expires = envelope.options.expires
        if isinstance(expires, datetime):  # resolved options hold a Unix time
            expires = expires.timestamp()
        if expires is not None and time.time() >= expires:
            at = datetime.fromtimestamp(expires, UTC).isoformat(timespec="seconds")
            raise EndRun(Cancelled("expired", f"not started before it expired at {at}"))
