"""Embedded agent in a SQLite file (``sqlite:///path/to/agent.db``): the default.

One table holds every waiting and claimed job; a claim is one ``UPDATE ... RETURNING`` in
an immediate transaction, so several worker processes on one machine share the file
safely. WAL mode lets producers push while workers claim. Workers poll it (every few
milliseconds while waiting), so it suits one machine, not a cluster.

Claimed rows are checked (``jobmaster.agents.base.read_message``): a row with a text
priority or due time, a blob id, an empty id... is moved to the dead letters in the claim's
own transaction, with the reason, and the claim's other jobs are returned (a row whose due
time is not a number is treated as due, so that it is found). After ``fork`` the child drops
the parent's connections without closing them and opens its own.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from jobmaster.agents.base import (
    Agent,
    AgentMessage,
    Bucket,
    Capabilities,
    Claimed,
    DeadLetter,
    check_messages,
    poll_claims,
    redact_url,
    salvage_message,
    storable_reason,
)
from jobmaster.agents.sql import claims_from_rows
from jobmaster.exceptions import AgentError, ConfigurationError
from jobmaster.forking import after_fork

# Connections opened before a fork stay referenced here so the child never closes them
# (closing a SQLite connection inherited across fork can corrupt the parent's WAL state).
_ORPHANS: list[object] = []


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:///relative.db`` or ``sqlite:////abs.db`` URL."""
    if not url.startswith("sqlite://"):
        raise ConfigurationError(f"{redact_url(url)!r} is not a sqlite:// URL")
    path = url[len("sqlite://") :].split("?", 1)[0]
    if path.startswith("/"):
        path = path[1:]
    if not path or path == ":memory:":
        raise ConfigurationError(
            f"the SQLite agent needs a file, got {redact_url(url)!r}; use sqlite:///agent.db "
            "(or memory:// for an in-process agent)"
        )
    return path


