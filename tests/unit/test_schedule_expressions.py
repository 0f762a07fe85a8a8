"""Schedule expressions: fire times for every family of expression, DST, and parse errors.

Expected fire times are written out by hand. Calendar facts used: 2026-03-04 is a Wednesday
(March 2026 starts on a Sunday, April on a Wednesday, May on a Friday, June on a Monday);
Europe/Paris is UTC+1 until 2026-03-29 02:00 (then UTC+2) and back at 2026-10-25 03:00;
America/New_York is UTC-5 until 2026-03-08 02:00 (then UTC-4) and back at 2026-11-01 02:00;
Asia/Kolkata is UTC+5:30 and Asia/Tokyo UTC+9 all year. 2026-03-04 is day 20516 after
1970-01-01 (even), and 2026-03-09 is 2932 whole weeks after Monday 1969-12-29 (even).
"""

from __future__ import annotations

import dataclasses
import pickle
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from jobmaster.exceptions import ScheduleError, ScheduleExpressionError
from jobmaster.schedules import Schedule, validate_timezone

T = datetime(2026, 3, 4, 10, 17, 23, tzinfo=UTC)  # a Wednesday


def utc(month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def instant(text: str) -> datetime:
    """``"03-04 10:20"`` (2026 implied), ``"03-04 10:20:30"`` or ``"2027-01-01 00:00"``, UTC."""
    day, clock = text.split()
    parts = [int(p) for p in day.split("-")]
    year, month, number = parts if len(parts) == 3 else [2026, *parts]
    hour, minute, second = ([int(p) for p in clock.split(":")] + [0])[:3]
    return datetime(year, month, number, hour, minute, second, tzinfo=UTC)


def case(
    expression: str | timedelta,
    expected: str,
    *,
    tz: str | None = None,
    start: str | None = None,
    after: str | None = None,
) -> Any:
    """One table row: the next three fire times (UTC) after ``after`` (default ``T``)."""
    label = expression if isinstance(expression, str) else f"timedelta({expression})"
    label += (f" [{tz}]" if tz else "") + (f" [start {start}]" if start else "")
    return pytest.param(
        expression,
        tz,
        None if start is None else instant(start),
        T if after is None else instant(after),
        [instant(item) for item in expected.split(", ")],
        id=label,
    )


# case(expression, next three fire times in UTC, tz=..., start=..., after=...)
CASES = [
    # -- intervals: counted from the Unix epoch, or from start ---------------------------
    case(timedelta(minutes=5), "03-04 10:20, 03-04 10:25, 03-04 10:30"),
    case(timedelta(minutes=45), "03-04 10:45, 03-04 11:30, 03-04 12:15", start="03-04 10:00"),
    case("30s", "03-04 10:17:30, 03-04 10:18, 03-04 10:18:30"),
    case("90s", "03-04 10:18, 03-04 10:19:30, 03-04 10:21"),
    case("5m", "03-04 10:20, 03-04 10:25, 03-04 10:30"),
    case("1h", "03-04 11:00, 03-04 12:00, 03-04 13:00"),
    case("2d", "03-06 00:00, 03-08 00:00, 03-10 00:00"),
    case("1h30m", "03-04 10:30, 03-04 12:00, 03-04 13:30"),
    case("1h 30m", "03-04 10:30, 03-04 12:00, 03-04 13:30"),
    case("every 7 minutes", "03-04 10:21, 03-04 10:28, 03-04 10:35"),
    case("every 7 minutes", "03-04 10:22, 03-04 10:29, 03-04 10:36", start="03-04 10:01"),
    case("every 90 minutes", "03-04 10:30, 03-04 12:00, 03-04 13:30"),
    case("every 45 seconds", "03-04 10:18, 03-04 10:18:45, 03-04 10:19:30"),
    # -- aligned natural intervals --------------------------------------------------------
    case("every 5 minutes", "03-04 10:20, 03-04 10:25, 03-04 10:30"),
    case("Every Minute", "03-04 10:18, 03-04 10:19, 03-04 10:20"),
    case("every hour", "03-04 11:00, 03-04 12:00, 03-04 13:00"),
    case("every 15 seconds", "03-04 10:17:30, 03-04 10:17:45, 03-04 10:18"),
    case("every 6 hours", "03-04 12:00, 03-04 18:00, 03-05 00:00"),
    case("every hour tz Asia/Kolkata", "03-04 10:30, 03-04 11:30, 03-04 12:30"),
    case("every 2 hours", "03-04 10:30, 03-04 12:30, 03-04 14:30", tz="Asia/Kolkata"),
    case("every 5 minutes", "03-04 11:05, 03-04 11:10, 03-04 11:15", start="03-04 11:02"),
    # -- days and times -------------------------------------------------------------------
    case("every day", "03-05 00:00, 03-06 00:00, 03-07 00:00"),
    case("every day at 9:00", "03-05 09:00, 03-06 09:00, 03-07 09:00"),
    case("every day at 9am tz Europe/Paris", "03-05 08:00, 03-06 08:00, 03-07 08:00"),
    case("in Europe/Paris every day at 9 am", "03-05 08:00, 03-06 08:00, 03-07 08:00"),
    case("every day at 18:30", "03-04 18:30, 03-05 18:30, 03-06 18:30"),
    case("every day at 9:30pm", "03-04 21:30, 03-05 21:30, 03-06 21:30"),
    case("every day at noon", "03-04 12:00, 03-05 12:00, 03-06 12:00"),
    case("every day at 9:00 and 17:00 tz Europe/Paris", "03-04 16:00, 03-05 08:00, 03-05 16:00"),
    case("every day at 12am, 10:20:30 and 10pm", "03-04 10:20:30, 03-04 22:00, 03-05 00:00"),
    case("every weekday", "03-05 00:00, 03-06 00:00, 03-09 00:00"),
    case("every weekday at 18:00", "03-04 18:00, 03-05 18:00, 03-06 18:00"),
    case("every weekend", "03-07 00:00, 03-08 00:00, 03-14 00:00"),
    case("every weekend at 10:00", "03-07 10:00, 03-08 10:00, 03-14 10:00"),
    case("every monday", "03-09 00:00, 03-16 00:00, 03-23 00:00"),
    case("every monday and thursday at 10:00", "03-05 10:00, 03-09 10:00, 03-12 10:00"),
    case("every mon, wed and fri at 8am", "03-06 08:00, 03-09 08:00, 03-11 08:00"),
    case("every wednesday at 10:30", "03-04 10:30, 03-11 10:30, 03-18 10:30"),
    case("every sat-mon at 7:00", "03-07 07:00, 03-08 07:00, 03-09 07:00"),
    case("every 2 days at 9:00", "03-06 09:00, 03-08 09:00, 03-10 09:00"),
    case("every 3 days at 12:00", "03-04 12:00, 03-07 12:00, 03-10 12:00", start="03-01 00:00"),
    case("every other day", "03-05 00:00, 03-07 00:00, 03-09 00:00", start="03-03 08:00"),
    # -- windows (inclusive of both ends; steps count from the window's start) ----------
    case(
        "every hour between 09:00 and 17:00",
        "03-04 16:00, 03-04 17:00, 03-05 09:00",
        after="03-04 15:30",
    ),
    case("every 3 hours between 9:00 and 17:00", "03-04 12:00, 03-04 15:00, 03-05 09:00"),
    case(
        "every 15 minutes between 9am and 5pm on weekdays",
        "03-04 10:30, 03-04 10:45, 03-04 11:00",
    ),
    case(
        "every 15 minutes between 9am and 10:30am on weekdays",
        "03-04 10:30, 03-05 09:00, 03-05 09:15",
    ),
    case("every 20 minutes from 16:00 to 17:00 on fri", "03-06 16:00, 03-06 16:20, 03-06 16:40"),
    case("every hour on weekends", "03-07 00:00, 03-07 01:00, 03-07 02:00"),
    # -- weeks, months, years -------------------------------------------------------------
    case("every week", "03-09 00:00, 03-16 00:00, 03-23 00:00"),
    case("every 2 weeks", "03-09 00:00, 03-23 00:00, 04-06 00:00"),
    case("every week on friday at 17:00", "03-06 17:00, 03-13 17:00, 03-20 17:00"),
    case("every month", "04-01 00:00, 05-01 00:00, 06-01 00:00"),
    case("every month on the 1st", "04-01 00:00, 05-01 00:00, 06-01 00:00"),
    case("every month on the 15th at 12:00", "03-15 12:00, 04-15 12:00, 05-15 12:00"),
    case("every month on the last day", "03-31 00:00, 04-30 00:00, 05-31 00:00"),
    case("every month on the first monday at 9:30pm", "04-06 21:30, 05-04 21:30, 06-01 21:30"),
    case("every month on the last friday", "03-27 00:00, 04-24 00:00, 05-29 00:00"),
    case("every month on the 2nd and last day at 8:00", "03-31 08:00, 04-02 08:00, 04-30 08:00"),
    case("every 3 months on the 15th", "04-15 00:00, 07-15 00:00, 10-15 00:00"),
    case("every year on jan 1 at 00:00", "2027-01-01 00:00, 2028-01-01 00:00, 2029-01-01 00:00"),
    case("every year on 25 december", "12-25 00:00, 2027-12-25 00:00, 2028-12-25 00:00"),
    case("every year on feb 29", "2028-02-29 00:00, 2032-02-29 00:00, 2036-02-29 00:00"),
    case(
        "every year on the 4th of march at 10:30",
        "03-04 10:30, 2027-03-04 10:30, 2028-03-04 10:30",
    ),
    # -- cron -----------------------------------------------------------------------------
    case("0 9 * * MON-FRI", "03-05 09:00, 03-06 09:00, 03-09 09:00"),
    case("*/15 * * * *", "03-04 10:30, 03-04 10:45, 03-04 11:00"),
    case("0 0 1 JAN *", "2027-01-01 00:00, 2028-01-01 00:00, 2029-01-01 00:00"),
    case("30 8 * * 1#2", "03-09 08:30, 04-13 08:30, 05-11 08:30"),
    case("0 12 L * *", "03-31 12:00, 04-30 12:00, 05-31 12:00"),
    case("0 0 * * L5", "03-27 00:00, 04-24 00:00, 05-29 00:00"),
    case("0 0 13 * 5", "03-06 00:00, 03-13 00:00, 03-20 00:00"),
    case("*/20 * * * * 30", "03-04 10:20:30, 03-04 10:40:30, 03-04 11:00:30"),
    case("0 9 * * MON-FRI", "03-04 14:00, 03-05 14:00, 03-06 14:00", tz="America/New_York"),
    case("0 10 * * * tz Asia/Tokyo", "03-05 01:00, 03-06 01:00, 03-07 01:00"),
    # -- shortcuts ------------------------------------------------------------------------
    case("@hourly", "03-04 11:00, 03-04 12:00, 03-04 13:00"),
    case("@daily", "03-05 00:00, 03-06 00:00, 03-07 00:00"),
    case("@midnight", "03-05 00:00, 03-06 00:00, 03-07 00:00"),
    case("@weekly", "03-08 00:00, 03-15 00:00, 03-22 00:00"),
    case("@monthly", "04-01 00:00, 05-01 00:00, 06-01 00:00"),
    case("@yearly", "2027-01-01 00:00, 2028-01-01 00:00, 2029-01-01 00:00"),
    case("@annually", "2027-01-01 00:00, 2028-01-01 00:00, 2029-01-01 00:00"),
    case("@daily", "03-04 23:00, 03-05 23:00, 03-06 23:00", tz="Europe/Paris"),
    # -- DST: skipped wall times fire once, shifted by the gap; repeated ones fire once,
    #    at their first occurrence ----------------------------------------------------------
    # Paris spring forward 2026-03-29: 02:30 does not exist, fires at 03:30 CEST (01:30 UTC)
    case(
        "every day at 2:30",
        "03-28 01:30, 03-29 01:30, 03-30 00:30",
        tz="Europe/Paris",
        after="03-27 12:00",
    ),
    case(
        "30 2 * * *",
        "03-28 01:30, 03-29 01:30, 03-30 00:30",
        tz="Europe/Paris",
        after="03-27 12:00",
    ),
    # Paris fall back 2026-10-25: 02:30 happens twice, fires at the first (00:30 UTC)
    case(
        "every day at 2:30",
        "10-24 00:30, 10-25 00:30, 10-26 01:30",
        tz="Europe/Paris",
        after="10-23 12:00",
    ),
    case(
        "30 2 * * *",
        "10-24 00:30, 10-25 00:30, 10-26 01:30",
        tz="Europe/Paris",
        after="10-23 12:00",
    ),
    # New York spring forward 2026-03-08 (02:30 → 03:30 EDT) and fall back 2026-11-01
    case(
        "every day at 2:30 tz America/New_York",
        "03-07 07:30, 03-08 07:30, 03-09 06:30",
        after="03-06 12:00",
    ),
    case(
        "every day at 1:30 tz America/New_York",
        "10-31 05:30, 11-01 05:30, 11-02 06:30",
        after="10-30 12:00",
    ),
    case(
        "0 9 * * MON-FRI",
        "03-09 13:00, 03-10 13:00, 03-11 13:00",
        tz="America/New_York",
        after="03-06 15:00",
    ),
    # aligned intervals across the changes: no duplicates, never backwards
    case(
        "every 30 minutes",
        "10-25 00:30, 10-25 02:00, 10-25 02:30",
        tz="Europe/Paris",
        after="10-25 00:10",
    ),
    case(
        "*/30 * * * *",
        "10-25 00:30, 10-25 02:00, 10-25 02:30",
        tz="Europe/Paris",
        after="10-25 00:10",
    ),
    case(
        "every hour",
        "03-29 01:00, 03-29 02:00, 03-29 03:00",
        tz="Europe/Paris",
        after="03-29 00:10",
    ),
]


@pytest.mark.parametrize(("expression", "tz", "start", "after", "expected"), CASES)
def test_next_three_fire_times(
    expression: str | timedelta,
    tz: str | None,
    start: datetime | None,
    after: datetime,
    expected: list[datetime],
) -> None:
    schedule = Schedule.parse(expression, tz, start=start)
    fires = schedule.next_n(after, 3)
    assert fires == expected
    assert schedule.next_after(after) == expected[0]
    assert all(fire.tzinfo is UTC for fire in fires)


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 45


def test_aligned_interval_over_a_fall_back_night_is_strictly_increasing() -> None:
    schedule = Schedule.parse("every 30 minutes tz Europe/Paris")
    fires = schedule.next_n(utc(10, 24, 23, 10), 6)
    # 01:30, 02:00, 02:30 CEST; the repeated 02:00 and 02:30 CET are skipped; 03:00, 03:30 CET
    assert fires == [
        utc(10, 24, 23, 30),
        utc(10, 25, 0, 0),
        utc(10, 25, 0, 30),
        utc(10, 25, 2, 0),
        utc(10, 25, 2, 30),
        utc(10, 25, 3, 0),
    ]


def test_aligned_interval_over_a_spring_forward_night_has_no_duplicates() -> None:
    schedule = Schedule.parse("every 30 minutes", "Europe/Paris")
    fires = schedule.next_n(utc(3, 29, 0, 10), 4)
    # 01:30 CET; 02:00 and 02:30 do not exist and shift onto 03:00/03:30 CEST, which fire once
    assert fires == [utc(3, 29, 0, 30), utc(3, 29, 1), utc(3, 29, 1, 30), utc(3, 29, 2)]


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/New_York", "Australia/Lord_Howe"])
@pytest.mark.parametrize("expression", ["every 20 minutes", "*/15 * * * *", "every day at 2:30"])
def test_fire_times_always_increase_across_a_year_of_dst_changes(
    zone: str, expression: str
) -> None:
    schedule = Schedule.parse(expression, zone)
    fires = schedule.next_n(at(2026, 1, 1), 3000)
    assert all(a < b for a, b in zip(fires, fires[1:], strict=False))


def test_cron_agrees_with_croniter_in_utc() -> None:
    rng = random.Random(7)

    def field(low: int, high: int) -> str:
        roll = rng.random()
        if roll < 0.3:
            return "*"
        if roll < 0.5:
            return f"*/{rng.randint(1, (high - low) // 2 + 1)}"
        if roll < 0.7:
            first = rng.randint(low, high)
            return f"{first}-{rng.randint(first, high)}"
        if roll < 0.85:
            return ",".join(str(v) for v in sorted(rng.sample(range(low, high + 1), 3)))
        return str(rng.randint(low, high))

    for _ in range(300):
        fields = [field(0, 59), field(0, 23), field(1, 28), field(1, 12), field(0, 6)]
        if rng.random() < 0.2:
            fields.append(field(0, 59))
        expression = " ".join(fields)
        after = T + timedelta(seconds=rng.randint(0, 86400 * 400))
        reference = croniter(expression, after)
        expected = [reference.get_next(datetime) for _ in range(4)]
        assert Schedule.parse(expression).next_n(after, 4) == expected, expression


# -- the Schedule value ---------------------------------------------------------------------


def test_schedule_is_an_immutable_comparable_value() -> None:
    schedule = Schedule.parse("every 5 minutes")
    with pytest.raises(dataclasses.FrozenInstanceError):
        schedule.expression = "every minute"  # type: ignore[misc]
    assert schedule == Schedule.parse("every 5 minutes")
    assert hash(schedule) == hash(Schedule.parse("every 5 minutes"))
    assert schedule != Schedule.parse("every 5 minutes", "Europe/Paris")
    assert pickle.loads(pickle.dumps(schedule)).next_after(T) == utc(3, 4, 10, 20)


@pytest.mark.parametrize(
    ("expression", "kind", "text"),
    [
        ("every 5 minutes", "natural", "every 5 minutes"),
        ("  0 9 * * MON-FRI ", "cron", "0 9 * * MON-FRI"),
        ("@daily", "cron", "@daily"),
        ("90s", "interval", "90s"),
        (timedelta(hours=1, minutes=30), "interval", "1h30m"),
        (timedelta(days=2, seconds=5), "interval", "2d5s"),
    ],
)
def test_kind_and_expression(expression: str | timedelta, kind: str, text: str) -> None:
    schedule = Schedule.parse(expression)
    assert schedule.kind == kind
    assert schedule.expression == text
    assert Schedule.parse(schedule.expression).next_after(T) == schedule.next_after(T)


def test_time_zone_defaults_to_utc_and_can_come_from_either_place() -> None:
    assert Schedule.parse("every day").tz == ZoneInfo("UTC")
    assert Schedule.parse("every day", "Europe/Paris").tz == ZoneInfo("Europe/Paris")
    assert Schedule.parse("every day", ZoneInfo("Asia/Tokyo")).tz.key == "Asia/Tokyo"
    assert Schedule.parse("every day tz Europe/Paris").tz.key == "Europe/Paris"
    assert Schedule.parse("tz europe/paris every day").tz.key == "Europe/Paris"
    # the same zone in both places is fine
    assert Schedule.parse("every day tz Europe/Paris", tz="Europe/Paris").tz.key == "Europe/Paris"


@pytest.mark.parametrize(
    ("expression", "tz", "description"),
    [
        ("every 5 minutes", None, "every 5 minutes (aligned), tz UTC"),
        ("every 7 minutes", None, "every 7 minutes counted from the Unix epoch, tz UTC"),
        (
            "every day at 9:00 and 17:00",
            "Europe/Paris",
            "every day at 09:00 and 17:00, tz Europe/Paris",
        ),
        ("every weekday at 18:00", None, "every Mon-Fri at 18:00, tz UTC"),
        (
            "every 15 minutes between 9am and 5pm on weekdays",
            None,
            "every 15 minutes (aligned) between 09:00 and 17:00 on Mon-Fri, tz UTC",
        ),
        ("every month on the last friday", None, "every month on the last Fri at 00:00, tz UTC"),
        ("every year on 25 december", None, "every year on Dec 25 at 00:00, tz UTC"),
        ("0 9 * * MON-FRI", None, "cron '0 9 * * MON-FRI', tz UTC"),
        ("@weekly", None, "@weekly (cron '0 0 * * 0'), tz UTC"),
        ("1h30m", None, "every 1h30m counted from the Unix epoch, tz UTC"),
    ],
)
def test_describe(expression: str, tz: str | None, description: str) -> None:
    assert Schedule.parse(expression, tz).describe() == description


def test_naive_datetimes_are_utc() -> None:
    schedule = Schedule.parse("every day at 9:00")
    assert schedule.next_after(datetime(2026, 3, 4, 10, 17, 23)) == utc(3, 5, 9)


def test_next_after_is_strict() -> None:
    schedule = Schedule.parse("every 5 minutes")
    assert schedule.next_after(utc(3, 4, 10, 20)) == utc(3, 4, 10, 25)
    assert schedule.next_after(utc(3, 4, 10, 20) - timedelta(microseconds=1)) == utc(3, 4, 10, 20)


def test_start_bounds_and_anchors() -> None:
    # a start exactly on a fire time fires at start
    interval = Schedule.parse("10m", start=utc(3, 4, 10, 3))
    assert interval.next_n(at(2020, 1, 1), 2) == [utc(3, 4, 10, 3), utc(3, 4, 10, 13)]
    calendar_rule = Schedule.parse("every day at 9:00", start=utc(3, 10, 9))
    assert calendar_rule.next_after(T) == utc(3, 10, 9)
    assert "from 2026-03-10 09:00:00 UTC" in calendar_rule.describe()


def test_end_stops_the_schedule() -> None:
    schedule = Schedule.parse("every day at 9:00", end=utc(3, 6, 9))
    assert schedule.next_n(T, 5) == [utc(3, 5, 9), utc(3, 6, 9)]
    assert schedule.next_after(utc(3, 6, 9)) is None
    assert schedule.next_n(T, 0) == []
    assert "until 2026-03-06 09:00:00 UTC" in schedule.describe()


def test_validate_timezone() -> None:
    assert validate_timezone("Europe/Paris") == ZoneInfo("Europe/Paris")
    assert validate_timezone("america/new_york").key == "America/New_York"
    with pytest.raises(ScheduleExpressionError) as info:
        validate_timezone("Mars/Olympus_Mons")
    assert info.value.word == "Mars/Olympus_Mons"
    assert "Mars/Olympus_Mons" in str(info.value)
    for bad in ("", "Europe", "../etc/passwd", "/etc/passwd"):
        with pytest.raises(ScheduleExpressionError):
            validate_timezone(bad)


def test_next_after_is_fast() -> None:
    schedules = [
        Schedule.parse("every 5 minutes", "Europe/Paris"),
        Schedule.parse("0 9 * * MON-FRI", "America/New_York"),
        Schedule.parse("every month on the last friday at 18:00"),
        Schedule.parse("* * * * * *"),
        Schedule.parse("every year on feb 29"),
    ]
    began = time.perf_counter()
    for schedule in schedules:
        current: datetime | None = T
        for _ in range(200):
            assert current is not None
            current = schedule.next_after(current)
    elapsed = time.perf_counter() - began
    assert elapsed / 1000 < 0.001  # well under a millisecond per call


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "word", "position"),
    [
        ("every fortnight", "fortnight", 6),
        ("every", None, 5),
        ("every 0 minutes", "0", 6),
        ("every 5 parsecs", "parsecs", 8),
        ("every 1.5 hours", "1.5", 6),
        ("every day at", None, 12),
        ("every day at 25:00", "25:00", 13),
        ("every day at 9:60", "9:60", 13),
        ("every day at 13pm", "13pm", 13),
        ("every day at 9:00 and", "and", 18),
        ("every hour at 9", "at", 11),
        ("every day between 9 and 10", "between", 10),
        ("every 2 days on monday", "on", 13),
        ("every hour between 17:00 and 9:00", "9:00", 29),
        ("every hour between 9 to 17", "to", 21),
        ("every monday and", "and", 13),
        ("every mon, at 9", "at", 11),
        ("every month on the 32nd", "32nd", 19),
        ("every month on the sixth friday", "sixth", 19),
        ("every month on the last", None, 23),
        ("every year on feb 30", "30", 18),
        ("every year on 31 april", "31", 14),
        ("every 200 years", "200", 6),
        ("every day at 9 tz Mars/Olympus", "Mars/Olympus", 18),
        ("every day tz UTC in UTC", "in", 17),
        ("fortnightly", "fortnightly", 0),
        ("61 * * * *", "61", 0),
        ("0 25 * * *", "25", 2),
        ("0 0 1,15W * *", "1,15W", 4),
        ("0 0 32W * *", "32W", 4),
        ("0 0 * * 8", "8", 8),
        ("0 0 * FOO *", "FOO", 6),
        ("*/0 * * * *", "*/0", 0),
        ("0 9 * * * 75", "75", 10),
        ("0 9 * * * tz Nowhere/Land", "Nowhere/Land", 13),
        ("@reboot", "@reboot", 0),
        ("@daily now", "now", 7),
        ("5x", "x", 1),
        ("1h30", "30", 2),
        ("1m1m", "1m", 2),
        ("0s", "0s", 0),
    ],
)
def test_mistakes_name_the_word_and_its_position(
    expression: str, word: str | None, position: int
) -> None:
    with pytest.raises(ScheduleExpressionError) as info:
        Schedule.parse(expression)
    error = info.value
    assert error.word == word
    assert error.position == position
    assert error.expression == expression
    assert repr(expression) in str(error)
    if word is not None:
        assert f"could not read {word!r} at position {position}" in str(error)


