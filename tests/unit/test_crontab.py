"""Celery's ``crontab()``: arguments read as Celery reads them, the cron line it renders, and
fire times, above all Celery's day rule (both day fields restricted: a day must match both).

Expected fire times are written out by hand from these calendar facts: 2026-03-04 is a
Wednesday; in 2026 the months start on Thu (Jan), Sun (Feb, Mar, Nov), Wed (Apr, Jul),
Fri (May), Mon (Jun), Sat (Aug), Tue (Sep, Dec), Thu (Oct); in 2027 on Fri (Jan), Mon (Feb,
Mar), Thu (Apr, Jul), Sat (May), Tue (Jun), Sun (Aug). So the 13th is a Friday in Feb, Mar and
Nov 2026 and next in Aug 2027. February 29 falls on a Sunday in 2032 and 2060 (2004 was one;
each leap day moves five weekdays on, so the cycle is 28 years). Europe/Paris is UTC+2 from
2026-03-29. The same tables were checked against Celery 5.7's ``crontab.remaining_delta``.
"""

from __future__ import annotations

import copy
import pickle
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobmaster import App
from jobmaster.exceptions import ScheduleExpressionError
from jobmaster.schedules import Crontab, Schedule, crontab
from jobmaster.scheduling import parse_stored

T = datetime(2026, 3, 4, 10, 17, 23, tzinfo=UTC)  # a Wednesday


def fires(expression: str, n: int, tz: str | None = None) -> list[str]:
    """The next ``n`` fire times after ``T`` as ``"YYYY-MM-DD HH:MM"`` in UTC."""
    return [f.strftime("%Y-%m-%d %H:%M") for f in Schedule.parse(expression, tz).next_n(T, n)]


# -- the day rule ------------------------------------------------------------------------------

BOTH_DAYS_RESTRICTED: list[tuple[dict[str, Any], list[str]]] = [
    # the first Monday of each month (March's, the 2nd, is already past)
    (dict(minute=0, hour=9, day_of_month="1-7", day_of_week="mon"),
     ["2026-04-06 09:00", "2026-05-04 09:00", "2026-06-01 09:00", "2026-07-06 09:00"]),
    # Friday the 13th, not every Friday and every 13th
    (dict(minute=0, hour=0, day_of_month=13, day_of_week="fri"),
     ["2026-03-13 00:00", "2026-11-13 00:00", "2027-08-13 00:00"]),
    # Celery's own example: Sunday and every seventh day = only months starting on a Sunday
    (dict(minute=30, hour=7, day_of_week=0, day_of_month="*/7"),
     ["2026-03-08 07:30", "2026-03-15 07:30", "2026-03-22 07:30", "2026-03-29 07:30",
      "2026-11-01 07:30"]),
    # Celery's other example: day_of_week=1 with '1-7,15-21' = first and third Mondays
    (dict(minute=0, hour=8, day_of_week=1, day_of_month="1-7,15-21"),
     ["2026-03-16 08:00", "2026-04-06 08:00", "2026-04-20 08:00", "2026-05-04 08:00",
      "2026-05-18 08:00"]),
    # with months too: a weekend day among the 1st-3rd of June to August
    (dict(minute=0, hour=12, day_of_week="sat,sun", day_of_month="1-3", month_of_year="6-8"),
     ["2026-08-01 12:00", "2026-08-02 12:00", "2027-07-03 12:00", "2027-08-01 12:00"]),
    # a leap day that is a Sunday: once in 28 years
    (dict(minute=0, hour=0, day_of_month=29, month_of_year=2, day_of_week="sun"),
     ["2032-02-29 00:00", "2060-02-29 00:00"]),
]


@pytest.mark.parametrize(("arguments", "expected"), BOTH_DAYS_RESTRICTED)
def test_both_day_fields_restricted_means_both_must_match(
    arguments: dict[str, Any], expected: list[str]
) -> None:
    schedule = crontab(**arguments)
    assert schedule.days_must_both_match
    assert schedule.startswith("crontab: ")
    assert fires(schedule, len(expected)) == expected


def test_the_same_cron_line_without_the_prefix_keeps_crons_either_rule() -> None:
    first_monday = crontab(minute=0, hour=9, day_of_month="1-7", day_of_week="mon")
    assert first_monday == "crontab: 0 9 1-7 * 1"
    assert first_monday.cron == "0 9 1-7 * 1"
    # cron: the 5th, 6th and 7th (Thu-Sat), then Monday the 9th, ... fire as well
    assert fires(first_monday.cron, 4) == [
        "2026-03-05 09:00", "2026-03-06 09:00", "2026-03-07 09:00", "2026-03-09 09:00"
    ]
    assert fires("0 0 13 * 5", 2) == ["2026-03-06 00:00", "2026-03-13 00:00"]