class SQLiteAgent(Agent):
    """Jobs in a local SQLite file, shared by the processes of one machine."""

    capabilities = Capabilities(notify=False, delayed=True, durable=True, shared=False)

    def __init__(self, url: str, *, name: str = "main", namespace: str = "jobmaster") -> None:
        super().__init__(url, name=name, namespace=namespace)
        if not namespace.replace("_", "").isalnum():
            raise ConfigurationError(f"namespace={namespace!r} must be letters, digits and _")
        self.path = sqlite_path(url)
        # tables per agent name too: two named agents on one file never share a queue
        safe = "".join(c if c.isalnum() else "_" for c in name)
        prefix = namespace if name == "main" else f"{namespace}_{safe}"
        self._jobs = f"{prefix}_agent_jobs"
        self._dead = f"{prefix}_agent_dead"
        self._local = threading.local()
        self._created = False
        after_fork(self, SQLiteAgent._forget)

    # -- connections ---------------------------------------------------------------
    def _forget(self) -> None:
        """In a forked child: drop (never close) the parent's connections."""
        _ORPHANS.append(self._local)
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            directory = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(directory, exist_ok=True)
            try:
                conn = sqlite3.connect(
                    self.path, timeout=30.0, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA busy_timeout=30000")
            except sqlite3.Error as exc:
                raise AgentError(f"cannot open the SQLite agent at {self.path!r}: {exc}") from exc
            self._local.conn = conn
            if not self._created:
                self._create(conn)
        return conn

    def _create(self, conn: sqlite3.Connection) -> None:
        conn.executescript(
            f"""
            CREATE TABLE IF NOT EXISTS {self._jobs} (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                lane TEXT NOT NULL,
                priority INTEGER NOT NULL,
                due REAL NOT NULL,
                body BLOB NOT NULL,
                lease_until REAL,
                consumer TEXT,
                deliveries INTEGER NOT NULL DEFAULT 0
            );
            CREATE INDEX IF NOT EXISTS {self._jobs}_claim
                ON {self._jobs} (lane, priority DESC, due, seq);
            CREATE TABLE IF NOT EXISTS {self._dead} (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL,
                lane TEXT NOT NULL,
                priority INTEGER NOT NULL,
                due REAL NOT NULL,
                body BLOB NOT NULL,
                reason TEXT NOT NULL,
                at REAL NOT NULL
            );
            """
        )
        self._created = True

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise AgentError(f"SQLite agent {self.path!r}: {exc}") from exc
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    # -- producer ------------------------------------------------------------------
    def push(self, messages: Sequence[AgentMessage]) -> None:
        """Insert messages in one transaction; ids already held are ignored."""
        if not messages:
            return
        check_messages(messages)
        rows = [(m.id, m.lane, int(m.priority), m.due, m.body) for m in messages]
        with self._tx() as conn:
            conn.executemany(
                f"INSERT OR IGNORE INTO {self._jobs} (id, lane, priority, due, body)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )

    # -- consumer ------------------------------------------------------------------
    def _claim_once(
        self, lanes: Sequence[str], limit: int, lease_seconds: float, consumer: str
    ) -> tuple[list[Claimed], bool]:
        """One claim transaction: the well-formed claims, and whether malformed rows were
        moved to the dead letters (in the same transaction)."""
        now = time.time()
        marks = ",".join("?" * len(lanes))
        with self._tx() as conn:
            rows = conn.execute(
                f"""
                UPDATE {self._jobs}
                   SET lease_until = ?, consumer = ?, deliveries = deliveries + 1
                 WHERE seq IN (
                       SELECT seq FROM {self._jobs}
                        WHERE lane IN ({marks}) AND (due <= ? OR typeof(due) <> 'real')
                          AND (lease_until IS NULL OR lease_until <= ?)
                        ORDER BY priority DESC, due, seq
                        LIMIT ?)
                RETURNING seq, id, lane, priority, due, body, deliveries
                """,
                (now + lease_seconds, consumer, *lanes, now, now, limit),
            ).fetchall()
            claimed, malformed = claims_from_rows(rows, lambda seq: (seq, consumer))
            if malformed:
                self._bury(conn, malformed, now)
        return claimed, bool(malformed)

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
        return poll_claims(lambda: self._claim_once(lanes, limit, lease_seconds, consumer), wait)

    def ack(self, claims: Sequence[Claimed]) -> None:
        """Delete the rows still held under these claims."""
        if not claims:
            return
        with self._tx() as conn:
            conn.executemany(
                f"DELETE FROM {self._jobs} WHERE seq = ? AND consumer = ?",
                [c.receipt for c in claims],
            )

    def retry(self, items: Sequence[tuple[Claimed, AgentMessage]]) -> None:
        """Replace claimed rows with new versions (a new seq, as if pushed again)."""
        if not items:
            return
        check_messages([m for _, m in items])
        with self._tx() as conn:
            for claim, message in items:
                # a new seq puts the job behind others of its priority, like a fresh push
                cur = conn.execute(
                    f"DELETE FROM {self._jobs} WHERE seq = ? AND consumer = ?", claim.receipt
                )
                if cur.rowcount:
                    conn.execute(
                        f"INSERT INTO {self._jobs} (id, lane, priority, due, body, deliveries)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            message.id,
                            message.lane,
                            int(message.priority),
                            message.due,
                            message.body,
                            claim.deliveries,
                        ),
                    )

    def extend(self, claims: Sequence[Claimed], lease_seconds: float) -> None:
        """Push back the lease expiry of the rows still held under these claims."""
        if not claims:
            return
        until = time.time() + lease_seconds
        with self._tx() as conn:
            conn.executemany(
                f"UPDATE {self._jobs} SET lease_until = ? WHERE seq = ? AND consumer = ?",
                [(until, *c.receipt) for c in claims],
            )

    def dead_letter(self, items: Sequence[tuple[Claimed, str]]) -> None:
        """Move claimed jobs to the dead-letter table with their reasons (one transaction)."""
        if not items:
            return
        with self._tx() as conn:
            self._bury(conn, items, time.time())

    def _bury(
        self, conn: sqlite3.Connection, items: Sequence[tuple[Claimed, str]], now: float
    ) -> None:
        """In the caller's transaction: move the rows still held under these claims to the
        dead letters, storing each claim's message (for a malformed row, what could be kept
        of it) and reason."""
        for claim, reason in items:
            cur = conn.execute(
                f"DELETE FROM {self._jobs} WHERE seq = ? AND consumer = ?", claim.receipt
            )
            if cur.rowcount:
                m = claim.message
                conn.execute(
                    f"INSERT INTO {self._dead} (id, lane, priority, due, body, reason, at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (m.id, m.lane, int(m.priority), m.due, m.body,
                     storable_reason(reason, self.reason_limit_bytes), now),
                )

    # -- dead letters --------------------------------------------------------------
    # Requeue is push (one transaction), then remove (another): see the ``Agent`` contract.
    _DEAD_COLUMNS = "id, lane, priority, due, body, reason, at, seq"

    def dead_letters(
        self, limit: int = 100, *, before: DeadLetter | None = None
    ) -> list[DeadLetter]:
        """The most recent dead letters, newest first (older than ``before`` if given)."""
        if limit <= 0:
            return []
        older = "" if before is None else " WHERE seq < ?"
        args = (limit,) if before is None else (int(before.key), limit)
        rows = self._conn().execute(
            f"SELECT {self._DEAD_COLUMNS} FROM {self._dead}{older} ORDER BY seq DESC LIMIT ?",
            args,
        )
        return [_dead_letter(r) for r in rows]

    def find_dead_letters(self, ids: Sequence[str]) -> list[DeadLetter]:
        """The dead letters of these message ids, newest first (one query)."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = self._conn().execute(
            f"SELECT {self._DEAD_COLUMNS} FROM {self._dead} WHERE id IN ({marks})"
            " ORDER BY seq DESC",
            list(ids),
        )
        return [_dead_letter(r) for r in rows]

    def remove_dead_letters(self, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
        """Delete these dead letters (by seq) in one transaction; return those deleted."""
        if not letters:
            return []
        marks = ",".join("?" * len(letters))
        with self._tx() as conn:
            rows = conn.execute(
                f"DELETE FROM {self._dead} WHERE seq IN ({marks}) RETURNING {self._DEAD_COLUMNS}",
                [int(d.key) for d in letters],
            ).fetchall()
        return sorted((_dead_letter(r) for r in rows), key=lambda d: -d.key)

    def purge_dead_letters(self, before: float | None = None) -> int:
        """Delete every dead letter, or those older than ``before``; return how many."""
        with self._tx() as conn:
            if before is None:
                return int(conn.execute(f"DELETE FROM {self._dead}").rowcount)
            return int(conn.execute(f"DELETE FROM {self._dead} WHERE at < ?", (before,)).rowcount)

    # -- inspection ----------------------------------------------------------------

    def scan(self, after: str | None = None, limit: int = 500
             ) -> tuple[list[tuple[str, bytes]], str | None]:
        """A page of held messages, in push order (by ``seq``)."""
        rows = self._conn().execute(
            f"SELECT seq, id, body FROM {self._jobs} WHERE seq > ? ORDER BY seq LIMIT ?",  # noqa: S608
            (int(after or 0), limit)).fetchall()
        page = [(str(r[1]), bytes(r[2])) for r in rows]
        return page, (str(rows[-1][0]) if len(rows) == limit else None)

    def length(self, bucket: Bucket | None = None) -> int:
        """Rows held, waiting or claimed, in one bucket or in all."""
        conn = self._conn()
        if bucket is None:
            row = conn.execute(f"SELECT count(*) FROM {self._jobs}").fetchone()
        else:
            row = conn.execute(
                f"SELECT count(*) FROM {self._jobs} WHERE lane = ? AND priority = ?",
                (bucket.lane, int(bucket.priority)),
            ).fetchone()
        return int(row[0])

    def purge(self) -> int:
        """Delete every row and dead letter of this agent; return how many rows."""
        with self._tx() as conn:
            count = conn.execute(f"DELETE FROM {self._jobs}").rowcount
            conn.execute(f"DELETE FROM {self._dead}")
        return int(count)

    def close(self) -> None:
        """Close this thread's connection (in a forked child, only the child's own)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _dead_letter(row: Sequence[object]) -> DeadLetter:
    """A dead letter from a row ``(id, lane, priority, due, body, reason, at, seq)``."""
    at = row[6]
    return DeadLetter(
        salvage_message(*row[:5]), str(row[5]),
        float(at) if isinstance(at, int | float) else 0.0, row[7],
    )
