"""Days of a month that are computed rather than listed: the weekday closest to the 15th,
the last day minus 5, the third Friday plus 1, Friday the 13th.

A :class:`MonthDay` answers one question, which day of a given month it is (or that the month
has none), from two facts about the month: the weekday of its 1st and its length. Both the
English grammar (:mod:`jobmaster.schedules.natural`) and cron's ``W`` (``15W``, ``LW``) compile
to it; :mod:`jobmaster.schedules.expressions` evaluates it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

__all__ = ["MonthDay", "MonthDayKind", "closest_weekday"]

#: ``day`` (the ``number``-th), ``last`` (last day), ``first_weekday`` / ``last_weekday``
#: (first / last Monday-to-Friday day), ``closest`` (the Monday-to-Friday day closest to the
#: ``number``-th) or ``nth`` (the ``number``-th ``weekday``, ``-1`` = the last one).
MonthDayKind: TypeAlias = Literal["day", "last", "first_weekday", "last_weekday", "closest", "nth"]

_DAY_ABBR: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def closest_weekday(day: int, first_weekday: int, length: int) -> int:
    """The Monday-to-Friday day of the month closest to ``day``, never leaving the month.

    A Saturday moves to the Friday before (to the Monday after when it is the 1st); a Sunday
    to the Monday after (to the Friday before when it is the last day). This is cron's ``W``
    (Quartz, croniter) and NaturalCron's ``ClosestWeekdayTo``. ``first_weekday`` is the
    weekday of the 1st (Monday = 0); a ``day`` past the month's end counts as its last day.
    """
    day = min(day, length)
    weekday = (first_weekday + day - 1) % 7
    if weekday == 5:
        return day - 1 if day > 1 else day + 2
    if weekday == 6:
        return day + 1 if day < length else day - 2
    return day


def _ordinal(number: int) -> str:
    suffix = "th"
    if not 10 <= number % 100 <= 20:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


@dataclass(frozen=True, slots=True)
class MonthDay:
    """One computed day of the month.

    ``kind`` says how the base day is found (see :data:`MonthDayKind`); ``number`` is the day
    (``day``, ``closest``) or the count (``nth``: 1 to 5, or -1 for the last); ``weekday``
    the day ``nth`` counts (Monday = 0). ``only_on`` (a weekday) keeps the base day only when
    it falls on that weekday (Friday the 13th: both must hold). ``offset`` days are then
    added, and the result never leaves the month: it stops at the 1st or at the last day, as
    NaturalCron's ``LastDay - 5`` does.
    """

    kind: MonthDayKind
    number: int = 0
    weekday: int = 0
    offset: int = 0
    only_on: int | None = None

    def day_in(self, first_weekday: int, length: int) -> int | None:
        """The day of a month whose 1st is ``first_weekday`` and that has ``length`` days,
        or ``None`` when that month has no such day (a 31st in April, a 5th Monday)."""
        base: int | None
        if self.kind == "day":
            base = self.number if self.number <= length else None
        elif self.kind == "last":
            base = length
        elif self.kind == "first_weekday":
            base = closest_weekday(1, first_weekday, length)
        elif self.kind == "last_weekday":
            base = closest_weekday(length, first_weekday, length)
        elif self.kind == "closest":
            base = closest_weekday(self.number, first_weekday, length)
        else:
            first = (self.weekday - first_weekday) % 7 + 1
            if self.number == -1:
                base = first + (length - first) // 7 * 7
            else:
                base = first + (self.number - 1) * 7
                if base > length:
                    base = None
        if base is None:
            return None
        if self.only_on is not None and (first_weekday + base - 1) % 7 != self.only_on:
            return None
        return min(max(base + self.offset, 1), length)

    def describe(self) -> str:
        """Short English, e.g. ``"closest weekday to the 15th"``, ``"last day - 5"``."""
        if self.kind == "day":
            text = f"{_ordinal(self.number)}"
            if self.only_on is not None:
                text += f" when it is a {_DAY_ABBR[self.only_on]}"
        elif self.kind == "last":
            text = "last day"
        elif self.kind == "first_weekday":
            text = "first weekday"
        elif self.kind == "last_weekday":
            text = "last weekday"
        elif self.kind == "closest":
            text = f"closest weekday to the {_ordinal(self.number)}"
        else:
            count = "last" if self.number == -1 else _ordinal(self.number)
            text = f"{count} {_DAY_ABBR[self.weekday]}"
        if self.offset:
            text += f" {'+' if self.offset > 0 else '-'} {abs(self.offset)}"
        return text

    def earliest_day(self) -> int:
        """The smallest month length in which this day can exist (for refusing rules that
        never fire, such as Friday the 31st in February)."""
        if self.kind == "day":
            return self.number
        if self.kind == "nth" and self.number == 5:
            return 29
        return 1
