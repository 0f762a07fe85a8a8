"""Every read and write of the master database, as named operations.

Nothing else in jobmaster issues SQL against the master. Writes on the hot path come in
batches: producers insert the jobs they pushed to agents (``insert_jobs``), workers upsert
the state of the jobs they ran (``record``), one statement and one transaction per batch.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.sql.util import ClauseAdapter

from jobmaster.exceptions import ConfigurationError, JobmasterError, MasterUnreachableError
from jobmaster.fencing import Holder
from jobmaster.forking import after_fork
from jobmaster.master import migrations, stats
from jobmaster.master.schema import (
    UTCDateTime,
    attempts,
    events,
    jobs,
    lanes,
    leases,
    schedules,
    workers,
)
from jobmaster.master.schema import definitions as registry
from jobmaster.master.timestamps import from_timestamp as from_timestamp  # re-exported
from jobmaster.master.timestamps import utcnow as utcnow  # re-exported
from jobmaster.models import FINAL_STATUSES, JobStatus
from jobmaster.ratelimit import reserve

COUNT_BUDGET_MS = 40
"""How long ``count_matching_jobs(exact=False)`` counts on PostgreSQL before it answers
with the planner's estimate."""
METADATA_BUDGET_MS = 40
"""How long a metadata page on PostgreSQL is read through the GIN index before jobmaster
takes the value for a common one and walks the newest jobs instead."""
_MIGRATION_LOCK = 0x6A6F626D  # "jobm": the advisory lock key of migrations

# Engines created before a fork stay referenced so the child never closes them.
_ORPHANS: list[Engine] = []

# Columns a worker's record overwrites when the job row already exists.
_RECORDED = (
    "status", "started_at", "finished_at", "worker", "error_type", "error_message",
    "error_traceback", "result", "scheduled_at", "updated_at", "progress",
    "progress_message",
)

_FINAL = [s.value for s in FINAL_STATUSES]

log = logging.getLogger("jobmaster")


