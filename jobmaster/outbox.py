"""Transactional enqueue: ``definition.apply(kwargs=..., using=connection)`` writes the job
into the caller's own transaction, when the master is that very database. The job exists if
and only if the transaction commits.

The job is written ``scheduled``, due ``OUTBOX_GRACE`` seconds ahead (an outbox). When the
transaction commits, this process pushes it to its agent at once and marks it ``queued``;
if the process dies between the commit and the push, beat pushes it once its time comes.
A rollback leaves nothing behind, and nothing was pushed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Protocol

import sqlalchemy as sa

from jobmaster.envelope import Envelope
from jobmaster.exceptions import ConfigurationError
from jobmaster.host import AppResources
from jobmaster.master.repository import event_row, from_timestamp, utcnow
from jobmaster.master.rows import job_row
from jobmaster.master.schema import events, jobs
from jobmaster.models import JobStatus

log = logging.getLogger("jobmaster")

OUTBOX_GRACE = 10.0
"""Seconds a job written in a transaction waits for this process's push before beat pushes
it instead."""


class _Pushes(Protocol):
    def push(self, envs: list[Envelope]) -> None: ...


def write_in(using: Any, app: AppResources, producer: _Pushes | None, env: Envelope
             ) -> None:
    """Write ``env`` as a job row into the transaction of ``using`` (a SQLAlchemy
    ``Connection`` or ``Session``) and, with a ``producer``, push it once that transaction
    commits (without one, beat pushes it when it is due)."""
    conn = _connection(using)
    _check_same_database(conn, app)
    row = job_row(env, JobStatus.SCHEDULED, utcnow())
    if producer is not None:
        row["scheduled_at"] = from_timestamp(time.time() + OUTBOX_GRACE)
    conn.execute(jobs.insert(), [row])
    conn.execute(events.insert(), [event_row(
        env.id, row["status"], utcnow(), reason="enqueued in the caller's transaction")])
    if producer is None:
        return

    def pushed(*_: Any) -> None:
        try:
            producer.push([env])
            app.master.mark_promoted([env.id], fence=None)
        except Exception as exc:  # noqa: BLE001 - beat pushes it after the grace
            log.warning("job %s committed but not pushed (%s); beat pushes it within %g s",
                        env.id, exc, OUTBOX_GRACE, extra={"job_id": env.id})

    def once_visible() -> None:
        """A connection's ``commit`` event comes before the commit itself: push once the
        master shows the job (it never does if the commit failed)."""
        for _ in range(100):
            if app.master.job_status(env.id) is not None:
                pushed()
                return
            time.sleep(0.02)

    if _is_session(using):
        sa.event.listen(using, "after_commit", pushed, once=True)
    else:
        sa.event.listen(conn, "commit", lambda *_: threading.Thread(
            target=once_visible, daemon=True, name="jobmaster-outbox").start(), once=True)


def _connection(using: Any) -> sa.Connection:
    if isinstance(using, sa.Connection):
        if not using.in_transaction():
            raise ConfigurationError("using=: the connection has no transaction open; "
                                     "enqueue inside `with engine.begin() as conn:` or "
                                     "`conn.begin()`, so the job commits with it")
        return using
    if _is_session(using):
        return using.connection()  # type: ignore[no-any-return]
    raise ConfigurationError(f"using= takes a SQLAlchemy Connection or Session in the master's "
                             f"database, not {type(using).__name__}")


def _is_session(value: Any) -> bool:
    """Whether ``value`` is a SQLAlchemy ORM ``Session`` (the ORM is loaded only by those
    who use it)."""
    if not type(value).__module__.startswith("sqlalchemy.orm"):
        return False
    from sqlalchemy.orm import Session

    return isinstance(value, Session)


def _check_same_database(conn: sa.Connection, app: AppResources) -> None:
    ours, theirs = _where(app.master.engine.url), _where(conn.engine.url)
    if ours != theirs:
        raise ConfigurationError(
            "using=: that connection is not to the master's database, so the job could not "
            "commit with your transaction; enqueue without using=, or make the master "
            "that database")


def _where(url: sa.URL) -> tuple[Any, ...]:
    if url.get_backend_name() == "sqlite":
        return ("sqlite", os.path.realpath(url.database or ""))
    return (url.get_backend_name(), url.host or "localhost", url.port, url.database)
