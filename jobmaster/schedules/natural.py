"""The natural-language schedule grammar: ``every 15 minutes between 9am and 5pm on weekdays``.

This module only reads text: a small tokenizer and a recursive-descent parser turn an
expression into a :class:`NaturalSpec`, a plain description of what was written. What it
means (time zones, DST, anchoring at the schedule's start) is decided by
:mod:`jobmaster.schedules.expressions`.

The grammar, case-insensitive (``|`` separates choices, ``[...]`` is optional, ``{...}``
repeats; ``,``, ``and`` and ``, and`` all separate list items)::

    expression := [zone] ("every" frequency | daily .. yearly) {qualifier}
                | [zone] ("at" | "on") moment {sep moment} [zone]
    frequency  := NUMBER unit | "other" unit | unit | item(days) {sep item(days)}
                | item(month-day) {sep item(month-day)}   (only "friday the 13th" items)
    unit       := second(s) | sec(s) | minute(s) | min(s) | hour(s) | hr(s)
                | day(s) | week(s) | month(s) | year(s)
    days       := monday .. sunday | mon .. sun | mon-fri (a range) | weekday(s)
                | weekend(s) | weekend day(s)
    item(x)    := x ["at" time {sep time}]
    qualifier  := "at" time {sep time}
                | window {sep window}
                | day-window {sep day-window}
                | "on" (item(days) | item(month-day) | item(date)) {sep ...}
                | ("in" | "between" | "from") months
                | zone
    window     := "between" time "and" time | "from" time [("to" | "until") time]
                | "until" time
    day-window := ("between" day "and" day) | ("from" day ("to" | "until") day)
    day        := ["the"] (ORDINAL | NUMBER)       ("the" or a suffix is needed first)
    month-day  := ["the"] base ["of" ["the"] "month"] [("+" | "-") NUMBER ["day(s)"]]
    base       := ORDINAL | NUMBER | "day" NUMBER | ORDINAL-WORD "day" | "last" "day"
                | ("first" | "last") "weekday" | ORDINAL-WORD weekday | "last" weekday
                | ORDINAL weekday | ("closest" | "nearest") "weekday" "to" day
                | weekday day                      (Friday the 13th: both must hold)
    date       := ["the"] (month-name (ORDINAL | NUMBER) | (ORDINAL | NUMBER) ["of"] month-name)
    moment     := YYYY-MM-DD [["at"] time]
    time       := 9 | 09:00 | 9:30 | 18:30:15 | 9am | 9:30pm | 9 am | noon | midnight
    zone       := ("tz" | "in") IANA-NAME

Which qualifiers a frequency takes: seconds, minutes and hours take windows, day windows
and ``on <days>``; ``every day`` takes ``at``, day windows and ``on <days>``; named days
(``every monday``) and ``every N days`` take ``at`` and day windows; weeks take ``on
<days>`` and ``at``; months take ``on <month days>`` and ``at``; years take ``on <dates>``
and ``at``; one-shot moments only a zone. Each qualifier appears at most once; the zone may
lead or follow anywhere between qualifiers. In a list, an ``at`` after the last item is for
the whole list; once an earlier item has its own ``at``, every item needs one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Final, NoReturn, TypeAlias

from jobmaster.exceptions import ScheduleExpressionError
from jobmaster.schedules.monthdays import MonthDay

__all__ = ["NATURAL_STARTS", "ONE_SHOT_STARTS", "NaturalSpec", "parse_natural"]

#: Words that stand for ``every <unit>`` at the start of an expression (``daily at 9:00``).
NATURAL_STARTS: Final[dict[str, str]] = {
    "secondly": "second",
    "minutely": "minute",
    "hourly": "hour",
    "daily": "day",
    "weekly": "week",
    "monthly": "month",
    "yearly": "year",
}

#: Words that start a one-shot expression (``at 2027-01-01 10:00``, ``on 2027-01-01``).
ONE_SHOT_STARTS: Final = frozenset(("at", "on"))

UNITS: Final[dict[str, str]] = {
    **dict.fromkeys(("second", "seconds", "sec", "secs"), "second"),
    **dict.fromkeys(("minute", "minutes", "min", "mins"), "minute"),
    **dict.fromkeys(("hour", "hours", "hr", "hrs"), "hour"),
    **dict.fromkeys(("day", "days"), "day"),
    **dict.fromkeys(("week", "weeks"), "week"),
    **dict.fromkeys(("month", "months"), "month"),
    **dict.fromkeys(("year", "years"), "year"),
}

#: Seconds in one unit, for the "at most 100 years" cap (months and years approximate).
_UNIT_SECONDS: Final[dict[str, float]] = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": 7 * 86400,
    "month": 30.44 * 86400,
    "year": 365.25 * 86400,
}
_MAX_SPAN_SECONDS: Final = 100 * 365.25 * 86400

_DAY_NAMES: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WEEKDAYS: Final[dict[str, int]] = {}
for _index, _name in enumerate(_DAY_NAMES):
    WEEKDAYS[_name] = _index
    WEEKDAYS[_name + "s"] = _index
    WEEKDAYS[_name[:3]] = _index
WEEKDAYS.update({"tues": 1, "thur": 3, "thurs": 3})

_MONTH_NAMES: Final = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
MONTHS: Final[dict[str, int]] = {}
for _index, _name in enumerate(_MONTH_NAMES, start=1):
    MONTHS[_name] = _index
    MONTHS[_name[:3]] = _index
MONTHS["sept"] = 9

#: Longest month lengths (February counted as 29 so ``feb 29`` is accepted).
MONTH_DAYS: Final = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

_ORDINAL_WORDS: Final[dict[str, int]] = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "last": -1,
}
_SUFFIXES: Final = ("st", "nd", "rd", "th")
_MERIDIEMS: Final = ("am", "pm")

_WORKDAYS: Final = frozenset(range(5))
_WEEKEND: Final = frozenset((5, 6))

_FREQUENCY_EXPECTED: Final = (
    "a number or one of second, minute, hour, day, week, month, year, weekday, weekend, "
    "monday..sunday"
)
_UNIT_EXPECTED: Final = "one of seconds, minutes, hours, days, weeks, months, years"
_TIME_EXPECTED: Final = "a time of day such as 9:00, 9am, 9:30pm or 18:30"
_DAY_EXPECTED: Final = "a day such as monday, mon, mon-fri, weekdays or weekends"
_MONTH_DAY_EXPECTED: Final = (
    "a day of the month such as 1st, 15th, last day, first monday, last friday, "
    "closest weekday to the 15th or friday the 13th"
)
#: How the qualifiers are named in error messages.
_QUALIFIER_NAMES: Final = {"days": "between <days of the month>"}
_ONCE_EXPECTED: Final = "a date such as 2027-01-01 (year-month-day)"
_MAX_OFFSET: Final = 30
_DATE_EXPECTED: Final = "a date such as jan 1, 25 december or the 1st of july"
_ZONE_EXPECTED: Final = "a time zone name such as Europe/Paris or UTC"


@dataclass(frozen=True, slots=True)
class NaturalSpec:
    """What a natural-language expression says, before time zones and start are applied.

    ``unit`` is one of ``second minute hour day week month year`` and ``every`` its count
    (``every 15 minutes`` → ``("minute", 15)``; ``every monday`` → ``("day", 1)`` with
    ``weekdays={0}``), or ``once`` for one-shot dates (``at 2027-01-01 10:00``), whose wall
    times are ``moments``. Times are seconds since local midnight; weekdays count from
    Monday = 0.

    ``windows`` are every ``between`` window (``window`` is the first); ``day_specs`` the
    computed days of the month (closest weekday, offsets, Friday the 13th); ``within_days``
    the days of the month a ``between the 10th and 15th`` allows. When list items carry
    their own times (``on the 1st at 03:00 and the 3rd at 22:00``), ``alternatives`` holds
    one spec per item, each with its days and times; the spec fires when any of them does.
    """

    unit: str
    every: int
    times: tuple[int, ...] = ()
    window: tuple[int, int] | None = None
    weekdays: frozenset[int] = frozenset()
    month_days: frozenset[int] = frozenset()
    last_day: bool = False
    nth_weekdays: frozenset[tuple[int, int]] = frozenset()
    dates: frozenset[tuple[int, int]] = frozenset()
    timezone: str | None = None
    timezone_position: int | None = None
    months: frozenset[int] = frozenset()
    windows: tuple[tuple[int, int], ...] = ()
    day_specs: frozenset[MonthDay] = frozenset()
    within_days: frozenset[int] = frozenset()
    alternatives: tuple[NaturalSpec, ...] = ()
    moments: tuple[datetime, ...] = ()


@dataclass(slots=True)
class _Days:
    """The days one list item (or a whole list) names, gathered while parsing."""

    weekdays: set[int] = field(default_factory=set)
    month_days: set[int] = field(default_factory=set)
    last_day: bool = False
    nth_weekdays: set[tuple[int, int]] = field(default_factory=set)
    dates: set[tuple[int, int]] = field(default_factory=set)
    specs: set[MonthDay] = field(default_factory=set)

    def merge(self, other: _Days) -> None:
        self.weekdays |= other.weekdays
        self.month_days |= other.month_days
        self.last_day = self.last_day or other.last_day
        self.nth_weekdays |= other.nth_weekdays
        self.dates |= other.dates
        self.specs |= other.specs

    def add(self, day: MonthDay) -> None:
        """Keep plain days in the simple fields; computed ones as specs."""
        if day.offset or day.only_on is not None:
            self.specs.add(day)
        elif day.kind == "day":
            self.month_days.add(day.number)
        elif day.kind == "last":
            self.last_day = True
        elif day.kind == "nth":
            self.nth_weekdays.add((day.weekday, day.number))
        else:
            self.specs.add(day)


@dataclass(frozen=True, slots=True)
class _Token:
    text: str
    lower: str
    position: int


_ItemTest: TypeAlias = Callable[[_Token | None, _Token | None], bool]


def _tokenize(text: str) -> list[_Token]:
    """Split ``text`` into words (runs of anything but spaces and commas) and commas."""
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
        elif char == ",":
            tokens.append(_Token(",", ",", i))
            i += 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] != ",":
                j += 1
            word = text[i:j]
            tokens.append(_Token(word, word.lower(), i))
            i = j
    return tokens


def _read_int(text: str) -> int | None:
    """``text`` as a non-negative integer, or ``None`` if it is not all ASCII digits."""
    if text and text.isascii() and text.isdigit():
        return int(text)
    return None


def _read_ordinal(text: str) -> int | None:
    """``15``, ``15th``, ``1st``, ``2nd``, ``3rd`` → the number, else ``None``."""
    number = _read_int(text)
    if number is not None:
        return number
    if len(text) > 2 and text[-2:] in _SUFFIXES:
        return _read_int(text[:-2])
    return None


def _read_clock(text: str) -> tuple[int, int, int, str] | None:
    """Split ``9``, ``09:30``, ``9:30:15``, ``9am``, ``9:30pm`` into (h, m, s, suffix).

    Returns ``None`` when ``text`` does not have that shape; ranges are checked by the caller.
    """
    i, n = 0, len(text)
    while i < n and text[i].isdigit() and text[i].isascii():
        i += 1
    if i == 0 or i > 2:
        return None
    parts = [int(text[:i])]
    while i < n and text[i] == ":" and len(parts) < 3:
        field = text[i + 1 : i + 3]
        if len(field) != 2 or _read_int(field) is None:
            return None
        parts.append(int(field))
        i += 3
    suffix = text[i:].replace(".", "")
    if suffix not in ("", "am", "pm"):
        return None
    parts += [0] * (3 - len(parts))
    return parts[0], parts[1], parts[2], suffix


class _Parser:
    """Recursive-descent parser over the token list; one instance per expression."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.unit = ""
        self.every = 1
        self.named_days = False
        self.on_given = False
        self.times: tuple[int, ...] = ()
        self.windows: list[tuple[int, int]] = []
        self.days = _Days()
        self.within_days: set[int] = set()
        self.alternatives: list[tuple[_Days, tuple[int, ...]]] = []
        self.moment_list: set[datetime] = set()
        self.timezone: str | None = None
        self.timezone_position: int | None = None
        self.months: set[int] = set()

    # -- token access ---------------------------------------------------------------------

    def peek(self, ahead: int = 0) -> _Token | None:
        index = self.index + ahead
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def fail(self, expected: str, token: _Token | None = None) -> NoReturn:
        """Raise for the current token (or ``token``): it is not what the grammar expects."""
        token = token if token is not None else self.peek()
        self.reject(token, f"expected {expected}")

    def reject(self, token: _Token | None, reason: str) -> NoReturn:
        """Raise a :class:`ScheduleExpressionError` pointing at ``token`` (``None`` = the end)."""
        if token is None:
            position = len(self.text)
            message = f"{self.text!r} ends too early at position {position}: {reason}"
            raise ScheduleExpressionError(message, expression=self.text, position=position)
        message = (
            f"could not read {token.text!r} at position {token.position} in {self.text!r}: {reason}"
        )
        raise ScheduleExpressionError(
            message, expression=self.text, position=token.position, word=token.text
        )

    def is_separator(self, item_test: _ItemTest, expected: str) -> bool:
        """Consume a list separator (``,`` / ``and`` / ``, and``) if another item follows it.

        ``and`` only counts when the next token passes ``item_test``: ``between 9 and 17``
        and ``at 9:00 and on mondays`` must not be read as lists. After a comma an item is
        required, so a comma is always consumed.
        """
        token = self.peek()
        if token is None:
            return False
        if token.lower == ",":
            self.take()
            after = self.peek()
            if after is not None and after.lower == "and":
                self.take()
            return True
        if token.lower == "and" and self.peek(1) is None:
            self.fail(expected, None)  # a dangling "and" at the end
        if token.lower == "and" and item_test(self.peek(1), self.peek(2)):
            self.take()
            return True
        return False

    # -- the grammar ----------------------------------------------------------------------

    def parse(self) -> NaturalSpec:
        self.maybe_zone()
        token = self.peek()
        if token is not None and token.lower in ONE_SHOT_STARTS:
            self.take()
            self.unit = "once"
            self.moments()
        elif token is not None and token.lower in NATURAL_STARTS:
            self.take()
            self.unit = NATURAL_STARTS[token.lower]
        else:
            if token is None or token.lower != "every":
                self.fail(
                    "'every' (as in 'every 5 minutes'), daily/hourly or 'at' a date, or write "
                    "a cron expression such as '0 9 * * MON-FRI', an interval such as '5m' or "
                    "a shortcut such as '@daily'"
                )
            self.take()
            self.frequency()
        self.qualifiers()
        return self.spec()

    def spec(self) -> NaturalSpec:
        base = NaturalSpec(
            unit=self.unit,
            every=self.every,
            times=self.times,
            window=self.windows[0] if self.windows else None,
            weekdays=frozenset(self.days.weekdays),
            month_days=frozenset(self.days.month_days),
            last_day=self.days.last_day,
            nth_weekdays=frozenset(self.days.nth_weekdays),
            dates=frozenset(self.days.dates),
            timezone=self.timezone,
            timezone_position=self.timezone_position,
            months=frozenset(self.months),
            windows=tuple(self.windows),
            day_specs=frozenset(self.days.specs),
            within_days=frozenset(self.within_days),
            moments=tuple(sorted(self.moment_list)),
        )
        if not self.alternatives:
            return base
        alternatives = tuple(
            replace(
                base,
                times=times,
                weekdays=frozenset(days.weekdays),
                month_days=frozenset(days.month_days),
                last_day=days.last_day,
                nth_weekdays=frozenset(days.nth_weekdays),
                dates=frozenset(days.dates),
                day_specs=frozenset(days.specs),
            )
            for days, times in self.alternatives
        )
        every_time = sorted({t for _, times in self.alternatives for t in times})
        return replace(base, times=tuple(every_time), alternatives=alternatives)

    def maybe_zone(self) -> bool:
        token = self.peek()
        if token is None or token.lower not in ("tz", "in"):
            return False
        following = self.peek(1)
        if token.lower == "in" and following is not None and following.lower in MONTHS:
            return False  # "in january": a month, not a time zone
        if self.timezone is not None:
            self.reject(token, "the time zone is already given")
        self.take()
        zone = self.peek()
        if zone is None or zone.lower == ",":
            self.fail(_ZONE_EXPECTED, zone)
        self.take()
        self.timezone = zone.text
        self.timezone_position = zone.position
        return True

    def moments(self) -> None:
        """``at 2027-01-01 10:00``, ``on 2027-01-01 at 9am and 2027-06-01 at 18:00``."""
        self.moment_list.add(self.moment())
        while self.is_separator(_is_iso_date, _ONCE_EXPECTED):
            self.moment_list.add(self.moment())

    def moment(self) -> datetime:
        token = self.peek()
        day = None if token is None else _read_iso_date(token.lower)
        if token is None or day is None:
            if token is not None and _looks_like_iso_date(token.lower):
                self.reject(token, "no such date (expected year-month-day, such as 2027-01-01)")
            self.fail(_ONCE_EXPECTED, token)
        self.take()
        following = self.peek()
        if following is not None and following.lower == "at":
            self.take()
            second = self.time()
        elif _is_time(following, None):
            second = self.time()
        else:
            second = 0
        hours, rest = divmod(second, 3600)
        return datetime(day.year, day.month, day.day, hours, rest // 60, rest % 60)

    def frequency(self) -> None:
        token = self.peek()
        if token is None:
            self.fail(_FREQUENCY_EXPECTED)
        number = _read_int(token.lower)
        if number is not None or token.lower == "other":
            self.take()
            if number == 0:
                self.reject(token, "an interval must be at least 1")
            unit_token = self.peek()
            if unit_token is None or unit_token.lower not in UNITS:
                self.fail(_UNIT_EXPECTED, unit_token)
            self.take()
            self.unit = UNITS[unit_token.lower]
            self.every = 2 if number is None else number
            if self.every * _UNIT_SECONDS[self.unit] > _MAX_SPAN_SECONDS:
                self.reject(token, "an interval can be at most 100 years")
        elif token.lower in UNITS:
            self.take()
            self.unit = UNITS[token.lower]
        elif _is_dated_weekday(token, self.peek(1)):  # "every friday the 13th"
            self.unit = "month"
            self.on_given = True
            self.item_list(self.month_day, _is_month_day, _MONTH_DAY_EXPECTED, True)
        elif _day_item(token) is not None:
            self.unit = "day"
            self.named_days = True
            self.item_list(self.day_item, _is_day, _DAY_EXPECTED, True)
        else:
            self.fail(_FREQUENCY_EXPECTED)

    def allowed_qualifiers(self) -> tuple[str, ...]:
        if self.unit == "once":
            return ("tz",)
        if self.unit in ("second", "minute", "hour"):
            return ("between", "days", "on", "months", "tz")
        if self.unit == "day" and (self.named_days or self.every > 1):
            return ("at", "days", "months", "tz")
        if self.unit == "day":
            return ("at", "days", "on", "months", "tz")
        return ("at", "on", "months", "tz")

    def qualifiers(self) -> None:
        used: set[str] = {"tz"} if self.timezone is not None else set()
        while True:
            if self.times:
                used.add("at")
            if self.on_given:
                used.add("on")
            token = self.peek()
            if token is None:
                return
            allowed = [q for q in self.allowed_qualifiers() if q not in used]
            keyword = {"in": "tz", "from": "between", "until": "between"}.get(
                token.lower, token.lower
            )
            following = self.peek(1)
            if token.lower in ("in", "between", "from") and _is_month(following, None):
                keyword = "months"
            elif token.lower in ("between", "from") and _is_day_of_month(following, self.peek(2)):
                keyword = "days"
            if keyword not in allowed:
                if not allowed:
                    self.fail("the end of the expression")
                names = ", ".join(_QUALIFIER_NAMES.get(q, q) for q in allowed)
                self.fail(f"one of {names} or the end of the expression")
            used.add(keyword)
            if keyword == "tz":
                self.maybe_zone()
            elif keyword == "at":
                self.take()
                self.times = self.time_list()
            elif keyword == "months":
                self.take()
                self.month_filter(token.lower)
            elif keyword == "between":
                self.time_windows()
            elif keyword == "days":
                self.day_windows()
            else:
                self.take()
                self.on()

    def time_list(self, in_item: bool = False) -> tuple[int, ...]:
        """Times joined by separators; ``in_item``: the list belongs to one item of a day
        list, so a comma followed by something else than a time ends it (``on mon at 9am,
        fri at 5pm``)."""
        times = {self.time()}
        while True:
            if in_item and self.peek_lower() == ",":
                ahead = 2 if self.peek_lower(1) == "and" else 1
                if not _is_time(self.peek(ahead), None):
                    break
            if not self.is_separator(_is_time, _TIME_EXPECTED):
                break
            times.add(self.time())
        return tuple(sorted(times))

    def peek_lower(self, ahead: int = 0) -> str | None:
        token = self.peek(ahead)
        return None if token is None else token.lower

    def time(self) -> int:
        """Read one time of day; returns seconds since midnight."""
        token = self.peek()
        if token is None:
            self.fail(_TIME_EXPECTED)
        if token.lower in ("noon", "midday"):
            self.take()
            return 12 * 3600
        if token.lower == "midnight":
            self.take()
            return 0
        clock = _read_clock(token.lower)
        if clock is None:
            self.fail(_TIME_EXPECTED)
        self.take()
        hour, minute, second, suffix = clock
        following = self.peek()
        if not suffix and following is not None and following.lower.replace(".", "") in _MERIDIEMS:
            suffix = self.take().lower.replace(".", "")
        if suffix:
            if not 1 <= hour <= 12:
                self.reject(token, "with am/pm the hour must be 1 to 12")
            hour = hour % 12 + (12 if suffix == "pm" else 0)
        elif hour > 23:
            self.reject(token, f"{_TIME_EXPECTED} (hours 0-23)")
        if minute > 59 or second > 59:
            self.reject(token, f"{_TIME_EXPECTED} (minutes and seconds 0-59)")
        return hour * 3600 + minute * 60 + second

    def month_filter(self, opener: str) -> None:
        """``in jan and jun``, ``in jan, feb``, ``between jan and jun``, ``from oct to mar``."""
        first = self.month_name()
        if opener == "in":
            months = {first}
            while self.is_separator(_is_month, "a month name such as january or jan"):
                months.add(self.month_name())
            self.months = months
            return
        joiner = self.peek()
        joiners = ("and",) if opener == "between" else ("to", "until", "till")
        if joiner is None or joiner.lower not in joiners:
            self.fail(" or ".join(repr(j) for j in joiners), joiner)
        self.take()
        last = self.month_name()
        count = (last - first) % 12 + 1  # "from nov to feb" wraps past December
        self.months = {(first - 1 + k) % 12 + 1 for k in range(count)}

    def month_name(self) -> int:
        token = self.peek()
        month = None if token is None else MONTHS.get(token.lower)
        if month is None:
            self.fail("a month name such as january or jan", token)
        self.take()
        return month

    def another_window(self, is_window: _ItemTest) -> bool:
        """Consume ``and`` / ``,`` / ``, and`` when another window (a ``between``, ``from``
        or ``until`` that ``is_window`` accepts) follows it."""
        ahead = 0
        while (token := self.peek(ahead)) is not None and token.lower in (",", "and"):
            ahead += 1
        opener = self.peek(ahead)
        if (
            ahead == 0
            or opener is None
            or opener.lower not in ("between", "from", "until")
            or not is_window(self.peek(ahead + 1), self.peek(ahead + 2))
        ):
            return False
        self.index += ahead
        return True

    def time_windows(self) -> None:
        """One or more windows: ``between 9:00 and 12:00 and between 14:00 and 17:00``."""
        windows = [self.window_between(self.take().lower)]
        while self.another_window(_is_time):
            windows.append(self.window_between(self.take().lower))
        self.windows = sorted(set(windows))

    def window_between(self, opener: str) -> tuple[int, int]:
        if opener == "until":  # "until 10:15": from midnight
            return (0, self.time())
        first = self.time()
        joiner = self.peek()
        if opener == "from" and (joiner is None or joiner.lower not in ("to", "until", "till")):
            return (first, 86399)  # "from 18:00": to the end of the day
        joiners = ("and",) if opener == "between" else ("to", "until", "till")
        if joiner is None or joiner.lower not in joiners:
            self.fail(" or ".join(repr(j) for j in joiners), joiner)
        self.take()
        end_token = self.peek()
        last = self.time()
        if last < first:
            self.reject(
                end_token,
                "the window must end after it starts (windows across midnight are not "
                "supported: use two windows, 'between 22:00 and 23:59 and until 02:00')",
            )
        return (first, last)

    def day_windows(self) -> None:
        """``between the 10th and 15th``, ``from the 25th to the 5th`` (wraps past the end
        of the month), several joined by ``and``."""
        while True:
            opener = self.take().lower
            first = self.day_number()
            joiner = self.peek()
            joiners = ("and",) if opener == "between" else ("to", "until", "till")
            if joiner is None or joiner.lower not in joiners:
                self.fail(" or ".join(repr(j) for j in joiners), joiner)
            self.take()
            last = self.day_number()
            count = (last - first) % 31 + 1
            self.within_days |= {(first - 1 + k) % 31 + 1 for k in range(count)}
            if not self.another_window(_is_day_of_month):
                return

    def day_number(self) -> int:
        """``the 15th``, ``15th``, ``the 15``: a day of the month, 1 to 31."""
        self.skip_the()
        token = self.peek()
        number = None if token is None else _read_ordinal(token.lower)
        if token is None or number is None:
            self.fail("a day of the month such as 15th", token)
        if not 1 <= number <= 31:
            self.reject(token, "a day of the month is 1 to 31")
        self.take()
        return number

    def on(self) -> None:
        allow_times = "at" in self.allowed_qualifiers() and not self.times
        if self.unit == "month":
            self.item_list(self.month_day, _is_month_day, _MONTH_DAY_EXPECTED, allow_times)
        elif self.unit == "year":
            self.item_list(self.date, _is_date, _DATE_EXPECTED, allow_times)
        else:
            self.item_list(self.day_item, _is_day, _DAY_EXPECTED, allow_times)

    def item_list(
        self,
        read_item: Callable[[_Days], None],
        item_test: _ItemTest,
        expected: str,
        allow_times: bool,
    ) -> None:
        """A list of days; each item may carry its own ``at`` times.

        ``on the 1st and the 15th at 9:00``: one ``at`` after the last item is for the whole
        list. ``on the 1st at 03:00 and the 3rd at 22:00``: once an item before the last has
        its own times, every item must have them, and each fires at its own.
        """
        items: list[tuple[_Days, tuple[int, ...] | None, _Token | None]] = []
        while True:
            token = self.peek()
            if token is not None and token.lower == "the":
                token = self.peek(1)
            days = _Days()
            read_item(days)
            times = None
            following = self.peek()
            if allow_times and following is not None and following.lower == "at":
                self.take()
                times = self.time_list(in_item=True)
            items.append((days, times, token))
            if not self.is_separator(item_test, expected):
                break
        if all(times is None for _, times, _ in items[:-1]):
            for days, _, _ in items:
                self.days.merge(days)
            self.times = items[-1][1] or self.times
            return
        for days, times, token in items:
            if times is None:
                self.reject(
                    token,
                    "once one day in a list has its own time, each needs one: add 'at' and "
                    "a time after it",
                )
            self.days.merge(days)
            self.alternatives.append((days, times))

    def day_item(self, target: _Days) -> None:
        token = self.peek()
        days = _day_item(token)
        if days is None:
            self.fail(_DAY_EXPECTED, token)
        self.take()
        following = self.peek()
        if (
            token is not None
            and token.lower in ("weekday", "weekend")
            and following is not None
            and following.lower in ("day", "days")
        ):
            self.take()  # "every weekend day", "on weekday days"
        target.weekdays |= days

    def skip_the(self) -> None:
        token = self.peek()
        if token is not None and token.lower == "the":
            self.take()

    def month_day(self, target: _Days) -> None:
        """One day of the month, then an optional ``of the month`` and ``+ N`` / ``- N``."""
        self.skip_the()
        token = self.peek()
        if token is None:
            self.fail(_MONTH_DAY_EXPECTED)
        day = self.month_day_base(token)
        following = self.peek()
        if following is not None and following.lower == "of":  # "the last day of the month"
            self.take()
            word = self.peek()
            if word is not None and word.lower in ("the", "each", "every"):
                self.take()
                word = self.peek()
            if word is None or word.lower != "month":
                self.fail("'month' (as in 'the last day of the month')", word)
            self.take()
        target.add(self.offset(day))

    def month_day_base(self, token: _Token) -> MonthDay:
        lower = token.lower
        if lower == "day":  # "on day 15"
            self.take()
            return MonthDay("day", self.day_number())
        if lower in ("closest", "nearest"):  # "closest weekday to the 15th"
            self.take()
            for word in ("weekday", "to"):
                next_token = self.peek()
                if next_token is None or next_token.lower != word:
                    self.fail(f"{word!r} (as in 'closest weekday to the 15th')", next_token)
                self.take()
            return MonthDay("closest", self.day_number())
        if _is_dated_weekday(token, self.peek(1)):  # "friday the 13th"
            self.take()
            return MonthDay("day", self.day_number(), only_on=WEEKDAYS[lower])
        nth = _ORDINAL_WORDS.get(lower)
        number = _read_ordinal(lower)
        if nth is None and number is None:
            self.fail(_MONTH_DAY_EXPECTED)
        self.take()
        following = self.peek()
        if following is not None and following.lower in WEEKDAYS:
            count = nth if nth is not None else number
            if count is None or not (count == -1 or 1 <= count <= 5):
                self.reject(token, "a weekday can only be the 1st to 5th or last of a month")
            self.take()
            return MonthDay("nth", count, weekday=WEEKDAYS[following.lower])
        if nth is not None:  # "first day", "last day", "first weekday", "last weekday"
            if following is not None and following.lower == "weekday":
                if nth not in (1, -1):
                    self.reject(token, "only the first or the last weekday of a month is named")
                self.take()
                return MonthDay("first_weekday" if nth == 1 else "last_weekday")
            if following is None or following.lower != "day":
                self.fail("'day', 'weekday' or a weekday name", following)
            self.take()
            return MonthDay("last") if nth == -1 else MonthDay("day", nth)
        if number is None:  # cannot happen (checked above); narrows the type
            self.fail(_MONTH_DAY_EXPECTED, token)
        if not 1 <= number <= 31:
            self.reject(token, "a day of the month is 1 to 31 (or 'last day')")
        return MonthDay("day", number)

    def offset(self, day: MonthDay) -> MonthDay:
        """``+ 1``, ``- 5``, ``-5``, optionally followed by ``day(s)``."""
        token = self.peek()
        if token is None or token.lower[:1] not in ("+", "-"):
            return day
        self.take()
        sign = 1 if token.lower[0] == "+" else -1
        if len(token.lower) > 1:
            number, number_token = _read_int(token.lower[1:]), token
        else:
            number_token_or_none = self.peek()
            if number_token_or_none is None:
                self.fail("a number of days such as 5")
            number_token = number_token_or_none
            number = _read_int(number_token.lower)
            if number is None:
                self.fail("a number of days such as 5", number_token)
            self.take()
        if number is None:
            self.fail("a number of days such as +1 or -5", token)
        if not 1 <= number <= _MAX_OFFSET:
            self.reject(number_token, f"an offset is 1 to {_MAX_OFFSET} days")
        if (day.kind == "last" and sign > 0) or (
            day.kind == "day" and day.number == 1 and day.only_on is None and sign < 0
        ):
            self.reject(token, "that would leave the month: offsets stay within the month")
        following = self.peek()
        if following is not None and following.lower in ("day", "days"):
            self.take()
        return replace(day, offset=sign * number)

    def date(self, target: _Days) -> None:
        self.skip_the()
        token = self.peek()
        if token is None:
            self.fail(_DATE_EXPECTED)
        month = MONTHS.get(token.lower)
        if month is not None:
            self.take()
            day_token = self.peek()
            day = None if day_token is None else _read_ordinal(day_token.lower)
            if day_token is None or day is None:
                self.fail("a day number such as 1 or 25th", day_token)
            self.take()
        else:
            day = _read_ordinal(token.lower)
            if day is None:
                self.fail(_DATE_EXPECTED)
            day_token = self.take()
            following = self.peek()
            if following is not None and following.lower == "of":
                self.take()
                following = self.peek()
            month = None if following is None else MONTHS.get(following.lower)
            if month is None:
                self.fail("a month name such as january or jan", following)
            self.take()
        if not 1 <= day <= MONTH_DAYS[month - 1]:
            self.reject(
                day_token, f"{_MONTH_NAMES[month - 1]} has days 1 to {MONTH_DAYS[month - 1]}"
            )
        target.dates.add((month, day))


def _day_item(token: _Token | None) -> frozenset[int] | None:
    """The weekdays one day item names (``mon``, ``mon-fri``, ``weekdays``), else ``None``."""
    if token is None:
        return None
    word = token.lower
    if word in ("weekday", "weekdays"):
        return _WORKDAYS
    if word in ("weekend", "weekends"):
        return _WEEKEND
    if word in WEEKDAYS:
        return frozenset((WEEKDAYS[word],))
    first, dash, last = word.partition("-")
    if dash and first in WEEKDAYS and last in WEEKDAYS:
        start, stop = WEEKDAYS[first], WEEKDAYS[last]
        return frozenset((start + k) % 7 for k in range((stop - start) % 7 + 1))
    return None


def _is_day(token: _Token | None, _following: _Token | None) -> bool:
    return _day_item(token) is not None


def _is_time(token: _Token | None, _following: _Token | None) -> bool:
    return token is not None and (
        token.lower in ("noon", "midday", "midnight") or _read_clock(token.lower) is not None
    )


def _is_month_day(token: _Token | None, following: _Token | None) -> bool:
    if token is not None and token.lower == "the":
        token = following
    return token is not None and (
        token.lower in _ORDINAL_WORDS
        or token.lower in ("day", "closest", "nearest")
        or _read_ordinal(token.lower) is not None
        or (token is not following and _is_dated_weekday(token, following))
    )


def _is_dated_weekday(token: _Token | None, following: _Token | None) -> bool:
    """``friday the 13th``, ``fri 13th``: a weekday name followed by a day of the month."""
    return (
        token is not None
        and token.lower in WEEKDAYS
        and _is_day_of_month(following, None)
    )


def _is_day_of_month(token: _Token | None, _following: _Token | None) -> bool:
    """``the`` or an ordinal with its suffix (``15th``): the start of a day of the month,
    as opposed to a bare number, which is a time (``between 9 and 17``)."""
    if token is None:
        return False
    return token.lower == "the" or (
        token.lower[-2:] in _SUFFIXES and _read_ordinal(token.lower) is not None
    )


def _read_iso_date(text: str) -> date | None:
    """``2027-01-01`` as a date, else ``None`` (also for a date that does not exist)."""
    if not _looks_like_iso_date(text):
        return None
    try:
        return date(int(text[:4]), int(text[5:7]), int(text[8:10]))
    except ValueError:
        return None


def _looks_like_iso_date(text: str) -> bool:
    return (
        len(text) == 10
        and text[4] == "-"
        and text[7] == "-"
        and all(_read_int(part) is not None for part in (text[:4], text[5:7], text[8:]))
    )


def _is_iso_date(token: _Token | None, _following: _Token | None) -> bool:
    return token is not None and _looks_like_iso_date(token.lower)


def _is_month(token: _Token | None, _following: _Token | None) -> bool:
    return token is not None and token.lower in MONTHS


def _is_date(token: _Token | None, following: _Token | None) -> bool:
    if token is not None and token.lower == "the":
        token = following
    return token is not None and (token.lower in MONTHS or _read_ordinal(token.lower) is not None)


def parse_natural(text: str) -> NaturalSpec:
    """Read a natural-language expression such as ``every monday and thursday at 10:00``.

    Raises :class:`~jobmaster.exceptions.ScheduleExpressionError` naming the word (and its
    position) that does not fit the grammar and what was expected there.
    """
    return _Parser(text).parse()
