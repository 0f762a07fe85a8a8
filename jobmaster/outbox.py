"""Transactional enqueue: ``definition.apply(kwargs=..., using=connection)`` writes the job
into the caller's own transaction, when the master is that very database. The job exists if
and only if the transaction commits.

``using`` is a SQLAlchemy ``Connection`` or ``Session``, a psycopg 3 connection, or a
Django connection (``django.db.connection`` or ``connections[alias]``). The job is
written ``scheduled``, due ``OUTBOX_GRACE`` seconds ahead (an outbox). When the
transaction commits, this process pushes it to its agent at once and marks it ``queued``
(a connection that does not announce its commits is watched: the job is pushed as soon as
the master shows it);
if the process dies between the commit and the push, beat pushes it once its time comes.
A rollback leaves nothing behind, and nothing was pushed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import sqlalchemy as sa

from jobmaster.envelope import Envelope
from jobmaster.exceptions import ConfigurationError
from jobmaster.forking import after_fork
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
    """Write ``env`` as a job row into the transaction of ``using`` and, with a
    ``producer``, push it once that transaction commits (without one, beat pushes it when
    it is due). ``using`` is a SQLAlchemy ``Connection`` or ``Session``, a psycopg
    connection, or a Django connection."""
    target = _target(using)
    if target.where() != _where(app.master.engine.url):
        raise ConfigurationError(
            "using=: that connection is not to the master's database, so the job could not "
            "commit with your transaction; enqueue without using=, or make the master "
            "that database")
    now = utcnow()
    row = job_row(env, JobStatus.SCHEDULED, now)
    if producer is not None:
        row["scheduled_at"] = from_timestamp(time.time() + OUTBOX_GRACE)
    target.insert(jobs, row)
    target.insert(events, event_row(env.id, row["status"], now,
                                    reason="enqueued in the caller's transaction"))
    if producer is not None:
        target.after_commit(lambda: _push(app, producer, env),
                            lambda: _watcher.watch(app, producer, env))


def _push(app: AppResources, producer: _Pushes, env: Envelope) -> None:
    try:
        producer.push([env])
        app.master.mark_promoted([env.id], fence=None)
    except Exception as exc:  # noqa: BLE001 - beat pushes it after the grace
        log.warning("job %s committed but not pushed (%s); beat pushes it within %g s",
                    env.id, exc, OUTBOX_GRACE, extra={"job_id": env.id})


class _Target(Protocol):
    def where(self) -> tuple[Any, ...]: ...

    def insert(self, table: sa.Table, row: dict[str, Any]) -> None: ...

    def after_commit(self, push: Callable[[], None], watch: Callable[[], None]) -> None:
        """Call ``push`` after the commit if the connection says when it commits, else
        ``watch`` now (the job is pushed once the master shows it)."""


def _target(using: Any) -> _Target:
    package = type(using).__module__.split(".")[0]
    if isinstance(using, sa.Connection) or _is_session(using):
        return _SqlAlchemy(using)
    if package == "psycopg":
        return _Psycopg(using)
    if package == "django":
        return _Django(using)
    raise ConfigurationError(
        f"using= takes a SQLAlchemy Connection or Session, a psycopg connection or a "
        f"Django connection on the master's database, not {type(using).__name__}")


class _SqlAlchemy:
    def __init__(self, using: Any) -> None:
        if _is_session(using):
            self.session, self.conn = using, using.connection()
        elif not using.in_transaction():
            raise ConfigurationError("using=: the connection has no transaction open; "
                                     "enqueue inside `with engine.begin() as conn:` or "
                                     "`conn.begin()`, so the job commits with it")
        else:
            self.session, self.conn = None, using

    def where(self) -> tuple[Any, ...]:
        return _where(self.conn.engine.url)

    def insert(self, table: sa.Table, row: dict[str, Any]) -> None:
        self.conn.execute(table.insert(), [row])

    def after_commit(self, push: Callable[[], None], watch: Callable[[], None]) -> None:
        if self.session is not None:
            sa.event.listen(self.session, "after_commit", lambda *_: push(), once=True)
        else:  # a connection's ``commit`` event comes before the commit itself
            sa.event.listen(self.conn, "commit", lambda *_: watch(), once=True)


class _Dbapi:
    """A DB-API connection the caller owns: rows go through its cursor as SQL compiled for
    the master's database, so they land in whatever transaction it has open."""

    dialect: sa.Dialect

    def cursor(self) -> Any:
        raise NotImplementedError

    def insert(self, table: sa.Table, row: dict[str, Any]) -> None:
        dialect = self.dialect
        compiled = table.insert().compile(dialect=dialect, column_keys=list(row))
        values = {}
        for key, value in row.items():
            process = table.c[key].type.dialect_impl(dialect).bind_processor(dialect)
            values[key] = value if process is None else process(value)
        params: Any = values
        if compiled.positiontup is not None:
            params = [values[name] for name in compiled.positiontup]
        cursor = self.cursor()
        try:
            cursor.execute(str(compiled), params)
        finally:
            cursor.close()


