"""Schedule expressions: parse one once, then ask it for fire times.

:meth:`Schedule.parse` accepts four families of expression and compiles each to one of two
rules:

* **interval** — a ``timedelta`` or an interval string (``"30s"``, ``"1h30m"``), and natural
  intervals that do not divide the clock (``every 7 minutes``, ``every 90 minutes``): plain
  arithmetic on absolute time, counted from the schedule's ``start`` or, without one, from the
  Unix epoch (1970-01-01 00:00 UTC) so that results never depend on when a process started.
* **calendar** — everything that speaks of wall-clock time: cron (5 fields, or 6 with the
  seconds *last*, croniter's default), the ``@daily``-style shortcuts and the natural grammar
  of :mod:`jobmaster.schedules.natural`. A calendar rule is a set of allowed months, a day
  rule (days of the month, last day, weekdays, n-th weekday, dates, computed days such as
  cron's ``15W`` or ``last day - 5``, every-N phases) and a set of times of day. croniter
  parses and validates cron text; this module evaluates every calendar rule itself, so cron
  and natural expressions follow the same DST conventions. List items with their own times
  (``on the 1st at 03:00 and the 3rd at 22:00``) are one calendar rule each, firing when any
  does; one-shot dates (``at 2027-01-01 10:00``) fire once, then ``next_after`` is ``None``.

DST conventions for calendar rules, evaluated in the schedule's zone: a wall time skipped by a
spring-forward fires once, shifted by the gap (02:30 → 03:30); a wall time repeated by a
fall-back fires once, at its first occurrence. This is exactly Python's ``fold=0`` mapping
from wall time to UTC; fire times are the *set* of those instants, so two wall times that map
to the same instant fire once and fire times always increase.

Evaluation never walks second by second: months that cannot match are skipped, a day is
tested with a few integer checks, and the first time of day after a threshold is found by
bisection or arithmetic.
"""

from __future__ import annotations

import calendar
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Final, Literal, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterError, croniter

from jobmaster.exceptions import ScheduleExpressionError
from jobmaster.schedules.monthdays import MonthDay
from jobmaster.schedules.natural import (
    MONTH_DAYS,
    MONTHS,
    NATURAL_STARTS,
    ONE_SHOT_STARTS,
    NaturalSpec,
    parse_natural,
)
from jobmaster.schedules.naturalcron import (
    NaturalCronSpec,
    looks_like_naturalcron,
    parse_naturalcron,
)

__all__ = ["Dialect", "Schedule", "ScheduleKind", "validate_timezone"]

ScheduleKind: TypeAlias = Literal["interval", "cron", "natural", "naturalcron"]
#: Which grammar reads a string: ``"auto"`` decides by the rule in ``docs/scheduling.md``.
Dialect: TypeAlias = Literal["auto", "jobmaster", "naturalcron", "cron", "crontab"]
_DIALECTS: Final = ("auto", "jobmaster", "naturalcron", "cron", "crontab")
_PREFIXES: Final = {
    "naturalcron:": "naturalcron",
    "jobmaster:": "jobmaster",
    "cron:": "cron",
    "crontab:": "crontab",
}

_UTC_ZONE: Final = ZoneInfo("UTC")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DATE: Final = date(1970, 1, 1)
_EPOCH_MONDAY: Final = date(1969, 12, 29)  # Monday of the epoch's ISO week
_SECOND: Final = timedelta(seconds=1)
_TINY: Final = timedelta(microseconds=1)
_DAY: Final = timedelta(days=1)
_LAST_SECOND: Final = timedelta(seconds=86399)
_ALL_MONTHS: Final = frozenset(range(1, 13))
_DAY_ABBR: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTH_ABBR: Final = tuple(calendar.month_abbr)

_SHORTCUTS: Final[dict[str, str]] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_NATURAL_STARTS: Final = frozenset(("every", *NATURAL_STARTS, *ONE_SHOT_STARTS))
_NATURALCRON_KEYWORDS: Final = frozenset(
    ("every", "on", "in", "at", "between", "from", "upto", "tz", "timezone", "secondly",
     "minutely", "hourly", "daily", "weekly", "monthly", "yearly")
)  # fmt: skip
_INTERVAL_UNITS: Final[dict[str, int]] = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_CRON_FIELDS: Final = (
    "minute (0-59)",
    "hour (0-23)",
    "day-of-month (1-31, L, or one nearest-weekday day such as 15W or LW)",
    "month (1-12 or JAN-DEC)",
    "day-of-week (0-7 or SUN-SAT, with 5#3 or L5)",
    "second (0-59)",
)
_WHAT_IS_ACCEPTED: Final = (
    "expected a natural expression such as 'every 5 minutes', a 5- or 6-field cron "
    "expression such as '0 9 * * MON-FRI', an interval such as '5m' or '1h30m', or a "
    "shortcut such as '@daily'"
)


# -- time zones -----------------------------------------------------------------------------


@cache
def _zones_by_lower_name() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


def validate_timezone(name: str | ZoneInfo) -> ZoneInfo:
    """Return the IANA time zone ``name`` (``"Europe/Paris"``, ``"UTC"``) as a ``ZoneInfo``.

    The exact name is tried first, then a case-insensitive match (``"europe/paris"``).
    Raises :class:`ScheduleExpressionError` naming the zone when there is no such zone.
    """
    if isinstance(name, ZoneInfo):
        return name
    if isinstance(name, str) and name.strip():
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            fallback = _zones_by_lower_name().get(name.lower())
            if fallback is not None:
                return ZoneInfo(fallback)
    raise ScheduleExpressionError(
        f"unknown time zone {name!r}: expected an IANA name such as 'Europe/Paris' or 'UTC'",
        expression=str(name),
        position=0,
        word=str(name),
    )


def _wall_offset(wall: datetime, zone: ZoneInfo) -> timedelta:
    """UTC offset of naive wall time ``wall`` in ``zone`` with ``fold=0``.

    For a wall time inside a spring-forward gap that is the offset *before* the change (so
    02:30 maps to the instant of 03:30 after it); for a repeated wall time, the first one.
    """
    offset = wall.replace(tzinfo=zone).utcoffset()
    if offset is None:  # pragma: no cover - ZoneInfo always answers
        raise ValueError(f"time zone {zone.key!r} gave no UTC offset")
    return offset


