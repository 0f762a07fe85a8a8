"""A lock held by a database session: PostgreSQL's advisory locks, MySQL's ``GET_LOCK``.

The database releases it the moment the holder's connection ends, kill -9 and lost
machines included, so a standby learns within one poll that the holder is gone; a lease
would make it wait for the lease to expire. Beat uses one to hand over leadership in well
under a second, and still fences every write on its lease's epoch.
"""

from __future__ import annotations

import logging
import zlib
from typing import Any

import sqlalchemy as sa

from jobmaster.forking import after_fork

log = logging.getLogger("jobmaster.beat")


class SessionLock:
    """One named lock on its own connection. Not thread-safe: one beat uses it."""

    def __init__(self, engine: sa.Engine, name: str) -> None:
        self.engine = engine
        self.name = name
        self.dialect = engine.dialect.name
        self._conn: sa.Connection | None = None
        after_fork(self, SessionLock._forget)

    @property
    def held(self) -> bool:
        """Whether this process believes it holds the lock (``alive`` checks it)."""
        return self._conn is not None

    def try_acquire(self) -> bool:
        """Take the lock if free; ``True`` if this session holds it now."""
        if self._conn is not None:
            return True
        conn = self.engine.connect()
        try:
            got = bool(conn.execute(*self._take()).scalar())
            conn.commit()  # leave no transaction open on the lock's connection
        except Exception:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def alive(self) -> bool:
        """Whether the lock's connection still answers (the lock is lost with it)."""
        if self._conn is None:
            return False
        try:
            self._conn.execute(sa.text("SELECT 1")).scalar()
            self._conn.commit()
            return True
        except Exception as exc:  # noqa: BLE001 - a dead connection is the answer
            log.warning("the beat lock's connection failed (%s): leadership is lost",
                        type(exc).__name__)
            self._drop()
            return False

    def release(self) -> None:
        """Give the lock up (closing its connection releases it in any case)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute(*self._give())
            conn.commit()
        except Exception:  # noqa: BLE001, S110 - closing below releases it anyway
            pass
        finally:
            conn.close()

    def _take(self) -> tuple[Any, dict[str, Any]]:
        if self.dialect == "postgresql":
            return sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key()}
        return sa.text("SELECT GET_LOCK(:name, 0)"), {"name": self._mysql_name()}

    def _give(self) -> tuple[Any, dict[str, Any]]:
        if self.dialect == "postgresql":
            return sa.text("SELECT pg_advisory_unlock(:key)"), {"key": self._key()}
        return sa.text("SELECT RELEASE_LOCK(:name)"), {"name": self._mysql_name()}

    def _key(self) -> int:
        """A signed 64-bit key for the name (advisory locks are numbered)."""
        value = zlib.crc32(self.name.encode()) << 32 | zlib.adler32(self.name.encode())
        return value - (1 << 64) if value >= 1 << 63 else value

    def _mysql_name(self) -> str:
        return self.name if len(self.name) <= 64 else f"jm:{self._key():x}"

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()
            except Exception:  # noqa: BLE001, S110 - it is gone either way
                pass

    def _forget(self) -> None:
        self._conn = None  # the parent's connection and lock are the parent's


def session_lock(engine: sa.Engine, name: str) -> SessionLock | None:
    """A session lock on ``engine``'s database, or ``None`` where there is none (SQLite:
    one machine, where the lease is enough)."""
    if engine.dialect.name in ("postgresql", "mysql"):
        return SessionLock(engine, name)
    return None


__all__ = ["SessionLock", "session_lock"]
