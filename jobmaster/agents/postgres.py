"""Agent in a PostgreSQL database (``postgresql://``, ``postgres://``, ``postgresql+psycopg://``).

Storage. Two tables per namespace, created on first use with ``CREATE TABLE IF NOT EXISTS``
(serialised by an advisory lock so concurrent first uses do not race)::

    {namespace}_agent_jobs   waiting and claimed jobs; acked jobs are deleted (a small hot table)
    {namespace}_agent_dead   dead letters, newest = highest seq

Every agent of a namespace shares these tables; each row carries its agent's ``name`` in
the ``agent`` column, and every statement filters on it, so ``App(agents={"a": ..., "b":
...})`` pointing at one database keeps the agents apart. The namespace is folded to lower
case for table names (PostgreSQL folds unquoted identifiers anyway).

Claiming is one statement per batch::

    WITH picked AS MATERIALIZED (
        SELECT s.seq FROM unnest(:lanes) AS l(lane) CROSS JOIN LATERAL (
               SELECT seq, priority, due FROM jobs
                WHERE agent = :name AND lane = l.lane AND due <= now
                  AND (lease_until IS NULL OR lease_until <= now)
                ORDER BY priority DESC, due, seq LIMIT :n FOR UPDATE SKIP LOCKED) AS s
         ORDER BY s.priority DESC, s.due, s.seq LIMIT :n)
    UPDATE jobs SET lease_until = now + lease, token = :token, ... FROM picked ... RETURNING ...

Each lane is an ordered scan of the index ``(agent, lane, priority DESC, due, seq)`` that
stops after ``n`` rows (a plain ``lane = ANY(...)`` would scan and sort every row of the
lanes); the rows of several lanes are merged and cut to ``n``. Each claim draws a fresh
random 63-bit token; the receipt is ``(seq, token)`` and ack/extend/retry/dead_letter match
both, so a consumer whose lease expired and whose job was claimed again touches nothing.
Times (``due``, leases) are Unix epochs in ``double precision``; "now" is the database
server's clock, so the leases of workers on different machines agree.

Wake-ups. ``push`` and ``retry`` ``NOTIFY`` the channel of the namespace and agent (payload:
the lane) in the same statement, so the notification is sent exactly when the rows commit.
A ``claim(wait=...)`` that finds nothing due ``LISTEN``-s on a dedicated connection and
sleeps until a notification for one of its lanes, the earliest future ``due`` or lease
expiry in its lanes, or one second (a polling fallback), whichever is first.

Connections, retries and fork safety come from ``jobmaster.agents.sql.SQLAgent``
(autocommit psycopg 3 connections; sessions show as ``jobmaster-agent:{namespace}`` in
``pg_stat_activity``), plus a pool of listening connections. Claimed rows are checked
(``jobmaster.agents.base.read_message``): a malformed one (a NULL or out-of-range priority,
a due time of ``-Infinity``, an empty id) is moved to the dead letters by the claim with
the reason, and the claim's other jobs are returned. Rows due at ``NaN`` or ``+Infinity``
are never due, so never claimed: they stay until purged.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow

from jobmaster.agents.base import (
    AGAIN_AFTER_MALFORMED,
    AgentMessage,
    Bucket,
    Capabilities,
    Claimed,
    DeadLetter,
    bury_malformed,
    check_messages,
    redact_text,
    redact_url,
    salvage_message,
    storable_reason,
    table_prefix,
)
from jobmaster.agents.sql import ConnectionPool, Failure, SQLAgent, claims_from_rows
from jobmaster.exceptions import AgentError, ConfigurationError

__all__ = ["PostgresAgent", "postgres_conninfo", "table_prefix"]

log = logging.getLogger(__name__)

_Conn = psycopg.Connection[TupleRow]

_CHANNEL_NAME = re.compile(r"[A-Za-z0-9_]+\Z")
_RECHECK = 1.0  # a waiting claim looks at the table at least this often
_MIN_SLEEP = 0.002  # ... and at most this often (a due row locked by a concurrent claim)
_CHUNK_ROWS = 5000  # rows per INSERT statement of a push
_CHUNK_BYTES = 32 * 1024 * 1024  # body bytes per INSERT statement of a push
_CONNECT_DEFAULTS = {
    "connect_timeout": "5",
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
}
# The server's clock as a Unix epoch; stable within a statement.
_NOW = "extract(epoch FROM now())::float8"


def postgres_conninfo(url: str) -> str:
    """The libpq URI of an agent URL: ``postgresql+psycopg://`` becomes ``postgresql://``."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in {"postgresql", "postgres", "postgresql+psycopg"}:
        raise ConfigurationError(
            f"{redact_url(url)!r} is not a PostgreSQL URL; use postgresql://user@host/db"
        )
    return f"postgresql://{rest}"