# -- times of day ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _StepTimes:
    """Every ``step`` seconds from ``first`` to ``last`` (inclusive), in seconds of the day."""

    first: int
    last: int
    step: int

    def next_at_or_after(self, second: int) -> int | None:
        if second <= self.first:
            return self.first
        value = self.first - (self.first - second) // self.step * self.step
        return value if value <= self.last else None


@dataclass(frozen=True, slots=True)
class _ListTimes:
    """An explicit sorted list of times of the day (``at 9:00 and 17:00``)."""

    times: tuple[int, ...]

    def next_at_or_after(self, second: int) -> int | None:
        index = bisect_left(self.times, second)
        return self.times[index] if index < len(self.times) else None


@dataclass(frozen=True, slots=True)
class _GridTimes:
    """Cron's hours × minutes × seconds, each a sorted tuple."""

    hours: tuple[int, ...]
    minutes: tuple[int, ...]
    seconds: tuple[int, ...]

    def next_at_or_after(self, second: int) -> int | None:
        hour, rest = divmod(second, 3600)
        minute, sec = divmod(rest, 60)
        for h in self.hours[bisect_left(self.hours, hour) :]:
            if h > hour:
                return h * 3600 + self.minutes[0] * 60 + self.seconds[0]
            for m in self.minutes[bisect_left(self.minutes, minute) :]:
                if m > minute:
                    return h * 3600 + m * 60 + self.seconds[0]
                index = bisect_left(self.seconds, sec)
                if index < len(self.seconds):
                    return h * 3600 + m * 60 + self.seconds[index]
        return None


@dataclass(frozen=True, slots=True)
class _UnionTimes:
    """Several windows of steps (``between 9:00 and 12:00 and between 14:00 and 17:00``)."""

    parts: tuple[_StepTimes, ...]

    def next_at_or_after(self, second: int) -> int | None:
        found = [t for part in self.parts if (t := part.next_at_or_after(second)) is not None]
        return min(found, default=None)


_TimeSet: TypeAlias = _StepTimes | _ListTimes | _GridTimes | _UnionTimes


# -- rules ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _DayRule:
    """Which days of a month fire: a day matching *any* of the parts fires.

    This is cron's rule when both day-of-month and day-of-week are restricted (croniter's
    default ``day_or=True``); the natural grammar only ever fills one kind of part. ``specs``
    are computed days (nearest weekday, offsets, Friday the 13th). ``within``, when not
    empty, is a filter every firing day must pass besides (days of the month from
    ``between the 10th and 15th``).
    """

    any_day: bool = False
    month_days: frozenset[int] = frozenset()
    last_day: bool = False
    weekdays: frozenset[int] = frozenset()  # 0 = Monday
    nth_weekdays: frozenset[tuple[int, int]] = frozenset()  # (weekday, 1..5 or -1 = last)
    dates: frozenset[tuple[int, int]] = frozenset()  # (month, day)
    specs: frozenset[MonthDay] = frozenset()
    within: frozenset[int] = frozenset()

    def matches(self, month: int, day: int, weekday: int, month_length: int) -> bool:
        if self.within and day not in self.within:
            return False
        if self.specs:
            first_weekday = (weekday - day + 1) % 7
            if any(spec.day_in(first_weekday, month_length) == day for spec in self.specs):
                return True
        if self.any_day or day in self.month_days or weekday in self.weekdays:
            return True
        if self.last_day and day == month_length:
            return True
        if self.nth_weekdays and (
            (weekday, (day - 1) // 7 + 1) in self.nth_weekdays
            or (day + 7 > month_length and (weekday, -1) in self.nth_weekdays)
        ):
            return True
        return (month, day) in self.dates

    def only_month_days(self) -> bool:
        return not (
            self.any_day
            or self.last_day
            or self.weekdays
            or self.nth_weekdays
            or self.dates
            or self.specs
        )


@dataclass(frozen=True, slots=True)
class _CalendarRule:
    """A wall-clock rule: allowed months × matching days × times of day, plus phases.

    A phase ``(anchor, n)`` keeps one period in ``n`` counted from the anchor: days (anchor
    is a date ordinal), ISO weeks (ordinal of the anchor week's Monday), months (``year * 12 +
    month - 1``) or years.
    """

    times: _TimeSet
    days: _DayRule
    months: frozenset[int] = _ALL_MONTHS
    day_phase: tuple[int, int] | None = None
    week_phase: tuple[int, int] | None = None
    month_phase: tuple[int, int] | None = None
    year_phase: tuple[int, int] | None = None

    def next_after(self, after: datetime, zone: ZoneInfo) -> datetime | None:
        """First fire time strictly after ``after`` (aware UTC), or ``None`` past year 9999."""
        naive_after = after.replace(tzinfo=None)
        local_day = after.astimezone(zone).date()
        # Start a day early: a wall time skipped by a change across midnight can map after
        # ``after`` even though its date is before ``after``'s local date.
        begin = local_day - _DAY if local_day > date.min else local_day
        for day in self._days_from(begin):
            fire = self._fire_on(day, naive_after, zone)
            if fire is None:
                continue
            # Around an offset change the next day can hold an earlier instant (a gap that
            # crosses midnight); look at it too when the offset moves within two days.
            following = day + _DAY
            if _wall_offset(_midnight(day), zone) != _wall_offset(
                _midnight(following + _DAY), zone
            ) and self._matches(following):
                other = self._fire_on(following, naive_after, zone)
                if other is not None and other < fire:
                    fire = other
            return fire.replace(tzinfo=UTC)
        return None

    def _matches(self, day: date) -> bool:
        year, month = day.year, day.month
        return (
            self._month_allowed(year, month)
            and self.days.matches(
                month, day.day, day.weekday(), calendar.monthrange(year, month)[1]
            )
            and self._phase_allows(day.toordinal())
        )

    def _month_allowed(self, year: int, month: int) -> bool:
        if month not in self.months:
            return False
        if self.year_phase is not None and (year - self.year_phase[0]) % self.year_phase[1]:
            return False
        if self.month_phase is not None:
            anchor, every = self.month_phase
            return (year * 12 + month - 1 - anchor) % every == 0
        return True

    def _phase_allows(self, ordinal: int) -> bool:
        if self.day_phase is not None and (ordinal - self.day_phase[0]) % self.day_phase[1]:
            return False
        if self.week_phase is not None:
            anchor, every = self.week_phase
            return (ordinal - anchor) // 7 % every == 0
        return True

    def _days_from(self, start: date) -> Iterator[date]:
        """Matching local dates from ``start`` on, in order, skipping whole months."""
        year, month, first = start.year, start.month, start.day
        while year <= date.max.year:
            if self.year_phase is not None:
                skip = (self.year_phase[0] - year) % self.year_phase[1]
                if skip:
                    year, month, first = year + skip, 1, 1
                    continue
            if self._month_allowed(year, month):
                length = calendar.monthrange(year, month)[1]
                day = date(year, month, first)
                weekday, ordinal = day.weekday(), day.toordinal()
                for number in range(first, length + 1):
                    if self.days.matches(month, number, weekday, length) and self._phase_allows(
                        ordinal
                    ):
                        yield date(year, month, number)
                    weekday = (weekday + 1) % 7
                    ordinal += 1
            month, first = month + 1, 1
            if month > 12:
                year, month = year + 1, 1

    def _fire_on(self, day: date, after: datetime, zone: ZoneInfo) -> datetime | None:
        """Earliest fire on local ``day`` strictly after naive-UTC ``after``, as naive UTC.

        The day is cut where its ``fold=0`` offset changes (at most once a day is assumed);
        within a piece wall time maps to UTC by subtracting one offset, so the first time of
        day past a threshold is the first fire of that piece.
        """
        midnight = _midnight(day)
        start_offset = _wall_offset(midnight, zone)
        end_offset = _wall_offset(midnight + _LAST_SECOND, zone)
        if start_offset == end_offset:
            pieces: tuple[tuple[int, int, timedelta], ...] = ((0, 86400, start_offset),)
        else:
            low, high = 0, 86399  # offset(low) == start_offset, offset(high) != start_offset
            while high - low > 1:
                middle = (low + high) // 2
                if _wall_offset(midnight + timedelta(seconds=middle), zone) == start_offset:
                    low = middle
                else:
                    high = middle
            pieces = ((0, high, start_offset), (high, 86400, end_offset))
        best: datetime | None = None
        for low, high, offset in pieces:
            # wall second t fires at midnight + t - offset (UTC), which must be > after
            threshold = (after + offset - midnight) // _SECOND + 1
            second = self.times.next_at_or_after(max(low, threshold))
            if second is None or second >= high:
                continue
            fire = midnight + timedelta(seconds=second) - offset
            if best is None or fire < best:
                best = fire
        return best


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)


