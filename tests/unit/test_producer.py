"""The producer's save-pending flush: one row the master refuses never holds up the rest."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
import sqlalchemy as sa

from jobmaster import App
from jobmaster.envelope import Envelope
from jobmaster.master.repository import utcnow
from jobmaster.producer import _FORCE_AFTER


@pytest.fixture
def app(tmp_path: Path) -> App:
    app = App("p", master=f"sqlite:///{tmp_path}/m.db", agents={"main": f"memory://{tmp_path}"},
              master_sync_seconds=3600)

    @app.job(definition_id="add")
    def add(x: int, y: int) -> int:
        return x + y

    return app


def _unstorable(app: App) -> Envelope:
    """An envelope whose row breaks a NOT NULL column of the master."""
    env = app.producer.build("add", {"x": 1, "y": 1},
                             app.producer.options(app.definition("add").options,
                                                  app.definition("add").options, 0.0),
                             now=1.0, due=1.0)
    return dataclasses.replace(env, options=dataclasses.replace(env.options, lane=None))


def _ids(app: App) -> set[str]:
    with app.master.engine.connect() as conn:
        return {r[0] for r in conn.execute(sa.text("SELECT id FROM jobmaster_jobs"))}


def test_a_refused_row_is_set_aside_and_the_others_are_written(
        app: App, caplog: pytest.LogCaptureFixture) -> None:
    good = [app.definition("add").delay(x=i, y=i).id for i in range(3)]
    bad = _unstorable(app)
    app.producer._pending.insert(1, (bad, utcnow()))
    caplog.set_level(logging.ERROR)
    assert app.flush() == 3
    assert _ids(app) == set(good)
    assert f"the master refused the record of job {bad.id}" in caplog.text
    assert app.flush() == 0  # not retried


def test_rows_all_refused_alike_are_kept_then_set_aside(app: App) -> None:
    bad = [_unstorable(app) for _ in range(2)]
    app.producer._pending.extend((e, utcnow()) for e in bad)
    for _ in range(_FORCE_AFTER):
        with pytest.raises(sa.exc.IntegrityError):
            app.flush()  # every row refused alike: the table, not a row, looks wrong
        assert len(app.producer._pending) == 2
    assert app.flush() == 0  # after that, set aside: nothing retried forever
    assert app.producer._pending == []
