"""NaturalCron expressions give the fire times NaturalCron's own test suite expects.

The expectations come from ``tests/fixtures/naturalcron_cases.json``, transcribed by hand from
NaturalCron's published test cases (not computed by jobmaster). Each case chains: the next
fire time is asked from the previous one, as NaturalCron's tests do.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jobmaster.exceptions import ScheduleExpressionError
from jobmaster.schedules import Schedule

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "naturalcron_cases.json"
CASES: list[list[Any]] = json.loads(FIXTURE.read_text())["cases"]


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "base", "expected"),
    [pytest.param(c[1], c[2], c[3], id=f"{c[0]} {c[1]}") for c in CASES],
)
def test_naturalcron_published_expectations(
    expression: str, base: str, expected: list[str | None]
) -> None:
    schedule = Schedule.parse(expression, dialect="naturalcron")
    assert schedule.kind == "naturalcron"
    fires = schedule.next_n(_utc(base), len(expected))
    wanted = [_utc(item) for item in expected if item is not None]
    assert fires == wanted


def test_the_table_has_at_least_150_expressions() -> None:
    assert len({case[1] for case in CASES}) >= 150


@pytest.mark.parametrize(
    ("expression", "kind"),
    [
        # the @ keyword form, [lists] and NaturalCron's own words select NaturalCron
        ("@every 1 day", "naturalcron"),
        ("@every 15 minutes @between 9am and 5pm @on [monday, friday]", "naturalcron"),
        ("every 30 minutes in [jan, jun] between 09:00 and 18:00", "naturalcron"),
        ("every month on ClosestWeekdayTo 15", "naturalcron"),
        ("every 2 months AnchoredOn Nov on 1st", "naturalcron"),
        ("every 10 secs upto 1:00pm", "naturalcron"),
        ("naturalcron: every week", "naturalcron"),
        # plain English is jobmaster's grammar; cron shortcuts keep their cron meaning
        ("every week", "natural"),
        ("every 2 days", "natural"),
        ("every hour between 8am and 12pm", "natural"),
        ("daily at 9:00", "natural"),
        ("@daily", "cron"),
        ("@weekly", "cron"),
        ("jobmaster: every week", "natural"),
        ("cron: 0 9 * * *", "cron"),
    ],
)
def test_the_auto_dialect_rule(expression: str, kind: str) -> None:
    assert Schedule.parse(expression).kind == kind


def test_ambiguous_strings_have_both_meanings_on_request() -> None:
    after = datetime(2026, 3, 4, 10, 17, 23, tzinfo=UTC)  # a Wednesday
    # jobmaster: every week = Mondays at 00:00; NaturalCron: a week after the base time
    assert Schedule.parse("every week").next_after(after) == datetime(2026, 3, 9, tzinfo=UTC)
    assert Schedule.parse("every week", dialect="naturalcron").next_after(after) == datetime(
        2026, 3, 11, 10, 17, 23, tzinfo=UTC
    )
    # NaturalCron's end hour is inclusive: between 8am and 12pm includes 12:59
    natural = Schedule.parse("every 20 minutes between 8am and 12pm")
    naturalcron = Schedule.parse("naturalcron: every 20 minutes between 8am and 12pm")
    noon = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
    assert natural.next_after(noon) == datetime(2026, 3, 5, 8, 0, tzinfo=UTC)
    assert naturalcron.next_after(noon) == datetime(2026, 3, 4, 12, 20, tzinfo=UTC)


def test_describe_says_which_reading_was_used() -> None:
    assert Schedule.parse("@every 2 days").describe() == (
        "NaturalCron '@every 2 days' (every 2 days counted from the previous fire time), tz UTC"
    )
    assert Schedule.parse("every 2 days").describe().startswith("every 2 days at 00:00")


def test_the_zone_comes_from_the_expression_or_the_argument() -> None:
    schedule = Schedule.parse("@every day @at 09:00 @tz Europe/Paris")
    assert schedule.tz.key == "Europe/Paris"
    after = datetime(2026, 7, 1, tzinfo=UTC)
    assert schedule.next_after(after) == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)
    argument = Schedule.parse("@every day @at 09:00", tz="Europe/Paris")
    assert argument.next_after(after) == schedule.next_after(after)
    with pytest.raises(ScheduleExpressionError):
        Schedule.parse("@every day @at 09:00 @tz Europe/Paris", tz="UTC")


def test_start_is_the_first_base_time() -> None:
    start = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
    schedule = Schedule.parse("@every 3 hours", start=start)
    assert schedule.next_n(datetime(2026, 1, 1, tzinfo=UTC), 2) == [
        datetime(2026, 3, 4, 10, 0, tzinfo=UTC),
        datetime(2026, 3, 4, 13, 0, tzinfo=UTC),
    ]


def test_a_one_shot_date_ends() -> None:
    schedule = Schedule.parse("@at 2027-01-01 10:00")
    after = datetime(2026, 1, 1, tzinfo=UTC)
    assert schedule.next_n(after, 3) == [datetime(2027, 1, 1, 10, 0, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("expression", "word"),
    [
        ("@every 5 parsecs", "parsecs"),
        ("@every 0 days", "0"),
        ("@every day @at 25:00", "25:00"),
        ("@every day @on [monday, funday]", "funday"),
        ("@on ClosestWeekdayTo 40", "40"),
        ("@every 2 months AnchoredOn Nov on 1st xyz", "xyz"),
        ("@every hour @between 9am to 5pm", "5pm"),
        ("@every day @tz Mars/Olympus", "Mars/Olympus"),
        ("@every day @every week", "@every"),
        ("@between 9am and 5pm", "@between"),
        ("naturalcron: every week on blursday", "blursday"),
        ("@every day @at 9am @at 10am", "@at"),
        ("@every day @on 15th", "@on"),
        ("@on [1st,", None),
    ],
)
def test_bad_naturalcron_names_the_word(expression: str, word: str | None) -> None:
    with pytest.raises(ScheduleExpressionError) as info:
        Schedule.parse(expression)
    assert info.value.word == word
    assert info.value.expression == expression
    if word is not None:
        assert info.value.position is not None
        assert expression[info.value.position :].startswith(word)
        assert f"could not read {word!r}" in str(info.value)