@dataclass(frozen=True, slots=True)
class _IntervalRule:
    """Fires at ``anchor + k * period`` for every integer ``k`` (absolute time, no DST)."""

    period: timedelta
    anchor: datetime

    def next_after(self, after: datetime) -> datetime:
        return self.anchor + ((after - self.anchor) // self.period + 1) * self.period


@dataclass(frozen=True, slots=True)
class _NaturalCronRule:
    """A NaturalCron expression: each fire time is found from the one asked about, as
    NaturalCron does (``every N`` counts from the base time)."""

    spec: NaturalCronSpec

    def next_after(self, after: datetime, zone: ZoneInfo) -> datetime | None:
        base = after.astimezone(zone).replace(tzinfo=None)
        for _ in range(4):  # a wall time repeated by a fall-back can map before ``after``
            local = self.spec.next_after(base)
            if local is None:
                return None
            fire = (local - _wall_offset(local, zone)).replace(tzinfo=UTC)
            if fire > after:
                return fire
            base = local
        return None  # pragma: no cover - four repeats in one fall-back cannot happen

    def fires_at(self, moment: datetime, zone: ZoneInfo) -> bool:
        """Whether ``moment`` (aware) satisfies every filter: a ``start`` that does is the
        first fire time, and ``every N`` counts from it."""
        local = moment.astimezone(zone).replace(tzinfo=None)
        return local.microsecond == 0 and self.spec.matches(local)


@dataclass(frozen=True, slots=True)
class _OnceRule:
    """One-shot wall times (``at 2027-01-01 10:00``): each fires once, then nothing does."""

    moments: tuple[datetime, ...]  # naive wall times in the schedule's zone

    def next_after(self, after: datetime, zone: ZoneInfo) -> datetime | None:
        fires = [(wall - _wall_offset(wall, zone)).replace(tzinfo=UTC) for wall in self.moments]
        return min((fire for fire in fires if fire > after), default=None)


@dataclass(frozen=True, slots=True)
class _UnionRule:
    """Fires whenever any part does (list items with their own times:
    ``on the 1st at 03:00 and the 3rd at 22:00``)."""

    parts: tuple[_CalendarRule, ...]

    def next_after(self, after: datetime, zone: ZoneInfo) -> datetime | None:
        fires = [fire for part in self.parts if (fire := part.next_after(after, zone)) is not None]
        return min(fires, default=None)


_Rule: TypeAlias = _IntervalRule | _CalendarRule | _NaturalCronRule | _OnceRule | _UnionRule


# -- the public value -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Schedule:
    """A parsed schedule expression: an immutable value that computes fire times.

    Build one with :meth:`Schedule.parse`. ``expression`` is the text as given (stripped;
    a ``timedelta`` becomes its interval string, ``"1h30m"``), ``tz`` the zone wall-clock
    rules are evaluated in, ``kind`` the family (``"interval"``, ``"cron"`` or ``"natural"``),
    ``start``/``end`` the optional bounds (aware UTC): no fire time is before ``start`` or
    after ``end``. Two schedules are equal when these five fields are.
    """

    expression: str
    tz: ZoneInfo
    kind: ScheduleKind
    start: datetime | None
    end: datetime | None
    _rule: _Rule = field(repr=False, compare=False)
    _description: str = field(repr=False, compare=False)

    @classmethod
    def parse(
        cls,
        expression: str | timedelta,
        tz: str | ZoneInfo | None = None,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        dialect: Dialect = "auto",
    ) -> Schedule:
        """Parse ``expression`` into a :class:`Schedule`.

        ``tz`` is the zone for wall-clock rules (default UTC); an expression may name its
        own (``... tz Europe/Paris``), and naming a different zone in both places is an
        error. ``start`` anchors intervals and phases (``every 2 days``) and no fire time
        precedes it; ``end`` is the last instant a fire time may have. Naive datetimes are
        read as UTC. ``dialect`` picks the grammar: ``"jobmaster"`` (intervals, cron,
        shortcuts and jobmaster's English), ``"naturalcron"`` (NaturalCron's language with
        its meanings), ``"cron"`` (cron and shortcuts only), ``"crontab"`` (5 cron fields
        read with Celery's day rule: when both day fields are restricted a day must match
        both; what :func:`~jobmaster.schedules.crontab.crontab` writes) or ``"auto"``; a
        leading ``naturalcron:``, ``jobmaster:``, ``cron:`` or ``crontab:`` in the text does
        the same. Any mistake raises :class:`ScheduleExpressionError` naming the word.
        """
        if dialect not in _DIALECTS:
            raise ScheduleExpressionError(
                f"unknown dialect {dialect!r}: expected one of {', '.join(_DIALECTS)}",
                expression=str(expression),
            )
        zone_argument = _zone_argument(tz)
        start_utc = _bound(start, "start")
        end_utc = _bound(end, "end")
        if start_utc is not None and end_utc is not None and end_utc < start_utc:
            raise ScheduleExpressionError(
                f"end {end_utc.isoformat()} is before start {start_utc.isoformat()}",
                expression=str(expression),
            )
        if isinstance(expression, timedelta):
            text = _format_period(expression)
            rule: _Rule = _interval_rule(expression, text, start_utc)
            zone = zone_argument or _UTC_ZONE
            description = _describe_interval(expression, start_utc)
            return cls(text, zone, "interval", start_utc, end_utc, rule, description)
        if not isinstance(expression, str):
            raise ScheduleExpressionError(
                f"a schedule expression must be a string or a timedelta, not "
                f"{type(expression).__name__} ({expression!r})",
                expression=repr(expression),
            )
        text = expression.strip()
        if not text:
            raise ScheduleExpressionError(
                f"empty schedule expression: {_WHAT_IS_ACCEPTED}", expression=expression
            )
        kind, zone, rule, description = _compile(text, zone_argument, start_utc, dialect)
        return cls(text, zone, kind, start_utc, end_utc, rule, description)

    def next_after(self, dt: datetime) -> datetime | None:
        """The first fire time strictly after ``dt`` (naive = UTC), as an aware UTC datetime.

        ``None`` when no fire time remains: after ``end``, or beyond the year 9999.
        """
        after = _as_utc(dt)
        if self.start is not None and after < self.start:
            after = self.start - _TINY
            if isinstance(self._rule, _NaturalCronRule):
                if self._rule.fires_at(self.start, self.tz):
                    return self.start if self.end is None or self.start <= self.end else None
                after = self.start
        try:
            if isinstance(self._rule, _IntervalRule):
                fire: datetime | None = self._rule.next_after(after)
            else:
                fire = self._rule.next_after(after, self.tz)
        except (OverflowError, ValueError):  # date arithmetic past year 9999
            return None
        if fire is None or (self.end is not None and fire > self.end):
            return None
        return fire

    def next_n(self, dt: datetime, n: int) -> list[datetime]:
        """The next ``n`` fire times strictly after ``dt`` (fewer if the schedule ends)."""
        if n < 0:
            raise ValueError(f"n must be 0 or more, got {n}")
        fires: list[datetime] = []
        current: datetime | None = dt
        while len(fires) < n and current is not None:
            current = self.next_after(current)
            if current is not None:
                fires.append(current)
        return fires

    def describe(self) -> str:
        """A short human description, e.g. ``"every 5 minutes (aligned), tz UTC"``."""
        text = f"{self._description}, tz {self.tz.key}"
        if self.start is not None and not isinstance(self._rule, _IntervalRule):
            text += f", from {_format_instant(self.start)}"
        if self.end is not None:
            text += f", until {_format_instant(self.end)}"
        return text


# -- parsing helpers ------------------------------------------------------------------------


def _as_utc(value: datetime) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _bound(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise ScheduleExpressionError(
            f"{name} must be a datetime, not {type(value).__name__}", expression=repr(value)
        )
    return _as_utc(value)


def _zone_argument(tz: str | ZoneInfo | None) -> ZoneInfo | None:
    if tz is None or isinstance(tz, ZoneInfo):
        return tz
    if isinstance(tz, str):
        return validate_timezone(tz)
    raise ScheduleExpressionError(
        f"tz must be a time zone name such as 'Europe/Paris' or a ZoneInfo, not "
        f"{type(tz).__name__}",
        expression=repr(tz),
    )


def _format_instant(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _format_period(period: timedelta) -> str:
    """``timedelta(hours=1, minutes=30)`` → ``"1h30m"`` (whole seconds only)."""
    if period < timedelta(0):
        return "-" + _format_period(-period)
    seconds = period // _SECOND
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _describe_interval(period: timedelta, start: datetime | None, every: str | None = None) -> str:
    anchor = "the Unix epoch" if start is None else _format_instant(start)
    return f"{every or 'every ' + _format_period(period)} counted from {anchor}"


def _interval_rule(period: timedelta, text: str, start: datetime | None) -> _IntervalRule:
    if period <= timedelta(0):
        raise ScheduleExpressionError(
            f"an interval must be longer than zero, got {text!r}",
            expression=text,
            position=0,
            word=text,
        )
    if period % _SECOND:
        raise ScheduleExpressionError(
            f"an interval must be a whole number of seconds, got {period!r}",
            expression=str(period),
        )
    return _IntervalRule(period, start or _EPOCH)


def _words(text: str) -> list[tuple[str, int]]:
    """Whitespace-separated words of ``text`` with their positions."""
    words: list[tuple[str, int]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        j = i
        while j < n and not text[j].isspace():
            j += 1
        words.append((text[i:j], i))
        i = j
    return words


def _word_error(text: str, word: str, position: int, reason: str) -> ScheduleExpressionError:
    return ScheduleExpressionError(
        f"could not read {word!r} at position {position} in {text!r}: {reason}",
        expression=text,
        position=position,
        word=word,
    )


def _resolve_zone(
    text: str, name: str | None, position: int | None, argument: ZoneInfo | None
) -> ZoneInfo:
    if name is None or position is None:
        return argument or _UTC_ZONE
    try:
        zone = validate_timezone(name)
    except ScheduleExpressionError:
        raise _word_error(
            text,
            name,
            position,
            "unknown time zone: expected an IANA name such as 'Europe/Paris' or 'UTC'",
        ) from None
    if argument is not None and argument.key != zone.key:
        raise _word_error(
            text,
            name,
            position,
            f"the expression names time zone {zone.key!r} but tz={argument.key!r} was "
            f"also given: give the zone once",
        )
    return zone


def _compile(
    text: str, zone_argument: ZoneInfo | None, start: datetime | None, dialect: Dialect
) -> tuple[ScheduleKind, ZoneInfo, _Rule, str]:
    """Choose the grammar (see ``docs/scheduling.md``, *Which grammar reads a string*)."""
    lowered = text.lower()
    for prefix, named in _PREFIXES.items():
        if lowered.startswith(prefix):
            if dialect not in ("auto", named):
                raise _word_error(
                    text,
                    text[: len(prefix)],
                    0,
                    f"the prefix asks for the {named} dialect but dialect={dialect!r} was given",
                )
            # blank the prefix out so positions still count from the start of ``text``
            blanked = " " * len(prefix) + text[len(prefix) :]
            if not blanked.strip():
                raise _word_error(text, text, 0, f"expected an expression after {prefix!r}")
            try:
                return _compile_dialect(blanked, zone_argument, start, named)  # type: ignore[arg-type]
            except ScheduleExpressionError as error:
                raise _restated(error, blanked, text) from None
    if dialect == "auto":
        dialect = "naturalcron" if _prefers_naturalcron(text) else "jobmaster"
    return _compile_dialect(text, zone_argument, start, dialect)


def _prefers_naturalcron(text: str) -> bool:
    """The ``auto`` rule: NaturalCron reads a string that uses syntax only it has (an ``@``
    rule keyword such as ``@every``/``@on``, a ``[`` list, or one of its own words); a cron
    shortcut (``@daily``) alone keeps its cron meaning."""
    first = text.split(None, 1)[0].lower()
    if first in _SHORTCUTS:
        return False
    return looks_like_naturalcron(text)


def _restated(error: ScheduleExpressionError, blanked: str, text: str) -> ScheduleExpressionError:
    message = str(error).replace(repr(blanked), repr(text))
    return ScheduleExpressionError(
        message, expression=text, position=error.position, word=error.word
    )


def _compile_dialect(
    text: str, zone_argument: ZoneInfo | None, start: datetime | None, dialect: Dialect
) -> tuple[ScheduleKind, ZoneInfo, _Rule, str]:
    if dialect == "naturalcron":
        naturalcron = parse_naturalcron(text)
        zone = _resolve_zone(
            text, naturalcron.timezone, naturalcron.timezone_position, zone_argument
        )
        return "naturalcron", zone, _NaturalCronRule(naturalcron), naturalcron.describe()
    words = _words(text)
    first = words[0][0].lower()
    leading_zone = first in ("tz", "in") and len(words) > 1 and not _is_month(words[1][0])
    if dialect == "jobmaster" and (
        first in _NATURAL_STARTS
        or (leading_zone and len(words) > 2 and words[2][0].lower() in _NATURAL_STARTS)
    ):
        spec = parse_natural(text)
        zone = _resolve_zone(text, spec.timezone, spec.timezone_position, zone_argument)
        rule, description = _natural_rule(text, spec, zone, start)
        return "natural", zone, rule, description
    body, zone_name, zone_position = words, None, None
    if len(words) >= 2 and leading_zone:
        body, zone_name, zone_position = words[2:], words[1][0], words[1][1]
    elif len(words) >= 3 and words[-2][0].lower() in ("tz", "in"):
        body, zone_name, zone_position = words[:-2], words[-1][0], words[-1][1]
    if not body:
        parse_natural(text)  # raises: reports what is missing
    zone = _resolve_zone(text, zone_name, zone_position, zone_argument)
    head = body[0][0]
    if head.startswith("@"):
        cron_text = _SHORTCUTS.get(head.lower())
        if cron_text is None:
            hint = ""
            if head.lower()[1:] in _NATURALCRON_KEYWORDS:
                hint = " (NaturalCron's @ rules are read with dialect='naturalcron' or 'auto')"
            raise _word_error(
                text, head, body[0][1], f"expected one of {', '.join(_SHORTCUTS)}{hint}"
            )
        if len(body) > 1:
            raise _word_error(text, body[1][0], body[1][1], "expected nothing after a shortcut")
        fields = [(value, body[0][1]) for value in cron_text.split()]
        return "cron", zone, _cron_rule(text, fields), f"{head.lower()} (cron '{cron_text}')"
    looks_like_cron = not all(_looks_like_interval(word) for word, _ in body) and (
        len(body) in (5, 6)
        or any(mark in word for word, _ in body for mark in "*?")
        or (len(body) > 2 and head[0].isdigit())
    )
    if looks_like_cron:
        described = " ".join(word for word, _ in body)
        if dialect == "crontab":
            rule = _cron_rule(text, body, days_and=True)
            note = " (a day fires only if its day of the month and day of the week both match)"
            both = bool(rule.days.within)
            return "cron", zone, rule, f"Celery crontab '{described}'{note if both else ''}"
        return "cron", zone, _cron_rule(text, body), f"cron '{described}'"
    if dialect == "cron":
        raise _word_error(
            text,
            head,
            body[0][1],
            "expected a 5- or 6-field cron expression such as '0 9 * * MON-FRI' or a shortcut "
            "such as '@daily' (dialect='cron')",
        )
    if dialect == "crontab":
        raise _word_error(
            text, head, body[0][1], "expected a crontab's 5 cron fields such as '0 9 1-7 * MON'"
        )
    if head[0].isdigit():
        period = _parse_interval(text, body)
        if not period:
            raise _word_error(text, text, 0, "an interval must be longer than zero")
        rule = _interval_rule(period, text, start)
        return "interval", zone, rule, _describe_interval(period, start)
    parse_natural(text)  # raises with the word it could not read
    raise ScheduleExpressionError(  # pragma: no cover - parse_natural always raises here
        f"could not read {text!r}: {_WHAT_IS_ACCEPTED}", expression=text
    )


def _is_month(word: str) -> bool:
    return word.lower() in MONTHS


def _looks_like_interval(word: str) -> bool:
    return word[:1].isdigit() and any(c in _INTERVAL_UNITS for c in word.lower())


def _parse_interval(text: str, body: list[tuple[str, int]]) -> timedelta:
    """``30s``, ``5m``, ``1h30m``, ``1h 30m``, ``2d``, ``1w``: each unit at most once."""
    seconds = 0
    seen: set[str] = set()
    for word, position in body:
        i = 0
        while i < len(word):
            j = i
            while j < len(word) and word[j].isascii() and word[j].isdigit():
                j += 1
            if j == i:
                raise _word_error(
                    text,
                    word[i:],
                    position + i,
                    "expected a number, as in an interval such as 30s, 5m or 1h30m",
                )
            unit = word[j : j + 1].lower()
            if unit not in _INTERVAL_UNITS:
                bad, at = (word[j:], j) if j < len(word) else (word[i:j], i)
                raise _word_error(
                    text,
                    bad,
                    position + at,
                    f"expected a unit after {word[i:j]}: s, m, h, d or w (as in 30s or 1h30m)",
                )
            if unit in seen:
                raise _word_error(
                    text, word[i : j + 1], position + i, f"the unit {unit!r} is given twice"
                )
            seen.add(unit)
            seconds += int(word[i:j]) * _INTERVAL_UNITS[unit]
            i = j + 1
    if seconds > 100 * 366 * 86400:
        raise _word_error(text, body[0][0], body[0][1], "an interval can be at most 100 years")
    return timedelta(seconds=seconds)


# -- cron -----------------------------------------------------------------------------------


def _cron_rule(
    text: str, fields: list[tuple[str, int]], *, days_and: bool = False
) -> _CalendarRule:
    """Validate cron fields with croniter and compile them to a calendar rule.

    Six fields put the seconds *last* (croniter's default, ``second_at_beginning=False``).
    A day-of-month of ``15W`` (the weekday nearest the 15th) or ``LW`` (the last weekday) is
    read here, not by croniter, whose ``expand`` reads ``15W`` as ``15``.

    ``days_and`` is Celery's crontab rule: five fields of plain values, ranges, steps and
    names, and when both day fields are restricted a day fires only if it matches both.
    """
    if len(fields) not in ((5,) if days_and else (5, 6)):
        counts = "a crontab has 5" if days_and else "a cron expression has 5"
        also = "" if days_and else " or 6 (the same, then second)"
        raise ScheduleExpressionError(
            f"{text!r} has {len(fields)} fields: {counts} (minute hour day-of-month month "
            f"day-of-week){also}",
            expression=text,
        )
    values = [word for word, _ in fields]
    nearest = _nearest_weekday(text, *fields[2])
    if nearest is not None:
        values[2] = "1"  # a placeholder, so croniter checks the other fields
    for index, (word, position) in enumerate(fields):
        if index == 2 and nearest is not None:
            continue
        probe = ["*"] * len(fields)
        probe[index] = word
        try:
            croniter.expand(" ".join(probe))
        except (CroniterError, TypeError, KeyError, IndexError, ValueError):
            raise _word_error(
                text,
                word,
                position,
                f"expected a cron {_CRON_FIELDS[index]} field: a value, a range such as 1-5, "
                f"a step such as */15 or 1-30/5, or a list of those such as 1,15",
            ) from None
    try:
        expanded, nth = croniter.expand(" ".join(values))
    except (CroniterError, TypeError, KeyError, IndexError, ValueError):
        raise _word_error(
            text,
            fields[4][0],
            fields[4][1],
            "a day-of-week field cannot mix n-th weekdays (5#3, L5) with plain days in one "
            "list: use two schedules",
        ) from None

    def numbers(index: int, full: range) -> tuple[int, ...]:
        values = expanded[index]
        if "*" in values:  # "*,5" is every value, as in croniter
            return tuple(full)
        return tuple(sorted({v for v in values if isinstance(v, int)}))

    minutes, hours = numbers(0, range(60)), numbers(1, range(24))
    seconds = numbers(5, range(60)) if len(fields) == 6 else (0,)
    months = frozenset(numbers(3, range(1, 13)))
    dom, dow = expanded[2], expanded[4]
    nth_pairs = frozenset(
        ((int(weekday) + 6) % 7, count if isinstance(count, int) else -1)
        for weekday, counts in nth.items()
        for count in counts
    )
    nth_days = {int(weekday) % 7 for weekday in nth}
    weekdays = frozenset((v + 6) % 7 for v in dow if isinstance(v, int) and v % 7 not in nth_days)
    month_days = frozenset(v for v in dom if isinstance(v, int))
    specs: frozenset[MonthDay] = frozenset()
    if nearest is not None:
        month_days, specs = frozenset(), frozenset((nearest,))
    if days_and and (nearest is not None or "l" in dom or nth_pairs):
        word, position = fields[4] if nth_pairs else fields[2]
        raise _word_error(
            text, word, position, "a crontab's day fields take values, ranges, steps and "
            "names, not cron's L, W or #"
        )
    dom_star, dow_star = "*" in dom and nearest is None, "*" in dow and not nth_pairs
    if dom_star and dow_star:
        days = _DayRule(any_day=True)
    elif dom_star:
        days = _DayRule(weekdays=weekdays, nth_weekdays=nth_pairs)
    elif dow_star:
        days = _DayRule(month_days=month_days, last_day="l" in dom, specs=specs)
    elif days_and:  # Celery: the day of the week, on the allowed days of the month
        days = _DayRule(weekdays=weekdays, within=month_days)
    else:
        days = _DayRule(
            month_days=month_days,
            last_day="l" in dom,
            weekdays=weekdays,
            nth_weekdays=nth_pairs,
            specs=specs,
        )
    rule = _CalendarRule(_GridTimes(hours, minutes, seconds), days, months)
    _check_can_fire(text, rule)
    return rule


def _nearest_weekday(text: str, word: str, position: int) -> MonthDay | None:
    """A cron day-of-month ``15W`` or ``LW`` as a :class:`MonthDay`; ``None`` without ``W``.

    As in Quartz and croniter, ``W`` takes one day, not a list, range or step, and never
    leaves the month: ``1W`` on a Saturday is Monday the 3rd, and a day the month lacks
    (``31W`` in April) counts as its last day.
    """
    lowered = word.lower()
    if "w" not in lowered:
        return None
    number = lowered[:-1]
    if lowered.endswith("w") and number == "l":
        return MonthDay("last_weekday")
    if lowered.endswith("w") and number.isascii() and number.isdigit() and 1 <= int(number) <= 31:
        return MonthDay("closest", int(number))
    raise _word_error(
        text,
        word,
        position,
        "expected one nearest-weekday day such as 15W (a day 1-31, then W) or LW (the last "
        "weekday); W does not combine with lists, ranges or steps",
    )


def _check_can_fire(text: str, rule: _CalendarRule) -> None:
    """Refuse rules that never fire, such as ``0 0 30 2 *`` or ``every month on the 31st``
    counted in steps that only ever land on February."""
    months: set[int] = set(rule.months)
    if rule.month_phase is not None:
        anchor, every = rule.month_phase
        months &= {(anchor + k * every) % 12 + 1 for k in range(12)}
    longest = max((MONTH_DAYS[m - 1] for m in months), default=0)
    days = rule.days
    earliest = [*days.month_days, *(spec.earliest_day() for spec in days.specs)]
    if (days.within and min(days.within) > longest) or (
        replace(days, month_days=frozenset(), specs=frozenset(), within=frozenset())
        .only_month_days()
        and min(earliest, default=0) > longest
    ):
        raise ScheduleExpressionError(
            f"{text!r} never fires: no month it allows has that day", expression=text
        )
    if (
        rule.year_phase is not None
        and rule.next_after(datetime(rule.year_phase[0], 1, 1, tzinfo=UTC) - _TINY, _UTC_ZONE)
        is None
    ):
        raise ScheduleExpressionError(
            f"{text!r} never fires: the years it counts never have that date", expression=text
        )


# -- natural language -----------------------------------------------------------------------

_UNIT_SECONDS: Final = {"second": 1, "minute": 60, "hour": 3600}


def _clock(second: int) -> str:
    hours, rest = divmod(second, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}" + (f":{seconds:02d}" if seconds else "")


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _day_names(weekdays: frozenset[int]) -> str:
    if weekdays == frozenset(range(5)):
        return "Mon-Fri"
    if weekdays == frozenset(range(7)):
        return "every day"
    return _join([_DAY_ABBR[d] for d in sorted(weekdays)])


def _ordinal(number: int) -> str:
    suffix = "th"
    if not 10 <= number % 100 <= 20:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def _plural(count: int, unit: str) -> str:
    return f"every {unit}" if count == 1 else f"every {count} {unit}s"


def _natural_rule(
    text: str, spec: NaturalSpec, zone: ZoneInfo, start: datetime | None
) -> tuple[_Rule, str]:
    """Give a parsed natural expression its meaning in ``zone``, anchored at ``start``; a
    month filter (``in jan and jun``) narrows the months of the calendar rule; list items
    with their own times become one rule each, and the schedule fires when any does."""
    if spec.unit == "once":
        moments = spec.moments
        names = _join([f"{m.date().isoformat()} {_clock(_seconds_of(m))}" for m in moments])
        return _OnceRule(moments), f"once at {names}"
    if spec.alternatives:
        parts: list[_CalendarRule] = []
        descriptions: list[str] = []
        for alternative in spec.alternatives:
            rule, description = _natural_rule_unfiltered(text, alternative, zone, start)
            if not isinstance(rule, _CalendarRule):  # pragma: no cover - days, weeks, ...
                raise TypeError("a list item with its own time is always a calendar rule")
            descriptions.append(description)
            filtered = _month_filtered(text, rule, spec.months)
            if filtered is not None:
                parts.append(filtered)
        if not parts:
            raise ScheduleExpressionError(
                f"{text!r} never fires: its dates fall outside the months it allows",
                expression=text,
            )
        description = _merge_descriptions(descriptions) + _months_suffix(spec.months)
        return _UnionRule(tuple(parts)), description
    rule, description = _natural_rule_unfiltered(text, spec, zone, start)
    if not spec.months or not isinstance(rule, _CalendarRule):
        return rule, description
    months = rule.months & spec.months
    if not months:
        raise ScheduleExpressionError(
            f"{text!r} never fires: its dates fall outside the months it allows",
            expression=text,
        )
    rule = replace(rule, months=months)
    _check_can_fire(text, rule)
    return rule, description + _months_suffix(spec.months)


def _month_filtered(
    text: str, rule: _CalendarRule, months: frozenset[int]
) -> _CalendarRule | None:
    """``rule`` narrowed to ``months`` (all months when empty); ``None`` if it never fires."""
    if not months:
        return rule
    allowed = rule.months & months
    if not allowed:
        return None
    narrowed = replace(rule, months=allowed)
    try:
        _check_can_fire(text, narrowed)
    except ScheduleExpressionError:
        return None
    return narrowed


def _months_suffix(months: frozenset[int]) -> str:
    return f" in {_join([_MONTH_ABBR[m] for m in sorted(months)])}" if months else ""


def _merge_descriptions(descriptions: list[str]) -> str:
    """``every month on the 1st at 03:00`` + ``every month on the 3rd at 22:00`` →
    ``every month on the 1st at 03:00 and 3rd at 22:00`` (the shared words said once)."""
    split = [d.split(" ") for d in descriptions]
    shared = 0
    while all(len(words) > shared + 1 for words in split) and all(
        words[shared] == split[0][shared] for words in split
    ):
        shared += 1
    head = " ".join(split[0][:shared])
    return f"{head} {_join([' '.join(words[shared:]) for words in split])}"


def _seconds_of(moment: datetime) -> int:
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def _day_ranges(days: frozenset[int]) -> str:
    """``{10, 11, 12, 25}`` → ``days 10-12 and 25``."""
    runs: list[list[int]] = []
    for day in sorted(days):
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    names = [f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]) for run in runs]
    return f"day{'s' if len(days) > 1 else ''} {_join(names)}"


def _natural_rule_unfiltered(
    text: str, spec: NaturalSpec, zone: ZoneInfo, start: datetime | None
) -> tuple[_Rule, str]:
    local_start = None if start is None else start.astimezone(zone).date()
    times = _ListTimes(spec.times or (0,))
    at = f" at {_join([_clock(t) for t in times.times])}"
    every = spec.every
    if spec.unit in _UNIT_SECONDS:
        step = every * _UNIT_SECONDS[spec.unit]
        aligned = (60 if spec.unit != "hour" else 24) % every == 0
        description = _plural(every, spec.unit)
        windows = spec.windows or ((spec.window,) if spec.window is not None else ())
        if (
            not windows
            and not spec.weekdays
            and not spec.months
            and not spec.within_days
            and not aligned
        ):
            period = timedelta(seconds=step)
            interval = _IntervalRule(period, start or _EPOCH)
            return interval, _describe_interval(period, start, description)
        steps = tuple(_StepTimes(first, last, step) for first, last in windows or ((0, 86399),))
        if aligned and all(part.first % step == 0 for part in steps):
            description += " (aligned)"
        elif len(steps) == 1:
            description += f" (counted from {_clock(steps[0].first)} each day)"
        else:
            description += " (counted from the start of each window)"
        if windows:
            description += " " + _join(
                [f"between {_clock(first)} and {_clock(last)}" for first, last in windows]
            )
        if spec.within_days:
            description += f" on {_day_ranges(spec.within_days)}"
        days = _DayRule(any_day=True, within=spec.within_days)
        if spec.weekdays:
            days = _DayRule(weekdays=spec.weekdays, within=spec.within_days)
            description += f" on {_day_names(spec.weekdays)}"
        time_set: _TimeSet = steps[0] if len(steps) == 1 else _UnionTimes(steps)
        rule = _CalendarRule(time_set, days)
        _check_can_fire(text, rule)
        return rule, description
    if spec.unit == "day":
        days = _DayRule(
            any_day=not spec.weekdays, weekdays=spec.weekdays, within=spec.within_days
        )
        within = f" on {_day_ranges(spec.within_days)}" if spec.within_days else ""
        if every == 1:
            on = _day_names(spec.weekdays) if spec.weekdays else "day"
            rule = _CalendarRule(times, days)
            _check_can_fire(text, rule)
            return rule, f"every {on}{at}{within}"
        anchor = local_start or _EPOCH_DATE
        rule = _CalendarRule(times, days, day_phase=(anchor.toordinal(), every))
        _check_can_fire(text, rule)
        return rule, f"every {every} days{at}{within} (counted from {anchor.isoformat()})"
    if spec.unit == "week":
        weekdays = spec.weekdays or frozenset((0,))
        description = f"{_plural(every, 'week')} on {_day_names(weekdays)}{at}"
        phase = None
        if every > 1:
            anchor = local_start or _EPOCH_MONDAY
            anchor -= timedelta(days=anchor.weekday())
            phase = (anchor.toordinal(), every)
            description += f" (counted from the week of {anchor.isoformat()})"
        rule = _CalendarRule(times, _DayRule(weekdays=weekdays), week_phase=phase)
        return rule, description
    if spec.unit == "month":
        month_days = spec.month_days
        if not (month_days or spec.last_day or spec.nth_weekdays or spec.day_specs):
            month_days = frozenset((1,))
        names = [_ordinal(d) for d in sorted(month_days)]
        names += [
            f"{'last' if n == -1 else _ordinal(n)} {_DAY_ABBR[d]}"
            for d, n in sorted(spec.nth_weekdays)
        ]
        names += ["last day"] if spec.last_day else []
        names += sorted(day.describe() for day in spec.day_specs)
        days = _DayRule(
            month_days=month_days,
            last_day=spec.last_day,
            nth_weekdays=spec.nth_weekdays,
            specs=spec.day_specs,
        )
        description = f"{_plural(every, 'month')} on the {_join(names)}{at}"
        month_phase = None
        if every > 1:
            year, month = (1970, 1)
            if local_start is not None:
                year, month = local_start.year, local_start.month
            month_phase = (year * 12 + month - 1, every)
            description += f" (counted from {year}-{month:02d})"
        rule = _CalendarRule(times, days, month_phase=month_phase)
        _check_can_fire(text, rule)
        return rule, description
    # years
    dates = spec.dates or frozenset(((1, 1),))
    names = [f"{_MONTH_ABBR[m]} {d}" for m, d in sorted(dates)]
    description = f"{_plural(every, 'year')} on {_join(names)}{at}"
    year_phase = None
    if every > 1:
        anchor_year = 1970 if local_start is None else local_start.year
        year_phase = (anchor_year, every)
        description += f" (counted from {anchor_year})"
    rule = _CalendarRule(
        times,
        _DayRule(dates=dates),
        months=frozenset(m for m, _ in dates),
        year_phase=year_phase,
    )
    _check_can_fire(text, rule)
    return rule, description