ONE_OR_NO_DAY_FIELD: list[tuple[dict[str, Any], str, list[str]]] = [
    (dict(minute=0, hour="*/3"), "0 */3 * * *",
     ["2026-03-04 12:00", "2026-03-04 15:00", "2026-03-04 18:00", "2026-03-04 21:00",
      "2026-03-05 00:00"]),
    (dict(minute=0, hour=9, day_of_week="mon-fri"), "0 9 * * 1-5",
     ["2026-03-05 09:00", "2026-03-06 09:00", "2026-03-09 09:00"]),
    (dict(minute=0, hour=0, day_of_month=1), "0 0 1 * *",
     ["2026-04-01 00:00", "2026-05-01 00:00"]),
    (dict(minute=0, hour=0, day_of_week=7), "0 0 * * 0",  # 7 is Sunday too
     ["2026-03-08 00:00", "2026-03-15 00:00"]),
    (dict(minute=0, hour="22-2"), "0 0-2,22,23 * * *",  # wraps past midnight, as in Celery
     ["2026-03-04 22:00", "2026-03-04 23:00", "2026-03-05 00:00", "2026-03-05 01:00",
      "2026-03-05 02:00", "2026-03-05 22:00"]),
    (dict(minute="*/15", hour=11), "*/15 11 * * *",
     ["2026-03-04 11:00", "2026-03-04 11:15", "2026-03-04 11:30", "2026-03-04 11:45",
      "2026-03-05 11:00"]),
    (dict(minute=0, hour=0, day_of_month=31, month_of_year="jun-aug"), "0 0 31 6-8 *",
     ["2026-07-31 00:00", "2026-08-31 00:00", "2027-07-31 00:00"]),
    # an unrestricted field given in full is '*', so the day rule stays that of one field
    (dict(minute=0, hour=0, day_of_month=range(1, 32), day_of_week="sun"), "0 0 * * 0",
     ["2026-03-08 00:00"]),
]


@pytest.mark.parametrize(("arguments", "line", "expected"), ONE_OR_NO_DAY_FIELD)
def test_at_most_one_day_field_restricted_is_a_plain_cron_line(
    arguments: dict[str, Any], line: str, expected: list[str]
) -> None:
    schedule = crontab(**arguments)
    assert str(schedule) == line
    assert not schedule.days_must_both_match
    assert fires(schedule, len(expected)) == expected


def test_time_zone_applies_to_the_wall_clock() -> None:
    first_monday = crontab(minute=0, hour=9, day_of_month="1-7", day_of_week="mon")
    # 09:00 in Paris is 07:00 UTC once summer time has begun (March 29th)
    assert fires(first_monday, 2, "Europe/Paris") == ["2026-04-06 07:00", "2026-05-04 07:00"]


def test_describe_names_celerys_rule() -> None:
    both = Schedule.parse(crontab(minute=0, hour=0, day_of_month=13, day_of_week="fri"))
    assert both.kind == "cron"
    assert both.describe() == (
        "Celery crontab '0 0 13 * 5' (a day fires only if its day of the month and day of the "
        "week both match), tz UTC"
    )
    assert Schedule.parse(crontab(minute=0, hour="*/3")).describe() == "cron '0 */3 * * *', tz UTC"


def test_the_crontab_prefix_and_dialect_are_read_by_schedule_parse() -> None:
    by_prefix = Schedule.parse("crontab: 0 0 13 * FRI")
    by_dialect = Schedule.parse("0 0 13 * FRI", dialect="crontab")
    assert by_prefix.next_n(T, 2) == by_dialect.next_n(T, 2) == [
        datetime(2026, 3, 13, tzinfo=UTC), datetime(2026, 11, 13, tzinfo=UTC)
    ]
    assert fires("crontab: 0 9 * * 1-5", 1) == ["2026-03-05 09:00"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("crontab: 0 9 L * 1", "not cron's L, W or #"),
        ("crontab: 0 9 15W * 1", "not cron's L, W or #"),
        ("crontab: 0 9 1 * 5#3", "not cron's L, W or #"),
        ("crontab: 0 9 1 * 1 30", "a crontab has 5"),
        ("crontab: 5m", "a crontab's 5 cron fields"),
    ],
)
def test_the_crontab_dialect_refuses_what_celery_does_not_have(text: str, words: str) -> None:
    with pytest.raises(ScheduleExpressionError, match=words):
        Schedule.parse(text)


# -- reading the arguments ---------------------------------------------------------------------

