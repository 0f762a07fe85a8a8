"""Django database connections in worker processes: what a forked process inherited is
dropped without touching the parent's sessions, and around every job connections that
are too old or broken are closed, as Django does around each request."""

from __future__ import annotations

import asyncio
import os

from jobmaster.envelope import Envelope
from jobmaster.middleware import Middleware
from jobmaster.outcomes import Outcome


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def close_old_connections() -> None:
    """``django.db.close_old_connections()``, except on a thread running an event loop
    (``async def`` jobs), where Django refuses synchronous database calls."""
    if _in_event_loop():
        return
    from django.db import close_old_connections as close

    close()


class DjangoConnections(Middleware):
    """Closes Django's old or unusable database connections before and after each job
    (``CONN_MAX_AGE`` and ``CONN_HEALTH_CHECKS`` apply as they do to requests)."""

    def before_run(self, envelope: Envelope) -> None:
        """Before the handler: drop a connection the previous job left expired or broken."""
        close_old_connections()

    def after_run(self, envelope: Envelope, outcome: Outcome) -> None:
        """After the handler: close the job's connections unless ``CONN_MAX_AGE`` keeps
        them."""
        close_old_connections()


def close_inherited_connections() -> None:
    """In a freshly forked worker process: forget the database connections the parent
    had opened. Each socket is closed in this process only (``os.close`` of its file
    descriptor), so no goodbye reaches the server on the parent's session; Django then
    opens new connections on first use."""
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        raw = conn.connection
        if raw is None:
            continue
        fileno = getattr(raw, "fileno", None)
        if callable(fileno):
            try:
                os.close(fileno())
            except (OSError, TypeError, ValueError):
                pass
        try:
            conn.close()
        except Exception:  # noqa: BLE001, S110 - the socket is gone on purpose
            pass
        conn.connection = None
