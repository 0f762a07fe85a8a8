"""Agent in a MySQL 8 or MariaDB 10.6+ database (``mysql://``, ``mysql+pymysql://``,
``mariadb://``, ``mariadb+pymysql://``), through PyMySQL.

Storage. Two InnoDB tables per namespace, created on first use with ``CREATE TABLE IF NOT
EXISTS``::

    {namespace}_agent_jobs   waiting and claimed jobs; acked jobs are deleted (a small hot table)
    {namespace}_agent_dead   dead letters, newest = highest seq

Every agent of a namespace shares these tables; each row carries its agent's ``name`` in
the ``agent`` column and every statement filters on it. Strings use ``utf8mb4_bin`` so ids
and lanes compare exactly (case matters), and are limited to 191 characters (the indexed
columns ``agent``, ``id``, ``lane``); ``consumer`` to 255. The namespace is folded to lower
case for table names.

Claiming is one short transaction per batch (READ COMMITTED)::

    SELECT seq, ... FROM jobs FORCE INDEX (claim) WHERE agent = ? AND lane = ?
       AND due <= now AND (lease_until IS NULL OR lease_until <= now)
     ORDER BY priority DESC, due, seq LIMIT ? FOR UPDATE SKIP LOCKED;
    UPDATE jobs SET lease_until = now + lease, token = ?, ... WHERE seq IN (...);
    COMMIT

served by the index ``claim (agent, lane, priority DESC, due, seq)``; with several lanes
the SELECT is one such parenthesised query per lane joined by ``UNION ALL`` and ordered
and limited again (a ``lane IN (...)`` scan would sort, and so lock, every due row of the
lanes). Each claim draws a fresh
random 63-bit token; the receipt is ``(seq, token)`` and ack/extend/retry/dead_letter match
both, so a consumer whose lease expired and whose job was claimed again touches nothing (and
an ``AUTO_INCREMENT`` value reused after a server restart cannot be confused with an old
receipt). Times are Unix epochs in ``DOUBLE``; "now" is the database server's clock.

MySQL has no LISTEN/NOTIFY: a ``claim(wait=...)`` polls, every 2 ms at first, backing off
to every 50 ms.

Connections, retries and fork safety come from ``jobmaster.agents.sql.SQLAgent``
(autocommit PyMySQL connections). Claimed rows are checked
(``jobmaster.agents.base.read_message``): a malformed one (a NULL or out-of-range priority,
an empty id, ...) is moved to the dead letters in the claim's own transaction, with the
reason, and the claim's other jobs are returned. Dead-letter reasons are kept to the 64 KiB
of a ``TEXT`` column.

URL query parameters passed to PyMySQL: ``charset``, ``connect_timeout`` (default 5 s,
bounding the TCP connect and the handshake), ``read_timeout`` (default 120 s: how long a
call waits for a silent server), ``write_timeout``, ``unix_socket``, ``ssl_ca``,
``ssl_cert``, ``ssl_key``, ``ssl_verify_cert``, ``ssl_verify_identity``. With ``ssl_ca``
the server's certificate must be signed by that CA (``ssl_verify_cert`` defaults to true
then; ``ssl_verify_cert=false`` only encrypts); ``ssl_verify_identity=true`` also checks
the host name. Without ``ssl_*`` options the certificate is not checked (whether the
connection is encrypted then depends on the PyMySQL version and the server).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import pymysql
import pymysql.cursors
from pymysql.connections import Connection as _Conn

from jobmaster.agents.base import (
    AgentMessage,
    Bucket,
    Capabilities,
    Claimed,
    DeadLetter,
    check_messages,
    poll_claims,
    redact_text,
    redact_url,
    salvage_message,
    storable_reason,
    table_prefix,
)
from jobmaster.agents.sql import Failure, SQLAgent, claims_from_rows
from jobmaster.exceptions import AgentError, ConfigurationError

__all__ = ["MySQLAgent", "mysql_connect_args", "table_prefix"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

_SCHEMES = {"mysql", "mysql+pymysql", "mariadb", "mariadb+pymysql"}
_MAX_KEY = 191  # characters of an indexed string column (agent, id, lane)
_READ_TIMEOUT = 120  # seconds of silence from the server before a call fails
_MAX_STATEMENT = 8 * 1024 * 1024  # bytes per multi-row INSERT (below max_allowed_packet)

# Server error codes meaning the session is gone: the connection must be dropped.
_CONNECTION_LOST = {0, 1053, 1152, 1184, 1927, 2003, 2006, 2013, 2014, 2055, 4031}
# ... and meaning "try the transaction again".
_RETRYABLE = {1205, 1213}  # lock wait timeout, deadlock
_NO_SUCH_TABLE = 1146

_INT_PARAMS = {"connect_timeout", "read_timeout", "write_timeout"}
_STR_PARAMS = {"charset", "unix_socket", "ssl_ca", "ssl_cert", "ssl_key"}
_BOOL_PARAMS = {"ssl_verify_cert", "ssl_verify_identity"}

# The server's clock as a Unix epoch (sessions run with time_zone = '+00:00').
_NOW = "UNIX_TIMESTAMP(NOW(6))"


def mysql_connect_args(url: str) -> dict[str, Any]:
    """PyMySQL ``connect()`` keyword arguments for an agent URL."""
    redacted = redact_url(url)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in _SCHEMES:
        raise ConfigurationError(
            f"{redacted!r} is not a MySQL URL; use mysql://user:password@host:3306/database"
        )
    parts = urlsplit(url)
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise ConfigurationError(
            f"MySQL agent URL {redacted!r} names no database; add it: mysql://host/database"
        )
    try:
        port = parts.port or 3306
    except ValueError as exc:
        raise ConfigurationError(
            f"MySQL agent URL {redacted!r}: {redact_text(str(exc), url)}"
        ) from exc
    args: dict[str, Any] = {
        "host": parts.hostname or "localhost",
        "port": port,
        "user": unquote(parts.username) if parts.username else "root",
        "password": unquote(parts.password) if parts.password else "",
        "database": database,
        "charset": "utf8mb4",
        "connect_timeout": 5,
    }
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _INT_PARAMS:
            try:
                args[key] = int(float(value))
            except ValueError as exc:
                raise ConfigurationError(
                    f"MySQL agent URL {redacted!r}: {key}={value!r} is not a number of seconds"
                ) from exc
        elif key in _STR_PARAMS:
            args[key] = value
        elif key in _BOOL_PARAMS:
            args[key] = value.lower() in {"1", "true", "yes", "on"}
        else:
            known = ", ".join(sorted(_INT_PARAMS | _STR_PARAMS | _BOOL_PARAMS))
            raise ConfigurationError(
                f"MySQL agent URL {redacted!r}: unknown parameter {key!r}; known: {known}"
            )
    if "ssl_ca" in args:  # PyMySQL alone would encrypt without checking the certificate
        args.setdefault("ssl_verify_cert", True)
    args.update(autocommit=True, binary_prefix=True, max_allowed_packet=1 << 30)
    return args


def _marks(n: int) -> str:
    return ", ".join(["%s"] * n)


def _pairs(n: int) -> str:
    return ", ".join(["(%s, %s)"] * n)


class MySQLAgent(SQLAgent[_Conn]):
    """Jobs in MySQL/MariaDB tables, claimed with ``FOR UPDATE SKIP LOCKED``, polled."""

    capabilities = Capabilities(notify=False, delayed=True, durable=True, shared=True)
    backend = "MySQL"
    driver_error = pymysql.MySQLError
    reason_limit_bytes = 65_535  # a TEXT column

    def __init__(self, url: str, *, name: str = "main", namespace: str = "jobmaster") -> None:
        table_prefix(namespace)  # a bad namespace is the first thing to hear about
        if len(name) > _MAX_KEY:
            raise ConfigurationError(
                f"agent name {name[:40]!r}... is longer than {_MAX_KEY} characters"
            )
        self._args = mysql_connect_args(url)
        super().__init__(url, name=name, namespace=namespace)
        self._statement_bytes = _MAX_STATEMENT
        self._build_sql()

    # -- SQL -----------------------------------------------------------------------
    # Table names come from a validated identifier (see ``table_prefix``); values are
    # always bound parameters; ``{n}`` placeholders are filled with ``%s`` lists.
    def _build_sql(self) -> None:
        jobs, dead = self._jobs, self._dead
        text = "VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL"
        self._sql_create = [
            f"""CREATE TABLE IF NOT EXISTS {jobs} (
                    seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                    agent {text},
                    id {text},
                    lane {text},
                    priority INT NOT NULL,
                    due DOUBLE NOT NULL,
                    body LONGBLOB NOT NULL,
                    lease_until DOUBLE NULL,
                    token BIGINT NULL,
                    consumer VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
                    deliveries INT NOT NULL DEFAULT 0,
                    UNIQUE KEY agent_id (agent, id),
                    KEY claim (agent, lane, priority DESC, due, seq)
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin""",
            f"""CREATE TABLE IF NOT EXISTS {dead} (
                    seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                    agent {text},
                    id {text},
                    lane {text},
                    priority INT NOT NULL,
                    due DOUBLE NOT NULL,
                    body LONGBLOB NOT NULL,
                    reason TEXT NOT NULL,
                    at DOUBLE NOT NULL,
                    KEY agent_seq (agent, seq),
                    KEY agent_id (agent, id)
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin""",
        ]
        # a duplicate id is a no-op (unlike INSERT IGNORE, other errors still raise)
        self._sql_push = (
            f"INSERT INTO {jobs} (agent, id, lane, priority, due, body)"  # noqa: S608
            " VALUES (%s, %s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE seq = seq"
        )
        # One lane: an ordered scan of the claim index that stops (and stops locking) after
        # ``limit`` rows. Several lanes: one such scan per lane, merged by UNION ALL; a
        # single ``lane IN (...)`` scan would sort, and so lock, every due row of the lanes.
        self._sql_claim_lane = (
            f"SELECT seq, id, lane, priority, due, body, deliveries, {_NOW} AS now"  # noqa: S608
            f" FROM {jobs} FORCE INDEX (claim) WHERE agent = %s AND lane = %s"
            f" AND due <= {_NOW} AND (lease_until IS NULL OR lease_until <= {_NOW})"
            " ORDER BY priority DESC, due, seq LIMIT %s FOR UPDATE SKIP LOCKED"
        )
        self._sql_lease = (
            f"UPDATE {jobs} SET lease_until = %s, token = %s, consumer = %s,"  # noqa: S608
            " deliveries = deliveries + 1 WHERE seq IN ({seqs})"
        )
        held = "seq IN ({seqs}) AND (seq, token) IN ({pairs})"
        self._sql_ack = f"DELETE FROM {jobs} WHERE {held}"  # noqa: S608
        self._sql_extend = f"UPDATE {jobs} SET lease_until = {_NOW} + %s WHERE {held}"  # noqa: S608
        self._sql_lock_held = f"SELECT seq, deliveries, {_NOW} FROM {jobs} WHERE {held} FOR UPDATE"  # noqa: S608
        self._sql_delete = f"DELETE FROM {jobs} WHERE seq IN ({{seqs}})"  # noqa: S608
        self._sql_reinsert = (
            f"INSERT INTO {jobs} (agent, id, lane, priority, due, body, deliveries)"  # noqa: S608
            " VALUES (%s, %s, %s, %s, %s, %s, %s)"
        )
        self._sql_bury = (
            f"INSERT INTO {dead} (agent, id, lane, priority, due, body, reason, at)"  # noqa: S608
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        )
        cols = "id, lane, priority, due, body, reason, at, seq"
        self._sql_dead_letters = (
            f"SELECT {cols} FROM {dead}"  # noqa: S608 - validated identifier
            " WHERE agent = %s AND seq < %s ORDER BY seq DESC LIMIT %s"
        )
        self._sql_find_dead = (
            f"SELECT {cols} FROM {dead}"  # noqa: S608 - validated identifier
            " WHERE agent = %s AND id IN ({ids}) ORDER BY seq DESC"
        )
        self._sql_lock_dead = (
            f"SELECT {cols} FROM {dead}"  # noqa: S608 - validated identifier
            " WHERE agent = %s AND seq IN ({seqs}) ORDER BY seq DESC FOR UPDATE"
        )
        self._sql_remove_dead = f"DELETE FROM {dead} WHERE agent = %s AND seq IN ({{seqs}})"  # noqa: S608
        self._sql_purge_dead_before = f"DELETE FROM {dead} WHERE agent = %s AND at < %s"  # noqa: S608
        self._sql_length = f"SELECT count(*) FROM {jobs} WHERE agent = %s"  # noqa: S608
        self._sql_scan = (
            f"SELECT seq, id, body FROM {jobs}"  # noqa: S608 - validated identifier
            " WHERE agent = %s AND seq > %s ORDER BY seq LIMIT %s"
        )
        self._sql_length_bucket = (
            f"SELECT count(*) FROM {jobs}"  # noqa: S608 - validated identifier
            " WHERE agent = %s AND lane = %s AND priority = %s"
        )
        self._sql_purge_jobs = f"DELETE FROM {jobs} WHERE agent = %s"  # noqa: S608
        self._sql_purge_dead = f"DELETE FROM {dead} WHERE agent = %s"  # noqa: S608

    # -- what SQLAgent needs ---------------------------------------------------------
    def _open(self) -> _Conn:
        args = dict(self._args)
        read_timeout = args.pop("read_timeout", _READ_TIMEOUT)
        # PyMySQL bounds only the TCP connect by connect_timeout, and the handshake by
        # read_timeout: use the connect timeout for both, then the read timeout.
        conn: _Conn = pymysql.connect(**args, read_timeout=args["connect_timeout"])
        try:
            conn._read_timeout = read_timeout  # applied before the next read
            with conn.cursor() as cur:
                cur.execute("SET time_zone = '+00:00'")
                cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                cur.execute("SELECT @@max_allowed_packet")
                row = cur.fetchone()
        except BaseException:
            self._close_quietly(conn)
            raise
        if row:
            self._statement_bytes = max(64 * 1024, min(_MAX_STATEMENT, int(row[0]) // 2))
        return conn

    def _create_tables(self, conn: _Conn) -> None:
        with conn.cursor() as cur:
            for statement in self._sql_create:
                cur.execute(statement)

    def _failure(self, conn: _Conn, exc: Exception) -> Failure:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else -1
        if not conn.open or code in _CONNECTION_LOST:
            return Failure.LOST
        if code in _RETRYABLE:
            return Failure.RETRY
        if code == _NO_SUCH_TABLE:
            return Failure.NO_TABLE
        return Failure.OTHER

    @staticmethod
    def _usable(conn: _Conn) -> bool:
        return bool(conn.open)

    @staticmethod
    def _close_quietly(conn: _Conn) -> None:
        try:
            if conn.open:
                conn.close()
        except Exception:  # noqa: S110 - a connection we are dropping anyway
            pass

    def _execute(
        self, what: str, operation: Callable[[pymysql.cursors.Cursor], _T], *, tx: bool = False
    ) -> _T:
        """Run ``operation`` on a cursor of a pooled connection (in a transaction if ``tx``);
        ``SQLAgent._run`` retries and reports failures."""

        def run(conn: _Conn) -> _T:
            with conn.cursor() as cur:
                cur.max_stmt_length = self._statement_bytes
                if tx:
                    conn.begin()
                try:
                    result = operation(cur)
                    if tx:
                        conn.commit()
                except BaseException:
                    if tx:
                        self._rollback_quietly(conn)
                    raise
            return result

        return self._run(what, run)

    @staticmethod
    def _rollback_quietly(conn: _Conn) -> None:
        try:
            if conn.open:
                conn.rollback()
        except pymysql.MySQLError:
            pass  # the connection is broken; the caller drops it

    # -- producer ------------------------------------------------------------------
    def push(self, messages: Sequence[AgentMessage]) -> None:
        """Store messages with multi-row INSERTs (one statement per few MiB) in one
        transaction; a duplicate id is left as it is."""
        if not messages:
            return
        check_messages(messages)
        for m in messages:
            if len(m.id) > _MAX_KEY or len(m.lane) > _MAX_KEY:
                raise AgentError(
                    f"MySQL agent {self._where()}: job id {m.id[:40]!r} or lane "
                    f"{m.lane[:40]!r} is longer than {_MAX_KEY} characters; nothing was pushed"
                )
        rows = [
            (self.name, m.id, m.lane, int(m.priority), float(m.due), bytes(m.body))
            for m in messages
        ]
        self._execute(
            "push", lambda cur: cur.executemany(self._sql_push, rows), tx=len(rows) > 1
        )

    # -- consumer ------------------------------------------------------------------
    def _claim_once(
        self, lanes: list[str], limit: int, lease_seconds: float, consumer: str
    ) -> tuple[list[Claimed], bool]:
        """One claim transaction: the well-formed claims, and whether malformed rows were
        moved to the dead letters (in the same transaction)."""
        token = secrets.randbits(63)
        params: list[Any] = []
        for lane in lanes:
            params += [self.name, lane, limit]
        if len(lanes) == 1:
            select = self._sql_claim_lane
        else:
            part = f"({self._sql_claim_lane})"
            select = " UNION ALL ".join([part] * len(lanes))
            select += " ORDER BY priority DESC, due, seq LIMIT %s"
            params.append(limit)

        def run(cur: pymysql.cursors.Cursor) -> tuple[list[Claimed], bool]:
            cur.execute(select, params)
            rows: list[tuple[Any, ...]] = list(cur.fetchall())
            if not rows:
                return [], False
            now = float(rows[0][7])
            seqs = [r[0] for r in rows]
            cur.execute(
                self._sql_lease.format(seqs=_marks(len(seqs))),
                (now + lease_seconds, token, consumer[:255], *seqs),
            )
            claimed, malformed = claims_from_rows(
                (r[:7] for r in rows), lambda seq: (int(seq), token), deliveries_offset=1
            )
            if malformed:
                self._bury_held(cur, malformed, now)
            return claimed, bool(malformed)

        return self._execute("claim", run, tx=True)

    def claim(
        self,
        lanes: Sequence[str],
        limit: int,
        *,
        lease_seconds: float,
        consumer: str,
        wait: float = 0.0,
    ) -> list[Claimed]:
        """Claim up to ``limit`` due jobs in one transaction; if none is due, poll (2 ms
        backing off to 50 ms) up to ``wait`` seconds."""
        if not lanes or limit <= 0:
            return []
        unique = list(dict.fromkeys(lanes))
        return poll_claims(lambda: self._claim_once(unique, limit, lease_seconds, consumer), wait)

    def _held(self, claims: Sequence[Claimed]) -> tuple[dict[str, str], list[int]]:
        """Placeholders and parameters matching rows still held under these receipts."""
        seqs = [int(c.receipt[0]) for c in claims]
        pairs = [int(v) for c in claims for v in (c.receipt[0], c.receipt[1])]
        return {"seqs": _marks(len(seqs)), "pairs": _pairs(len(claims))}, seqs + pairs

    def ack(self, claims: Sequence[Claimed]) -> None:
        """Delete claimed jobs whose lease is still this claim's (one statement)."""
        if not claims:
            return
        marks, params = self._held(claims)
        query = self._sql_ack.format(**marks)
        self._execute("ack", lambda cur: cur.execute(query, params))

    def extend(self, claims: Sequence[Claimed], lease_seconds: float) -> None:
        """Push back the lease expiry of claims still held (one statement)."""
        if not claims:
            return
        marks, params = self._held(claims)
        query = self._sql_extend.format(**marks)
        self._execute("extend", lambda cur: cur.execute(query, (float(lease_seconds), *params)))

    def _lock_held(
        self, cur: pymysql.cursors.Cursor, claims: Sequence[Claimed]
    ) -> tuple[dict[int, int], float]:
        """Lock and delete the rows still held under these receipts: {seq: deliveries},
        server now."""
        marks, params = self._held(claims)
        cur.execute(self._sql_lock_held.format(**marks), params)
        rows = cur.fetchall()
        held = {int(r[0]): int(r[1] or 0) for r in rows}
        now = float(rows[0][2]) if rows else time.time()
        if held:
            cur.execute(self._sql_delete.format(seqs=_marks(len(held))), list(held))
        return held, now

    def retry(self, items: Sequence[tuple[Claimed, AgentMessage]]) -> None:
        """Replace claimed jobs with new versions (a new seq, as if pushed again) and
        release them, in one transaction."""
        if not items:
            return
        check_messages([m for _, m in items])

        def run(cur: pymysql.cursors.Cursor) -> None:
            held, _ = self._lock_held(cur, [c for c, _ in items])
            rows = [
                (self.name, *self._columns(m), held[int(c.receipt[0])])
                for c, m in items
                if int(c.receipt[0]) in held
            ]
            if rows:
                cur.executemany(self._sql_reinsert, rows)

        self._execute("retry", run, tx=True)

    def dead_letter(self, items: Sequence[tuple[Claimed, str]]) -> None:
        """Move claimed jobs to the dead-letter table with their reasons, in one
        transaction."""
        if not items:
            return

        def run(cur: pymysql.cursors.Cursor) -> None:
            held, now = self._lock_held(cur, [c for c, _ in items])
            self._bury(cur, [(c, r) for c, r in items if int(c.receipt[0]) in held], now)

        self._execute("dead_letter", run, tx=True)

    def _bury_held(
        self, cur: pymysql.cursors.Cursor, items: Sequence[tuple[Claimed, str]], now: float
    ) -> None:
        """Move rows this transaction has just claimed (so holds) to the dead letters."""
        seqs = [int(c.receipt[0]) for c, _ in items]
        cur.execute(self._sql_delete.format(seqs=_marks(len(seqs))), seqs)
        self._bury(cur, items, now)

    def _bury(
        self, cur: pymysql.cursors.Cursor, items: Sequence[tuple[Claimed, str]], now: float
    ) -> None:
        """Insert dead letters for claims whose rows are already deleted."""
        rows = [
            (
                self.name,
                *self._columns(c.message),
                storable_reason(reason, self.reason_limit_bytes),
                now,
            )
            for c, reason in items
        ]
        if rows:
            cur.executemany(self._sql_bury, rows)

    @staticmethod
    def _columns(m: AgentMessage) -> tuple[str, str, int, float, bytes]:
        """A message as the values of its columns."""
        return m.id, m.lane, int(m.priority), float(m.due), bytes(m.body)

    # -- dead letters --------------------------------------------------------------
    # Requeue is push, then remove (see ``Agent``). Listing, finding and purging are one
    # statement; removing is one transaction (lock and read the rows, then delete them:
    # MySQL has no DELETE ... RETURNING).
    def dead_letters(
        self, limit: int = 100, *, before: DeadLetter | None = None
    ) -> list[DeadLetter]:
        """The most recent dead letters of this agent, newest first (older than
        ``before`` if given): one query."""
        if limit <= 0:
            return []
        below = 2**63 - 1 if before is None else int(before.key)

        def run(cur: pymysql.cursors.Cursor) -> list[tuple[Any, ...]]:
            cur.execute(self._sql_dead_letters, (self.name, below, int(limit)))
            return list(cur.fetchall())

        return [_dead_letter(r) for r in self._execute("dead_letters", run)]

    def find_dead_letters(self, ids: Sequence[str]) -> list[DeadLetter]:
        """The dead letters of these message ids, newest first (one query)."""
        if not ids:
            return []
        query = self._sql_find_dead.format(ids=_marks(len(ids)))

        def run(cur: pymysql.cursors.Cursor) -> list[tuple[Any, ...]]:
            cur.execute(query, (self.name, *ids))
            return list(cur.fetchall())

        return [_dead_letter(r) for r in self._execute("find dead letters", run)]

    def remove_dead_letters(self, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
        """Delete these dead letters (by seq) in one transaction; return those deleted."""
        if not letters:
            return []
        seqs = [int(d.key) for d in letters]
        lock = self._sql_lock_dead.format(seqs=_marks(len(seqs)))
        delete = self._sql_remove_dead.format(seqs=_marks(len(seqs)))

        def run(cur: pymysql.cursors.Cursor) -> list[tuple[Any, ...]]:
            cur.execute(lock, (self.name, *seqs))
            rows = list(cur.fetchall())
            if rows:
                cur.execute(delete, (self.name, *(r[7] for r in rows)))
            return rows

        return [_dead_letter(r) for r in self._execute("remove dead letters", run, tx=True)]

    def purge_dead_letters(self, before: float | None = None) -> int:
        """Delete this agent's dead letters, or those older than ``before``; how many."""

        def run(cur: pymysql.cursors.Cursor) -> int:
            if before is None:
                return int(cur.execute(self._sql_purge_dead, (self.name,)))
            return int(cur.execute(self._sql_purge_dead_before, (self.name, float(before))))

        return self._execute("purge dead letters", run)

    # -- inspection ----------------------------------------------------------------

    def scan(self, after: str | None = None, limit: int = 500
             ) -> tuple[list[tuple[str, bytes]], str | None]:
        """A page of held messages, in push order (by ``seq``)."""

        def run(cur: pymysql.cursors.Cursor) -> list[tuple[Any, ...]]:
            cur.execute(self._sql_scan, (self.name, int(after or 0), limit))
            return list(cur.fetchall())

        rows = self._execute("scan", run)
        page = [(str(r[1]), bytes(r[2])) for r in rows]
        return page, (str(rows[-1][0]) if len(rows) == limit else None)

    def length(self, bucket: Bucket | None = None) -> int:
        """Jobs held (waiting or claimed) by this agent, in one bucket or in all."""
        params: tuple[Any, ...] = (self.name,)
        query = self._sql_length
        if bucket is not None:
            query = self._sql_length_bucket
            params = (self.name, bucket.lane, int(bucket.priority))

        def run(cur: pymysql.cursors.Cursor) -> int:
            cur.execute(query, params)
            row = cur.fetchone()
            return 0 if row is None else int(row[0])

        return self._execute("length", run)

    def purge(self) -> int:
        """Delete this agent's jobs and dead letters; return how many jobs were dropped.
        The tables stay (other agents of the namespace may use them)."""

        def run(cur: pymysql.cursors.Cursor) -> int:
            count = cur.execute(self._sql_purge_jobs, (self.name,))
            cur.execute(self._sql_purge_dead, (self.name,))
            return int(count)

        return self._execute("purge", run, tx=True)


def _dead_letter(row: Sequence[Any]) -> DeadLetter:
    """A dead letter from a row ``(id, lane, priority, due, body, reason, at, seq)``."""
    return DeadLetter(salvage_message(*row[:5]), str(row[5]), float(row[6]), int(row[7]))