def test_the_message_says_what_was_expected() -> None:
    with pytest.raises(ScheduleExpressionError) as info:
        Schedule.parse("every fortnight")
    assert str(info.value) == (
        "could not read 'fortnight' at position 6 in 'every fortnight': expected a number or "
        "one of second, minute, hour, day, week, month, year, weekday, weekend, monday..sunday"
    )


@pytest.mark.parametrize(
    "expression",
    ["* * * *", "1 2 3 4 5 6 7", "0 0 30 2 *", "0 0 31 4,6,9,11 *", "every 4 years on feb 29"],
)
def test_whole_expression_mistakes(expression: str) -> None:
    with pytest.raises(ScheduleExpressionError) as info:
        Schedule.parse(expression)
    assert info.value.position is None
    assert repr(expression) in str(info.value)


@pytest.mark.parametrize("expression", ["", "   "])
def test_empty_expression(expression: str) -> None:
    with pytest.raises(ScheduleExpressionError, match="empty schedule expression"):
        Schedule.parse(expression)


@pytest.mark.parametrize(
    "interval", [timedelta(0), timedelta(seconds=-5), timedelta(milliseconds=1500)]
)
def test_bad_timedelta(interval: timedelta) -> None:
    with pytest.raises(ScheduleExpressionError):
        Schedule.parse(interval)


