"""The English grammar's forms that NaturalCron also has: the weekday closest to a day, day
offsets, Friday the 13th, a time per list item, several windows, day-of-month windows and
one-shot dates; and cron's ``W``.

Expected fire times are written out by hand. Calendar facts used (2026 unless said): March
starts on a Sunday (31 days), April on a Wednesday (30), May on a Friday (31), June on a
Monday (30), July on a Wednesday, August on a Saturday (31), September on a Tuesday, October
on a Thursday, November on a Sunday; January 2027 on a Friday. Friday the 13th falls in
March and November 2026, then in August 2027. Europe/Paris is UTC+1 until 2026-03-29 02:00
(then UTC+2).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from croniter import croniter

from jobmaster.exceptions import ScheduleExpressionError
from jobmaster.schedules import Schedule

T = datetime(2026, 3, 4, 10, 17, 23, tzinfo=UTC)  # a Wednesday


def utc(month: int, day: int, hour: int = 0, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        # 1. the weekday closest to a day (Sunday the 15th of March → Monday the 16th)
        (
            "every month on the closest weekday to the 15th at 9:00",
            T,
            [utc(3, 16, 9), utc(4, 15, 9), utc(5, 15, 9)],
        ),
        ("0 9 15W * *", T, [utc(3, 16, 9), utc(4, 15, 9), utc(5, 15, 9)]),
        # Saturday the 1st of August moves forward (never into July)
        (
            "every month on the nearest weekday to the 1st",
            utc(7, 2),
            [utc(8, 3), utc(9, 1), utc(10, 1)],
        ),
        ("0 0 1W * *", utc(7, 2), [utc(8, 3), utc(9, 1), utc(10, 1)]),
        # the 31st counts as the last day; Sunday the 31st of May moves back to Friday 29
        ("every month on the closest weekday to the 31st", T, [utc(3, 31), utc(4, 30), utc(5, 29)]),
        ("0 0 31W * *", T, [utc(3, 31), utc(4, 30), utc(5, 29)]),
        ("every month on the last weekday", T, [utc(3, 31), utc(4, 30), utc(5, 29)]),
        ("0 0 LW * *", T, [utc(3, 31), utc(4, 30), utc(5, 29)]),
        ("every month on the first weekday", utc(7, 2), [utc(8, 3), utc(9, 1), utc(10, 1)]),
        # 2. offsets
        ("every month on the last day - 5", T, [utc(3, 26), utc(4, 25), utc(5, 26)]),
        (
            "every month on the last day of the month - 5 at 18:00",
            T,
            [utc(3, 26, 18), utc(4, 25, 18), utc(5, 26, 18)],
        ),
        ("every month on the last day -5 days", T, [utc(3, 26), utc(4, 25), utc(5, 26)]),
        ("every month on the third friday + 1", T, [utc(3, 21), utc(4, 18), utc(5, 16)]),
        ("every month on the 3rd fri +1 day", T, [utc(3, 21), utc(4, 18), utc(5, 16)]),
        # Monday the 1st of June minus one stays in June (offsets never leave the month)
        ("every month on the first monday - 1", T, [utc(4, 5), utc(5, 3), utc(6, 1)]),
        # the last Friday of May is the 29th; + 3 stops at the 31st
        ("every month on the last friday + 3", T, [utc(3, 30), utc(4, 27), utc(5, 31)]),
        ("every month on the 15th - 2 and the 1st", T, [utc(3, 13), utc(4, 1), utc(4, 13)]),
        # 3. a date and a weekday, both holding
        (
            "every month on friday the 13th",
            T,
            [utc(3, 13), utc(11, 13), utc(8, 13, year=2027)],
        ),
        (
            "every friday the 13th at 9:00",
            T,
            [utc(3, 13, 9), utc(11, 13, 9), utc(8, 13, 9, year=2027)],
        ),
        ("every month on fri 13th and the 1st", T, [utc(3, 13), utc(4, 1), utc(5, 1)]),
        # 4. a time per list item
        (
            "every month on the 1st at 03:00 and the 3rd at 22:00",
            T,
            [utc(4, 1, 3), utc(4, 3, 22), utc(5, 1, 3)],
        ),
        (
            "every monday at 9:00 and friday at 17:00",
            T,
            [utc(3, 6, 17), utc(3, 9, 9), utc(3, 13, 17)],
        ),
        (
            "every week on mon at 9am, fri at 5pm",
            T,
            [utc(3, 6, 17), utc(3, 9, 9), utc(3, 13, 17)],
        ),
        (
            "every year on jan 1 at 0:00 and jul 4 at 12:00",
            T,
            [utc(7, 4, 12), utc(1, 1, year=2027), utc(7, 4, 12, year=2027)],
        ),
        (
            "every month on the 1st at 03:00 and the 3rd at 22:00 in jan",
            T,
            [utc(1, 1, 3, year=2027), utc(1, 3, 22, year=2027), utc(1, 1, 3, year=2028)],
        ),
        # one "at" after the last item is still for the whole list
        (
            "every month on the 1st and the 15th at 9:00",
            T,
            [utc(3, 15, 9), utc(4, 1, 9), utc(4, 15, 9)],
        ),
        # 5. several windows, each counted from its own start
        (
            "every 15 minutes between 09:00 and 12:00 and between 14:00 and 17:00",
            utc(3, 4, 11, 50),
            [utc(3, 4, 12), utc(3, 4, 14), utc(3, 4, 14, 15)],
        ),
        (
            "every 15 minutes between 09:00 and 12:00 and between 14:00 and 17:00",
            utc(3, 4, 17),
            [utc(3, 5, 9), utc(3, 5, 9, 15), utc(3, 5, 9, 30)],
        ),
        (
            "every 2 hours between 9:00 and 12:00, between 13:00 and 18:00",
            T,
            [utc(3, 4, 11), utc(3, 4, 13), utc(3, 4, 15)],
        ),
        (
            "every 30 minutes until 01:00 and from 23:00",
            T,
            [utc(3, 4, 23), utc(3, 4, 23, 30), utc(3, 5, 0)],
        ),
        # 6. days of the month
        ("every day between the 10th and 15th", T, [utc(3, 10), utc(3, 11), utc(3, 12)]),
        ("every day between the 10th and 15th", utc(3, 15), [utc(4, 10), utc(4, 11), utc(4, 12)]),
        (
            "every day from the 28th to the 2nd at 9:00",
            utc(3, 30, 10),
            [utc(3, 31, 9), utc(4, 1, 9), utc(4, 2, 9)],
        ),
        ("every hour between the 10th and 15th", T, [utc(3, 10, 0), utc(3, 10, 1), utc(3, 10, 2)]),
        (
            "every 30 minutes between 9:00 and 10:00 between the 10th and 12th",
            T,
            [utc(3, 10, 9), utc(3, 10, 9, 30), utc(3, 10, 10)],
        ),
        (
            "every weekday between the 1st and 7th at 8:00",
            T,
            [utc(3, 5, 8), utc(3, 6, 8), utc(4, 1, 8)],
        ),
        (
            "every day between the 11th and 12th and between the 20th and 20th",
            T,
            [utc(3, 11), utc(3, 12), utc(3, 20)],
        ),
    ],
)
def test_fire_times(expression: str, after: datetime, expected: list[datetime]) -> None:
    assert Schedule.parse(expression).next_n(after, 3) == expected


def test_friday_the_13th_needs_both_unlike_cron() -> None:
    english = Schedule.parse("every month on friday the 13th")
    cron = Schedule.parse("0 0 13 * 5")  # cron: a Friday OR a 13th
    assert english.next_after(T) == utc(3, 13)
    assert cron.next_n(T, 2) == [utc(3, 6), utc(3, 13)]


def test_cron_w_with_a_weekday_keeps_the_or_rule() -> None:
    # Fridays 6, 13, 20 and the weekday closest to Sunday the 15th (Monday 16th)
    assert Schedule.parse("0 9 15W * 5").next_n(T, 4) == [
        utc(3, 6, 9),
        utc(3, 13, 9),
        utc(3, 16, 9),
        utc(3, 20, 9),
    ]


@pytest.mark.parametrize("expression", ["0 9 15W * *", "0 9 1W * *", "0 9 31W * *", "30 8 28W * *"])
def test_cron_w_agrees_with_croniter(expression: str) -> None:
    start = datetime(2026, 1, 1)
    reference = croniter(expression, start)
    expected = [reference.get_next(datetime).replace(tzinfo=UTC) for _ in range(36)]
    assert Schedule.parse(expression).next_n(start, 36) == expected


def test_day_forms_agree_with_naturalcron_on_the_days() -> None:
    pairs = [
        ("@on ClosestWeekdayTo 15", "every month on the closest weekday to the 15th"),
        ("@on LastDay - 5", "every month on the last day - 5"),
        ("@on ThirdFriday + 1", "every month on the third friday + 1"),
        ("@on friday @on 13th", "every month on friday the 13th"),
        ("@every day @between 10th and 15th", "every day between the 10th and 15th"),
    ]
    for naturalcron, english in pairs:
        theirs = Schedule.parse(naturalcron, dialect="naturalcron").next_n(T, 12)
        ours = Schedule.parse(english).next_n(T, 12)
        assert [d.date() for d in theirs] == [d.date() for d in ours], english
    assert Schedule.parse("@at [1st 3am, 3rd 10pm]").next_n(T, 6) == Schedule.parse(
        "every month on the 1st at 03:00 and the 3rd at 22:00"
    ).next_n(T, 6)


# -- one-shot dates -------------------------------------------------------------------------


def test_a_one_shot_date_fires_once() -> None:
    schedule = Schedule.parse("at 2027-01-01 10:00")
    assert schedule.kind == "natural"
    assert schedule.next_after(T) == utc(1, 1, 10, year=2027)
    assert schedule.next_after(utc(1, 1, 10, year=2027)) is None
    assert schedule.next_n(T, 3) == [utc(1, 1, 10, year=2027)]
    assert schedule.describe() == "once at 2027-01-01 10:00, tz UTC"


def test_one_shot_dates_in_a_zone_and_in_a_list() -> None:
    assert Schedule.parse("at 2027-01-01 10:00 tz Europe/Paris").next_after(T) == utc(
        1, 1, 9, year=2027
    )
    schedule = Schedule.parse("on 2026-06-01 at 9am and 2026-03-05 at 18:30")
    assert schedule.next_n(T, 5) == [utc(3, 5, 18, 30), utc(6, 1, 9)]
    assert Schedule.parse("on 2026-03-05").next_n(T, 2) == [utc(3, 5)]
    # a wall time skipped by the spring-forward change moves by the gap: 03:30 CEST
    gap = Schedule.parse("at 2026-03-29 02:30", tz="Europe/Paris")
    assert gap.next_after(T) == utc(3, 29, 1, 30)


def test_a_one_shot_date_in_the_past_or_after_end_never_fires() -> None:
    assert Schedule.parse("at 2020-01-01").next_after(T) is None
    assert Schedule.parse("at 2027-01-01 10:00", end=utc(12, 31)).next_after(T) is None


# -- descriptions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "description"),
    [
        (
            "every month on the closest weekday to the 15th at 9:00",
            "every month on the closest weekday to the 15th at 09:00, tz UTC",
        ),
        ("every month on the last day - 5", "every month on the last day - 5 at 00:00, tz UTC"),
        (
            "every month on friday the 13th",
            "every month on the 13th when it is a Fri at 00:00, tz UTC",
        ),
        (
            "every month on the 1st at 03:00 and the 3rd at 22:00",
            "every month on the 1st at 03:00 and 3rd at 22:00, tz UTC",
        ),
        (
            "every 15 minutes between 09:00 and 12:00 and between 14:00 and 17:00",
            "every 15 minutes (aligned) between 09:00 and 12:00 and between 14:00 and 17:00, "
            "tz UTC",
        ),
        ("every day between the 10th and 15th", "every day at 00:00 on days 10-15, tz UTC"),
    ],
)
def test_describe(expression: str, description: str) -> None:
    assert Schedule.parse(expression).describe() == description


# -- mistakes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "word", "position"),
    [
        ("every month on the closest weekday", None, 34),
        ("every month on the closest day to the 15th", "day", 27),
        ("every month on the closest weekday from the 15th", "from", 35),
        ("every month on the closest weekday to the 32nd", "32nd", 42),
        ("every month on the nearest weekday to the banana", "banana", 42),
        ("every month on the second weekday", "second", 19),
        ("every month on the last day - x", "x", 30),
        ("every month on the last day -x", "-x", 28),
        ("every month on the last day - 40", "40", 30),
        ("every month on the last day - 0", "0", 30),
        ("every month on the last day + 1", "+", 28),
        ("every month on the 1st - 1", "-", 23),
        ("every month on the last day of the year", "year", 35),
        ("every month on friday the 32nd", "32nd", 26),
        ("every month on friday the banana", "banana", 26),
        ("every month on the 1st at 03:00 and the 3rd", "3rd", 40),
        ("every monday at 9:00 and friday", "friday", 25),
        ("every month on the 1st and the 3rd at 22:00 at 10:00", "at", 44),
        ("every 15 minutes between 09:00 and 12:00 and between 14:00 and 11:00", "11:00", 63),
        ("every 15 minutes between 09:00 and 12:00 and between 14:00 to 17:00", "to", 59),
        ("every 15 minutes between 09:00 and 12:00 and", "and", 41),
        ("every day between the 10th and banana", "banana", 31),
        ("every day between the 10th to 15th", "to", 27),
        ("every day between the 0th and 5th", "0th", 22),
        ("every month between the 10th and 15th", "between", 12),
        ("at 2027-02-30 10:00", "2027-02-30", 3),
        ("at 2027-01-01 25:00", "25:00", 14),
        ("at tomorrow", "tomorrow", 3),
        ("at 9:00", "9:00", 3),
        ("at 2027-01-01 10:00 and", "and", 20),
        ("at 2027-01-01 10:00 every day", "every", 20),
        ("0 9 1,15W * *", "1,15W", 4),
        ("0 9 1-5W * *", "1-5W", 4),
        ("0 9 W * *", "W", 4),
        ("0 9 32W * *", "32W", 4),
    ],
)
def test_mistakes_name_the_word(expression: str, word: str | None, position: int) -> None:
    with pytest.raises(ScheduleExpressionError) as info:
        Schedule.parse(expression)
    error = info.value
    assert error.word == word
    assert error.position == position
    assert repr(expression) in str(error)
    if word is not None:
        assert expression[position:].startswith(word)
        assert f"could not read {word!r} at position {position}" in str(error)


@pytest.mark.parametrize(
    "expression",
    ["every day between the 30th and 31st in feb", "every friday the 31st in feb"],
)
def test_rules_that_never_fire_are_refused(expression: str) -> None:
    with pytest.raises(ScheduleExpressionError, match="never fires"):
        Schedule.parse(expression)