RENDERED: list[tuple[dict[str, Any], str]] = [
    ({}, "* * * * *"),
    (dict(minute=0), "0 * * * *"),
    (dict(minute="1,13,30-45,50-59/2"),
     "1,13,30-45,50,52,54,56,58 * * * *"),
    (dict(hour="0,8-17/2"), "* 0,8,10,12,14,16 * * *"),
    (dict(minute={0, 30}), "0,30 * * * *"),
    (dict(minute=[5, 20, 35, 50]), "5-50/15 * * * *"),
    (dict(hour=range(9, 18)), "* 9-17 * * *"),
    (dict(day_of_week="mon,wed"), "* * * * 1,3"),
    (dict(day_of_week="Monday-Friday"), "* * * * 1-5"),
    (dict(day_of_week="sat-sun"), "* * * * 0,6"),
    (dict(day_of_week="fri-mon/2"), "* * * * 0,5"),  # Celery steps the wrapped list: fri, sun
    (dict(day_of_week="thurs,tues"), "* * * * 2,4"),
    (dict(day_of_week="*/2"), "* * * * */2"),
    (dict(day_of_week="0-7"), "* * * * *"),
    (dict(day_of_month="2-30/2"), "* * 2-30/2 * *"),
    (dict(day_of_month="*/3"), "* * */3 * *"),
    (dict(month_of_year="*/3"), "* * * */3 *"),
    (dict(month_of_year="jan"), "* * * 1 *"),
    (dict(month_of_year="2-12/2"), "* * * 2-12/2 *"),
    (dict(month_of_year="sept,DEC"), "* * * 9,12 *"),
    (dict(minute="5/15"), "5-50/15 * * * *"),  # cron's n/step: from n to the end
    (dict(minute=" 0 , 30 "), "0,30 * * * *"),
]


@pytest.mark.parametrize(("arguments", "line"), RENDERED)
def test_arguments_render_as_a_cron_line(arguments: dict[str, Any], line: str) -> None:
    schedule = crontab(**arguments)
    assert schedule == line
    # the line means the same to cron: every value set is as expanded
    assert Schedule.parse(line).next_n(T, 5) == Schedule.parse(schedule).next_n(T, 5)


def test_expanded_values_are_attributes_numbered_as_in_celery() -> None:
    schedule = crontab(minute="*/20", hour=[9, 17], day_of_week="sun,sat,7",
                       day_of_month="1-3", month_of_year="dec")
    assert schedule.minute == frozenset({0, 20, 40})
    assert schedule.hour == frozenset({9, 17})
    assert schedule.day_of_week == frozenset({0, 6})  # Sunday is 0
    assert schedule.day_of_month == frozenset({1, 2, 3})
    assert schedule.month_of_year == frozenset({12})
    assert isinstance(schedule, Crontab)
    assert isinstance(schedule, str)


def test_positional_arguments_follow_celerys_order() -> None:
    # minute, hour, day_of_week, day_of_month, month_of_year
    assert crontab(0, 9, "mon", "1-7", 4) == "crontab: 0 9 1-7 4 1"


