"""Beat's pure decisions: which occurrences are due, misfires, overlap, first fire time."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from jobmaster.schedules import (
    MisfirePolicy,
    OverlapPolicy,
    Schedule,
    apply_overlap,
    due_occurrences,
    first_fire,
)

EVERY_5 = Schedule.parse("every 5 minutes")
NOW = datetime(2026, 3, 4, 10, 17, 23, tzinfo=UTC)


def hm(hour: int, minute: int, second: int = 0, day: int = 4) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=UTC)


# -- due_occurrences: the ordinary tick -----------------------------------------------------


@pytest.mark.parametrize("policy", list(MisfirePolicy))
def test_one_occurrence_due_runs_under_every_policy(policy: MisfirePolicy) -> None:
    # beat ticks a few seconds after the fire time: on time under every policy
    due, following = due_occurrences(
        EVERY_5, last_fire=hm(10, 10), next_fire=hm(10, 15), now=hm(10, 15, 7), misfire=policy
    )
    assert due == [hm(10, 15)]
    assert following == hm(10, 20)


def test_nothing_due_keeps_the_next_fire_time() -> None:
    due, following = due_occurrences(
        EVERY_5,
        last_fire=hm(10, 15),
        next_fire=hm(10, 20),
        now=NOW,
        misfire=MisfirePolicy.RUN_ONCE,
    )
    assert (due, following) == ([], hm(10, 20))


def test_due_exactly_now_runs_and_the_next_is_strictly_after_now() -> None:
    due, following = due_occurrences(
        EVERY_5,
        last_fire=hm(10, 10),
        next_fire=hm(10, 15),
        now=hm(10, 15),
        misfire=MisfirePolicy.SKIP,
    )
    assert due == [hm(10, 15)]
    assert following == hm(10, 20)


def test_several_on_time_occurrences_all_run() -> None:
    # a schedule every 15 s and a beat that ticks every 40 s: both are within grace
    schedule = Schedule.parse("every 15 seconds")
    for policy in MisfirePolicy:
        due, following = due_occurrences(
            schedule,
            last_fire=hm(10, 16, 45),
            next_fire=hm(10, 17),
            now=NOW,
            misfire=policy,
        )
        assert due == [hm(10, 17), hm(10, 17, 15)]
        assert following == hm(10, 17, 30)


# -- due_occurrences: misfires (beat was down from 08:03 to 10:17:23) -----------------------


def _after_outage(
    policy: MisfirePolicy, **options: timedelta | int
) -> tuple[list[datetime], datetime | None]:
    return due_occurrences(
        EVERY_5,
        last_fire=hm(8, 0),
        next_fire=hm(8, 5),
        now=NOW,
        misfire=policy,
        **options,  # type: ignore[arg-type]
    )


def test_run_once_runs_the_most_recent_missed_occurrence() -> None:
    assert _after_outage(MisfirePolicy.RUN_ONCE) == ([hm(10, 15)], hm(10, 20))


def test_skip_runs_nothing_older_than_grace() -> None:
    assert _after_outage(MisfirePolicy.SKIP) == ([], hm(10, 20))


def test_run_all_runs_every_missed_occurrence() -> None:
    due, following = _after_outage(MisfirePolicy.RUN_ALL)
    assert len(due) == 27  # 08:05, 08:10, ..., 10:15
    assert due[0] == hm(8, 5)
    assert due[-1] == hm(10, 15)
    assert all(b - a == timedelta(minutes=5) for a, b in zip(due, due[1:], strict=False))
    assert following == hm(10, 20)


def test_run_all_keeps_the_most_recent_cap() -> None:
    due, following = _after_outage(MisfirePolicy.RUN_ALL, cap=3)
    assert due == [hm(10, 5), hm(10, 10), hm(10, 15)]
    assert following == hm(10, 20)


def test_a_wider_grace_makes_recent_occurrences_on_time() -> None:
    grace = timedelta(minutes=10)  # on time: at or after 10:07:23
    assert _after_outage(MisfirePolicy.SKIP, grace=grace) == ([hm(10, 10), hm(10, 15)], hm(10, 20))
    # the on-time runs are the catch-up: no extra missed occurrence
    assert _after_outage(MisfirePolicy.RUN_ONCE, grace=grace) == (
        [hm(10, 10), hm(10, 15)],
        hm(10, 20),
    )


def test_zero_grace_treats_every_late_occurrence_as_missed() -> None:
    due, _ = due_occurrences(
        EVERY_5,
        last_fire=hm(10, 10),
        next_fire=hm(10, 15),
        now=NOW,
        misfire=MisfirePolicy.SKIP,
        grace=timedelta(0),
    )
    assert due == []


def test_long_outage_of_a_dense_schedule_is_cheap() -> None:
    every_second = Schedule.parse("every second")
    began = time.perf_counter()
    due, following = due_occurrences(
        every_second,
        last_fire=NOW - timedelta(days=365),
        next_fire=NOW - timedelta(days=365) + timedelta(seconds=1),
        now=NOW,
        misfire=MisfirePolicy.RUN_ALL,
        cap=100,
    )
    assert time.perf_counter() - began < 1.0
    assert len(due) == 100
    assert due[-1] == hm(10, 17, 23)
    assert due[0] == hm(10, 15, 44)
    assert following == hm(10, 17, 24)


# -- due_occurrences: unknown or stale state, ended schedules ------------------------------


def test_unknown_state_starts_like_a_new_schedule() -> None:
    due, following = due_occurrences(
        EVERY_5, last_fire=None, next_fire=None, now=NOW, misfire=MisfirePolicy.RUN_ALL
    )
    assert (due, following) == ([], hm(10, 20))


def test_lost_next_fire_is_recomputed_from_the_last_fire() -> None:
    due, following = due_occurrences(
        EVERY_5, last_fire=hm(10, 10), next_fire=None, now=NOW, misfire=MisfirePolicy.RUN_ONCE
    )
    assert (due, following) == ([hm(10, 15)], hm(10, 20))


def test_never_returns_an_occurrence_already_materialised() -> None:
    due, following = due_occurrences(
        EVERY_5,
        last_fire=hm(10, 15),
        next_fire=hm(10, 15),  # stale: equal to the last fire
        now=NOW,
        misfire=MisfirePolicy.RUN_ALL,
    )
    assert (due, following) == ([], hm(10, 20))


def test_the_last_occurrence_before_end_runs_then_the_schedule_ends() -> None:
    ending = Schedule.parse("every 5 minutes", end=hm(10, 16))
    due, following = due_occurrences(
        ending,
        last_fire=hm(10, 10),
        next_fire=hm(10, 15),
        now=hm(10, 15, 30),
        misfire=MisfirePolicy.SKIP,
    )
    assert (due, following) == ([hm(10, 15)], None)
    # and once ended it stays ended
    assert due_occurrences(
        ending, last_fire=hm(10, 15), next_fire=None, now=NOW, misfire=MisfirePolicy.SKIP
    ) == ([], None)
    # a late tick still runs the last occurrence under RUN_ONCE
    assert due_occurrences(
        ending, last_fire=hm(10, 10), next_fire=hm(10, 15), now=NOW, misfire=MisfirePolicy.RUN_ONCE
    ) == ([hm(10, 15)], None)


def test_naive_datetimes_are_utc() -> None:
    naive = NOW.replace(tzinfo=None)
    due, following = due_occurrences(
        EVERY_5,
        last_fire=hm(10, 10).replace(tzinfo=None),
        next_fire=hm(10, 15).replace(tzinfo=None),
        now=naive,
        misfire=MisfirePolicy.RUN_ONCE,
    )
    assert (due, following) == ([hm(10, 15)], hm(10, 20))


def test_bad_cap_or_grace() -> None:
    with pytest.raises(ValueError, match="cap"):
        _after_outage(MisfirePolicy.RUN_ALL, cap=0)
    with pytest.raises(ValueError, match="grace"):
        _after_outage(MisfirePolicy.RUN_ALL, grace=timedelta(seconds=-1))


def test_works_across_dst_with_a_wall_clock_schedule() -> None:
    paris = Schedule.parse("every day at 2:30 tz Europe/Paris")
    # beat was down over the spring-forward night; 02:30 that night fired at 03:30 CEST
    due, following = due_occurrences(
        paris,
        last_fire=datetime(2026, 3, 28, 1, 30, tzinfo=UTC),
        next_fire=datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
        now=datetime(2026, 3, 29, 9, 0, tzinfo=UTC),
        misfire=MisfirePolicy.RUN_ONCE,
    )
    assert due == [datetime(2026, 3, 29, 1, 30, tzinfo=UTC)]
    assert following == datetime(2026, 3, 30, 0, 30, tzinfo=UTC)


# -- first_fire -----------------------------------------------------------------------------


def test_first_fire_is_strictly_after_now() -> None:
    assert first_fire(EVERY_5, now=NOW) == hm(10, 20)
    assert first_fire(EVERY_5, now=hm(10, 20)) == hm(10, 25)


def test_first_fire_at_or_after_a_future_start() -> None:
    assert first_fire(EVERY_5, start=hm(11, 0), now=NOW) == hm(11, 0)
    assert first_fire(EVERY_5, start=hm(11, 1), now=NOW) == hm(11, 5)


def test_first_fire_ignores_a_past_start() -> None:
    assert first_fire(EVERY_5, start=hm(9, 0), now=NOW) == hm(10, 20)


def test_first_fire_uses_the_schedule_start() -> None:
    anchored = Schedule.parse("7m", start=hm(12, 1))
    assert first_fire(anchored, now=NOW) == hm(12, 1)
    assert first_fire(anchored, now=hm(12, 1)) == hm(12, 8)


def test_first_fire_of_an_ended_schedule() -> None:
    ended = Schedule.parse("every day", end=hm(0, 0))
    assert first_fire(ended, now=NOW) is None


# -- apply_overlap --------------------------------------------------------------------------


def test_overlap_allow_runs_everything() -> None:
    fires = [hm(10, 10), hm(10, 15)]
    assert apply_overlap(fires, OverlapPolicy.ALLOW, previous_running=True) == (fires, [])


def test_overlap_skip_while_the_previous_job_runs() -> None:
    fires = [hm(10, 10), hm(10, 15)]
    assert apply_overlap(fires, OverlapPolicy.SKIP, previous_running=True) == ([], fires)


def test_overlap_skip_runs_one_at_a_time() -> None:
    fires = [hm(10, 5), hm(10, 10), hm(10, 15)]
    assert apply_overlap(fires, OverlapPolicy.SKIP, previous_running=False) == (
        [hm(10, 15)],
        [hm(10, 5), hm(10, 10)],
    )
    assert apply_overlap([], OverlapPolicy.SKIP, previous_running=False) == ([], [])


def test_policies_are_strings() -> None:
    assert MisfirePolicy("run_once") is MisfirePolicy.RUN_ONCE
    assert str(MisfirePolicy.RUN_ALL) == "run_all"
    assert OverlapPolicy("skip") is OverlapPolicy.SKIP


def test_continuous_runs_follow_the_end_of_the_previous_run() -> None:
    from jobmaster.schedules import continuous_fire

    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    args = {"now": now, "interval": 5.0, "iterations": None, "ran": 0, "recheck": 1.0}
    assert continuous_fire(**args, previous_status=None, previous_finished=None) == \
        (now, now + timedelta(seconds=1))  # the first run: at once
    assert continuous_fire(**args, previous_status="running", previous_finished=None) == \
        (None, now + timedelta(seconds=1))  # one at a time: look again soon
    ended = now - timedelta(seconds=2)
    assert continuous_fire(**args, previous_status="succeeded", previous_finished=ended) == \
        (None, ended + timedelta(seconds=5))  # interval after its end
    long_ago = now - timedelta(seconds=60)
    for status in ("failed", "cancelled", "succeeded"):
        assert continuous_fire(**args, previous_status=status,
                               previous_finished=long_ago)[0] == now
    done = {**args, "iterations": 3, "ran": 3}
    assert continuous_fire(**done, previous_status="succeeded", previous_finished=long_ago) \
        == (None, None)
