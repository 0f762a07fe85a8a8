"""What the agents on a SQL server (PostgreSQL, MySQL) share: connections, tables, retries.

``SQLAgent`` is their base class. It names the two tables of a namespace::

    {namespace}_agent_jobs   waiting and claimed jobs; acked jobs are deleted (a small hot table)
    {namespace}_agent_dead   dead letters, newest = highest seq

and keeps a tiny per-process pool of autocommit connections (each call checks one out, so
threads never share one). ``_run`` runs one operation on a pooled connection: a connection
that broke while idle (server restart, a killed session, an idle timeout) is dropped and the
operation retried once on a fresh one, deadlocks and serialization failures a few times,
and tables dropped while the agent runs are created again; anything else raises
``AgentError``, with the URL and the driver's message redacted. Every operation of these
agents is safe to repeat (pushes are idempotent, receipts are fenced by a token).

After ``fork`` the child drops the parent's pool without closing it (``jobmaster.forking``):
closing would end sessions the parent still uses. The pool stays referenced, so garbage
collection never closes them either, and the child opens its own connections.

A backend supplies ``_open`` (one connection), ``_create_tables``, ``_failure`` (what a
driver error means) and ``_usable``/``_close_quietly``. ``claims_from_rows`` turns claimed
rows into claims and malformed records, for these agents and for SQLite.
"""

from __future__ import annotations

import abc
import enum
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from jobmaster.agents.base import (
    Agent,
    AgentMessage,
    Claimed,
    Malformed,
    read_message,
    redact_text,
    redact_url,
    table_prefix,
)
from jobmaster.exceptions import AgentError, AgentUnreachableError
from jobmaster.forking import after_fork

__all__ = ["ConnectionPool", "Failure", "SQLAgent", "claims_from_rows"]

log = logging.getLogger(__name__)

C = TypeVar("C")
T = TypeVar("T")

# Pools left behind by a fork: referenced forever so the child's garbage collector never
# closes (and so ends) sessions that belong to the parent.
_ORPHANS: list[object] = []

HINT = "check that the server is running and reachable and that the URL is right"


_REFUSED_CREDENTIALS = ("password authentication failed", "Access denied for user",
                        "no password supplied", "authentication failed")


class Failure(enum.Enum):
    """What a driver error means for the operation that raised it."""

    LOST = "the connection is gone: drop it, retry once on a fresh one"
    RETRY = "a deadlock or serialization failure: run the operation again"
    NO_TABLE = "a table was dropped meanwhile: create the tables again, then retry"
    OTHER = "anything else: raise AgentError"


class ConnectionPool(Generic[C]):
    """The idle connections of one process, at most ``max_idle`` of them."""

    def __init__(self, max_idle: int) -> None:
        self.lock = threading.Lock()
        self.idle: list[C] = []
        self.max_idle = max_idle

    def take(self) -> C | None:
        """An idle connection, or ``None``."""
        with self.lock:
            return self.idle.pop() if self.idle else None

    def give(self, conn: C) -> bool:
        """Keep ``conn`` for later; False if the pool is full."""
        with self.lock:
            if len(self.idle) < self.max_idle:
                self.idle.append(conn)
                return True
        return False

    def drain(self) -> list[C]:
        """Every idle connection, taken out of the pool."""
        with self.lock:
            conns, self.idle = self.idle, []
        return conns