def test_a_crontab_is_an_immutable_value() -> None:
    schedule = crontab(minute=0, hour=9, day_of_month="1-7", day_of_week="mon")
    with pytest.raises(AttributeError):
        schedule.hour = frozenset({10})
    with pytest.raises(AttributeError):
        del schedule.minute
    for copied in (pickle.loads(pickle.dumps(schedule)), copy.deepcopy(schedule)):
        assert copied == schedule
        assert isinstance(copied, Crontab)
        assert copied.day_of_week == frozenset({1})
    assert crontab(minute=0) == crontab(minute="0") == crontab(minute=[0])
    assert len({crontab(minute=0), crontab(minute="0")}) == 1
    assert repr(schedule) == "<crontab: 0 9 1-7 * 1 (m/h/dM/MY/d)>"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (dict(hour=25), "hour=25 is out of range: hours are 0-23"),
        (dict(minute=60), "minute=60 is out of range: minutes are 0-59"),
        (dict(minute=-1), "minute=-1 is out of range"),
        (dict(day_of_week=8), "day_of_week=8 is out of range: days of the week are 0-6 "
                              r"\(0 or 7 = Sunday\)"),
        (dict(day_of_month=0), "day_of_month=0 is out of range: days of the month are 1-31"),
        (dict(month_of_year=13), "month_of_year=13 is out of range: months are 1-12"),
        (dict(hour="8-25"), "hour='8-25' holds 25, which is out of range"),
        (dict(month_of_year=[1, 13]), r"month_of_year=\[1, 13\] holds 13, which is out of range"),
        (dict(minute="*/0"), r"minute='\*/0' has step '0'"),
        (dict(minute="*/x"), r"minute='\*/x' has step 'x'"),
        (dict(day_of_week="funday"), "day_of_week='funday' has 'funday', which is not a number "
                                     "or a name"),
        (dict(day_of_week="mo"), "day_of_week='mo' has 'mo'"),
        (dict(minute="mon"), "minute='mon' has 'mon', which is not a number or a name"),
        (dict(hour="-1"), "hour='-1' has a range without a start or an end"),
        (dict(hour="1,,2"), "hour='1,,2' has an empty item between commas"),
        (dict(hour=""), "hour='' is empty"),
        (dict(minute=[]), r"minute=\[\] is empty"),
        (dict(minute=[0, "15"]), r"minute=\[0, '15'\] holds '15': an iterable must hold ints"),
        (dict(minute=1.5), "minute=1.5 must be an int, a string such as '\\*/15' or an "
                           "iterable of ints, not float"),
        (dict(hour=None), "hour=None must be"),
        (dict(hour=True), "hour=True must be an int"),
        (dict(day_of_month=30, month_of_year=2), "day_of_month='30' with month_of_year='2' "
                                                 "never fires"),
    ],
)
def test_bad_arguments_are_refused_naming_argument_and_value(
    arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(ScheduleExpressionError, match=message):
        crontab(**arguments)


def test_errors_are_value_errors_as_in_celery() -> None:
    with pytest.raises(ValueError, match="hour=25"):
        crontab(hour=25)


# -- with an app -------------------------------------------------------------------------------


def test_app_recurring_accepts_a_crontab() -> None:
    app = App("crontab-unit", master="sqlite:///unit-crontab.db",
              agents={"main": "memory://unit-crontab"})
    app.recurring(crontab(minute=0, hour="*/3"), "add", kwargs={"x": 1, "y": 2},
                  name="every-3h")
    app.recurring(crontab(minute=0, hour=9, day_of_month="1-7", day_of_week="mon"), "add",
                  kwargs={"x": 1, "y": 2}, name="first-monday", tz="UTC")
    every_3h = app.static_schedules["every-3h"]
    assert every_3h["expression"] == "0 */3 * * *"
    assert every_3h["next_fire_at"].hour % 3 == 0
    first_monday = app.static_schedules["first-monday"]
    assert first_monday["expression"] == "crontab: 0 9 1-7 * 1"
    # what the master stores reads back with Celery's rule
    stored = {**first_monday, "expression": str(first_monday["expression"])}
    assert parse_stored(stored).next_n(T, 2) == [
        datetime(2026, 4, 6, 9, tzinfo=UTC), datetime(2026, 5, 4, 9, tzinfo=UTC)
    ]


# -- against the definition --------------------------------------------------------------------


def _allowed(schedule: Crontab, moment: datetime) -> bool:
    """Celery's definition: a minute fires when all five fields allow it (UTC here)."""
    return (moment.minute in schedule.minute and moment.hour in schedule.hour
            and moment.isoweekday() % 7 in schedule.day_of_week
            and moment.day in schedule.day_of_month
            and moment.month in schedule.month_of_year)


def test_random_crontabs_fire_exactly_when_every_field_allows_it() -> None:
    rng = random.Random(20260304)

    def pattern(low: int, high: int) -> Any:
        kind = rng.randrange(5)
        if kind == 0:
            return "*"
        if kind == 1:
            return rng.randint(low, high)
        if kind == 2:
            return f"{rng.randint(low, high)}-{rng.randint(low, high)}"
        if kind == 3:
            return f"*/{rng.randint(2, 7)}"
        return sorted(rng.sample(range(low, high + 1), rng.randint(1, 4)))

    checked = 0
    while checked < 150:
        try:
            schedule = crontab(pattern(0, 59), pattern(0, 23), pattern(0, 6), pattern(1, 31),
                               pattern(1, 12))
        except ScheduleExpressionError:
            continue  # a day no allowed month has
        checked += 1
        start = T + timedelta(days=rng.randrange(1500))
        fire = Schedule.parse(schedule).next_after(start)
        assert fire is not None and _allowed(schedule, fire), (schedule, start, fire)
        # no allowed minute in between: on each allowed day, the first allowed minute
        day = start.replace(hour=0, minute=0, second=0, microsecond=0)
        while day < fire:
            for hour in sorted(schedule.hour):
                minute = next((m for m in sorted(schedule.minute)
                               if day.replace(hour=hour, minute=m) > start), None)
                if minute is not None:
                    earliest = day.replace(hour=hour, minute=minute)
                    if _allowed(schedule, earliest):
                        assert earliest >= fire, (schedule, start, fire, earliest)
                    break
            day += timedelta(days=1)
