"""NaturalCron's expression language, read and evaluated with NaturalCron's meanings.

NaturalCron (the .NET library JobMaster .NET schedules are written in) reads expressions such
as ``@every 15 minutes @between 9am and 5pm @on [monday, friday]``, ``every year @in february
@on LastWeekday @at 12:00``, ``@on ClosestWeekdayTo 15``, ``@at [1st 3am, 3rd 10pm]`` or
``@at 2027-01-01 10:00``. This module reads that language and answers "the next fire time
after *base*" the way NaturalCron does, so a pasted string fires at the same times.

An expression is a sequence of *rules*, each introduced by a keyword (the ``@`` is optional):

* ``every N unit [AnchoredOn|AnchoredAt|BasedOn|BasedAt value]``, ``every unit``,
  ``every monday`` (every week on Monday), and the shortcuts ``secondly`` … ``yearly``;
* ``at`` / ``on`` / ``in`` a value or a ``[list]`` of values: times (``10:30``, ``9pm``,
  ``9 pm``), days (``15th``, ``day 15``, ``LastDay``, ``FirstWeekday``, ``LastWeekday``,
  ``ClosestWeekdayTo 15``, ``2ndTuesday``, ``LastFriday``, with ``+ N`` / ``- N`` offsets that
  never leave the month), weekdays, months, dates (``jan-01``, ``21st jan``, ``2027-01-01``)
  and any of these followed by a time; ``day [10, 11]`` gives a unit to a list of numbers;
* ``between A and B`` or ``between [A and B, C and D]``, ``from A``, ``upto A``: inclusive
  ranges of times (the end covers its whole last hour, minute or second as written: ``between
  8am and 12pm`` includes 12:59), days of the month, weekdays, months, or ``sec``/``min``/
  ``hour``/``day`` numbers;
* ``tz`` / ``timezone`` an IANA zone.

What the rules mean, as NaturalCron evaluates them (wall-clock time in the zone, to the second):

* at/on/in, between, from and upto are filters; a fire time satisfies all of them. Two lists
  for different units both apply (``@on 13th @on friday`` is Friday the 13th).
* ``every N unit`` counts from the *base* time (the time asked about, in a schedule the
  previous fire time): when the base itself satisfies every filter (and is the last item of
  any list of the counted unit or finer, e.g. the last listed time of the day), the next fire
  is N units later, with the finer units that an at/on/in rule names reset to their start (so
  ``every 2 days at [10:10, 12:10]`` goes from 12:10 to 10:10 two days later); otherwise it
  is the first time after the base that satisfies the filters. Weeks start on Sunday.
* An anchor (``every 2 months AnchoredOn Aug``) fixes the phase: the counted unit's value
  minus the anchor is a multiple of N.
* With ``every month`` or ``every year`` and weekday filters but no day filter, each weekday
  means its first occurrence in the month (``every month on [monday, wednesday]``).

:func:`parse_naturalcron` returns a :class:`NaturalCronSpec`; :meth:`NaturalCronSpec.next_after`
is a pure function of the base time.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Final, NoReturn

from jobmaster.exceptions import ScheduleExpressionError

__all__ = ["NaturalCronSpec", "looks_like_naturalcron", "parse_naturalcron"]

# Units, ordered as NaturalCron orders them.
SECOND, MINUTE, HOUR, DAY, WEEK, MONTH, YEAR = range(7)
_UNIT_NAMES: Final = ("second", "minute", "hour", "day", "week", "month", "year")
_UNITS: Final[dict[str, int]] = {
    **dict.fromkeys(("second", "seconds", "sec", "secs"), SECOND),
    **dict.fromkeys(("minute", "minutes", "min", "mins"), MINUTE),
    **dict.fromkeys(("hour", "hours", "hr", "hrs"), HOUR),
    **dict.fromkeys(("day", "days", "dy", "dys"), DAY),
    **dict.fromkeys(("week", "weeks", "wk", "wks"), WEEK),
    **dict.fromkeys(("month", "months", "mth", "mths"), MONTH),
    **dict.fromkeys(("year", "years", "yr", "yrs"), YEAR),
}
_SHORTCUTS: Final[dict[str, int]] = {
    "secondly": SECOND,
    "minutely": MINUTE,
    "hourly": HOUR,
    "daily": DAY,
    "weekly": WEEK,
    "monthly": MONTH,
    "yearly": YEAR,
}
_RULE_KEYWORDS: Final = frozenset(
    ("every", "on", "in", "at", "between", "from", "upto", "tz", "timezone", *_SHORTCUTS)
)
_ANCHOR_WORDS: Final = frozenset(("anchoredon", "anchoredat", "basedon", "basedat"))

_DAY_NAMES: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WEEKDAYS: Final[dict[str, int]] = {}  # Monday = 0, as Python's weekday()
for _index, _name in enumerate(_DAY_NAMES):
    _WEEKDAYS[_name] = _index
    _WEEKDAYS[_name[:3]] = _index
_WEEKDAYS.update({"tues": 1, "thur": 3, "thurs": 3})
_MONTHS: Final[dict[str, int]] = {}
for _index, _name in enumerate(calendar.month_name[1:], start=1):
    _MONTHS[_name.lower()] = _index
    _MONTHS[_name[:3].lower()] = _index
_MONTHS["sept"] = 9
_NTH: Final[dict[str, int]] = {
    "1st": 1, "first": 1, "2nd": 2, "second": 2, "3rd": 3, "third": 3,
    "4th": 4, "fourth": 4, "5th": 5, "fifth": 5, "last": -1,
}  # fmt: skip
_NTH_WEEKDAY: Final = re.compile(
    r"^(1st|2nd|3rd|4th|5th|first|second|third|fourth|fifth|last)([a-z]+)$"
)
_LAST_DAY_WORDS: Final = frozenset(("lastday", "lastdayofmonth", "lastdayofthemonth"))
_FIRST_DAY_WORDS: Final = frozenset(("firstday", "firstdayofmonth", "firstofthemonth"))
_CLOCK: Final = re.compile(r"^(\d{1,2})(?::(\d{2}))?(?::(\d{2}))?(am|pm)?$")
_ORDINAL: Final = re.compile(r"^(\d{1,2})(st|nd|rd|th)$")
_SIGNED: Final = re.compile(r"^([+-])(\d+)$")
_MAX_STEPS: Final = 400_000

_NATURALCRON_ONLY_WORDS: Final = frozenset(
    (
        *_ANCHOR_WORDS,
        "upto",
        "timezone",
        "secondly",
        "minutely",
        "weekly",
        "monthly",
        "yearly",
        "closestweekdayto",
        "firstweekday",
        "lastweekday",
        *_LAST_DAY_WORDS,
        *_FIRST_DAY_WORDS,
    )
)


# -- tokens ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    text: str
    lower: str
    position: int


def _tokenize(text: str) -> list[_Token]:
    """Words, with ``[``, ``]`` and ``,`` as tokens of their own."""
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
        elif char in "[],":
            tokens.append(_Token(char, char, i))
            i += 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in "[],":
                j += 1
            word = text[i:j]
            tokens.append(_Token(word, word.lower(), i))
            i = j
    return tokens


def _keyword(token: _Token) -> str | None:
    word = token.lower.removeprefix("@")
    return word if word in _RULE_KEYWORDS else None


def looks_like_naturalcron(text: str) -> bool:
    """Whether ``text`` uses syntax only NaturalCron has: an ``@`` rule keyword other than a
    cron shortcut, ``[`` lists, or one of its own words (``AnchoredOn``, ``upto``,
    ``ClosestWeekdayTo``, ``LastWeekday``, ``timezone``, ``secondly`` …)."""
    for token in _tokenize(text):
        word = token.lower
        if word == "[" or word.removeprefix("@") in _NATURALCRON_ONLY_WORDS:
            return True
        if word.startswith("@") and word[1:] in _RULE_KEYWORDS:
            return True
    return False


# -- values ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _DaySpec:
    """A day of the month: ``kind`` is ``dom``, ``first``/``last`` (day), ``firstweekday``/
    ``lastweekday``, ``closest`` (weekday closest to ``number``) or ``nth`` (``number``-th
    ``weekday``, -1 = last); ``offset`` days are added, never leaving the month."""

    kind: str
    number: int = 0
    weekday: int = 0
    offset: int = 0

    def day_in(self, year: int, month: int) -> int | None:
        length = calendar.monthrange(year, month)[1]
        if self.kind == "dom":
            base: int | None = self.number if self.number <= length else None
        elif self.kind == "first":
            base = 1
        elif self.kind == "last":
            base = length
        elif self.kind == "firstweekday":
            base = 1
            while calendar.weekday(year, month, base) >= 5:
                base += 1
        elif self.kind == "lastweekday":
            base = length
            while calendar.weekday(year, month, base) >= 5:
                base -= 1
        elif self.kind == "closest":
            base = _closest_weekday(year, month, min(self.number, length), length)
        else:  # nth
            first = (self.weekday - calendar.weekday(year, month, 1)) % 7 + 1
            if self.number == -1:
                base = first + (length - first) // 7 * 7
            else:
                base = first + (self.number - 1) * 7
                if base > length:
                    base = None
        if base is None:
            return None
        return min(max(base + self.offset, 1), length)


def _closest_weekday(year: int, month: int, day: int, length: int) -> int:
    weekday = calendar.weekday(year, month, day)
    if weekday == 5:  # Saturday: the Friday before, or the Monday after on the 1st
        return day - 1 if day > 1 else day + 2
    if weekday == 6:  # Sunday: the Monday after, or the Friday before at the month's end
        return day + 1 if day < length else day - 2
    return day


@dataclass(frozen=True, slots=True)
class _Point:
    """One at/on/in value: every field given must match (``None`` = any)."""

    year: int | None = None
    month: int | None = None
    day: _DaySpec | None = None
    weekday: int | None = None
    hour: int | None = None
    minute: int | None = None
    second: int | None = None

    def units(self) -> frozenset[int]:
        found = set()
        for unit, value in (
            (YEAR, self.year),
            (MONTH, self.month),
            (DAY, self.day),
            (WEEK, self.weekday),
            (HOUR, self.hour),
            (MINUTE, self.minute),
            (SECOND, self.second),
        ):
            if value is not None:
                found.add(unit)
        return frozenset(found)

    def has_time(self) -> bool:
        return self.hour is not None or self.minute is not None or self.second is not None

    def date_matches(self, day: date) -> bool:
        if self.year is not None and day.year != self.year:
            return False
        if self.month is not None and day.month != self.month:
            return False
        if self.weekday is not None and day.weekday() != self.weekday:
            return False
        return self.day is None or self.day.day_in(day.year, day.month) == day.day

    def time_matches(self, moment: datetime) -> bool:
        return (
            (self.hour is None or moment.hour == self.hour)
            and (self.minute is None or moment.minute == self.minute)
            and (self.second is None or moment.second == self.second)
        )

    def matches(self, moment: datetime) -> bool:
        return self.date_matches(moment.date()) and self.time_matches(moment)

    def skip(self, moment: datetime) -> datetime:
        """A later instant such that no match of this point lies in between."""
        if not self.date_matches(moment.date()):
            if self.has_time():
                return _midnight_after(moment)
            if self.weekday is not None or (self.day is None and self.year is None):
                return moment + _DAY  # week, month rules: one day on, same time
            return _midnight_after(moment).replace(minute=moment.minute, second=moment.second)
        # the date matches: the next matching time of day, else the next day
        second_of_day = moment.hour * 3600 + moment.minute * 60 + moment.second
        for hour in range(24) if self.hour is None else (self.hour,):
            for minute in range(60) if self.minute is None else (self.minute,):
                low = hour * 3600 + minute * 60
                if low + 59 <= second_of_day:
                    continue
                for second in range(60) if self.second is None else (self.second,):
                    if low + second > second_of_day:
                        return _at(moment, low + second)
        return _midnight_after(moment)

    def last_date(self) -> date | None:
        """The last date this point can match, if it names a year."""
        if self.year is None:
            return None
        return date(self.year, 12, 31)


def _midnight_after(moment: datetime) -> datetime:
    return datetime(moment.year, moment.month, moment.day) + _DAY


def _at(moment: datetime, second_of_day: int) -> datetime:
    return datetime(moment.year, moment.month, moment.day) + timedelta(seconds=second_of_day)


_DAY: Final = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class _Bound:
    """One end of a range, as a value comparable within its ``kind``.

    Kinds: ``time`` (seconds of the day; ``precision`` 3600/60/1 makes an end cover its
    whole hour/minute), ``second``/``minute``/``hour`` (that field of the clock), ``day``
    (a :class:`_DaySpec`), ``weekday`` (Sunday = 0), ``month``.
    """

    kind: str
    value: int = 0
    precision: int = 1
    day: _DaySpec | None = None


def _bound_value(bound: _Bound, moment: datetime) -> int | None:
    if bound.kind == "time":
        return moment.hour * 3600 + moment.minute * 60 + moment.second
    if bound.kind == "second":
        return moment.second
    if bound.kind == "minute":
        return moment.minute
    if bound.kind == "hour":
        return moment.hour
    if bound.kind == "day":
        return moment.day
    if bound.kind == "weekday":
        return (moment.weekday() + 1) % 7
    return moment.month


def _limit(bound: _Bound, moment: datetime, end: bool) -> int | None:
    if bound.kind == "day" and bound.day is not None:
        return bound.day.day_in(moment.year, moment.month)
    if end and bound.kind == "time":
        return bound.value + bound.precision - 1
    return bound.value


_RANGE_UNITS: Final[dict[str, int]] = {
    "time": SECOND,
    "second": SECOND,
    "minute": MINUTE,
    "hour": HOUR,
    "day": DAY,
    "weekday": WEEK,
    "month": MONTH,
}


@dataclass(frozen=True, slots=True)
class _Range:
    """``between A and B`` (both ends included), ``from A`` or ``upto B``."""

    low: _Bound | None
    high: _Bound | None

    @property
    def kind(self) -> str:
        bound = self.low or self.high
        assert bound is not None
        return bound.kind

    def matches(self, moment: datetime) -> bool:
        reference = self.low or self.high
        assert reference is not None
        value = _bound_value(reference, moment)
        if value is None:
            return False
        if self.low is not None:
            low = _limit(self.low, moment, end=False)
            if low is None or value < low:
                return False
        if self.high is not None:
            high = _limit(self.high, moment, end=True)
            if high is None or value > high:
                return False
        return True

    def skip(self, moment: datetime) -> datetime:
        kind = self.kind
        if kind == "time":
            low = 0 if self.low is None else self.low.value
            now = moment.hour * 3600 + moment.minute * 60 + moment.second
            return _at(moment, low) if now < low else _midnight_after(moment)
        if kind == "second":
            return moment.replace(microsecond=0) + timedelta(seconds=1)
        if kind == "minute":
            return moment.replace(second=0) + timedelta(minutes=1)
        if kind == "hour":
            return moment.replace(minute=0, second=0) + timedelta(hours=1)
        if kind == "day":
            return _midnight_after(moment).replace(minute=moment.minute, second=moment.second)
        return moment + _DAY  # weekdays, months: one day on, same time


@dataclass(frozen=True, slots=True)
class _Filter:
    """An at/on/in rule (``points``, any of which matches) or a range rule (``ranges``)."""

    points: tuple[_Point, ...] = ()
    ranges: tuple[_Range, ...] = ()
    is_list: bool = False

    @property
    def is_range(self) -> bool:
        return bool(self.ranges)

    def units(self) -> frozenset[int]:
        if self.ranges:
            return frozenset(_RANGE_UNITS[r.kind] for r in self.ranges)
        found: set[int] = set()
        for point in self.points:
            found |= point.units()
        return frozenset(found)

    def finest_unit(self) -> int:
        if self.ranges:
            return min(_RANGE_UNITS[r.kind] for r in self.ranges)
        units = self.units()
        if units & {HOUR, MINUTE, SECOND}:
            return SECOND
        return min(units)

    def matches(self, moment: datetime) -> bool:
        if self.ranges:
            return any(r.matches(moment) for r in self.ranges)
        return any(p.matches(moment) for p in self.points)

    def skip(self, moment: datetime) -> datetime:
        items = self.ranges or self.points
        return min(item.skip(moment) for item in items)

    def exhausted(self, moment: datetime) -> bool:
        if self.ranges:
            return False
        lasts = [p.last_date() for p in self.points]
        return all(last is not None and moment.date() > last for last in lasts)


@dataclass(frozen=True, slots=True)
class _Every:
    count: int
    unit: int
    anchor: int | None = None


@dataclass(frozen=True, slots=True)
class NaturalCronSpec:
    """A parsed NaturalCron expression: its ``every`` rule, its filters and its zone."""

    text: str
    every: _Every | None
    filters: tuple[_Filter, ...] = ()
    timezone: str | None = None
    timezone_position: int | None = None
    _reset_units: tuple[int, ...] = field(default=(), repr=False)

    def describe(self) -> str:
        """A short description of the counting, for :meth:`Schedule.describe`."""
        if self.every is None:
            return f"NaturalCron '{self.text.strip()}'"
        every = self.every
        unit = _UNIT_NAMES[every.unit]
        count = f"every {unit}" if every.count == 1 else f"every {every.count} {unit}s"
        if every.anchor is not None:
            return f"NaturalCron '{self.text.strip()}' ({count}, anchored at {every.anchor})"
        return f"NaturalCron '{self.text.strip()}' ({count} counted from the previous fire time)"

    # -- evaluation ---------------------------------------------------------------------

    def next_after(self, base: datetime) -> datetime | None:
        """The first fire time after naive local ``base`` (truncated to the second), as
        naive local time, or ``None`` when the expression never fires again."""
        base = base.replace(microsecond=0)
        candidate = base
        every = self.every
        if every is not None:
            candidate = self._anchored(base, base)
            if self._should_add(base, candidate):
                candidate = self._add_every(candidate)
            if every.anchor is not None and every.unit + 1 < YEAR:
                upper = every.unit + 1
                if _part(upper, candidate) > _part(upper, base):
                    candidate = self._anchored(candidate, base)
                    if self._should_add(base, candidate):
                        candidate = self._add_every(candidate)
        if candidate <= base:
            units = [f.finest_unit() for f in self.filters if not f.is_range]
            units += [f.finest_unit() for f in self.filters if f.is_range and not f.matches(base)]
            unit = min(units) if units else SECOND
            unit = DAY if unit == WEEK else unit
            while candidate <= base:
                candidate = _add(unit, candidate, 1)
        return self._search(candidate)

    def _search(self, moment: datetime) -> datetime | None:
        for _ in range(_MAX_STEPS):
            if moment.year > 9998:
                return None
            unmatched = [f for f in self.filters if not f.matches(moment)]
            if not unmatched:
                return moment
            if any(f.exhausted(moment) for f in unmatched):
                return None
            moment = min(f.skip(moment) for f in unmatched)
        return None  # pragma: no cover - a rule that matches nothing in centuries

    def matches(self, moment: datetime) -> bool:
        """Whether naive local ``moment`` satisfies every at/on/in and range rule."""
        return all(f.matches(moment) for f in self.filters)

    def _should_add(self, base: datetime, candidate: datetime) -> bool:
        if candidate != base or not self.matches(base):
            return False
        assert self.every is not None
        unit = self.every.unit
        for rule in self.filters:
            if rule.is_list and min(rule.units()) <= unit and self._later_in_period(rule, base):
                return False
        return True

    def _later_in_period(self, rule: _Filter, base: datetime) -> bool:
        """Whether another item of list ``rule`` matches later in the period (of the
        counted unit) that holds ``base``: then ``base`` is not the cycle's last item."""
        assert self.every is not None
        end = _period_end(self.every.unit, base)
        others = [p for p in rule.points if not p.matches(base)]
        moment = base + timedelta(seconds=1)
        while others and moment < end:
            if any(p.matches(moment) for p in others):
                return True
            moment = min(p.skip(moment) for p in others)
        return False

    def _add_every(self, moment: datetime) -> datetime:
        assert self.every is not None
        every = self.every
        moment = _add(every.unit, moment, every.count)
        for unit in self._reset_units:
            moment = _reset(unit, moment)
        if every.unit == WEEK and any(
            rule.is_list and WEEK in rule.units() for rule in self.filters
        ):
            moment -= timedelta(days=6)
        return moment

    def _anchored(self, moment: datetime, base: datetime) -> datetime:
        every = self.every
        if every is None or every.anchor is None:
            return moment
        if every.unit == WEEK:
            while (moment.weekday() + 1) % 7 != every.anchor:
                moment += _DAY
            return moment
        offset = (_part(every.unit, moment) - every.anchor) % every.count
        if offset == 0:
            return moment
        moment = _add(every.unit, moment, -offset)
        while moment < base:
            moment = self._add_every(moment)
        return moment


def _part(unit: int, moment: datetime) -> int:
    if unit == SECOND:
        return moment.second
    if unit == MINUTE:
        return moment.minute
    if unit == HOUR:
        return moment.hour
    if unit == DAY:
        return moment.day
    if unit == WEEK:
        return (moment.weekday() + 1) % 7
    if unit == MONTH:
        return moment.month
    return moment.year


def _add(unit: int, moment: datetime, count: int) -> datetime:
    if unit in (MONTH, YEAR):
        months = moment.month - 1 + count * (12 if unit == YEAR else 1)
        year, month = moment.year + months // 12, months % 12 + 1
        day = min(moment.day, calendar.monthrange(year, month)[1])
        return moment.replace(year=year, month=month, day=day)
    seconds = (1, 60, 3600, 86400, 7 * 86400)[unit]
    return moment + timedelta(seconds=seconds * count)


def _reset(unit: int, moment: datetime) -> datetime:
    if unit == SECOND:
        return moment.replace(second=0)
    if unit == MINUTE:
        return moment.replace(minute=0)
    if unit == HOUR:
        return moment.replace(hour=0)
    if unit == DAY:
        return moment.replace(day=1)
    return moment.replace(month=1)  # MONTH; the day is 1 already or fits January


def _period_end(unit: int, moment: datetime) -> datetime:
    """The end of the ``unit`` period holding ``moment`` (weeks start on Sunday)."""
    start = moment.replace(microsecond=0)
    if unit == SECOND:
        return start + timedelta(seconds=1)
    if unit == MINUTE:
        return start.replace(second=0) + timedelta(minutes=1)
    if unit == HOUR:
        return start.replace(minute=0, second=0) + timedelta(hours=1)
    midnight = datetime(moment.year, moment.month, moment.day)
    if unit == DAY:
        return midnight + _DAY
    if unit == WEEK:
        return midnight + timedelta(days=7 - (moment.weekday() + 1) % 7)
    if unit == MONTH:
        return _add(MONTH, midnight.replace(day=1), 1)
    return datetime(moment.year + 1, 1, 1)


# -- parsing --------------------------------------------------------------------------------

_POINT_EXPECTED: Final = (
    "a time (10:30, 9pm), a day (15th, LastDay, FirstWeekday, ClosestWeekdayTo 15, "
    "2ndTuesday), a weekday, a month or a date (jan-01, 21st jan, 2027-01-01)"
)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)

    def reject(self, token: _Token | None, reason: str) -> NoReturn:
        if token is None:
            position = len(self.text)
            raise ScheduleExpressionError(
                f"{self.text!r} ends too early at position {position}: {reason}",
                expression=self.text,
                position=position,
            )
        raise ScheduleExpressionError(
            f"could not read {token.text!r} at position {token.position} in {self.text!r}: "
            f"{reason}",
            expression=self.text,
            position=token.position,
            word=token.text,
        )

    def parse(self) -> NaturalCronSpec:
        groups: list[tuple[_Token, list[_Token]]] = []
        depth = 0
        for token in self.tokens:
            keyword = _keyword(token) if depth == 0 else None
            if keyword is not None:
                groups.append((token, []))
                continue
            if not groups:
                self.reject(token, "expected a NaturalCron rule such as every, on, at, between")
            if token.lower == "[":
                depth += 1
            elif token.lower == "]":
                depth -= 1
                if depth < 0:
                    self.reject(token, "this ']' closes no '['")
            groups[-1][1].append(token)
        if not groups:
            self.reject(None, "expected a NaturalCron rule such as 'every 5 minutes'")
        if depth:
            self.reject(None, "a '[' list is not closed with ']'")
        every: _Every | None = None
        every_token: _Token | None = None
        filters: list[tuple[_Token, _Filter]] = []
        zone: str | None = None
        zone_position: int | None = None
        for head, args in groups:
            keyword = _keyword(head)
            while args and args[-1].lower == ",":
                args.pop()
            if keyword in ("every", *_SHORTCUTS):
                if every is not None:
                    self.reject(head, "only one every rule (or daily, hourly …) is allowed")
                every_token = head
                every, extra = self.every(head, keyword or "", args)
                if extra is not None:
                    filters.append((head, extra))
            elif keyword in ("tz", "timezone"):
                if zone is not None:
                    self.reject(head, "the time zone is already given")
                if len(args) != 1:
                    self.reject(args[1] if args else None, "expected one IANA time zone name")
                zone, zone_position = args[0].text, args[0].position
            elif keyword in ("between", "from", "upto"):
                filters.append((head, self.range_rule(head, keyword or "", args)))
            else:
                filters.append((head, self.at_rule(head, args)))
        return self.finish(every, every_token, filters, zone, zone_position)

    def finish(
        self,
        every: _Every | None,
        every_token: _Token | None,
        filters: list[tuple[_Token, _Filter]],
        zone: str | None,
        zone_position: int | None,
    ) -> NaturalCronSpec:
        at_rules = [(head, rule) for head, rule in filters if not rule.is_range]
        if every is None and not at_rules:
            self.reject(
                filters[0][0] if filters else None,
                "expected an every, at, on or in rule as well (a range alone never fires)",
            )
        if every is None and len(at_rules) != len(filters):
            head = next(h for h, rule in filters if rule.is_range)
            self.reject(head, "between, from and upto need an every rule")
        seen: dict[int, _Token] = {}
        for head, rule in at_rules:
            units = rule.units()
            if every is not None and every.unit != WEEK and every.unit in units:
                self.reject(head, f"an every {_UNIT_NAMES[every.unit]} rule cannot also be "
                            f"at a given {_UNIT_NAMES[every.unit]}")
            for unit in units:
                if unit in seen:
                    self.reject(head, f"a {_UNIT_NAMES[unit]} is already given by another rule")
                seen[unit] = head
        rules = [rule for _, rule in filters]
        if every is not None and every.unit >= MONTH and DAY not in seen and WEEK in seen:
            rules = [_first_weekdays(rule) for rule in rules]
        reset: list[int] = []
        if every is not None:
            named: set[int] = set()
            for rule in rules:
                if not rule.is_range:
                    named |= {DAY if u == WEEK else u for u in rule.units() if u < every.unit}
            reset = [u for u in (SECOND, MINUTE, HOUR, DAY, MONTH) if u in named]
        del every_token
        return NaturalCronSpec(
            self.text, every, tuple(rules), zone, zone_position, tuple(reset)
        )

    # -- every --------------------------------------------------------------------------

    def every(
        self, head: _Token, keyword: str, args: list[_Token]
    ) -> tuple[_Every, _Filter | None]:
        if keyword in _SHORTCUTS:
            if args:
                self.reject(args[0], f"expected nothing after {head.text} but another rule")
            return _Every(1, _SHORTCUTS[keyword]), None
        if not args:
            self.reject(None, "expected a number and a unit after every, as in 'every 5 minutes'")
        index = 0
        count = 1
        number = _int(args[0].lower)
        if number is not None:
            if number <= 0:
                self.reject(args[0], "every needs a number of at least 1")
            count, index = number, 1
        if index >= len(args):
            self.reject(
                None, "expected a unit: seconds, minutes, hours, days, weeks, months, years"
            )
        word = args[index]
        extra: _Filter | None = None
        if word.lower in _UNITS:
            unit = _UNITS[word.lower]
        elif word.lower in _WEEKDAYS and index == 0:
            unit = WEEK
            extra = _Filter(points=(_Point(weekday=_WEEKDAYS[word.lower]),))
        else:
            self.reject(
                word, "expected a unit: seconds, minutes, hours, days, weeks, months, years"
            )
        index += 1
        anchor: int | None = None
        if index < len(args):
            if args[index].lower not in _ANCHOR_WORDS:
                self.reject(args[index], "expected AnchoredOn/BasedAt or another rule keyword")
            if index + 2 != len(args):
                self.reject(
                    args[index + 2] if index + 2 < len(args) else None,
                    "expected one anchor value such as Aug, 10th, SUN or 7",
                )
            anchor = self.anchor(args[index + 1], unit)
        return _Every(count, unit, anchor), extra

    def anchor(self, token: _Token, unit: int) -> int:
        word = token.lower
        if unit == WEEK and word in _WEEKDAYS:
            return (_WEEKDAYS[word] + 1) % 7
        if unit == MONTH and word in _MONTHS:
            return _MONTHS[word]
        ordinal = _ORDINAL.match(word)
        number = int(ordinal.group(1)) if ordinal else _int(word)
        if number is None:
            self.reject(token, f"expected an anchor {_UNIT_NAMES[unit]} value")
        return number

    # -- at / on / in -------------------------------------------------------------------

    def at_rule(self, head: _Token, args: list[_Token]) -> _Filter:
        if not args:
            self.reject(None, f"expected a value after {head.text}: {_POINT_EXPECTED}")
        if args[0].lower == "[":
            return _Filter(points=tuple(self.point(item) for item in self.items(args)),
                           is_list=True)
        if len(args) > 1 and args[0].lower in _UNITS and args[1].lower == "[":
            unit_token = args[0]
            points = [self.point([unit_token, *item]) for item in self.items(args[1:])]
            return _Filter(points=tuple(points), is_list=True)
        return _Filter(points=(self.point([t for t in args if t.lower != ","]),))

    def items(self, args: list[_Token]) -> list[list[_Token]]:
        """The comma-separated items of ``[a, b, c]`` (``args`` starts at the ``[``)."""
        if args[-1].lower != "]":
            self.reject(args[-1], "expected ']' to end the list, then another rule")
        inner = args[1:-1]
        items: list[list[_Token]] = [[]]
        for token in inner:
            if token.lower == "[" or token.lower == "]":
                self.reject(token, "lists cannot be nested")
            if token.lower == ",":
                if not items[-1]:
                    self.reject(token, f"expected a value before ',': {_POINT_EXPECTED}")
                items.append([])
            else:
                items[-1].append(token)
        if not items[-1]:
            self.reject(args[-1], f"expected a value before ']': {_POINT_EXPECTED}")
        return items

    def point(self, tokens: list[_Token]) -> _Point:
        """Read one value: date parts, a day, a weekday, a month, a time, in any order."""
        values: dict[str, object] = {}
        i = 0

        def put(name: str, value: object, token: _Token) -> None:
            if name in values:
                self.reject(token, f"the {name} is already given in this value")
            values[name] = value

        while i < len(tokens):
            token = tokens[i]
            word = token.lower
            following = tokens[i + 1].lower if i + 1 < len(tokens) else None
            offset, used = self.offset(tokens, i + 1)
            if word in _UNITS and following is not None:
                i = self.unit_value(tokens, i, put)
                continue
            if word in ("last", "first") and following in ("day", "days"):
                put("day", _DaySpec(word, offset=self.offset(tokens, i + 2)[0]), token)
                i += 2 + self.offset(tokens, i + 2)[1]
                continue
            if word in ("last", "first") and following not in _WEEKDAYS:
                put("day", _DaySpec(word, offset=offset), token)
                i += 1 + used
                continue
            if word in _LAST_DAY_WORDS or word in _FIRST_DAY_WORDS:
                kind = "last" if word in _LAST_DAY_WORDS else "first"
                put("day", _DaySpec(kind, offset=offset), token)
                i += 1 + used
                continue
            if word in ("firstweekday", "lastweekday"):
                put("day", _DaySpec(word, offset=offset), token)
                i += 1 + used
                continue
            if word == "closestweekdayto":
                target = tokens[i + 1] if i + 1 < len(tokens) else None
                day = None if target is None else _day_number(target.lower)
                if target is None or day is None or not 1 <= day <= 31:
                    self.reject(target, "expected a day of the month such as 15 or 15th")
                put("day", _DaySpec("closest", number=day), token)
                i += 2
                continue
            nth = _NTH_WEEKDAY.match(word)
            if nth and nth.group(2) in _WEEKDAYS:
                spec = _DaySpec("nth", _NTH[nth.group(1)], _WEEKDAYS[nth.group(2)], offset)
                put("day", spec, token)
                i += 1 + used
                continue
            if word in _WEEKDAYS:
                put("weekday", _WEEKDAYS[word], token)
                i += 1
                continue
            if word in _MONTHS:
                put("month", _MONTHS[word], token)
                i += 1
                continue
            if "-" in word and self.dashed(token, put):
                i += 1
                continue
            clock = _CLOCK.match(word)
            meridiem = following if following in ("am", "pm") else None
            if clock and (":" in word or clock.group(4) or meridiem):
                hour, minute, second = self.clock(token, clock, meridiem)
                put("time", (hour, minute, second), token)
                i += 2 if meridiem and not clock.group(4) else 1
                continue
            number = _day_number(word)
            if number is not None:
                if len(word) == 4 and word.isdigit():
                    put("year", number, token)
                elif 1 <= number <= 31:
                    put("day", _DaySpec("dom", number, offset=offset), token)
                    i += used
                else:
                    self.reject(token, "a day of the month is 1 to 31")
                i += 1
                continue
            self.reject(token, f"expected {_POINT_EXPECTED}")
        return self.make_point(values, tokens)

    def make_point(self, values: dict[str, object], tokens: list[_Token]) -> _Point:
        numbers: dict[str, int | None] = {}
        day: _DaySpec | None = None
        for name, value in values.items():
            if name == "time":
                assert isinstance(value, tuple)
                numbers["hour"], numbers["minute"], numbers["second"] = value
            elif isinstance(value, _DaySpec):
                day = value
            else:
                assert isinstance(value, int)
                numbers[name] = value
        point = _Point(
            year=numbers.get("year"),
            month=numbers.get("month"),
            day=day,
            weekday=numbers.get("weekday"),
            hour=numbers.get("hour"),
            minute=numbers.get("minute"),
            second=numbers.get("second"),
        )
        if point.month is not None and point.day is not None and point.day.kind == "dom":
            longest = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[point.month - 1]
            if point.day.number > longest:
                self.reject(tokens[0], f"{calendar.month_name[point.month]} has no day "
                            f"{point.day.number}")
        return point

    def offset(self, tokens: list[_Token], index: int) -> tuple[int, int]:
        """A ``+ N`` / ``- N`` / ``+N`` / ``-N`` at ``index``: (offset, tokens used)."""
        if index >= len(tokens):
            return 0, 0
        word = tokens[index].lower
        signed = _SIGNED.match(word)
        if signed:
            value = int(signed.group(2))
            return (value if signed.group(1) == "+" else -value), 1
        if word in ("+", "-"):
            number = _int(tokens[index + 1].lower) if index + 1 < len(tokens) else None
            if number is None:
                self.reject(
                    tokens[index + 1] if index + 1 < len(tokens) else None,
                    "expected a number of days after + or -",
                )
            return (number if word == "+" else -number), 2
        return 0, 0

    def unit_value(self, tokens: list[_Token], index: int, put: object) -> int:
        """``day 15``, ``day Last``, ``day first + 5``, ``hour 10``, ``month 12`` …"""
        assert callable(put)
        unit_token, value_token = tokens[index], tokens[index + 1]
        unit = _UNITS[unit_token.lower]
        word = value_token.lower
        if unit == DAY and word in ("last", "first"):
            offset, used = self.offset(tokens, index + 2)
            put("day", _DaySpec(word, offset=offset), unit_token)
            return index + 2 + used
        if unit == MONTH and word in _MONTHS:
            put("month", _MONTHS[word], unit_token)
            return index + 2
        if unit == WEEK and word in _WEEKDAYS:
            put("weekday", _WEEKDAYS[word], unit_token)
            return index + 2
        number = _day_number(word)
        limits = {SECOND: (0, 59), MINUTE: (0, 59), HOUR: (0, 23), DAY: (1, 31),
                  MONTH: (1, 12), YEAR: (1, 9999), WEEK: (1, 7)}[unit]  # fmt: skip
        if number is None or not limits[0] <= number <= limits[1]:
            self.reject(value_token, f"expected a {_UNIT_NAMES[unit]} from {limits[0]} to "
                        f"{limits[1]}")
        name = {SECOND: "second", MINUTE: "minute", HOUR: "hour", MONTH: "month",
                YEAR: "year"}.get(unit)  # fmt: skip
        if unit == DAY:
            offset, used = self.offset(tokens, index + 2)
            put("day", _DaySpec("dom", number, offset=offset), unit_token)
            return index + 2 + used
        if unit == WEEK:
            put("weekday", (number + 5) % 7, unit_token)  # 1 = Sunday
            return index + 2
        assert name is not None
        put(name, number, unit_token)
        return index + 2

    def dashed(self, token: _Token, put: object) -> bool:
        """``2023-01-23``, ``jan-23``, ``12-31``, ``2023-jan``: put the parts, or ``False``."""
        assert callable(put)
        parts = token.lower.split("-")
        if len(parts) == 3 and all(_int(p) is not None for p in parts):
            year, month, day = (int(p) for p in parts)
            try:
                date(year, month, day)
            except ValueError:
                self.reject(token, "expected a real date such as 2027-01-01")
            put("year", year, token)
            put("month", month, token)
            put("day", _DaySpec("dom", day), token)
            return True
        if len(parts) != 2:
            return False
        first, second = parts
        month_value = _MONTHS.get(first)
        if month_value is not None and _int(second) is not None:
            number = int(second)
            if len(second) == 4:
                put("year", number, token)
            else:
                put("day", _DaySpec("dom", number), token)
            put("month", month_value, token)
            return True
        if len(first) == 4 and _int(first) is not None and second in _MONTHS:
            put("year", int(first), token)
            put("month", _MONTHS[second], token)
            return True
        if _int(first) is not None and _int(second) is not None and len(first) <= 2:
            month_number, day_number = int(first), int(second)
            if not 1 <= month_number <= 12 or not 1 <= day_number <= 31:
                self.reject(token, "expected a month-day such as 12-31")
            put("month", month_number, token)
            put("day", _DaySpec("dom", day_number), token)
            return True
        return False

    def clock(
        self, token: _Token, clock: re.Match[str], meridiem: str | None
    ) -> tuple[int, int, int]:
        hour = int(clock.group(1))
        minute = int(clock.group(2) or 0)
        second = int(clock.group(3) or 0)
        suffix = clock.group(4) or meridiem
        if suffix:
            if not 1 <= hour <= 12:
                self.reject(token, "with am/pm the hour is 1 to 12")
            hour = hour % 12 + (12 if suffix == "pm" else 0)
        if hour > 23 or minute > 59 or second > 59:
            self.reject(token, "expected a time such as 09:30, 18:00:15 or 9pm")
        return hour, minute, second

    # -- between / from / upto ----------------------------------------------------------

    def range_rule(self, head: _Token, keyword: str, args: list[_Token]) -> _Filter:
        if not args:
            self.reject(None, f"expected a value after {head.text}")
        if keyword != "between":
            bound = self.bound([t for t in args if t.lower != ","])
            low, high = (bound, None) if keyword == "from" else (None, bound)
            return _Filter(ranges=(_Range(low, high),))
        if args[0].lower == "[":
            return _Filter(ranges=tuple(self.between(item) for item in self.items(args)))
        return _Filter(ranges=(self.between(args),))

    def between(self, tokens: list[_Token]) -> _Range:
        split = [i for i, t in enumerate(tokens) if t.lower == "and"]
        if not split:
            self.reject(tokens[-1] if len(tokens) > 1 else None,
                        "expected 'and' between the two ends, as in 'between 9am and 5pm'")
        at = split[0]
        if at == 0:
            self.reject(tokens[0], "expected the start of the range before 'and'")
        if at == len(tokens) - 1:
            self.reject(None, "expected the end of the range after 'and'")
        unit_prefix = tokens[0].lower in _UNITS and tokens[0].lower not in ("day", "days")
        low_tokens = tokens[:at]
        high_tokens = tokens[at + 1 :]
        if tokens[0].lower in _UNITS and len(low_tokens) == 2 and len(high_tokens) == 1:
            high_tokens = [tokens[0], *high_tokens]  # "hour 10 and 12"
        if unit_prefix and high_tokens[0].lower not in _UNITS:
            high_tokens = [tokens[0], *high_tokens]
        low, high = self.bound(low_tokens), self.bound(high_tokens)
        if low.kind != high.kind:
            self.reject(tokens[at + 1], "the two ends of a range must be of the same kind")
        if low.day is None and high.day is None and low.value > high.value:
            self.reject(tokens[at + 1], "the range ends before it starts")
        return _Range(low, high)

    def bound(self, tokens: list[_Token]) -> _Bound:
        first = tokens[0].lower
        if first in _UNITS and len(tokens) >= 2 and first not in ("day", "days", "month",
                                                                   "months", "week", "weeks"):
            number = _int(tokens[1].lower)
            unit = _UNITS[first]
            limit = 59 if unit in (SECOND, MINUTE) else 23
            if number is None or not 0 <= number <= limit or len(tokens) > 2:
                self.reject(tokens[1] if number is None or len(tokens) == 2 else tokens[2],
                            f"expected one {_UNIT_NAMES[unit]} number from 0 to {limit}")
            return _Bound(_UNIT_NAMES[unit], number)
        if first in _WEEKDAYS and len(tokens) == 1:
            return _Bound("weekday", (_WEEKDAYS[first] + 1) % 7)
        if first in _MONTHS and len(tokens) == 1:
            return _Bound("month", _MONTHS[first])
        point = self.point(tokens)
        if point.has_time() and point.units() <= {HOUR, MINUTE, SECOND}:
            token = tokens[0]
            clock = _CLOCK.match(token.lower)
            precision = 1
            if clock and not clock.group(3):
                precision = 60 if clock.group(2) else 3600
            assert point.hour is not None
            value = point.hour * 3600 + (point.minute or 0) * 60 + (point.second or 0)
            return _Bound("time", value, precision)
        if point.day is not None and point.units() == {DAY}:
            return _Bound("day", day=point.day)
        if point.weekday is not None and point.units() == {WEEK}:
            return _Bound("weekday", (point.weekday + 1) % 7)
        if point.month is not None and point.units() == {MONTH}:
            return _Bound("month", point.month)
        self.reject(tokens[0], "expected a time, a day of the month, a weekday or a month")


def _first_weekdays(rule: _Filter) -> _Filter:
    """``every month on monday`` means the first Monday: turn weekday points into 1st-nth."""
    if rule.is_range:
        return rule
    points = tuple(
        replace(p, weekday=None, day=_DaySpec("nth", 1, p.weekday)) if p.weekday is not None
        else p
        for p in rule.points
    )
    return replace(rule, points=points)


def _int(word: str) -> int | None:
    return int(word) if word.isascii() and word.isdigit() else None


def _day_number(word: str) -> int | None:
    ordinal = _ORDINAL.match(word)
    if ordinal:
        return int(ordinal.group(1))
    return _int(word)


def parse_naturalcron(text: str) -> NaturalCronSpec:
    """Read a NaturalCron expression (``@every 2 weeks @on [monday, friday] @at 9:00``).

    Raises :class:`~jobmaster.exceptions.ScheduleExpressionError` naming the word that
    does not fit NaturalCron's grammar, its position, and what was expected there.
    """
    return _Parser(text).parse()
