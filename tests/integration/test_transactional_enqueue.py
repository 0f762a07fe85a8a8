"""Transactional enqueue with real workers: a job written in the caller's transaction on
the master's database runs if and only if the transaction commits, and still runs when the
process dies right after the commit — on SQLite and PostgreSQL masters."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import sqlalchemy.orm

from jobmaster import App, ConfigurationError, JobStatus
from jobmaster.beat import Beat
from jobmaster.outbox import OUTBOX_GRACE
from tests.conftest import Stack

ROOT = Path(__file__).resolve().parents[2]

DIES_AFTER_COMMIT = textwrap.dedent("""
    import os, signal
    import sqlalchemy as sa
    from tests.fixtures.workapp import make_app
    app = make_app()
    engine = sa.create_engine(os.environ["JOBMASTER_MASTER_URL"])
    with engine.begin() as conn:
        handle = app.definition("add").apply(kwargs={"x": 40, "y": 2}, using=conn)
    print(handle.id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # before its push: the outbox has it
""")


@pytest.fixture(params=["sqlite", "redis"])
def stack(request: pytest.FixtureRequest, stack_factory: Callable[..., Stack]) -> Stack:
    return stack_factory(request.param)


def test_commit_runs_rollback_never_exists(stack: Stack) -> None:
    app: App = stack.app()
    app.migrate()
    engine = sa.create_engine(stack.env["JOBMASTER_MASTER_URL"])
    with engine.begin() as conn:
        committed = app.definition("add").apply(kwargs={"x": 1, "y": 2}, using=conn)
    with engine.connect() as conn:
        tx = conn.begin()
        rolled_back = app.definition("add").apply(kwargs={"x": 5, "y": 5}, using=conn)
        tx.rollback()
    stack.worker("-c", "1")
    assert committed.wait(timeout=30).result == 3
    assert app.jobs.history(committed.id)[0].reason == "enqueued in the caller's transaction"
    assert app.jobs.find(rolled_back.id) is None  # never written...
    assert app.agent().length() == 0  # ...and never pushed
    with sa.orm.Session(engine) as session, session.begin():
        in_session = app.definition("add").apply(kwargs={"x": 2, "y": 2}, using=session)
    assert in_session.wait(timeout=30).result == 4
    engine.dispose()


def test_killed_right_after_the_commit_still_runs(stack: Stack) -> None:
    app: App = stack.app()
    app.migrate()
    env = {**os.environ, **stack.env}
    done = subprocess.run([sys.executable, "-c", DIES_AFTER_COMMIT], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == -9, done.stderr
    handle = app.handle(done.stdout.strip())
    assert handle.status() is JobStatus.SCHEDULED  # committed, in the outbox
    stack.worker("-c", "1")
    # beat pushes what the dead process did not, once the outbox's grace has passed
    Beat(app).promote(datetime.now(UTC) + timedelta(seconds=OUTBOX_GRACE + 1))
    assert handle.wait(timeout=30).result == 42


def test_using_is_checked(stack_factory: Callable[..., Stack], tmp_path: Path) -> None:
    stack = stack_factory("sqlite")
    app: App = stack.app()
    app.migrate()
    other = sa.create_engine(f"sqlite:///{tmp_path}/other.db")
    with other.begin() as conn, pytest.raises(ConfigurationError,
                                             match="not to the master's database"):
        app.definition("add").apply(kwargs={"x": 1, "y": 1}, using=conn)
    engine = sa.create_engine(stack.env["JOBMASTER_MASTER_URL"])
    with engine.connect() as conn, pytest.raises(ConfigurationError, match="no transaction"):
        app.definition("add").apply(kwargs={"x": 1, "y": 1}, using=conn)
    with pytest.raises(ConfigurationError, match="takes a SQLAlchemy Connection"):
        app.definition("add").apply(kwargs={"x": 1, "y": 1}, using=object())
    other.dispose()
    engine.dispose()


def test_a_psycopg_connection(stack_factory: Callable[..., Stack]) -> None:
    import psycopg

    stack = stack_factory("redis")
    app: App = stack.app()
    app.migrate()
    dsn = sa.make_url(stack.env["JOBMASTER_MASTER_URL"]).set(drivername="postgresql")
    with psycopg.connect(dsn.render_as_string(hide_password=False)) as conn:
        committed = app.definition("add").apply(kwargs={"x": 20, "y": 1}, using=conn,
                                                metadata={"tenant": "acme"})
        conn.commit()
        rolled_back = app.definition("add").apply(kwargs={"x": 5, "y": 5}, using=conn)
        conn.rollback()
    stack.worker("-c", "1")
    assert committed.wait(timeout=30).result == 21
    assert committed.record().metadata == {"tenant": "acme"}
    assert app.jobs.find(rolled_back.id) is None
    assert app.agent().length() == 0


DJANGO = textwrap.dedent("""
    import os, sys
    import django
    from django.conf import settings
    from django.db import connection, transaction
    from tests.fixtures.workapp import make_app

    settings.configure(DATABASES={"default": dict(zip(
        ("ENGINE", "NAME", "HOST", "PORT", "USER"), sys.argv[1:]))})
    django.setup()
    app = make_app()
    with transaction.atomic():
        committed = app.definition("add").apply(kwargs={"x": 30, "y": 3}, using=connection)
    try:
        with transaction.atomic():
            rolled_back = app.definition("add").apply(kwargs={"x": 1, "y": 1},
                                                      using=connection)
            raise LookupError
    except LookupError:
        pass
    app.flush()
    print(committed.id, rolled_back.id, flush=True)
""")


@pytest.mark.parametrize("name", ["sqlite", "redis"])
def test_a_django_connection(name: str, stack_factory: Callable[..., Stack]) -> None:
    pytest.importorskip("django")
    stack = stack_factory(name)
    app: App = stack.app()
    app.migrate()
    url = sa.make_url(stack.env["JOBMASTER_MASTER_URL"])
    database = (["django.db.backends.sqlite3", url.database or ""] if name == "sqlite" else
                ["django.db.backends.postgresql", url.database or "", url.host or "",
                 str(url.port or 5432), url.username or ""])
    done = subprocess.run([sys.executable, "-c", DJANGO, *database], cwd=ROOT,
                          env={**os.environ, **stack.env}, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    committed, rolled_back = done.stdout.split()
    stack.worker("-c", "1")
    if name == "sqlite":  # the process is gone: beat pushes what it committed
        Beat(app).promote(datetime.now(UTC) + timedelta(seconds=OUTBOX_GRACE + 1))
    assert app.handle(committed).wait(timeout=30).result == 33
    assert app.jobs.find(rolled_back) is None
