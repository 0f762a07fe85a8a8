"""Workflows with real worker processes (each running beat in-process): chains, groups,
chords, link/link_error, immutable signatures and per-step options, failures that abandon
what follows, and a worker killed with SIGKILL in the middle of a chord — on the embedded
default (SQLite) and on PostgreSQL + Redis."""

from __future__ import annotations

import signal
from collections.abc import Callable
from datetime import timedelta

import pytest

from jobmaster import App, JobFailedError, JobStatus
from jobmaster.canvas import chain, chord, group
from tests.conftest import Stack, wait_until

APP = "tests.fixtures.canvasapp"


@pytest.fixture(params=["sqlite", "redis"])
def stack(request: pytest.FixtureRequest, stack_factory: Callable[..., Stack]) -> Stack:
    return stack_factory(request.param, beat_lease_seconds="3")


def start(stack: Stack, *lanes: str, concurrency: int = 2) -> App:
    app: App = stack.app(APP)
    stack.worker("-c", str(concurrency), "--beat", "--lane", ",".join(lanes or ("default",)),
                 app=APP)
    return app


def test_chain_passes_each_result_on_and_si_ignores_it(stack: Stack) -> None:
    app = start(stack, "default", "math")
    add, mul, constant = (app.definitions[d] for d in ("add", "mul", "constant"))
    run = chain(add.s(1, 2), add.s(10), mul.s(2)).apply_async()
    assert run.get(timeout=30) == 26  # ((1 + 2) + 10) * 2
    assert run.id == run.jobs[-1].id and run.ready() and run.successful()
    assert run.state == "SUCCESS"
    assert [h.get(timeout=1) for h in run.jobs] == [3, 13, 26]
    ids = {j.id for j in app.jobs.list(metadata={"jobmaster.workflow": run.workflow_id})}
    assert ids == {h.id for h in run.jobs}

    # an immutable step receives nothing; options of a step: its countdown counts from
    # when the step before it succeeded, its queue is its lane
    run = (add.s(1, 1) | constant.si(5) | mul.s(3).set(countdown=0.5, queue="math")
           ).apply_async()
    assert run.get(timeout=30) == 15
    before, last = run.jobs[1].record(), run.jobs[2].record()
    assert last.lane == "math"
    assert before.finished_at is not None and last.started_at is not None
    assert last.started_at - before.finished_at >= timedelta(seconds=0.5)
    trail = app.jobs.history(last.id)
    assert "waits for the jobs before it" in (trail[0].reason or "")
    assert any((e.reason or "").startswith("released: job") for e in trail)


def test_group_collects_results_in_order(stack: Stack) -> None:
    app = start(stack)
    add = app.definitions["add"]
    run = group(add.s(i, i) for i in range(10)).apply_async()
    assert run.get(timeout=30) == [2 * i for i in range(10)]
    assert run.id == run.workflow_id and len(run.results) == 10
    assert run.completed_count() == 10 and run.state == "SUCCESS" and not run.failed()


def test_chord_callback_runs_once_with_every_result(stack: Stack) -> None:
    app = start(stack)
    add, tsum = app.definitions["add"], app.definitions["tsum"]
    run = chord(group(add.s(i, i) for i in range(10)), tsum.s(tag="c1")).apply_async()
    assert run.get(timeout=30) == 90
    assert [line for line in stack.lines() if line.startswith("tsum c1")] == [
        f"tsum c1 {sorted(2 * i for i in range(10))}"]
    # a group followed by a step is a chord too; the chord's result goes on down the chain
    run = chain(group(add.s(1, 1), add.s(2, 2)), tsum.s(tag="c2"), add.s(100)).apply_async()
    assert run.get(timeout=30) == 106


def test_a_failed_member_fails_the_chord_and_a_failed_step_cancels_the_rest(
        stack: Stack) -> None:
    app = start(stack)
    add, tsum, fail = (app.definitions[d] for d in ("add", "tsum", "fail"))
    run = chord([add.s(1, 1), fail.s(message="member broke"), add.s(2, 2)],
                tsum.s(tag="never")).apply_async()
    with pytest.raises(JobFailedError, match="member broke") as caught:
        run.get(timeout=30)
    callback = run.outputs[0].record()
    assert callback.status is JobStatus.FAILED and callback.started_at is None
    assert caught.value.error is not None and caught.value.error.type == "ValueError"
    assert "chord member" in caught.value.error.message
    assert run.failed() and run.state == "FAILURE"

    run = chain(add.s(1, 1), fail.s(message="step broke"), add.s(1), add.s(2)).apply_async()
    with pytest.raises(JobFailedError, match="step broke"):
        run.get(timeout=30)
    statuses = [h.wait(timeout=30).status for h in run.jobs]
    assert statuses == [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED,
                        JobStatus.CANCELLED]
    third = run.jobs[2].record()
    assert third.error is not None and "before it failed: step broke" in third.error.message
    assert not any(line.startswith("tsum never") for line in stack.lines())