@pytest.mark.parametrize("expression", [5, 1.5, None, b"every day", ["every day"]])
def test_wrong_type(expression: Any) -> None:
    with pytest.raises(ScheduleExpressionError, match="must be a string or a timedelta"):
        Schedule.parse(expression)


def test_unknown_time_zone_argument() -> None:
    with pytest.raises(ScheduleExpressionError) as info:
        Schedule.parse("every day", tz="Nowhere/Land")
    assert info.value.word == "Nowhere/Land"
    with pytest.raises(ScheduleExpressionError):
        Schedule.parse("every day", tz=3)  # type: ignore[arg-type]


def test_conflicting_time_zones() -> None:
    with pytest.raises(ScheduleExpressionError) as info:
        Schedule.parse("every day tz Europe/Paris", tz="UTC")
    assert info.value.word == "Europe/Paris"
    assert info.value.position == 13


def test_end_before_start() -> None:
    with pytest.raises(ScheduleExpressionError, match="before start"):
        Schedule.parse("every day", start=utc(3, 5), end=utc(3, 4))


def test_errors_belong_to_the_schedule_hierarchy() -> None:
    with pytest.raises(ScheduleError):
        Schedule.parse("every fortnight")
    with pytest.raises(ValueError):
        Schedule.parse("every fortnight")