class SQLAgent(Agent, Generic[C]):
    """Base of agents whose jobs are rows of a SQL server, reached through connection type
    ``C``. See the module docstring for what it provides and what a subclass supplies."""

    backend: ClassVar[str] = "SQL"
    """The server's name in messages ("PostgreSQL", "MySQL")."""

    driver_error: ClassVar[type[Exception]] = Exception
    """The driver's base error class: what ``_run`` turns into ``AgentError``."""

    max_idle: ClassVar[int] = 8
    """Idle connections kept per process."""

    attempts: ClassVar[int] = 3
    """Tries of an operation that meets deadlocks or dropped tables."""

    def __init__(self, url: str, *, name: str = "main", namespace: str = "jobmaster") -> None:
        super().__init__(url, name=name, namespace=namespace)
        self._prefix = table_prefix(namespace)
        self._jobs = f"{self._prefix}_agent_jobs"
        self._dead = f"{self._prefix}_agent_dead"
        self._closed = False
        self._reset()
        after_fork(self, type(self)._forget)

    def _reset(self) -> None:
        """Fresh per-process state: empty pools, tables to check on first use."""
        self._pool: ConnectionPool[C] = ConnectionPool(self.max_idle)
        self._ready = False
        self._ready_lock = threading.Lock()

    def _pools(self) -> list[ConnectionPool[C]]:
        """Every pool of this process (a subclass with more adds them)."""
        return [self._pool]

    def _forget(self) -> None:
        """In a forked child: drop (never close) the parent's connections."""
        _ORPHANS.extend(self._pools())
        self._reset()

    # -- what a backend supplies ----------------------------------------------------
    @abc.abstractmethod
    def _open(self) -> C:
        """A new connection, ready for statements; the driver's error if it cannot."""

    @abc.abstractmethod
    def _create_tables(self, conn: C) -> None:
        """Create the agent's tables and indexes if they do not exist (safe to repeat)."""

    @abc.abstractmethod
    def _failure(self, conn: C, exc: Exception) -> Failure:
        """What a driver error raised on ``conn`` means."""

    @staticmethod
    @abc.abstractmethod
    def _usable(conn: C) -> bool:
        """Whether a pooled connection may be used again (not closed, not broken)."""

    @staticmethod
    @abc.abstractmethod
    def _close_quietly(conn: C) -> None:
        """Close a connection being dropped, ignoring any error."""

    # -- connections ---------------------------------------------------------------
    def _clean(self, exc: BaseException) -> str:
        """An exception's text without any credential of the URL."""
        return redact_text(str(exc).strip() or type(exc).__name__, self.url)

    def _where(self) -> str:
        return redact_url(self.url)

    def _connect(self) -> C:
        if self._closed:
            raise AgentError(f"{self!r} is closed; build a new agent")
        try:
            return self._open()
        except self.driver_error as exc:
            said = self._clean(exc)
            if any(word in said for word in _REFUSED_CREDENTIALS):
                raise AgentError(
                    f"the {self.backend} agent at {self._where()} refused the credentials "
                    f"({said}); check the user and password in the agent URL") from exc
            raise AgentUnreachableError(
                f"cannot connect to the {self.backend} agent at {self._where()}: "
                f"{said}; {HINT}"
            ) from exc

    def _checkout(self) -> tuple[C, bool]:
        """A pooled connection, or a new one; True if new."""
        conn = self._pool.take()
        if conn is not None and self._usable(conn):
            return conn, False
        return self._connect(), True

    def _checkin(self, conn: C, *, discard: bool = False) -> None:
        if discard or self._closed or not self._usable(conn) or not self._pool.give(conn):
            self._close_quietly(conn)

    def _ensure_tables(self, conn: C) -> None:
        if self._ready:
            return
        with self._ready_lock:
            if not self._ready:
                self._create_tables(conn)
                self._ready = True

    def _run(self, what: str, operation: Callable[[C], T]) -> T:
        """Run ``operation`` on a pooled connection, retrying once on a connection that
        broke while idle, a few times on deadlocks, and after recreating tables dropped
        meanwhile; raise ``AgentError`` otherwise."""
        reconnected = False
        attempt = 0
        while True:
            attempt += 1
            conn, fresh = self._checkout()
            try:
                self._ensure_tables(conn)
                result = operation(conn)
            except self.driver_error as exc:
                failure = self._failure(conn, exc)
                lost = failure is Failure.LOST
                self._checkin(conn, discard=lost)
                if lost and not fresh and not reconnected:
                    log.warning(
                        "%s agent %s: connection lost (%s); reconnecting",
                        self.backend,
                        self._where(),
                        self._clean(exc),
                    )
                    reconnected = True
                    continue
                if failure is Failure.RETRY and attempt < self.attempts:
                    continue
                if failure is Failure.NO_TABLE and attempt < self.attempts:
                    self._ready = False  # dropped meanwhile (by an operator, a test): recreate
                    continue
                if lost:
                    raise AgentUnreachableError(
                        f"{self.backend} agent {self._where()}: connection lost during "
                        f"{what}: {self._clean(exc)}; {HINT}"
                    ) from exc
                raise AgentError(
                    f"{self.backend} agent {self._where()}: {what} failed: {self._clean(exc)}"
                ) from exc
            except BaseException:
                self._checkin(conn, discard=True)  # state unknown (e.g. interrupted)
                raise
            self._checkin(conn)
            return result

    def close(self) -> None:
        """Close this process's pooled connections; the agent may not be used afterwards."""
        self._closed = True
        for pool in self._pools():
            for conn in pool.drain():
                self._close_quietly(conn)


def claims_from_rows(
    rows: Iterable[Sequence[Any]], receipt: Callable[[Any], Any], deliveries_offset: int = 0
) -> tuple[list[Claimed], list[tuple[Claimed, str]]]:
    """Claimed rows ``(seq, id, lane, priority, due, body, deliveries)`` as claims ordered
    by priority (highest first), due time and seq, and the malformed ones as (claim of what
    can be kept of them, reason) for the dead letters. ``receipt(seq)`` makes a claim's
    receipt; ``deliveries_offset`` is added to the stored count of deliveries."""
    good: list[tuple[Any, Claimed]] = []
    bad: list[tuple[Claimed, str]] = []
    for seq, id_, lane, priority, due, body, deliveries in rows:
        read = read_message(id_, lane, priority, due, body)
        count = _count(deliveries) + deliveries_offset
        if isinstance(read, Malformed):
            bad.append((Claimed(read.message, receipt(seq), count), read.reason))
        else:
            good.append((seq, Claimed(read, receipt(seq), count)))
    good.sort(key=_order)
    return [c for _, c in good], bad


def _order(item: tuple[Any, Claimed]) -> tuple[int, float, Any]:
    m: AgentMessage = item[1].message
    return -m.priority, m.due, item[0]


def _count(value: object) -> int:
    """A stored count of deliveries; a garbled one counts as none."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