class _Psycopg(_Dbapi):
    def __init__(self, conn: Any) -> None:
        import psycopg

        self.conn = conn
        self.dialect = _dialect("postgresql+psycopg://", dbapi=psycopg)

    def where(self) -> tuple[Any, ...]:
        info = self.conn.info
        return ("postgresql", info.host or "localhost", info.port, info.dbname)

    def cursor(self) -> Any:
        return self.conn.cursor()

    def after_commit(self, push: Callable[[], None], watch: Callable[[], None]) -> None:
        watch()  # psycopg says nothing when it commits


class _Django(_Dbapi):
    def __init__(self, conn: Any) -> None:
        from django.db import connections

        self.alias = conn.alias
        self.conn = connections[self.alias]  # the wrapper behind ``django.db.connection``
        # Django's cursors take ``%s`` parameters whatever the database
        self.dialect = _dialect(_DJANGO_URLS.get(self.conn.vendor, "sqlite://"),
                                paramstyle="format")

    def where(self) -> tuple[Any, ...]:
        settings = self.conn.settings_dict
        if self.conn.vendor == "sqlite":
            return ("sqlite", os.path.realpath(str(settings["NAME"])))
        port = int(settings["PORT"]) if settings.get("PORT") else None
        return (_DJANGO_URLS.get(self.conn.vendor, self.conn.vendor).split("+")[0],
                settings.get("HOST") or "localhost", port, settings["NAME"])

    def cursor(self) -> Any:
        return self.conn.cursor()

    def after_commit(self, push: Callable[[], None], watch: Callable[[], None]) -> None:
        from django.db import transaction

        transaction.on_commit(push, using=self.alias)


_DJANGO_URLS = {"postgresql": "postgresql+psycopg://", "mysql": "mysql+pymysql://",
                "sqlite": "sqlite://"}


def _dialect(url: str, **options: Any) -> sa.Dialect:
    """The dialect of ``url``, made without an engine: only its SQL and types are used."""
    cls: Any = sa.make_url(url).get_dialect()
    return cls(**options)  # type: ignore[no-any-return]


def _is_session(value: Any) -> bool:
    """Whether ``value`` is a SQLAlchemy ORM ``Session`` (the ORM is loaded only by those
    who use it)."""
    if not type(value).__module__.startswith("sqlalchemy.orm"):
        return False
    from sqlalchemy.orm import Session

    return isinstance(value, Session)


def _where(url: sa.URL) -> tuple[Any, ...]:
    if url.get_backend_name() == "sqlite":
        return ("sqlite", os.path.realpath(url.database or ""))
    return (url.get_backend_name(), url.host or "localhost", url.port, url.database)


class _Watcher:
    """Pushes committed jobs of connections that do not say when they commit: one thread
    asks the master, every ``_WATCH_EVERY`` seconds, which of the jobs it waits for it now
    shows, and pushes those. A job the master never shows (its transaction rolled back)
    is forgotten after ``OUTBOX_GRACE``; one committed later than that is beat's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, tuple[AppResources, _Pushes, Envelope, float]] = {}
        self._thread: threading.Thread | None = None
        after_fork(self, _Watcher._forget)

    def watch(self, app: AppResources, producer: _Pushes, env: Envelope) -> None:
        with self._lock:
            self._waiting[env.id] = (app, producer, env, time.monotonic() + OUTBOX_GRACE)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="jobmaster-outbox")
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(_WATCH_EVERY)
            with self._lock:
                now = time.monotonic()
                for job_id in [i for i, w in self._waiting.items() if w[3] < now]:
                    del self._waiting[job_id]
                if not self._waiting:
                    self._thread = None
                    return
                waiting = dict(self._waiting)
            by_app: dict[int, list[str]] = {}
            for job_id, (app, *_rest) in waiting.items():
                by_app.setdefault(id(app), []).append(job_id)
            for ids in by_app.values():
                app = waiting[ids[0]][0]
                try:
                    shown = app.master.job_statuses(ids)
                except Exception as exc:  # noqa: BLE001 - asked again; beat is the backstop
                    log.warning("outbox: could not read the master: %s", exc)
                    continue
                for job_id in shown:
                    with self._lock:
                        self._waiting.pop(job_id, None)
                    _, producer, env, _ = waiting[job_id]
                    _push(app, producer, env)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._waiting, self._thread = {}, None


_WATCH_EVERY = 0.02
_watcher = _Watcher()