def normalise_url(url: str) -> str:
    """The SQLAlchemy URL for a master URL: ``postgresql://`` uses psycopg 3, ``mysql://`` and
    ``mariadb://`` use PyMySQL."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("mysql://") or url.startswith("mariadb://"):
        return "mysql+pymysql://" + url.split("://", 1)[1]
    if url.startswith("mariadb+pymysql://"):
        return "mysql+pymysql://" + url.split("://", 1)[1]
    return url


_META_KINDS: dict[str, dict[str, tuple[str, ...]]] = {  # JSON types, as each database names them
    "postgresql": {"bool": ("boolean",), "number": ("number",), "str": ("string",)},
    "mysql": {"bool": ("BOOLEAN",), "str": ("STRING",),
              "number": ("INTEGER", "UNSIGNED INTEGER", "DOUBLE", "DECIMAL")},
    "sqlite": {"bool": ("true", "false"), "number": ("integer", "real"), "str": ("text",)},
}


def event_row(job_id: str, status: str, at: datetime, attempt: int = 0, *,
              worker: str | None = None, error_type: str | None = None,
              error_message: str | None = None, reason: str | None = None
              ) -> dict[str, Any]:
    """A row of the audit trail (``jobmaster_events``): texts cut to their columns."""
    return {"job_id": job_id, "status": status, "at": at, "attempt": attempt,
            "worker": _clip(worker, 200), "error_type": _clip(error_type, 200),
            "error_message": _clip(error_message, 2000), "reason": _clip(reason, 500)}


def _clip(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    text = text.replace("\x00", "")
    return text if len(text) <= limit else text[: limit - 3] + "..."


_ENQUEUED = "enqueued"
_EVENT_COLUMNS = ("job_id", "status", "at", "attempt", "worker", "error_type",
                  "error_message", "reason")


class Master:
    """The master database of one app: jobs, attempts, schedules, leases, workers."""

    def __init__(self, url: str, *, auto_migrate: bool | None = None) -> None:
        self.url = normalise_url(url)
        self.auto_migrate = self.url.startswith("sqlite") if auto_migrate is None else auto_migrate
        self._engine: Engine | None = None
        self._ready = False
        self._lock = threading.Lock()
        after_fork(self, Master._forget)

    def _forget(self) -> None:
        """In a forked child: the parent's pooled connections stay the parent's (kept
        referenced, never closed here); the child opens its own on first use."""
        if self._engine is not None:
            _ORPHANS.append(self._engine)
            self._engine.dispose(close=False)
        self._engine = None
        self._ready = False
        self._lock = threading.Lock()

    # -- connection ----------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, created on first use (and again after a fork)."""
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self._create_engine()
        return self._engine

    def _create_engine(self) -> Engine:
        try:
            if self.url.startswith("sqlite"):
                return _sqlite_engine(self.url)
            return sa.create_engine(self.url, pool_pre_ping=True, pool_size=5,
                                    max_overflow=10)
        except (ImportError, sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
            raise ConfigurationError(
                f"cannot use master URL {_redact(self.url)!r}: {exc}; install the driver "
                "(pip install 'jobmaster[postgres]' or 'jobmaster[mysql]')"
            ) from exc

    @property
    def dialect(self) -> str:
        """``sqlite``, ``postgresql`` or ``mysql``."""
        name = self.engine.dialect.name
        return "mysql" if name == "mariadb" else name

    def dispose(self) -> None:
        """Close every pooled connection (in this process)."""
        if self._engine is not None:
            self._engine.dispose()
        self._engine = None
        self._ready = False

    def _begin(self) -> Any:
        self.ensure_ready()
        return self.engine.begin()

    # -- schema --------------------------------------------------------------------
    def migrate(self) -> str | None:
        """Bring the schema to the newest revision; return the revision it was at before."""
        try:
            with self.engine.connect() as conn:
                if self.dialect == "mysql":  # read what a migrator before us committed
                    conn = conn.execution_options(isolation_level="READ COMMITTED")
                try:
                    with conn.begin():
                        self._migration_lock(conn)  # one migrator at a time; others wait
                        before = migrations.current_revision(conn)
                        if before != migrations.HEAD_REVISION:
                            migrations.upgrade(conn)
                finally:
                    if self.dialect == "mysql":  # a named lock is the session's, kept past
                        self._release_named_lock(conn)  # a failed migration otherwise
        except OperationalError as exc:
            if not self.reachable():
                raise JobmasterError(
                    f"cannot reach the master at {_redact(self.url)}: {exc.orig}") from exc
            hint = ""
            if self.dialect == "mysql" and "already exists" in str(exc.orig):
                hint = (": MySQL runs schema changes outside transactions, so a migration "
                        "stopped half-way left tables behind without recording its revision; "
                        "drop the jobmaster tables it made (an interrupted first migration "
                        "holds no jobs yet) or restore a backup, then run jobmaster migrate "
                        "again")
            raise JobmasterError(f"migrating the master at {_redact(self.url)} failed: "
                                 f"{exc.orig}{hint}") from exc
        self._ready = True
        return before

    @staticmethod
    def _release_named_lock(conn: sa.Connection) -> None:
        """Release MySQL's migration lock; a session that cannot is closed for good (its
        locks go with it) rather than returned to the pool holding it."""
        try:
            conn.execute(sa.text("SELECT RELEASE_LOCK('jobmaster_migrate')"))
            conn.commit()
        except Exception:  # noqa: BLE001 - the session is dropped instead
            conn.invalidate()

    def _migration_lock(self, conn: sa.Connection) -> None:
        """Serialise migrations of one database: several processes starting at once (a
        worker and a producer that both auto-migrate) must not run the same DDL twice.
        PostgreSQL: a transaction-level advisory lock; MySQL: a named lock; SQLite's
        ``BEGIN IMMEDIATE`` already serialises writers."""
        if self.dialect == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        elif self.dialect == "mysql":
            conn.execute(sa.text("SELECT GET_LOCK('jobmaster_migrate', 300)"))

    def wait_ready(self, timeout: float = 60.0, *, who: str = "this process") -> None:
        """``ensure_ready``, waiting up to ``timeout`` seconds for a master that cannot be
        reached yet (restarting, starting with the rest of a deployment): one line when
        it starts waiting, tries every second or two, then the last error."""
        deadline = time.monotonic() + timeout
        delay = 0.25
        while True:
            try:
                self.ensure_ready()
                return
            except MasterUnreachableError as exc:
                if time.monotonic() + delay > deadline:
                    raise
                if delay == 0.25:
                    log.warning("%s waits for the master (up to %.0f s): %s", who, timeout,
                                str(exc).splitlines()[0])
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def ensure_ready(self) -> None:
        """Check (once) that the schema is current, migrating it if the app allows."""
        if self._ready and self._engine is not None:
            return
        try:
            with self.engine.connect() as conn:
                revision = migrations.current_revision(conn)
        except OperationalError as exc:
            if _refused_credentials(exc.orig):  # waiting would not help: say so at once
                raise ConfigurationError(
                    f"the master at {_redact(self.url)} refused the credentials ({exc.orig});"
                    " check the user and password of the master URL") from exc
            raise MasterUnreachableError(
                f"cannot reach the master at {_redact(self.url)}: {exc.orig}"
            ) from exc
        if revision == migrations.HEAD_REVISION:
            self._ready = True
            return
        if self.auto_migrate:
            alembic_log = logging.getLogger("alembic")
            level = alembic_log.level
            alembic_log.setLevel(logging.WARNING)  # a self-migrating master migrates quietly
            try:
                self.migrate()
            finally:
                alembic_log.setLevel(level)
            return
        raise ConfigurationError(
            f"the master at {_redact(self.url)} has "
            + ("no jobmaster schema" if revision is None else f"schema revision {revision}")
            + f" (this jobmaster needs {migrations.HEAD_REVISION}); run: jobmaster migrate -A "
            "<your app>, or App(auto_migrate=True)"
        )

    # -- producer side -------------------------------------------------------------
    def insert_jobs(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert new jobs; a job whose id is already recorded is left as it is."""
        if not rows:
            return
        if self.dialect == "postgresql":
            self._pg_write(rows, "DO NOTHING", _PG_ENQUEUED_EVENTS)
            return
        stmt = self._insert_ignore(jobs)
        with self._begin() as conn:
            conn.execute(stmt, list(rows))
            conn.execute(events.insert(), [
                event_row(r["id"], r["status"], r["created_at"], reason=_ENQUEUED)
                for r in rows])

    def insert_jobs_isolating(self, rows: Sequence[Mapping[str, Any]], *, force: bool = False
                              ) -> list[tuple[Mapping[str, Any], str]]:
        """``insert_jobs``, but a row the master refuses does not block the others: they
        are written, and the refused ones come back with the reason. Raises when the
        master cannot be reached or refuses every row alike (nothing is lost: call again
        later)."""
        refused = self._isolating(
            lambda: self.insert_jobs(rows), lambda: [(r,) for r in rows],
            lambda units: self.insert_jobs([u[0] for u in units]), force=force)
        return [(unit[0], error) for unit, error in refused]

    def _isolating(self, write_all: Callable[[], None], units: Callable[[], Sequence[Any]],
                   write: Callable[[Sequence[Any]], None], *, force: bool
                   ) -> list[tuple[Any, str]]:
        """``write_all()``; when that fails for a reason other than the connection, write
        halves of the ``units()`` until each refused unit stands alone. Returns the refused
        units with their errors (an empty list when all were written)."""
        try:
            write_all()
            return []
        except Exception as exc:  # noqa: BLE001 - classified here
            if not force and (is_transient(exc) or not self.reachable()):
                raise
            first = exc
        parts = units()
        if len(parts) <= 1:
            return [(part, describe_error(first)) for part in parts]
        refused = self._halves(write, parts)
        if not force and len(refused) == len(parts):
            # not one row went in: the table itself is the problem (a migration not run,
            # a permission), not a row; refusing them all would lose nothing but history
            raise first
        return refused

    def _halves(self, write: Callable[[Sequence[Any]], None], units: Sequence[Any]
                ) -> list[tuple[Any, str]]:
        middle = len(units) // 2
        refused: list[tuple[Any, str]] = []
        for part in (units[:middle], units[middle:]):
            try:
                write(part)
            except Exception as exc:  # noqa: BLE001 - narrowed down below
                refused += [(part[0], describe_error(exc))] if len(part) == 1 else \
                    self._halves(write, part)
        return refused

    def reachable(self) -> bool:
        """Whether the master answers a trivial query now."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - any failure means "not now"
            return False

    def insert_job_unique(self, row: Mapping[str, Any]) -> str | None:
        """Insert a job that has a ``job_key``; if the key is taken, insert nothing and
        return the id of the job holding it."""
        try:
            with self._begin() as conn:
                conn.execute(jobs.insert(), [dict(row)])
                conn.execute(events.insert(), [event_row(
                    row["id"], row["status"], row["created_at"], reason=_ENQUEUED)])
            return None
        except IntegrityError:
            with self.engine.connect() as conn:
                existing = conn.execute(
                    sa.select(jobs.c.id).where(
                        jobs.c.cluster == row["cluster"], jobs.c.job_key == row["job_key"]
                    )
                ).scalar()
            if existing is None:
                raise
            return str(existing)

    def delete_job(self, job_id: str) -> None:
        """Remove a job that was never pushed (a keyed enqueue whose push failed)."""
        with self._begin() as conn:
            conn.execute(events.delete().where(events.c.job_id == job_id))
            conn.execute(jobs.delete().where(jobs.c.id == job_id))

    def _insert_ignore(self, table: sa.Table) -> Any:
        if self.dialect == "postgresql":
            return pg_dialect.insert(table).on_conflict_do_nothing()
        if self.dialect == "sqlite":
            return sqlite_dialect.insert(table).on_conflict_do_nothing()
        return mysql_dialect.insert(table).prefix_with("IGNORE")

    # -- worker side ---------------------------------------------------------------
    def record(
        self,
        rows: Sequence[Mapping[str, Any]],
        attempt_rows: Sequence[Mapping[str, Any]] = (),
        progress_rows: Sequence[Mapping[str, Any]] = (),
        event_rows: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Write what a worker learned, in one transaction (a reader never sees a final
        status without its error history):

        - ``rows``: upsert the state of jobs it ran: insert the whole row if the producer's
          insert has not arrived yet, else update status, timings, outcome and add
          ``attempts`` (the number of starts in this batch) to the count. A job whose
          status is final (succeeded, failed, cancelled) keeps it with its outcome: a
          status never moves backwards, whatever late record of a duplicate run or an
          older attempt arrives; its runs are still counted.
        - ``attempt_rows``: failed, timed-out or lost attempts for the error history.
        - ``progress_rows``: ``id``, ``progress``, ``progress_message`` of running jobs.
        - ``event_rows``: the statuses the jobs went through (``event_row``), for their
          audit trail.

        The per-minute totals (``jobmaster.master.stats``) grow with ``rows`` in the same
        transaction.
        """
        if not rows and not attempt_rows and not progress_rows and not event_rows:
            return
        with self._begin() as conn:
            if rows:
                if self.dialect == "postgresql":
                    # fast path: COPY the changed columns into a session-local staging
                    # table and UPDATE the rows that exist from it; the few rows the
                    # producer has not written yet are then copied whole and inserted
                    cursor = self._pg_stage(conn, rows, _PG_UPDATE_COLUMNS)
                    cursor.execute(_PG_UPDATE_FROM_STAGE)
                    found = {r[0] for r in cursor.fetchall()}
                    missing = [r for r in rows if r["id"] not in found]
                    if missing:
                        cursor.execute("TRUNCATE jobmaster_batch")
                        self._pg_stage(conn, missing, _PG_COLUMNS)
                        # an upsert, not DO NOTHING: the producer's row may have arrived
                        # since the UPDATE, and this record must still win over it
                        cursor.execute(_PG_INSERT_FROM_STAGE + _PG_UPSERT)
                else:
                    conn.execute(self._upsert(), list(rows))
                stats.add(conn, self.dialect, stats.totals(rows))
            if attempt_rows:
                conn.execute(attempts.insert(), list(attempt_rows))
            if event_rows:
                self._add_events(conn, event_rows)
            if progress_rows:
                conn.execute(_PROGRESS, [
                    {"b_id": r["id"], "b_progress": r["progress"],
                     "b_message": r["progress_message"]} for r in progress_rows
                ])

    def record_isolating(
        self,
        rows: Sequence[Mapping[str, Any]],
        attempt_rows: Sequence[Mapping[str, Any]] = (),
        progress_rows: Sequence[Mapping[str, Any]] = (),
        event_rows: Sequence[Mapping[str, Any]] = (),
        *,
        force: bool = False,
    ) -> dict[str, str]:
        """``record``, but the writes of a job the master refuses do not block the other
        jobs': those are written, and the refused job ids come back with the reason.
        Raises when the master cannot be reached, or (unless ``force``) when the failure
        looks transient (a lock timeout...) or refuses every job alike (a schema problem
        rather than a row's): call again later."""
        groups = (rows, attempt_rows, progress_rows, event_rows)

        def by_job() -> list[tuple[list[Any], ...]]:
            units: dict[str, tuple[list[Any], ...]] = {}
            for kind, items in enumerate(groups):
                for item in items:
                    key = item["job_id"] if kind in (1, 3) else item["id"]
                    units.setdefault(key, ([], [], [], []))[kind].append(item)
            return list(units.values())

        def write(part: Sequence[tuple[list[Any], ...]]) -> None:
            self.record(*([r for u in part for r in u[kind]] for kind in range(4)))

        refused = self._isolating(lambda: self.record(*groups), by_job, write, force=force)
        result: dict[str, str] = {}
        for unit, error in refused:
            first = next(items[0] for items in unit if items)
            result[first.get("job_id") or first["id"]] = error
        return result

    def _add_events(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append audit-trail rows (COPY on PostgreSQL)."""
        if self.dialect != "postgresql":
            conn.execute(events.insert(), list(rows))
            return
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor().copy(_PG_COPY_EVENTS) as copy:
            for row in rows:
                at = row["at"]
                if at.tzinfo is not None:
                    at = at.astimezone(UTC).replace(tzinfo=None)
                copy.write_row((row["job_id"], row["status"], at, row["attempt"],
                                row["worker"], row["error_type"], row["error_message"],
                                row["reason"]))

    def _pg_write(self, rows: Sequence[Mapping[str, Any]], on_conflict: str,
                  *then: str) -> None:
        """PostgreSQL fast path of ``insert_jobs``: COPY into the staging table, then one
        ``INSERT ... SELECT ... ON CONFLICT`` (and the statements ``then``)."""
        with self._begin() as conn:
            cursor = self._pg_stage(conn, rows, _PG_COLUMNS)
            cursor.execute(_PG_INSERT_FROM_STAGE + on_conflict)
            for statement in then:
                cursor.execute(statement)

    def _pg_stage(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]],
                  columns: Sequence[tuple[str, str]]) -> Any:
        """COPY ``columns`` of rows into ``pg_temp.jobmaster_batch`` (emptied at commit);
        COPY's row formatting runs in psycopg's C code, unlike per-parameter binding."""
        raw = conn.connection.driver_connection
        assert raw is not None
        cursor = raw.cursor()
        cursor.execute(_PG_STAGE_DDL)
        names = [name for name, _ in columns]
        json_at = [i for i, (_, kind) in enumerate(columns) if kind == "json"]
        time_at = [i for i, (_, kind) in enumerate(columns) if kind == "timestamp"]
        with cursor.copy(f"COPY jobmaster_batch ({', '.join(names)}) FROM STDIN") as copy:
            for row in rows:
                values = [row.get(name) for name in names]
                for i in json_at:
                    if values[i] is not None:
                        values[i] = json.dumps(values[i])
                for i in time_at:
                    value = values[i]
                    if value is not None and value.tzinfo is not None:
                        values[i] = value.astimezone(UTC).replace(tzinfo=None)
                copy.write_row(values)
        return cursor

    def _upsert(self) -> Any:
        stmt: Any
        if self.dialect == "mysql":
            stmt = mysql_dialect.insert(jobs)
            new: Any = stmt.inserted
        else:
            stmt = (pg_dialect if self.dialect == "postgresql" else sqlite_dialect).insert(jobs)
            new = stmt.excluded
        # a job whose status is final keeps its outcome: a late record of a duplicate or
        # an older attempt changes nothing but the count of runs. Literals, not bound
        # parameters: PyMySQL's executemany rewrite cannot format parameters in the ON
        # DUPLICATE KEY UPDATE clause
        keep = jobs.c.status.in_([sa.literal_column(f"'{v}'") for v in _FINAL])
        values: dict[str, Any] = {c: sa.case((keep, jobs.c[c]), else_=new[c])
                                  for c in _RECORDED}
        for c in ("progress", "progress_message"):  # a record without progress keeps it
            values[c] = sa.case((keep, jobs.c[c]), else_=sa.func.coalesce(new[c], jobs.c[c]))
        values["attempts"] = jobs.c.attempts + new.attempts
        if self.dialect == "mysql":
            # MySQL assigns in order, and later expressions see earlier new values: the
            # status that decides whether to keep the others goes last
            values["status"] = values.pop("status")
            return stmt.on_duplicate_key_update(list(values.items()))
        return stmt.on_conflict_do_update(index_elements=[jobs.c.id], set_=values)

    def cancelled_jobs(self, cluster: str, *, since: datetime | None, limit: int = 100_000
                       ) -> list[str]:
        """Ids of cancelled jobs: changed since ``since``, or (``None``) every cancelled job
        that never started, newest first."""
        query = sa.select(jobs.c.id).where(jobs.c.status == JobStatus.CANCELLED.value,
                                           jobs.c.cluster == cluster)
        if since is None:
            query = query.where(jobs.c.started_at.is_(None))
        else:
            query = query.where(jobs.c.updated_at >= since)
        with self._begin() as conn:
            return [str(i) for i in conn.execute(
                query.order_by(jobs.c.updated_at.desc()).limit(limit)).scalars()]

    def _clock_sql(self) -> str | None:
        """The database server's clock as a Unix epoch, in SQL (``None`` on SQLite, whose
        clock is this host's)."""
        return {"postgresql": "SELECT extract(epoch FROM clock_timestamp())::float8",
                "mysql": "SELECT UNIX_TIMESTAMP(NOW(6))"}.get(self.dialect)

    def _clock(self, conn: Any) -> datetime:
        query = self._clock_sql()
        if query is None:
            return datetime.now(UTC)
        return datetime.fromtimestamp(float(conn.execute(sa.text(query)).scalar_one()), UTC)

    def clock(self) -> datetime:
        """The master's time: its database server's clock (this host's on SQLite). Worker
        heartbeats are stamped with it and judged by it, so hosts whose clocks disagree
        still agree on which workers are alive."""
        with self._begin() as conn:
            return self._clock(conn)

    def worker_seen(self, row: Mapping[str, Any]) -> None:
        """Record a worker's heartbeat (insert it the first time), stamped with the
        master's clock (``clock``), not the worker's."""
        values = dict(row)
        with self._begin() as conn:
            values["last_seen"] = self._clock(conn)
            updated = conn.execute(
                workers.update().where(workers.c.id == values["id"]).values(
                    last_seen=values["last_seen"], status=values["status"],
                    processed=values["processed"], running=values.get("running"),
                    pool=values.get("pool"), version=values.get("version"),
                )
            ).rowcount
            if not updated:
                conn.execute(workers.insert(), [values])

    # -- reads and operator actions ------------------------------------------------
    def get_job(self, job_id: str) -> sa.RowMapping | None:
        """One job row, or ``None``."""
        with self._begin() as conn:
            row: sa.RowMapping | None = conn.execute(
                sa.select(jobs).where(jobs.c.id == job_id)
            ).mappings().first()
            return row

    def job_status(self, job_id: str) -> str | None:
        """The status of one job, or ``None`` if the master has no such job."""
        with self._begin() as conn:
            value = conn.execute(sa.select(jobs.c.status).where(jobs.c.id == job_id)).scalar()
        return None if value is None else str(value)

    def job_errors(self, job_id: str) -> list[sa.RowMapping]:
        """The failed attempts of a job, oldest first."""
        with self._begin() as conn:
            return list(
                conn.execute(
                    sa.select(attempts).where(attempts.c.job_id == job_id).order_by(attempts.c.id)
                ).mappings()
            )

    def history(self, job_id: str) -> list[sa.RowMapping]:
        """The audit trail of a job, oldest first."""
        with self._begin() as conn:
            return list(conn.execute(
                sa.select(events).where(events.c.job_id == job_id)
                .order_by(events.c.at, events.c.id)
            ).mappings())

    def list_jobs(
        self,
        *,
        cluster: str,
        status: Sequence[str] | None = None,
        definition_id: str | None = None,
        lane: str | None = None,
        priority: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        worker: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 100,
    ) -> list[sa.RowMapping]:
        """Jobs of a cluster, newest first (``created_at``, then ``id``, descending),
        filtered as ``_job_filters`` says. ``after`` is the ``(created_at, id)`` of the last
        job of the previous page: the page continues past it (keyset paging: every page
        costs the same, and jobs inserted meanwhile neither repeat nor shift rows)."""
        query = sa.select(jobs).where(*self._job_filters(
            cluster=cluster, status=status, definition_id=definition_id, lane=lane,
            priority=priority, metadata=metadata, worker=worker,
            created_after=created_after, created_before=created_before))
        if after is not None:
            at, job_id = after
            if self.dialect == "postgresql":  # a row comparison is one index range there
                query = query.where(sa.tuple_(jobs.c.created_at, jobs.c.id)
                                    < sa.tuple_(sa.literal(at, UTCDateTime), sa.literal(job_id)))
            else:  # MySQL and SQLite: a range on created_at, the tie broken by id
                query = query.where(jobs.c.created_at <= at, sa.or_(
                    jobs.c.created_at < at, jobs.c.id < job_id))
        query = query.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit)
        with self._begin() as conn:
            if self.dialect == "postgresql" and any(
                    v is not None for v in (metadata or {}).values()):
                found = self._pg_rare_first(conn, query)
                if found is not None:
                    return found
            return list(conn.execute(query).mappings())

    def _pg_rare_first(self, conn: sa.Connection, query: sa.Select[Any]
                       ) -> list[sa.RowMapping] | None:
        """A metadata page on PostgreSQL, read as if the value were rare: every match from
        the GIN index, then sorted. PostgreSQL cannot estimate how common a JSON value is,
        so it would walk the newest jobs for a rare one too (a scan of the whole cluster).
        ``None`` when that took over ``METADATA_BUDGET_MS``: the value is common, and
        walking the newest jobs finds a page at once."""
        try:
            with conn.begin_nested():
                conn.execute(sa.text("SET LOCAL enable_indexscan = off"))
                conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
                conn.execute(sa.text(f"SET LOCAL statement_timeout = {METADATA_BUDGET_MS}"))
                rows = list(conn.execute(query).mappings())
                conn.execute(sa.text("RESET enable_indexscan"))
                conn.execute(sa.text("RESET enable_seqscan"))
                conn.execute(sa.text("RESET statement_timeout"))
                return rows
        except OperationalError as exc:
            if "statement timeout" not in str(exc.orig):
                raise
            return None

    def count_matching_jobs(
        self,
        *,
        cluster: str,
        status: Sequence[str] | None = None,
        definition_id: str | None = None,
        lane: str | None = None,
        priority: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        worker: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        exact: bool = True,
    ) -> tuple[int, bool]:
        """How many jobs of a cluster ``list_jobs`` would return with these filters, over
        all its pages, and whether that number is exact. With ``exact=False``, PostgreSQL
        counts for at most ``COUNT_BUDGET_MS`` and then answers with the planner's estimate
        instead (large results of filters no index narrows down)."""
        query = sa.select(sa.func.count()).select_from(jobs).where(*self._job_filters(
            cluster=cluster, status=status, definition_id=definition_id, lane=lane,
            priority=priority, metadata=metadata, worker=worker,
            created_after=created_after, created_before=created_before))
        with self._begin() as conn:
            if exact or self.dialect != "postgresql":
                return int(conn.execute(query).scalar() or 0), True
            try:
                with conn.begin_nested():
                    conn.execute(sa.text(f"SET LOCAL statement_timeout = {COUNT_BUDGET_MS}"))
                    counted = int(conn.execute(query).scalar() or 0)
                    conn.execute(sa.text("SET LOCAL statement_timeout = 0"))
                    return counted, True
            except OperationalError as exc:
                if "statement timeout" not in str(exc.orig):
                    raise
            return self._pg_sampled_count(conn, query), False

    def _pg_sampled_count(self, conn: sa.Connection, query: sa.Select[Any]) -> int:
        """An estimate of ``query``'s count from a sample of about 10,000 jobs' pages
        (``TABLESAMPLE SYSTEM``), scaled up."""
        total = float(conn.execute(sa.text(
            "SELECT reltuples FROM pg_class WHERE oid = 'jobmaster_jobs'::regclass")
        ).scalar() or 0)
        percent = 100.0 if total <= 10_000 else max(10_000 / total * 100, 0.01)
        sample = sa.tablesample(jobs, sa.func.system(percent))
        sampled = conn.execute(ClauseAdapter(sample).traverse(query)).scalar() or 0
        return round(int(sampled) * 100.0 / percent)

    def _job_filters(
        self,
        *,
        cluster: str,
        status: Sequence[str] | None,
        definition_id: str | None,
        lane: str | None,
        priority: int | None,
        metadata: Mapping[str, Any] | None,
        worker: str | None,
        created_after: datetime | None,
        created_before: datetime | None,
    ) -> list[sa.ColumnElement[bool]]:
        """The conditions of ``list_jobs`` and ``count_matching_jobs``: one of the statuses,
        equal definition, lane, priority and worker, ``created_after <= created_at <
        created_before``, and each metadata ``key: value`` matching."""
        where: list[sa.ColumnElement[bool]] = [jobs.c.cluster == cluster]
        if status:
            statuses = list(status)
            where.append(jobs.c.status == statuses[0] if len(statuses) == 1
                         else jobs.c.status.in_(statuses))
        if definition_id is not None:
            where.append(jobs.c.definition_id == definition_id)
        if lane is not None:
            where.append(jobs.c.lane == lane)
        if priority is not None:
            where.append(jobs.c.priority == priority)
        if worker is not None:
            where.append(jobs.c.worker == worker)
        if created_after is not None:
            where.append(jobs.c.created_at >= created_after)
        if created_before is not None:
            where.append(jobs.c.created_at < created_before)
        wanted = dict(metadata or {})
        if self.dialect == "postgresql":
            # one containment test answered by the GIN index on meta::jsonb (migration
            # 0007); jsonb compares by JSON type, so 0 never matches "0" nor false
            present = {k: v for k, v in wanted.items() if v is not None}
            if present:
                document = sa.cast(jobs.c.meta, JSONB)
                where.append(document.op("@>")(
                    sa.cast(sa.literal(json.dumps(present), sa.Text), JSONB)))
                where.append(document != sa.text("'{}'::jsonb"))  # the index's predicate
            wanted = {k: v for k, v in wanted.items() if v is None}
        for key, value in wanted.items():
            field = jobs.c.meta[key]
            if value is None:  # JSON null (or no such key), never the string "None"
                missing = field.as_string().is_(None)
                if self.dialect == "mysql":
                    missing = sa.or_(missing, sa.func.json_type(field) == "NULL")
                where.append(missing)
            else:
                where.append(self._meta_equals(key, value))
        return where

    def _meta_equals(self, key: str, value: Any) -> sa.ColumnElement[bool]:
        """``meta[key] == value``, true only for a stored value of the same JSON type: the
        number 0 never matches the string "abc" nor ``false``, and a job whose value is a
        string never makes a numeric filter fail (values are cast only once their type is
        known to fit)."""
        field = jobs.c.meta[key]
        path = '$."' + key + '"'  # as SQLAlchemy renders meta[key] for SQLite and MySQL
        if self.dialect == "postgresql":
            kind = sa.func.json_typeof(field)
        elif self.dialect == "mysql":
            kind = sa.func.json_type(sa.func.json_extract(jobs.c.meta, path))
        else:
            kind = sa.func.json_type(jobs.c.meta, path)
        compare: sa.ColumnElement[bool]
        if isinstance(value, bool):
            group, compare = "bool", field.as_boolean() == value
        elif isinstance(value, int | float):
            group = "number"
            if self.dialect == "postgresql":
                compare = sa.cast(field.as_string(), sa.Numeric) == value
            else:  # the stored number itself: no cast to a narrower type
                number = sa.Integer if isinstance(value, int) else sa.Float
                compare = sa.func.json_extract(jobs.c.meta, path, type_=number) == value
        else:
            group, compare = "str", field.as_string() == str(value)
        kinds = _META_KINDS.get(self.dialect, _META_KINDS["sqlite"])[group]
        return sa.case((kind.in_(kinds), compare), else_=sa.false())

    def count_jobs(self, *, cluster: str) -> dict[str, int]:
        """Number of jobs per status in a cluster."""
        with self._begin() as conn:
            rows = conn.execute(
                sa.select(jobs.c.status, sa.func.count())
                .where(jobs.c.cluster == cluster)
                .group_by(jobs.c.status)
            )
            return {str(s): int(n) for s, n in rows}

    def cancel_job(self, job_id: str) -> str | None:
        """Mark a job cancelled unless it already finished. Returns its status afterwards,
        or ``None`` if there is no such job."""
        now = utcnow()
        with self._begin() as conn:
            if conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.status.not_in(_FINAL))
                .values(status=JobStatus.CANCELLED.value, finished_at=now, updated_at=now)
            ).rowcount:
                self._log_status(conn, [job_id], JobStatus.CANCELLED, "cancelled by request")
            value = conn.execute(sa.select(jobs.c.status).where(jobs.c.id == job_id)).scalar()
        return None if value is None else str(value)

    def requeue_job(self, job_id: str, *, due: datetime, reason: str = "retried by request"
                    ) -> sa.RowMapping | None:
        """Put a finished job back to ``queued`` for another run (``app.jobs.retry``, a
        requeued dead letter), ``reason`` in its audit trail; return its row, or ``None``
        if it does not exist."""
        now = utcnow()
        with self._begin() as conn:
            conn.execute(
                jobs.update().where(jobs.c.id == job_id).values(
                    status=JobStatus.QUEUED.value, scheduled_at=due, finished_at=None,
                    updated_at=now, error_type=None, error_message=None,
                    error_traceback=None, result=None,
                )
            )
            self._log_status(conn, [job_id], JobStatus.QUEUED, reason)
            row: sa.RowMapping | None = conn.execute(
                sa.select(jobs).where(jobs.c.id == job_id)
            ).mappings().first()
            return row

    def list_workers(self, *, cluster: str) -> list[sa.RowMapping]:
        """Workers of a cluster, most recently seen first."""
        with self._begin() as conn:
            return list(
                conn.execute(
                    sa.select(workers).where(workers.c.cluster == cluster)
                    .order_by(workers.c.last_seen.desc())
                ).mappings()
            )

    # -- leadership (beat) -----------------------------------------------------------------
    def acquire_lease(self, name: str, holder: str, ttl: float, *, take_over: bool = False
                      ) -> int | None:
        """Take or renew the named lease for ``ttl`` seconds. Returns the fencing epoch if
        ``holder`` holds it now, ``None`` if someone else does. Taking over an expired
        lease (or a fresh one) bumps the epoch, so writes fenced on an older epoch fail.
        ``take_over=True`` takes it even from a live holder (one that is known gone: its
        session lock was released)."""
        now = utcnow()
        until = now + timedelta(seconds=ttl)
        with self._begin() as conn:
            renewed = conn.execute(
                leases.update()
                .where(leases.c.name == name, leases.c.holder == holder,
                       leases.c.expires_at > now)
                .values(expires_at=until)
            ).rowcount
            if not renewed:
                free = sa.true() if take_over else leases.c.expires_at <= now
                taken = conn.execute(
                    leases.update()
                    .where(leases.c.name == name, free)
                    .values(holder=holder, epoch=leases.c.epoch + 1, expires_at=until)
                ).rowcount
                if not taken:
                    exists = conn.execute(
                        sa.select(leases.c.name).where(leases.c.name == name)
                    ).first()
                    if exists is not None:
                        return None
                    try:
                        with conn.begin_nested():
                            conn.execute(leases.insert().values(
                                name=name, holder=holder, epoch=1, expires_at=until))
                    except IntegrityError:
                        return None
            epoch = conn.execute(
                sa.select(leases.c.epoch).where(leases.c.name == name,
                                                 leases.c.holder == holder)
            ).scalar()
        return None if epoch is None else int(epoch)

    def reserve_slots(self, name: str, count: int, interval: float) -> list[float]:
        """Start times (Unix) for ``count`` jobs of the rate limit ``name``, ``interval``
        seconds apart after those reserved before, across every worker (one row of
        ``jobmaster_leases`` per limit keeps its next free slot)."""
        for _ in range(3):
            now = time.time()
            with self._begin() as conn:
                row = conn.execute(sa.select(leases.c.expires_at)
                                   .where(leases.c.name == name).with_for_update()).first()
                stored = None if row is None else row[0].timestamp()
                slots, following = reserve(stored, now, count, interval)
                until = from_timestamp(following)
                if row is not None:
                    conn.execute(leases.update().where(leases.c.name == name)
                                 .values(expires_at=until))
                    return slots
                try:
                    with conn.begin_nested():
                        conn.execute(leases.insert().values(
                            name=name, holder="rate-limit", epoch=0, expires_at=until))
                    return slots
                except IntegrityError:  # another worker made it first: take turns after it
                    pass
        raise JobmasterError(f"could not reserve slots of rate limit {name!r}")

    def release_lease(self, name: str, holder: str, epoch: int) -> None:
        """Give up a lease now (so another holder takes over at once)."""
        with self._begin() as conn:
            conn.execute(
                leases.update()
                .where(leases.c.name == name, leases.c.holder == holder, leases.c.epoch == epoch)
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )

    def lease_holder(self, name: str) -> tuple[str | None, int, datetime] | None:
        """(holder, epoch, expires_at) of a lease, or ``None``."""
        with self._begin() as conn:
            row = conn.execute(
                sa.select(leases.c.holder, leases.c.epoch, leases.c.expires_at)
                .where(leases.c.name == name)
            ).first()
        return None if row is None else (row[0], int(row[1]), row[2])

    def _fence(self, conn: sa.Connection, fence: Fence | None) -> None:
        """Check, inside a write's transaction, that the writer still holds its lease at
        its epoch; the row lock taken here keeps a takeover out until the commit."""
        if fence is None:
            return
        held = conn.execute(
            leases.update()
            .where(leases.c.name == fence.name, leases.c.holder == fence.holder,
                   leases.c.epoch == fence.epoch, leases.c.expires_at > utcnow())
            .values(epoch=leases.c.epoch)
        ).rowcount
        if not held:
            raise LeadershipLost(
                f"lease {fence.name!r} epoch {fence.epoch} is no longer held by {fence.holder}"
            )

    # -- schedules --------------------------------------------------------------------------
    def schedule_by_name(self, cluster: str, name: str) -> sa.RowMapping | None:
        """One schedule, or ``None``."""
        with self._begin() as conn:
            row: sa.RowMapping | None = conn.execute(
                sa.select(schedules).where(schedules.c.cluster == cluster,
                                           schedules.c.name == name)
            ).mappings().first()
            return row

    def list_schedules(self, cluster: str, *, include_inactive: bool = False
                       ) -> list[sa.RowMapping]:
        """Schedules of a cluster, by name."""
        query = sa.select(schedules).where(schedules.c.cluster == cluster)
        if not include_inactive:
            query = query.where(schedules.c.active.is_(True))
        with self._begin() as conn:
            return list(conn.execute(query.order_by(schedules.c.name)).mappings())

    def save_schedule(self, row: Mapping[str, Any]) -> None:
        """Create a schedule, or replace the one with the same cluster and name (keeping its
        id, creation time and last fire)."""
        values = dict(row)
        with self._begin() as conn:
            existing = conn.execute(
                sa.select(schedules.c.id, schedules.c.created_at, schedules.c.last_fire_at)
                .where(schedules.c.cluster == values["cluster"],
                       schedules.c.name == values["name"])
            ).first()
            if existing is None:
                conn.execute(schedules.insert().values(**values))
                return
            values["id"] = existing[0]
            values["created_at"] = existing[1]
            values.setdefault("last_fire_at", existing[2])
            conn.execute(schedules.update().where(schedules.c.id == existing[0])
                         .values(**values))

    def update_schedule(self, cluster: str, name: str, **values: Any) -> bool:
        """Change fields of a schedule; ``False`` if there is none by that name."""
        values["updated_at"] = utcnow()
        with self._begin() as conn:
            return bool(conn.execute(
                schedules.update()
                .where(schedules.c.cluster == cluster, schedules.c.name == name)
                .values(**values)
            ).rowcount)

    def delete_schedule(self, cluster: str, name: str) -> bool:
        """Delete a schedule (its jobs stay); ``False`` if there is none by that name."""
        with self._begin() as conn:
            return bool(conn.execute(
                schedules.delete().where(schedules.c.cluster == cluster,
                                         schedules.c.name == name)
            ).rowcount)

    def deactivate_static_schedules(self, cluster: str, keep: Iterable[str]) -> list[str]:
        """Mark static schedules not in ``keep`` inactive (history stays); return their names."""
        keep = list(keep)
        with self._begin() as conn:
            query = sa.select(schedules.c.name).where(
                schedules.c.cluster == cluster, schedules.c.static.is_(True),
                schedules.c.active.is_(True))
            if keep:
                query = query.where(schedules.c.name.not_in(keep))
            names = [str(n) for n in conn.execute(query).scalars()]
            if names:
                conn.execute(
                    schedules.update()
                    .where(schedules.c.cluster == cluster, schedules.c.name.in_(names))
                    .values(active=False, updated_at=utcnow())
                )
        return names

    def due_schedules(self, cluster: str, now: datetime, limit: int = 500
                      ) -> list[sa.RowMapping]:
        """Active, unpaused schedules whose next fire time has come."""
        with self._begin() as conn:
            return list(conn.execute(
                sa.select(schedules).where(
                    schedules.c.cluster == cluster, schedules.c.active.is_(True),
                    schedules.c.paused.is_(False), schedules.c.next_fire_at <= now,
                ).order_by(schedules.c.next_fire_at).limit(limit)
            ).mappings())

    def next_fire_at(self, cluster: str) -> datetime | None:
        """The earliest next fire time of the cluster's active, unpaused schedules."""
        with self._begin() as conn:
            value = conn.execute(sa.select(sa.func.min(schedules.c.next_fire_at)).where(
                schedules.c.cluster == cluster, schedules.c.active.is_(True),
                schedules.c.paused.is_(False))).scalar()
        if not isinstance(value, datetime):
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value

    def materialise(self, schedule_id: str, rows: Sequence[Mapping[str, Any]], *,
                    next_fire_at: datetime | None, last_fire_at: datetime | None,
                    fence: Fence | None) -> int:
        """Record a schedule's occurrences as ``scheduled`` jobs (an occurrence already
        recorded is skipped by the unique key) and move the schedule on, in one fenced
        transaction. Returns how many jobs were new."""
        inserted = 0
        with self._begin() as conn:
            self._fence(conn, fence)
            for row in rows:
                exists = conn.execute(
                    sa.select(jobs.c.id).where(
                        jobs.c.cluster == row["cluster"],
                        jobs.c.schedule_name == row["schedule_name"],
                        jobs.c.occurrence == row["occurrence"])
                ).first()
                if exists is None:
                    conn.execute(jobs.insert(), [dict(row)])
                    conn.execute(events.insert(), [event_row(
                        row["id"], row["status"], row["created_at"],
                        reason=f"occurrence {row['occurrence'].isoformat()} of schedule "
                               f"{row['schedule_name']!r}")])
                    inserted += 1
            values: dict[str, Any] = {"next_fire_at": next_fire_at, "updated_at": utcnow()}
            if last_fire_at is not None:
                values["last_fire_at"] = last_fire_at
                if rows:
                    values["last_job_id"] = rows[-1]["id"]
            conn.execute(schedules.update().where(schedules.c.id == schedule_id).values(**values))
        return inserted

    # -- per-minute totals and paused lanes ----------------------------------------------------
    def stats_minutes(self, cluster: str, *, since: datetime, until: datetime,
                      definition_id: str | None = None) -> list[stats.Minute]:
        """The cluster's per-minute totals from ``since`` to ``until`` (``stats.minutes``)."""
        with self._begin() as conn:
            return stats.minutes(conn, cluster, since=since, until=until,
                                 definition_id=definition_id)

    def prune_stats(self, before: datetime) -> int:
        """Delete per-minute totals older than ``before``."""
        with self._begin() as conn:
            return stats.prune(conn, before)

    def paused_lanes(self, cluster: str) -> set[str]:
        """The lanes of ``cluster`` an operator paused."""
        with self._begin() as conn:
            return {str(lane) for lane in conn.execute(sa.select(lanes.c.lane).where(
                lanes.c.cluster == cluster, lanes.c.paused.is_(True))).scalars()}

    def set_lane_paused(self, cluster: str, lane: str, paused: bool) -> None:
        """Pause or resume ``lane`` of ``cluster``."""
        row = {"cluster": cluster, "lane": lane, "paused": paused, "updated_at": utcnow()}
        with self._begin() as conn:
            changed = conn.execute(lanes.update().where(
                lanes.c.cluster == cluster, lanes.c.lane == lane).values(
                    paused=paused, updated_at=row["updated_at"])).rowcount
            if not changed:
                try:
                    with conn.begin_nested():
                        conn.execute(lanes.insert(), [row])
                except IntegrityError:  # another writer inserted it first: set it again
                    conn.execute(lanes.update().where(
                        lanes.c.cluster == cluster, lanes.c.lane == lane).values(
                            paused=paused, updated_at=row["updated_at"]))

    # -- promotion, reaping, retention (beat) ------------------------------------------------
    def due_scheduled_jobs(self, cluster: str, before: datetime, limit: int
                           ) -> list[sa.RowMapping]:
        """Jobs of a cluster held in the master as ``scheduled``, due before ``before``."""
        with self._begin() as conn:
            return list(conn.execute(
                sa.select(jobs).where(jobs.c.status == JobStatus.SCHEDULED.value,
                                      jobs.c.scheduled_at <= before,
                                      jobs.c.cluster == cluster)
                .order_by(jobs.c.scheduled_at).limit(limit)
            ).mappings())

    def mark_promoted(self, ids: Sequence[str], *, fence: Fence | None) -> int:
        """``scheduled`` → ``queued`` for jobs just pushed to their agents."""
        if not ids:
            return 0
        count = 0
        with self._begin() as conn:
            self._fence(conn, fence)
            for start in range(0, len(ids), 1000):
                chunk = list(ids[start : start + 1000])
                count += conn.execute(
                    jobs.update()
                    .where(jobs.c.id.in_(chunk), jobs.c.status == JobStatus.SCHEDULED.value)
                    .values(status=JobStatus.QUEUED.value, updated_at=utcnow())
                ).rowcount
                self._log_status(conn, chunk, JobStatus.QUEUED, "due: pushed to its agent")
        return count

    def _log_status(self, conn: sa.Connection, ids: Sequence[str], status: JobStatus,
                    reason: str, *, with_worker: bool = False) -> None:
        """Add to the audit trail of the jobs ``ids`` that are now in ``status`` (an
        update just moved them there): when, with ``reason``."""
        columns = ["job_id", "status", "at", "attempt", "reason"]
        values: list[Any] = [jobs.c.id, sa.literal(status.value),
                             sa.literal(utcnow(), UTCDateTime()), jobs.c.attempts,
                             sa.literal(_clip(reason, 500))]
        if with_worker:
            columns.append("worker")
            values.append(jobs.c.worker)
        conn.execute(events.insert().from_select(columns, sa.select(*values).where(
            jobs.c.id.in_(list(ids)), jobs.c.status == status.value)))

    def fail_unrunnable(self, items: Sequence[tuple[str, str]], *, fence: Fence | None
                        ) -> int:
        """Mark jobs whose stored record cannot be run ``failed``, with the reason."""
        now = utcnow()
        count = 0
        with self._begin() as conn:
            self._fence(conn, fence)
            for job_id, reason in items:
                changed = conn.execute(
                    jobs.update().where(jobs.c.id == job_id, jobs.c.status.not_in(_FINAL))
                    .values(status=JobStatus.FAILED.value, finished_at=now, updated_at=now,
                            error_type="InvalidJobRecord", error_message=reason[:2000])
                ).rowcount
                if changed:
                    conn.execute(events.insert(), [event_row(
                        job_id, JobStatus.FAILED.value, now, error_type="InvalidJobRecord",
                        error_message=reason, reason="its stored record cannot be run")])
                count += changed
        return count

    def job_statuses(self, ids: Iterable[str]) -> dict[str, str]:
        """Statuses of several jobs."""
        ids = list(ids)
        if not ids:
            return {}
        with self._begin() as conn:
            return {str(i): str(s) for i, s in conn.execute(
                sa.select(jobs.c.id, jobs.c.status).where(jobs.c.id.in_(ids)))}

    def job_holders(self, ids: Iterable[str]) -> dict[str, Holder]:
        """What the master holds for delivered jobs, for ``jobmaster.fencing``: status,
        last worker and that worker's last heartbeat, in one query. A row whose status is
        not one this version knows is left out (its delivery runs)."""
        ids = list(ids)
        if not ids:
            return {}
        query = (sa.select(jobs.c.id, jobs.c.status, jobs.c.worker, workers.c.last_seen)
                 .select_from(jobs.outerjoin(workers, workers.c.id == jobs.c.worker))
                 .where(jobs.c.id.in_(ids)))
        out: dict[str, Holder] = {}
        with self._begin() as conn:
            # heartbeats carry the master's clock: turned into this host's, for the age
            offset = time.time() - self._clock(conn).timestamp()
            for job_id, status, worker, seen in conn.execute(query):
                try:
                    known = JobStatus(status)
                except ValueError:
                    continue
                out[str(job_id)] = Holder(
                    known, None if worker is None else str(worker),
                    seen.timestamp() + offset if isinstance(seen, datetime) else None)
        return out

    def stale_running_jobs(self, cluster: str, seen_before: datetime, limit: int = 1000
                           ) -> list[sa.RowMapping]:
        """Jobs recorded ``running`` on workers not seen since ``seen_before``."""
        dead = sa.select(workers.c.id).where(workers.c.cluster == cluster,
                                             workers.c.last_seen < seen_before)
        with self._begin() as conn:
            return list(conn.execute(
                sa.select(jobs).where(jobs.c.cluster == cluster,
                                      jobs.c.status == JobStatus.RUNNING.value,
                                      jobs.c.worker.in_(dead)).limit(limit)
            ).mappings())

    def requeue_lost(self, ids: Sequence[str], *, fence: Fence | None) -> int:
        """``running`` → ``queued`` for jobs of dead workers that were pushed again."""
        if not ids:
            return 0
        with self._begin() as conn:
            self._fence(conn, fence)
            count = int(conn.execute(
                jobs.update().where(jobs.c.id.in_(list(ids)),
                                    jobs.c.status == JobStatus.RUNNING.value)
                .values(status=JobStatus.QUEUED.value, updated_at=utcnow())
            ).rowcount)
            self._log_status(conn, ids, JobStatus.QUEUED, "recovered: its worker was lost "
                             "(stopped heart-beating); pushed again", with_worker=True)
            return count

    def mark_workers_lost(self, cluster: str, seen_before: datetime) -> int:
        """Workers not seen since ``seen_before`` and not stopped are marked ``lost``."""
        with self._begin() as conn:
            return int(conn.execute(
                workers.update().where(workers.c.cluster == cluster,
                                       workers.c.last_seen < seen_before,
                                       workers.c.status.in_(["running", "stopping"]))
                .values(status="lost")
            ).rowcount)

    def delete_finished(self, cluster: str, before: datetime, limit: int = 1000, *,
                        statuses: Sequence[str] = ()) -> int:
        """Delete up to ``limit`` jobs that finished (in one of ``statuses``, default any
        final status) before ``before``, with their attempt history and audit trail;
        return how many."""
        with self._begin() as conn:
            ids = [str(i) for i in conn.execute(
                sa.select(jobs.c.id).where(jobs.c.cluster == cluster,
                                           jobs.c.status.in_(list(statuses or _FINAL)),
                                           jobs.c.finished_at < before).limit(limit)
            ).scalars()]
            if ids:
                conn.execute(attempts.delete().where(attempts.c.job_id.in_(ids)))
                conn.execute(events.delete().where(events.c.job_id.in_(ids)))
                conn.execute(jobs.delete().where(jobs.c.id.in_(ids)))
        return len(ids)

    def _purge_filter(self, cluster: str, statuses: Sequence[str], before: datetime | None,
                      definition_id: str | None) -> list[sa.ColumnElement[bool]]:
        """Which jobs a purge selects: finished jobs by finish time, others by creation."""
        where = [jobs.c.cluster == cluster, jobs.c.status.in_(list(statuses))]
        if before is not None:
            where.append(sa.func.coalesce(jobs.c.finished_at, jobs.c.created_at) < before)
        if definition_id is not None:
            where.append(jobs.c.definition_id == definition_id)
        return where

    def count_purgeable(self, cluster: str, *, statuses: Sequence[str],
                        before: datetime | None, definition_id: str | None = None) -> int:
        """How many jobs ``purge_jobs`` would delete with these filters."""
        with self._begin() as conn:
            return int(conn.execute(
                sa.select(sa.func.count()).select_from(jobs).where(
                    *self._purge_filter(cluster, statuses, before, definition_id))
            ).scalar() or 0)

    def purge_jobs(self, cluster: str, *, statuses: Sequence[str], before: datetime | None,
                   definition_id: str | None = None, limit: int = 1000) -> int:
        """Delete up to ``limit`` jobs in ``statuses`` (finished, or created if unfinished,
        before ``before``), with their attempt history, in one transaction; return how
        many. Call again until it returns less than ``limit``."""
        with self._begin() as conn:
            ids = [str(i) for i in conn.execute(
                sa.select(jobs.c.id).where(
                    *self._purge_filter(cluster, statuses, before, definition_id)
                ).limit(limit)
            ).scalars()]
            if ids:
                conn.execute(attempts.delete().where(attempts.c.job_id.in_(ids)))
                conn.execute(events.delete().where(events.c.job_id.in_(ids)))
                conn.execute(jobs.delete().where(jobs.c.id.in_(ids)))
        return len(ids)

    def count_finished_since(self, cluster: str, since: datetime) -> dict[str, int]:
        """Jobs of a cluster that finished at or after ``since``, per final status."""
        with self._begin() as conn:
            rows = conn.execute(
                sa.select(jobs.c.status, sa.func.count())
                .where(jobs.c.cluster == cluster, jobs.c.finished_at >= since,
                       jobs.c.status.in_(_FINAL))
                .group_by(jobs.c.status)
            )
            return {str(s): int(n) for s, n in rows}

    def schedule_runs(self, cluster: str, name: str) -> int:
        """How many jobs a schedule made that the master still holds."""
        with self._begin() as conn:
            return int(conn.execute(
                sa.select(sa.func.count()).select_from(jobs).where(
                    jobs.c.cluster == cluster, jobs.c.schedule_name == name)
            ).scalar() or 0)

    def count_scheduled(self, cluster: str) -> int:
        """Jobs of a cluster held in the master as ``scheduled``."""
        with self._begin() as conn:
            return int(conn.execute(
                sa.select(sa.func.count()).select_from(jobs).where(
                    jobs.c.cluster == cluster, jobs.c.status == JobStatus.SCHEDULED.value)
            ).scalar() or 0)

    # -- definitions registry --------------------------------------------------------
    def register_definitions(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert or update (by cluster and definition id) the definitions a worker
        registers, in one statement; a definition registered before keeps its
        ``registered_at`` and takes everything else from the new row."""
        if not rows:
            return
        changing = ("parameters", "options", "lanes", "hostname", "worker", "last_seen")
        stmt: Any
        if self.dialect == "mysql":
            stmt = mysql_dialect.insert(registry)
            stmt = stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in changing})
        else:
            stmt = (pg_dialect if self.dialect == "postgresql" else sqlite_dialect
                    ).insert(registry)
            stmt = stmt.on_conflict_do_update(
                index_elements=[registry.c.cluster, registry.c.definition_id],
                set_={c: stmt.excluded[c] for c in changing})
        with self._begin() as conn:
            conn.execute(stmt, [dict(row) for row in rows])

    def definitions(self, cluster: str) -> list[sa.RowMapping]:
        """The registered definitions of a cluster, by id."""
        with self._begin() as conn:
            return list(conn.execute(
                sa.select(registry).where(registry.c.cluster == cluster)
                .order_by(registry.c.definition_id)
            ).mappings())

    def definition(self, cluster: str, definition_id: str) -> sa.RowMapping | None:
        """One registered definition, or ``None``."""
        with self._begin() as conn:
            row: sa.RowMapping | None = conn.execute(
                sa.select(registry).where(registry.c.cluster == cluster,
                                          registry.c.definition_id == definition_id)
            ).mappings().first()
            return row


def _pg_kind(column: sa.Column[Any]) -> str:
    """The staging-table kind of a ``jobmaster_jobs`` column."""
    sql_type = column.type
    if isinstance(sql_type, UTCDateTime):
        return "timestamp"
    if isinstance(sql_type, sa.JSON):
        return "json"
    if isinstance(sql_type, sa.LargeBinary):
        return "bytea"
    if isinstance(sql_type, sa.SmallInteger):
        return "smallint"
    if isinstance(sql_type, sa.Integer):
        return "integer"
    if isinstance(sql_type, sa.Float):
        return "float"
    return "varchar"


_PG_COLUMNS: list[tuple[str, str]] = [(c.name, _pg_kind(c)) for c in jobs.columns]
_PROGRESS = (
    jobs.update()
    .where(jobs.c.id == sa.bindparam("b_id"))
    .values(progress=sa.bindparam("b_progress"), progress_message=sa.bindparam("b_message"))
)
_PG_NAMES = ", ".join(name for name, _ in _PG_COLUMNS)
_PG_SQL_TYPES = {"varchar": "text", "smallint": "smallint", "integer": "integer",
                 "float": "float8", "bytea": "bytea", "json": "json", "timestamp": "timestamp"}
# a staging table without constraints: a batch may fill only the columns it changes
_PG_STAGE_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS jobmaster_batch ("
    + ", ".join(f"{name} {_PG_SQL_TYPES[kind]}" for name, kind in _PG_COLUMNS)
    + ") ON COMMIT DELETE ROWS"
)
_PG_UPDATE_COLUMNS: list[tuple[str, str]] = [
    (name, kind) for name, kind in _PG_COLUMNS if name == "id" or name == "attempts"
    or name in _RECORDED
]
_PG_ENQUEUED_EVENTS = (
    f"INSERT INTO {events.name} (job_id, status, at, attempt, reason) "
    f"SELECT id, status, created_at, 0, '{_ENQUEUED}' FROM jobmaster_batch"
)
_PG_COPY_EVENTS = f"COPY {events.name} ({', '.join(_EVENT_COLUMNS)}) FROM STDIN"
_PG_INSERT_FROM_STAGE = (
    f"INSERT INTO {jobs.name} ({_PG_NAMES}) SELECT {_PG_NAMES} FROM jobmaster_batch "
    "ON CONFLICT (id) "
)
def _pg_recorded(old: str, new: str) -> str:
    """The SET list of a worker's record on PostgreSQL: a job whose status is final keeps
    its outcome (a late record of a duplicate or an older attempt changes nothing but the
    count of runs); any other takes the record's."""
    final = f"{old}.status IN ({', '.join(repr(v) for v in _FINAL)})"
    sets = []
    for c in _RECORDED:
        value = f"coalesce({new}.{c}, {old}.{c})" if c in ("progress", "progress_message") \
            else f"{new}.{c}"
        sets.append(f"{c} = CASE WHEN {final} THEN {old}.{c} ELSE {value} END")
    return ", ".join(sets) + f", attempts = {old}.attempts + {new}.attempts"


_PG_UPSERT = "DO UPDATE SET " + _pg_recorded(jobs.name, "EXCLUDED")
_PG_UPDATE_FROM_STAGE = (
    f"UPDATE {jobs.name} AS j SET " + _pg_recorded("j", "t")
    + " FROM jobmaster_batch AS t WHERE j.id = t.id RETURNING j.id"
)


def is_transient(exc: BaseException) -> bool:
    """Whether a database error is about the connection or contention (worth retrying
    as it is), rather than about the data written."""
    seen: BaseException | None = exc
    for _ in range(3):
        if seen is None:
            break
        names = {cls.__name__ for cls in type(seen).__mro__}
        if names & {"OperationalError", "InterfaceError", "DisconnectionError",
                    "ConnectionError", "TimeoutError", "OSError"}:
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


def describe_error(exc: BaseException) -> str:
    """A one-line reason for a refused write (no SQL, no parameters: they may hold data)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
    return f"{type(orig).__name__}: {text}"[:500]


class LeadershipLost(JobmasterError):
    """A fenced write found its lease taken over: the writer is no longer the leader."""


@dataclass(frozen=True, slots=True)
class Fence:
    """The lease a leader's writes are conditioned on."""

    name: str
    holder: str
    epoch: int


def _refused_credentials(error: BaseException | None) -> bool:
    """Whether a driver's connection error says the server refused the user or password
    (PostgreSQL SQLSTATE 28000/28P01, MySQL 1045/1698), rather than that it is away."""
    if error is None:
        return False
    if getattr(error, "sqlstate", None) in ("28000", "28P01"):
        return True
    args = getattr(error, "args", ())
    if args and args[0] in (1045, 1698):
        return True
    text = str(error)
    return ("password authentication failed" in text or "Access denied for user" in text
            or ('FATAL:  role "' in text and "does not exist" in text))


def _redact(url: str) -> str:
    from jobmaster.agents.base import redact_url

    return redact_url(url)


def _sqlite_engine(url: str) -> Engine:
    path = url.split("///", 1)[-1].split("?", 1)[0]
    if path and path != ":memory:":
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        for _ in range(200):  # switching a new file to WAL fails at once while another
            try:              # process holds it (no busy wait for that): try again
                cursor.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError:
                time.sleep(0.05)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # IMMEDIATE takes the write lock up front: no deadlock between two writers that
        # both started reading first.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
