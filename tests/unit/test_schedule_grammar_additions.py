"""The English grammar's month filters, daily/hourly and open-ended windows, and the fixes
to how strings are routed and reported."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobmaster.exceptions import ScheduleExpressionError
from jobmaster.schedules import Schedule

T = datetime(2026, 3, 4, 10, 17, 23, tzinfo=UTC)  # a Wednesday


def utc(month: int, day: int, hour: int = 0, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("every day at 9:00 in january", [utc(1, 1, 9, year=2027), utc(1, 2, 9, year=2027)]),
        ("every month on the 1st in jan and jun", [utc(6, 1), utc(1, 1, year=2027)]),
        ("every day between jun and aug", [utc(6, 1), utc(6, 2)]),
        ("every day from nov to feb", [utc(11, 1), utc(11, 2)]),
        ("daily at 9:00", [utc(3, 5, 9), utc(3, 6, 9)]),
        ("hourly between 09:00 and 17:00", [utc(3, 4, 11), utc(3, 4, 12)]),
        ("every 30 minutes from 18:00", [utc(3, 4, 18), utc(3, 4, 18, 30)]),
        ("every hour until 10:15", [utc(3, 5, 0), utc(3, 5, 1)]),
    ],
)
def test_new_english_forms(expression: str, expected: list[datetime]) -> None:
    schedule = Schedule.parse(expression)
    assert schedule.kind == "natural"
    assert schedule.next_n(T, 2) == expected


def test_in_a_month_is_not_a_time_zone() -> None:
    assert Schedule.parse("every day in january").tz.key == "UTC"
    assert Schedule.parse("every day in Europe/Paris").tz.key == "Europe/Paris"


def test_hourly_between_is_not_sent_to_the_cron_parser() -> None:
    assert Schedule.parse("hourly between 09:00 and 17:00").kind == "natural"


@pytest.mark.parametrize(
    ("expression", "dialect", "word", "position"),
    [
        ("@every 1 day", "jobmaster", "@every", 0),  # used to blame "1"
        ("@every 1 day", "cron", "@every", 0),
        ("@reboot", "auto", "@reboot", 0),
        ("every day in januari", "auto", "januari", 13),
        ("every day in jan and funday", "auto", "and", 17),
        ("every day between jan and 5", "auto", "5", 26),
        ("61 * * * *", "auto", "61", 0),
        ("every 5 minutes", "cron", "every", 0),
        ("naturalcron: @every 1 parsec", "auto", "parsec", 22),
    ],
)
def test_bad_expressions_name_the_word(
    expression: str, dialect: str, word: str, position: int
) -> None:
    with pytest.raises(ScheduleExpressionError) as info:
        Schedule.parse(expression, dialect=dialect)  # type: ignore[arg-type]
    assert info.value.word == word
    assert info.value.position == position
    assert repr(expression) in str(info.value)


def test_cron_errors_are_in_jobmasters_words() -> None:
    with pytest.raises(ScheduleExpressionError) as info:
        Schedule.parse("0 25 * * *")
    message = str(info.value)
    assert "expected a cron hour (0-23) field" in message
    assert "[" not in message  # no croniter internals such as "[25] is out of range"


def test_unknown_dialect() -> None:
    with pytest.raises(ScheduleExpressionError, match="unknown dialect"):
        Schedule.parse("every day", dialect="quartz")  # type: ignore[arg-type]


def test_prefix_and_argument_must_agree() -> None:
    with pytest.raises(ScheduleExpressionError) as info:
        Schedule.parse("cron: 0 9 * * *", dialect="naturalcron")
    assert info.value.word == "cron:"