def _channel(prefix: str, name: str) -> str:
    """The LISTEN/NOTIFY channel of one agent: readable when it can be, always < 64 bytes."""
    channel = f"{prefix}_agent_{name}"
    if _CHANNEL_NAME.match(name) and len(channel) <= 63:
        return channel
    return f"{prefix}_agent_{hashlib.sha256(name.encode()).hexdigest()[:16]}"


class PostgresAgent(SQLAgent[_Conn]):
    """Jobs in PostgreSQL tables, claimed with ``FOR UPDATE SKIP LOCKED``, woken by NOTIFY."""

    capabilities = Capabilities(notify=True, delayed=True, durable=True, shared=True)
    backend = "PostgreSQL"
    driver_error = psycopg.Error

    def __init__(self, url: str, *, name: str = "main", namespace: str = "jobmaster") -> None:
        super().__init__(url, name=name, namespace=namespace)
        self._channel = _channel(self._prefix, name)
        self._params_dict = self._params(url, self._prefix)
        self._build_sql()

    def _reset(self) -> None:
        super()._reset()
        self._listeners: ConnectionPool[_Conn] = ConnectionPool(self.max_idle)

    def _pools(self) -> list[ConnectionPool[_Conn]]:
        return [self._pool, self._listeners]

    @staticmethod
    def _params(url: str, prefix: str) -> dict[str, Any]:
        try:
            params: dict[str, Any] = conninfo_to_dict(postgres_conninfo(url))
        except psycopg.Error as exc:
            raise ConfigurationError(
                f"invalid PostgreSQL URL {redact_url(url)!r}: {redact_text(str(exc), url)}"
            ) from exc
        for key, value in _CONNECT_DEFAULTS.items():
            params.setdefault(key, value)
        params.setdefault("application_name", f"jobmaster-agent:{prefix}")
        params["autocommit"] = True
        return params

    # -- SQL -----------------------------------------------------------------------
    # Table names come from a validated identifier (see ``table_prefix``); values are
    # always bound parameters.
    def _build_sql(self) -> None:
        jobs, dead = self._jobs, self._dead
        self._sql_create = [
            f"""CREATE TABLE IF NOT EXISTS {jobs} (
                    seq bigserial PRIMARY KEY,
                    agent text NOT NULL,
                    id text NOT NULL,
                    lane text NOT NULL,
                    priority integer NOT NULL,
                    due double precision NOT NULL,
                    body bytea NOT NULL,
                    lease_until double precision,
                    token bigint,
                    consumer text,
                    deliveries integer NOT NULL DEFAULT 0,
                    UNIQUE (agent, id)
                ) WITH (autovacuum_vacuum_scale_factor = 0.02,
                        autovacuum_vacuum_threshold = 1000)""",
            f"CREATE INDEX IF NOT EXISTS {jobs}_claim"
            f" ON {jobs} (agent, lane, priority DESC, due, seq)",
            f"""CREATE TABLE IF NOT EXISTS {dead} (
                    seq bigserial PRIMARY KEY,
                    agent text NOT NULL,
                    id text NOT NULL,
                    lane text NOT NULL,
                    priority integer NOT NULL,
                    due double precision NOT NULL,
                    body bytea NOT NULL,
                    reason text NOT NULL,
                    at double precision NOT NULL
                )""",
            f"CREATE INDEX IF NOT EXISTS {dead}_agent ON {dead} (agent, seq)",
            f"CREATE INDEX IF NOT EXISTS {dead}_id ON {dead} (agent, id)",
        ]
        self._sql_push = f"""
            WITH ins AS (
                INSERT INTO {jobs} (agent, id, lane, priority, due, body)
                SELECT %(agent)s, m.id, m.lane, m.priority, m.due, m.body
                  FROM unnest(%(ids)s::text[], %(lanes)s::text[], %(priorities)s::int[],
                              %(dues)s::float8[], %(bodies)s::bytea[])
                       WITH ORDINALITY AS m(id, lane, priority, due, body, ord)
                 ORDER BY m.ord
                    ON CONFLICT (agent, id) DO NOTHING
                RETURNING lane)
            SELECT pg_notify(%(channel)s, lane) FROM (SELECT DISTINCT lane FROM ins) AS l
            """  # noqa: S608 - table name from a validated identifier
        self._sql_claim = f"""
            WITH picked AS MATERIALIZED (
                SELECT s.seq
                  FROM unnest(%(lanes)s::text[]) AS l(lane)
                 CROSS JOIN LATERAL (
                       SELECT seq, priority, due FROM {jobs}
                        WHERE agent = %(agent)s AND lane = l.lane
                          AND due <= {_NOW}
                          AND (lease_until IS NULL OR lease_until <= {_NOW})
                        ORDER BY priority DESC, due, seq
                        LIMIT %(limit)s
                          FOR UPDATE SKIP LOCKED) AS s
                 ORDER BY s.priority DESC, s.due, s.seq
                 LIMIT %(limit)s)
            UPDATE {jobs} AS j
               SET lease_until = {_NOW} + %(lease)s, token = %(token)s,
                   consumer = %(consumer)s, deliveries = j.deliveries + 1
              FROM picked
             WHERE j.seq = picked.seq
            RETURNING j.seq, j.id, j.lane, j.priority, j.due, j.body, j.deliveries
            """  # noqa: S608 - table name from a validated identifier
        self._sql_next = f"""
            SELECT min(greatest(due, coalesce(lease_until, 0))) - {_NOW}
              FROM {jobs} WHERE agent = %(agent)s AND lane = ANY(%(lanes)s::text[])
            """  # noqa: S608 - table name from a validated identifier
        receipts = "unnest(%(seqs)s::int8[], %(tokens)s::int8[]) AS r(seq, token)"
        self._sql_ack = (
            f"DELETE FROM {jobs} AS j USING {receipts}"  # noqa: S608 - validated identifier
            " WHERE j.seq = r.seq AND j.token = r.token"
        )
        self._sql_extend = (
            f"UPDATE {jobs} AS j SET lease_until = {_NOW} + %(lease)s"  # noqa: S608
            f" FROM {receipts} WHERE j.seq = r.seq AND j.token = r.token"
        )
        # ``seq = DEFAULT`` draws a new seq: the job goes behind others of its priority,
        # like a fresh push. ``deliveries`` is kept.
        self._sql_retry = f"""
            WITH upd AS (
                UPDATE {jobs} AS j
                   SET seq = DEFAULT, id = r.id, lane = r.lane, priority = r.priority,
                       due = r.due, body = r.body,
                       lease_until = NULL, token = NULL, consumer = NULL
                  FROM unnest(%(seqs)s::int8[], %(tokens)s::int8[], %(ids)s::text[],
                              %(lanes)s::text[], %(priorities)s::int[], %(dues)s::float8[],
                              %(bodies)s::bytea[])
                       AS r(seq, token, id, lane, priority, due, body)
                 WHERE j.seq = r.seq AND j.token = r.token
                RETURNING j.lane)
            SELECT pg_notify(%(channel)s, lane) FROM (SELECT DISTINCT lane FROM upd) AS l
            """  # noqa: S608 - table name from a validated identifier
        # The dead letter holds the claimed message as the caller has it (for a malformed
        # row, what could be kept of it), never the row's own values, which may not fit.
        self._sql_dead_letter = f"""
            WITH gone AS (
                DELETE FROM {jobs} AS j
                 USING unnest(%(seqs)s::int8[], %(tokens)s::int8[], %(ids)s::text[],
                              %(lanes)s::text[], %(priorities)s::int[], %(dues)s::float8[],
                              %(bodies)s::bytea[], %(reasons)s::text[])
                       WITH ORDINALITY AS r(seq, token, id, lane, priority, due, body, reason,
                                            ord)
                 WHERE j.seq = r.seq AND j.token = r.token
                RETURNING j.agent, r.id, r.lane, r.priority, r.due, r.body, r.reason, r.ord)
            INSERT INTO {dead} (agent, id, lane, priority, due, body, reason, at)
            SELECT agent, id, lane, priority, due, body, reason, {_NOW}
              FROM gone ORDER BY ord
            """  # noqa: S608 - table names from a validated identifier
        cols = "id, lane, priority, due, body, reason, at, seq"
        self._sql_dead_letters = (
            f"SELECT {cols} FROM {dead}"  # noqa: S608 - validated identifier
            " WHERE agent = %(agent)s ORDER BY seq DESC LIMIT %(limit)s"
        )
        self._sql_dead_letters_before = (
            f"SELECT {cols} FROM {dead}"  # noqa: S608 - validated identifier
            " WHERE agent = %(agent)s AND seq < %(before)s ORDER BY seq DESC LIMIT %(limit)s"
        )
        self._sql_find_dead = (
            f"SELECT {cols} FROM {dead}"  # noqa: S608 - validated identifier
            " WHERE agent = %(agent)s AND id = ANY(%(ids)s::text[]) ORDER BY seq DESC"
        )
        self._sql_remove_dead = (
            f"DELETE FROM {dead}"  # noqa: S608 - validated identifier
            f" WHERE agent = %(agent)s AND seq = ANY(%(seqs)s::int8[]) RETURNING {cols}"
        )
        self._sql_purge_dead = (
            f"DELETE FROM {dead}"  # noqa: S608 - validated identifier
            " WHERE agent = %(agent)s AND (%(before)s::float8 IS NULL OR at < %(before)s::float8)"
        )
        self._sql_length = f"SELECT count(*) FROM {jobs} WHERE agent = %(agent)s"  # noqa: S608
        self._sql_scan = (
            f"SELECT seq, id, body FROM {jobs}"  # noqa: S608 - validated identifier
            " WHERE agent = %(agent)s AND seq > %(after)s ORDER BY seq LIMIT %(limit)s"
        )
        self._sql_length_bucket = (
            f"SELECT count(*) FROM {jobs}"  # noqa: S608 - validated identifier
            " WHERE agent = %(agent)s AND lane = %(lane)s AND priority = %(priority)s"
        )
        self._sql_purge = f"""
            WITH j AS (DELETE FROM {jobs} WHERE agent = %(agent)s RETURNING 1),
                 d AS (DELETE FROM {dead} WHERE agent = %(agent)s RETURNING 1)
            SELECT (SELECT count(*) FROM j), (SELECT count(*) FROM d)
            """  # noqa: S608 - table names from a validated identifier

    # -- what SQLAgent needs ---------------------------------------------------------
    def _open(self) -> _Conn:
        conn: _Conn = psycopg.connect(**self._params_dict)
        return conn

    def _create_tables(self, conn: _Conn) -> None:
        """Create the tables, serialised by an advisory lock so first uses do not race."""
        key = int.from_bytes(hashlib.sha256(self._jobs.encode()).digest()[:8], "big") >> 1
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
            for statement in self._sql_create:
                conn.execute(statement)

    def _failure(self, conn: _Conn, exc: Exception) -> Failure:
        if conn.closed or conn.broken:
            return Failure.LOST
        if isinstance(exc, pg_errors.TransactionRollback):
            return Failure.RETRY
        if isinstance(exc, pg_errors.UndefinedTable):
            return Failure.NO_TABLE
        return Failure.OTHER

    @staticmethod
    def _usable(conn: _Conn) -> bool:
        return not conn.closed and not conn.broken

    @staticmethod
    def _close_quietly(conn: _Conn) -> None:
        try:
            conn.close()
        except Exception:  # noqa: S110 - a connection we are dropping anyway
            pass

    # -- producer ------------------------------------------------------------------
    def push(self, messages: Sequence[AgentMessage]) -> None:
        """Store messages (one INSERT ... ON CONFLICT DO NOTHING per few thousand) and
        NOTIFY waiting claims, all in one transaction."""
        if not messages:
            return
        check_messages(messages)
        chunks: list[Sequence[AgentMessage]] = []
        start, size = 0, 0
        for i, m in enumerate(messages):
            size += len(m.body)
            if i - start + 1 >= _CHUNK_ROWS or size >= _CHUNK_BYTES:
                chunks.append(messages[start : i + 1])
                start, size = i + 1, 0
        if start < len(messages):
            chunks.append(messages[start:])

        def params(chunk: Sequence[AgentMessage]) -> dict[str, Any]:
            return {"agent": self.name, "channel": self._channel, **_columns(chunk)}

        def run(conn: _Conn) -> None:
            if len(chunks) == 1:
                conn.execute(self._sql_push, params(chunks[0]))
                return
            with conn.transaction():
                for chunk in chunks:
                    conn.execute(self._sql_push, params(chunk))

        self._run("push", run)

    # -- consumer ------------------------------------------------------------------
    def _claim_once(
        self, lanes: list[str], limit: int, lease_seconds: float, consumer: str
    ) -> tuple[list[Claimed], bool]:
        """One claim statement: the well-formed claims, and whether malformed rows were
        moved to the dead letters (a second statement, run only then)."""
        token = secrets.randbits(63)
        args = {
            "agent": self.name,
            "lanes": lanes,
            "limit": limit,
            "lease": float(lease_seconds),
            "token": token,
            "consumer": consumer,
        }
        rows = self._run("claim", lambda conn: conn.execute(self._sql_claim, args).fetchall())
        claimed, malformed = claims_from_rows(rows, lambda seq: (seq, token))
        return claimed, bool(malformed) and bury_malformed(self, malformed, self._bury)

    def _next_in(self, lanes: list[str]) -> float | None:
        """Seconds until the next job in ``lanes`` becomes claimable (due or lease expiry)."""
        args = {"agent": self.name, "lanes": lanes}
        row = self._run("claim", lambda conn: conn.execute(self._sql_next, args).fetchone())
        return None if row is None or row[0] is None else float(row[0])

    def claim(
        self,
        lanes: Sequence[str],
        limit: int,
        *,
        lease_seconds: float,
        consumer: str,
        wait: float = 0.0,
    ) -> list[Claimed]:
        """Claim up to ``limit`` due jobs in one statement; if none is due, wait for a
        NOTIFY (or the next due time, or a one-second re-check) up to ``wait`` seconds."""
        if not lanes or limit <= 0:
            return []
        lanes = list(dict.fromkeys(lanes))
        claimed, removed = self._claim_once(lanes, limit, lease_seconds, consumer)
        again = AGAIN_AFTER_MALFORMED
        while removed and not claimed and again > 0:  # only malformed rows, now gone
            again -= 1
            claimed, removed = self._claim_once(lanes, limit, lease_seconds, consumer)
        if claimed or wait <= 0:
            return claimed
        deadline = time.monotonic() + wait
        listener: _Conn | None = None
        try:
            while True:
                if listener is None:
                    listener = self._listener()  # LISTEN before looking again: no lost wake-up
                claimed, removed = self._claim_once(lanes, limit, lease_seconds, consumer)
                remaining = deadline - time.monotonic()
                if claimed or remaining <= 0:
                    return claimed
                if removed:
                    continue
                next_in = self._next_in(lanes)
                timeout = min(remaining, _RECHECK)
                if next_in is not None:  # a job due (or a lease ending) sooner
                    timeout = min(timeout, max(next_in, _MIN_SLEEP))
                if not self._await(listener, lanes, timeout):
                    self._close_quietly(listener)  # broke while waiting: listen anew
                    listener = None
        finally:
            if listener is not None:
                self._checkin_listener(listener)

    def _listener(self) -> _Conn:
        """A connection LISTENing on this agent's channel, with no stale notifications."""
        while True:
            conn = self._listeners.take()
            if conn is None:
                break
            try:
                for _ in conn.notifies(timeout=0):  # drain what came while it was idle
                    pass
                return conn
            except psycopg.Error:
                self._close_quietly(conn)  # broke while idle: try the next one
        conn = self._connect()
        try:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
        except psycopg.Error as exc:
            self._close_quietly(conn)
            raise AgentError(
                f"PostgreSQL agent {self._where()}: LISTEN failed: {self._clean(exc)}"
            ) from exc
        return conn

    def _checkin_listener(self, conn: _Conn) -> None:
        if self._closed or not self._usable(conn) or not self._listeners.give(conn):
            self._close_quietly(conn)

    def _await(self, conn: _Conn, lanes: list[str], timeout: float) -> bool:
        """Wait up to ``timeout`` for a notification naming one of ``lanes``. False if the
        connection broke (the caller re-checks the table and listens again)."""
        end = time.monotonic() + timeout
        try:
            for notify in conn.notifies(timeout=timeout):
                if notify.payload in lanes or time.monotonic() >= end:
                    break
        except psycopg.Error as exc:
            log.warning(
                "PostgreSQL agent %s: listening connection lost (%s); listening again",
                self._where(),
                self._clean(exc),
            )
            return False
        return True

    @staticmethod
    def _receipts(claims: Sequence[Claimed]) -> dict[str, Any]:
        return {
            "seqs": [int(c.receipt[0]) for c in claims],
            "tokens": [int(c.receipt[1]) for c in claims],
        }

    def ack(self, claims: Sequence[Claimed]) -> None:
        """Delete claimed jobs whose lease is still this claim's (one statement)."""
        if not claims:
            return
        args = self._receipts(claims)
        self._run("ack", lambda conn: conn.execute(self._sql_ack, args))

    def retry(self, items: Sequence[tuple[Claimed, AgentMessage]]) -> None:
        """Replace claimed jobs with new versions and release them (one statement)."""
        if not items:
            return
        check_messages([m for _, m in items])
        args = self._receipts([c for c, _ in items])
        args.update(channel=self._channel, **_columns([m for _, m in items]))
        self._run("retry", lambda conn: conn.execute(self._sql_retry, args))

    def extend(self, claims: Sequence[Claimed], lease_seconds: float) -> None:
        """Push back the lease expiry of claims still held (one statement)."""
        if not claims:
            return
        args = self._receipts(claims)
        args["lease"] = float(lease_seconds)
        self._run("extend", lambda conn: conn.execute(self._sql_extend, args))

    def dead_letter(self, items: Sequence[tuple[Claimed, str]]) -> None:
        """Move claimed jobs to the dead-letter table with their reasons (one statement)."""
        if not items:
            return
        self._bury(items)

    def _bury(self, items: Sequence[tuple[Claimed, str]]) -> None:
        args = self._receipts([c for c, _ in items])
        args.update(_columns([c.message for c, _ in items]))
        args["reasons"] = [storable_reason(r, self.reason_limit_bytes) for _, r in items]
        self._run("dead_letter", lambda conn: conn.execute(self._sql_dead_letter, args))

    # -- dead letters --------------------------------------------------------------
    # Each operation is one statement; requeue is push, then remove (see ``Agent``).
    def dead_letters(
        self, limit: int = 100, *, before: DeadLetter | None = None
    ) -> list[DeadLetter]:
        """The most recent dead letters of this agent, newest first (older than
        ``before`` if given): one query."""
        if limit <= 0:
            return []
        args: dict[str, Any] = {"agent": self.name, "limit": int(limit)}
        query = self._sql_dead_letters
        if before is not None:
            query, args["before"] = self._sql_dead_letters_before, int(before.key)
        return self._dead_rows("dead_letters", query, args)

    def find_dead_letters(self, ids: Sequence[str]) -> list[DeadLetter]:
        """The dead letters of these message ids, newest first (one query)."""
        if not ids:
            return []
        args = {"agent": self.name, "ids": list(ids)}
        return self._dead_rows("find dead letters", self._sql_find_dead, args)

    def remove_dead_letters(self, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
        """Delete these dead letters (by seq) in one statement; return those deleted."""
        if not letters:
            return []
        args = {"agent": self.name, "seqs": [int(d.key) for d in letters]}
        gone = self._dead_rows("remove dead letters", self._sql_remove_dead, args)
        return sorted(gone, key=lambda d: -int(d.key))

    def purge_dead_letters(self, before: float | None = None) -> int:
        """Delete this agent's dead letters, or those older than ``before``; how many."""
        args = {"agent": self.name, "before": None if before is None else float(before)}
        return int(self._run(
            "purge dead letters", lambda conn: conn.execute(self._sql_purge_dead, args).rowcount
        ))

    def _dead_rows(self, what: str, query: str, args: dict[str, Any]) -> list[DeadLetter]:
        rows = self._run(what, lambda conn: conn.execute(query, args).fetchall())
        return [DeadLetter(salvage_message(*r[:5]), str(r[5]), float(r[6]), r[7]) for r in rows]

    # -- inspection ----------------------------------------------------------------

    def scan(self, after: str | None = None, limit: int = 500
             ) -> tuple[list[tuple[str, bytes]], str | None]:
        """A page of held messages, in push order (by ``seq``)."""
        args = {"agent": self.name, "after": int(after or 0), "limit": limit}
        rows = self._run("scan", lambda conn: conn.execute(self._sql_scan, args).fetchall())
        page = [(str(r[1]), bytes(r[2])) for r in rows]
        return page, (str(rows[-1][0]) if len(rows) == limit else None)

    def length(self, bucket: Bucket | None = None) -> int:
        """Jobs held (waiting or claimed) by this agent, in one bucket or in all."""
        args: dict[str, Any] = {"agent": self.name}
        if bucket is None:
            query = self._sql_length
        else:
            query = self._sql_length_bucket
            args = {"agent": self.name, "lane": bucket.lane, "priority": int(bucket.priority)}
        row = self._run("length", lambda conn: conn.execute(query, args).fetchone())
        return 0 if row is None else int(row[0])

    def purge(self) -> int:
        """Delete this agent's jobs and dead letters; return how many jobs were dropped.
        The tables stay (other agents of the namespace may use them)."""
        args = {"agent": self.name}
        row = self._run("purge", lambda conn: conn.execute(self._sql_purge, args).fetchone())
        return 0 if row is None else int(row[0])


def _columns(messages: Sequence[AgentMessage]) -> dict[str, Any]:
    """Messages as the array parameters of the statements that write them."""
    return {
        "ids": [m.id for m in messages],
        "lanes": [m.lane for m in messages],
        "priorities": [int(m.priority) for m in messages],
        "dues": [float(m.due) for m in messages],
        "bodies": [bytes(m.body) for m in messages],
    }