def test_link_and_link_error(stack: Stack) -> None:
    app = start(stack)
    add, fail, note = (app.definitions[d] for d in ("add", "fail", "note"))
    ok = add.apply_async((1, 2), link=note.s(tag="linked"), link_error=note.s(tag="errback"))
    assert ok.get(timeout=30) == 3
    wait_until(lambda: "note linked 3" in stack.lines(), what="the link to run")

    bad = fail.apply_async(kwargs={"message": "nope"}, link=note.s(tag="never"),
                           link_error=note.s(tag="errback"))
    assert bad.wait(timeout=30).status is JobStatus.FAILED
    wait_until(lambda: f"note errback {bad.id!r}" in stack.lines(), what="the errback to run")
    lines = stack.lines()
    assert not any(line.startswith("note never") for line in lines)
    assert sum(line.startswith("note errback") for line in lines) == 1  # not after ok


def test_kill_9_mid_chord_runs_the_callback_exactly_once(stack: Stack) -> None:
    app: App = stack.app(APP)
    slow, tsum = app.definitions["slow-add"], app.definitions["tsum"]
    first = stack.worker("-c", "3", "--beat", app=APP)
    run = chord(group(slow.s(i, 1, seconds=1.0) for i in range(6)),
                tsum.s(tag="k9")).apply_async()

    def started(what: str) -> int:
        return sum(line.startswith(f"slow-add {what}") for line in stack.lines())

    wait_until(lambda: started("done") >= 1 and started("start") >= 4,
               what="some members to finish while others run")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    stack.worker("-c", "3", "--beat", app=APP)
    assert run.get(timeout=90) == sum(range(1, 7))
    wait_until(lambda: all(h.ready() for h in run.jobs), what="every member recorded")
    assert [line for line in stack.lines() if line.startswith("tsum k9")] == [
        f"tsum k9 {list(range(1, 7))}"]
    assert run.outputs[0].record().attempts == 1
    assert started("start") > 6  # members the kill interrupted ran again


def test_beat_sweep_releases_what_no_worker_saw_end(stack: Stack) -> None:
    """A worker that recorded a parent's success and died before releasing the steps after
    it: beat's sweep finds the step whose parents all ended, and releases it once."""
    from jobmaster.beat import Beat
    from jobmaster.master.repository import utcnow
    from jobmaster.master.schema import jobs

    app: App = stack.app(APP)
    add, tsum, fail = (app.definitions[d] for d in ("add", "tsum", "fail"))
    run = chord([add.s(1, 1), add.s(2, 2)], tsum.s(tag="swept")).apply_async()
    broken = chain(add.s(1, 1), add.s(5), add.s(6)).apply_async()
    cancelled = chain(fail.s(), add.si(5, 5), add.s(1)).apply_async()
    now = utcnow()
    with app.master.engine.begin() as conn:  # what a worker records, without a worker
        for handle, value in zip(run.jobs[:2], (2, 4), strict=True):
            conn.execute(jobs.update().where(jobs.c.id == handle.id).values(
                status="succeeded", result=app.serializer.dumps(value), finished_at=now))
        conn.execute(jobs.update().where(jobs.c.id == broken.jobs[0].id).values(
            status="failed", error_type="OSError", error_message="disk", finished_at=now))
    cancelled.jobs[1].cancel()  # a waiting step cancelled by hand: nothing after it runs
    beat = Beat(app)
    wait_until(lambda: beat.tick().leader, what="beat to lead")
    assert run.outputs[0].status() is JobStatus.QUEUED  # released and promoted at once
    assert [h.status() for h in broken.jobs[1:]] == [JobStatus.CANCELLED] * 2
    assert "before it failed: disk" in broken.jobs[2].record().error.message  # type: ignore[union-attr]
    stack.worker("-c", "1", app=APP)
    assert run.get(timeout=30) == 6
    assert sum(line.startswith("tsum swept") for line in stack.lines()) == 1
    assert cancelled.jobs[2].wait(timeout=30).status is JobStatus.CANCELLED
