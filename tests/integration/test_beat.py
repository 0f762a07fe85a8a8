"""Beat: leadership with fencing, recurring schedules, promotion, reaping, retention."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from jobmaster import App, JobStatus, ScheduleExpressionError, ScheduleNotFoundError
from jobmaster.beat import Beat
from jobmaster.exceptions import ScheduleError
from jobmaster.master.repository import Fence, LeadershipLost
from jobmaster.master.schema import jobs, workers
from tests.conftest import ROOT, Stack, wait_until


def make_app(tmp_path: Path, **options: object) -> App:
    app = App("beat-tests", master=f"sqlite:///{tmp_path}/m.db",
              agents={"main": f"memory://{tmp_path}"}, beat_lease_seconds=5, **options)

    @app.job(definition_id="tick")
    def tick(n: int = 0) -> int:
        return n

    return app


def test_only_one_beat_leads_and_a_successor_bumps_the_epoch(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    first, second = Beat(app, holder="first"), Beat(app, holder="second")
    a = first.tick()
    b = second.tick()
    assert (a.leader, b.leader) == (True, False)
    assert first.tick().epoch == a.epoch  # renewal keeps the epoch
    first._resign()
    b = second.tick()
    assert b.leader and b.epoch == (a.epoch or 0) + 1


def test_a_deposed_leader_cannot_write(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    master = app.master
    old = master.acquire_lease("beat:x", "old", ttl=0.2)
    assert old is not None
    time.sleep(0.3)  # let the lease run out
    new = master.acquire_lease("beat:x", "new", ttl=10)
    assert new == old + 1
    with pytest.raises(LeadershipLost):
        master.mark_promoted(["any"], fence=Fence("beat:x", "old", old))
    assert master.mark_promoted(["any"], fence=Fence("beat:x", "new", new)) == 0


def test_far_future_job_waits_in_the_master_and_is_promoted_when_due(tmp_path: Path) -> None:
    app = make_app(tmp_path, agent_horizon=60)
    handle = app.definition("tick").apply_after(timedelta(hours=2), n=1)
    soon = app.definition("tick").apply_after(timedelta(seconds=30), n=2)
    assert handle.status() is JobStatus.SCHEDULED
    assert app.agent().length() == 1  # only the near one
    beat = Beat(app)
    assert beat.tick().promoted == 0
    report = beat.tick(now=datetime.now(UTC) + timedelta(hours=2))
    assert report.promoted == 1
    assert handle.status() is JobStatus.QUEUED
    assert app.agent().length() == 2
    assert soon.status() is JobStatus.QUEUED


def test_dynamic_schedule_lifecycle(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    tick = app.definition("tick")
    created = tick.recurring("every 5 minutes", kwargs={"n": 5}, name="five", lane="batch",
                             misfire="skip")
    assert created.kwargs == {"n": 5}
    assert created.options["lane"] == "batch"
    assert created.next_fire_at is not None and created.next_fire_at.minute % 5 == 0
    assert [s.name for s in app.schedules.list()] == ["five"]
    assert app.schedules.pause("five").paused
    resumed = app.schedules.resume("five")
    assert not resumed.paused
    updated = app.schedules.update("five", expression="@hourly")
    assert updated.expression == "@hourly" and updated.next_fire_at.minute == 0
    assert updated.options["lane"] == "batch"
    app.schedules.delete("five")
    with pytest.raises(ScheduleNotFoundError):
        app.schedules.get("five")
    with pytest.raises(ScheduleNotFoundError):
        app.schedules.pause("five")


def test_bad_schedules_are_refused_at_creation(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    tick = app.definition("tick")
    with pytest.raises(ScheduleExpressionError) as caught:
        tick.recurring("every 5 fortnights", name="bad")
    assert caught.value.word == "fortnights"
    assert "fortnights" in str(caught.value)
    with pytest.raises(ScheduleError, match="unknown option"):
        tick.recurring("5m", name="bad", colour="red")
    with pytest.raises(ScheduleError, match="misfire"):
        tick.recurring("5m", name="bad", misfire="sometimes")
    with pytest.raises(Exception, match="unexpected keyword"):
        tick.recurring("5m", name="bad", kwargs={"nope": 1})
    with pytest.raises(ScheduleExpressionError, match="Mars/Olympus"):
        tick.recurring("@daily", name="bad", tz="Mars/Olympus")
    assert app.schedules.list() == []


def test_schedule_occurrences_become_jobs_once(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    app.definition("tick").recurring("1s", kwargs={"n": 1}, name="fast")
    leader, rival = Beat(app, holder="a"), Beat(app, holder="b")
    start = datetime.now(UTC)
    for i in range(5):
        now = start + timedelta(seconds=i + 1)
        leader.tick(now=now)
        rival.tick(now=now)
    found = app.jobs.list(limit=100)
    occurrences = sorted(j.occurrence for j in found if j.occurrence is not None)
    assert len(occurrences) == len(set(occurrences)) == len(found)
    assert len(found) >= 5
    gaps = {(b - a).total_seconds() for a, b in zip(occurrences, occurrences[1:], strict=False)}
    assert gaps == {1.0}
    assert {j.schedule_name for j in found} == {"fast"}


def test_overlap_skip_waits_for_the_previous_occurrence(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    app.definition("tick").recurring("1s", name="lonely", overlap="skip")
    beat = Beat(app)
    start = datetime.now(UTC)
    beat.tick(now=start + timedelta(seconds=1))
    beat.tick(now=start + timedelta(seconds=2))
    beat.tick(now=start + timedelta(seconds=3))
    assert len(app.jobs.list()) == 1  # the first is still queued: later ones are skipped


def test_static_schedules_sync_and_removed_ones_go_inactive(tmp_path: Path) -> None:
    first = make_app(tmp_path)
    first.recurring("@hourly", "tick", kwargs={"n": 1}, name="hourly")
    first.recurring("@daily", "tick", name="daily")
    Beat(first).tick()
    assert {s.name for s in first.schedules.list()} == {"hourly", "daily"}
    second = make_app(tmp_path)  # the next deploy: "daily" was removed from code
    second.recurring("@hourly", "tick", kwargs={"n": 1}, name="hourly")
    first.master.release_lease("beat:beat-tests", *_holder(first))
    Beat(second).tick()
    assert [s.name for s in second.schedules.list()] == ["hourly"]
    everything = {s.name: s for s in second.schedules.list(include_inactive=True)}
    assert everything["daily"].active is False  # kept, for history


def _holder(app: App) -> tuple[str, int]:
    lease = app.master.lease_holder("beat:beat-tests")
    assert lease is not None and lease[0] is not None
    return lease[0], lease[1]


def test_reaper_requeues_jobs_of_a_dead_worker(tmp_path: Path) -> None:
    app = make_app(tmp_path, lease_seconds=2)
    handle = app.definition("tick").delay(n=3)
    agent = app.agent()
    [claim] = agent.claim(["default"], 1, lease_seconds=600, consumer="ghost")
    agent.ack([claim])  # the agent lost it (say, a Redis restart)
    app.flush()
    old = datetime.now(UTC) - timedelta(minutes=10)
    with app.master.engine.begin() as conn:
        conn.execute(workers.insert().values(
            id="ghost", cluster=app.name, hostname="h", pid=1, agent="main", lanes=["default"],
            concurrency=1, status="running", started_at=old, last_seen=old, processed=0))
        conn.execute(jobs.update().where(jobs.c.id == handle.id)
                     .values(status="running", worker="ghost"))
    report = Beat(app).tick()
    assert report.reaped == 1
    assert handle.status() is JobStatus.QUEUED
    assert agent.length() == 1
    with app.master.engine.connect() as conn:
        assert conn.execute(sa.select(workers.c.status)).scalar() == "lost"


def test_retention_deletes_old_finished_jobs(tmp_path: Path) -> None:
    app = make_app(tmp_path, retention=3600)
    old, new = app.definition("tick").delay(), app.definition("tick").delay()
    app.flush()
    with app.master.engine.begin() as conn:
        conn.execute(jobs.update().where(jobs.c.id == old.id).values(
            status="succeeded", finished_at=datetime.now(UTC) - timedelta(hours=2)))
        conn.execute(jobs.update().where(jobs.c.id == new.id).values(
            status="succeeded", finished_at=datetime.now(UTC)))
    assert Beat(app).tick().deleted == 1
    assert app.jobs.find(old.id) is None
    assert app.jobs.find(new.id) is not None


def test_retention_per_status_keeps_failures_longer(tmp_path: Path) -> None:
    app = make_app(tmp_path, retention={"succeeded": "1h", "failed": "30d"})
    ok, bad = app.definition("tick").delay(), app.definition("tick").delay()
    app.flush()
    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
    with app.master.engine.begin() as conn:
        conn.execute(jobs.update().where(jobs.c.id == ok.id).values(
            status="succeeded", finished_at=two_hours_ago))
        conn.execute(jobs.update().where(jobs.c.id == bad.id).values(
            status="failed", finished_at=two_hours_ago))
    assert len(app.jobs.history(ok.id)) == 1
    assert Beat(app).tick().deleted == 1
    assert app.jobs.find(ok.id) is None
    assert app.master.history(ok.id) == []  # its audit trail went with it
    assert app.jobs.find(bad.id) is not None


@pytest.mark.slow
def test_three_beats_leader_killed_every_second_fires_once(
    stack_factory: Callable[..., Stack],
) -> None:
    stack = stack_factory("postgres", beat_lease_seconds="3", beat_interval="0.3")
    app = stack.app()
    app.migrate()
    beats = [
        subprocess.Popen([sys.executable, "-m", "jobmaster", "beat", "-A",
                          "tests.fixtures.beatapp", "-l", "INFO"], cwd=ROOT,
                         env={**__import__("os").environ, **stack.env},
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(3)
    ]
    try:
        def fired() -> list[datetime]:
            return sorted(j.occurrence for j in app.jobs.list(limit=1000)
                          if j.occurrence is not None)

        wait_until(lambda: len(fired()) >= 15, timeout=40, what="15 occurrences")
        lease = app.master.lease_holder(f"beat:{app.name}")
        assert lease is not None and lease[0] is not None
        leader_pid = int(lease[0].split(":")[1])
        leader = next(b for b in beats if b.pid == leader_pid)
        leader.send_signal(signal.SIGKILL)
        leader.wait(10)
        killed_at = datetime.now(UTC)
        wait_until(lambda: len([t for t in fired() if t > killed_at]) >= 15, timeout=40,
                   what="15 occurrences after the leader died")
        new_lease = app.master.lease_holder(f"beat:{app.name}")
        assert new_lease is not None and new_lease[1] > lease[1]
        assert int(new_lease[0].split(":")[1]) != leader_pid
    finally:
        for b in beats:
            if b.poll() is None:
                b.send_signal(signal.SIGTERM)
        for b in beats:
            b.wait(15)
    times = fired()
    with app.master.engine.connect() as conn:
        rows = conn.execute(sa.select(sa.func.count()).select_from(jobs).where(
            jobs.c.cluster == app.name)).scalar()
    assert rows == len(times) == len(set(times)), "each occurrence recorded once"
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
    assert max(gaps) <= 3.0, f"a gap longer than the lease: {max(gaps)} s"
    assert set(gaps) == {1.0}, "no second was skipped"


@pytest.mark.parametrize("name", ["postgres", "mysql"])
def test_a_standby_takes_over_when_the_leaders_session_ends_not_its_lease(
    name: str, stack_factory: Callable[..., Stack],
) -> None:
    """The leader holds a session lock the database frees when its connection ends: a
    standby takes the lead (a new epoch) long before the killed leader's 30 s lease
    expires, and every second still becomes exactly one job."""
    stack = stack_factory(name, beat_lease_seconds="30")
    app = stack.app()
    app.migrate()
    env = {**__import__("os").environ, **stack.env}
    beats = [subprocess.Popen([sys.executable, "-m", "jobmaster", "beat", "-A",
                               "tests.fixtures.beatapp", "-l", "INFO"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(2)]
    try:
        def leader() -> tuple[str | None, int, datetime] | None:
            return app.master.lease_holder(f"beat:{app.name}")

        wait_until(lambda: leader() is not None, what="a beat to lead")
        first = leader()
        assert first is not None and first[0] is not None
        killed = next(b for b in beats if b.pid == int(first[0].split(":")[1]))
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        wait_until(lambda: (leader() or first)[1] > first[1], timeout=20,
                   what="the standby to take the lead")
        taken_at = datetime.now(UTC)
        expires = first[2] if first[2].tzinfo else first[2].replace(tzinfo=UTC)
        assert taken_at < expires, "taken over before the dead leader's lease expired"
        wait_until(lambda: len(app.jobs.list(limit=100)) >= 5, timeout=30,
                   what="occurrences fired by the new leader")
    finally:
        for b in beats:
            if b.poll() is None:
                b.send_signal(signal.SIGTERM)
        for b in beats:
            b.wait(15)
    times = sorted(j.occurrence for j in app.jobs.list(limit=1000) if j.occurrence)
    assert len(times) == len(set(times))
    assert all((b - a).total_seconds() == 1.0 for a, b in zip(times, times[1:], strict=False))


def test_worker_with_embedded_beat_runs_master_held_jobs(
    stack_factory: Callable[..., Stack],
) -> None:
    stack = stack_factory("sqlite", agent_horizon="1", beat_interval="0.2")
    app = stack.app()
    handle = app.definition("add").apply_after(timedelta(seconds=2), x=2, y=3)
    assert handle.status() is JobStatus.SCHEDULED
    assert app.agent().length() == 0
    stack.worker("-c", "1", "--beat")
    job = handle.wait(timeout=30)
    assert job.result == 5
    assert job.started_at is not None and job.scheduled_at is not None
    assert job.started_at >= job.scheduled_at


def test_one_broken_schedule_does_not_stop_the_others(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    tick = app.definition("tick")
    tick.recurring("1s", name="good")
    tick.recurring("1s", name="broken")
    from jobmaster.master.schema import schedules

    with app.master.engine.begin() as conn:  # a row made by an older, laxer version
        conn.execute(schedules.update().where(schedules.c.name == "broken")
                     .values(options={"retry_backoff": 0.5}))
    beat = Beat(app)
    start = datetime.now(UTC)
    for i in range(3):
        beat.tick(now=start + timedelta(seconds=i + 1))
    names = {j.schedule_name for j in app.jobs.list()}
    assert names == {"good"}


def test_a_bad_scheduled_row_is_failed_and_the_others_are_promoted(tmp_path: Path) -> None:
    app = make_app(tmp_path, agent_horizon=60)
    tick = app.definition("tick")
    good = [tick.apply_after(timedelta(hours=1), n=i) for i in range(3)]
    bad = tick.apply_after(timedelta(hours=1), n=99)
    with app.master.engine.begin() as conn:  # a row no producer writes: a text priority
        conn.execute(jobs.update().where(jobs.c.id == bad.id).values(priority="urgent"))
    beat = Beat(app)
    later = datetime.now(UTC) + timedelta(hours=1)
    assert beat.tick(now=later).promoted == 3
    assert [h.status() for h in good] == [JobStatus.QUEUED] * 3
    failed = app.jobs.get(bad.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.type == "InvalidJobRecord"
    assert "priority" in failed.error.message
    assert app.agent().length() == 3
    assert beat.tick(now=later).promoted == 0  # nothing left to retry
