"""Celery's ``crontab()``: the same arguments, the same fire times, as a schedule expression.

``crontab(minute=0, hour="*/3")`` is a :class:`Crontab`, a ``str`` holding the cron line
(``"0 */3 * * *"``), so it goes wherever an expression goes (``app.recurring``,
``Schedule.parse``) and is stored as that text.

Celery and cron disagree on one thing: when both ``day_of_month`` and ``day_of_week`` are
restricted, Celery fires only on days matching **both** (``day_of_month="1-7",
day_of_week="mon"`` is the first Monday of each month), where cron fires on days matching
either. Such a crontab reads ``"crontab: 0 9 1-7 * 1"``: the ``crontab:`` prefix makes
:meth:`Schedule.parse` apply Celery's rule to the cron fields. With at most one of the two
restricted both rules agree, and the plain cron line is used.

Each argument takes what Celery's takes: an int, a string (``"*/15"``, ``"1-5"``,
``"0,8-17/2"``, ``"mon-fri"``, ``"sat,sun"``, ``"22-2"`` wrapping past midnight), or an
iterable of ints (a set, list or range). Beyond Celery, 7 is also Sunday (as in cron), month
names (``"jan"``, ``"jun-aug"``) are read in ``month_of_year``, and ``"5/15"`` is cron's
``5-59/15``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from jobmaster.exceptions import ScheduleExpressionError
from jobmaster.schedules.natural import MONTH_DAYS

__all__ = ["Crontab", "CrontabField", "crontab"]

#: What one argument of :func:`crontab` accepts.
CrontabField: TypeAlias = int | str | Iterable[int]

#: The prefix of a crontab whose two day fields must both match (see the module docstring).
CRONTAB_PREFIX: Final = "crontab: "

_DAY_NAMES: Final = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday",
                     "saturday")
_MONTH_NAMES: Final = ("january", "february", "march", "april", "may", "june", "july",
                       "august", "september", "october", "november", "december")


@dataclass(frozen=True, slots=True)
class _Field:
    """One crontab argument: its name, the numbers it accepts and the names it reads."""

    name: str
    low: int
    high: int  # highest number accepted (7 for day_of_week, read as Sunday)
    top: int  # highest value once read (6 for day_of_week)
    what: str  # how the accepted values are described in errors
    names: tuple[str, ...] = ()  # full names, the first numbered ``low``

    @property
    def every(self) -> frozenset[int]:
        return frozenset(range(self.low, self.top + 1))


_MINUTE: Final = _Field("minute", 0, 59, 59, "minutes are 0-59")
_HOUR: Final = _Field("hour", 0, 23, 23, "hours are 0-23")
_DAY_OF_WEEK: Final = _Field(
    "day_of_week", 0, 7, 6, "days of the week are 0-6 (0 or 7 = Sunday) or names such as mon",
    _DAY_NAMES,
)
_DAY_OF_MONTH: Final = _Field("day_of_month", 1, 31, 31, "days of the month are 1-31")
_MONTH_OF_YEAR: Final = _Field(
    "month_of_year", 1, 12, 12, "months are 1-12 or names such as jan", _MONTH_NAMES
)


class Crontab(str):
    """A Celery-style crontab: a ``str`` holding the cron line it fires on.

    Build one with :func:`crontab`. The text is a 5-field cron line, prefixed with
    ``crontab: `` when both day fields are restricted (Celery's rule: a day must match both;
    see :mod:`jobmaster.schedules.crontab`). The expanded values are attributes, numbered as
    in Celery: ``minute``, ``hour``, ``day_of_week`` (0 = Sunday … 6 = Saturday),
    ``day_of_month`` and ``month_of_year``, each a ``frozenset`` of ints. Instances are
    immutable and compare, hash and pickle as their text.
    """

    minute: frozenset[int]
    hour: frozenset[int]
    day_of_week: frozenset[int]
    day_of_month: frozenset[int]
    month_of_year: frozenset[int]

    def __new__(
        cls,
        minute: CrontabField = "*",
        hour: CrontabField = "*",
        day_of_week: CrontabField = "*",
        day_of_month: CrontabField = "*",
        month_of_year: CrontabField = "*",
    ) -> Crontab:
        """Read and check every argument; see :func:`crontab`."""
        values = {
            field.name: _expand(field, given)
            for field, given in (
                (_MINUTE, minute),
                (_HOUR, hour),
                (_DAY_OF_WEEK, day_of_week),
                (_DAY_OF_MONTH, day_of_month),
                (_MONTH_OF_YEAR, month_of_year),
            )
        }
        _check_day_exists(values["day_of_month"], values["month_of_year"])
        line = " ".join(
            _render(field, values[field.name])
            for field in (_MINUTE, _HOUR, _DAY_OF_MONTH, _MONTH_OF_YEAR, _DAY_OF_WEEK)
        )
        both_days = (values["day_of_month"] != _DAY_OF_MONTH.every
                     and values["day_of_week"] != _DAY_OF_WEEK.every)
        self = super().__new__(cls, CRONTAB_PREFIX + line if both_days else line)
        for name, value in values.items():
            object.__setattr__(self, name, value)
        return self

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a crontab is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"a crontab is immutable: cannot delete {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        fields = self.cron.split()
        return (type(self), (fields[0], fields[1], fields[4], fields[2], fields[3]))

    def __repr__(self) -> str:
        return f"<crontab: {self.cron} (m/h/dM/MY/d)>"

    @property
    def cron(self) -> str:
        """The 5-field cron line (``minute hour day-of-month month day-of-week``), without
        the ``crontab:`` prefix."""
        return str.removeprefix(self, CRONTAB_PREFIX)

    @property
    def days_must_both_match(self) -> bool:
        """True when both day fields are restricted, so a day fires only if its day of the
        month *and* its day of the week are allowed (Celery's rule, not cron's)."""
        return str.startswith(self, CRONTAB_PREFIX)


def crontab(
    minute: CrontabField = "*",
    hour: CrontabField = "*",
    day_of_week: CrontabField = "*",
    day_of_month: CrontabField = "*",
    month_of_year: CrontabField = "*",
) -> Crontab:
    """A schedule expression built like Celery's ``crontab``, firing when Celery's would.

    ``app.recurring(crontab(minute=0, hour="*/3"), job, name="every-3h")`` fires at 00:00,
    03:00, … in the schedule's time zone. Each argument is an int, a string (``"*/15"``,
    ``"1-5"``, ``"8-17/2"``, ``"mon-fri"``, ``"mon,wed"``, ``"jan"``, ``"22-2"`` wrapping
    around) or an iterable of ints. ``day_of_week`` counts from Sunday = 0 (7 is Sunday too).
    When both ``day_of_month`` and ``day_of_week`` are restricted, a day must match both, as
    in Celery: ``crontab(0, 9, day_of_week="mon", day_of_month="1-7")`` is 09:00 on the
    first Monday of each month.

    Raises :class:`~jobmaster.exceptions.ScheduleExpressionError` (a ``ValueError``) naming
    the argument and the value it could not read, e.g. ``hour=25``.
    """
    return Crontab(minute, hour, day_of_week, day_of_month, month_of_year)


# -- reading arguments ------------------------------------------------------------------------


def _error(field: _Field, given: object, reason: str) -> ScheduleExpressionError:
    shown = f"{field.name}={given!r}"
    return ScheduleExpressionError(f"{shown} {reason}", expression=shown)


def _expand(field: _Field, given: object) -> frozenset[int]:
    """The values ``given`` allows, Sunday numbered 0."""
    if isinstance(given, bool):
        raise _error(field, given, f"must be an int, a string or ints; {field.what}")
    if isinstance(given, int):
        values: set[int] = {_in_range(field, given, given)}
    elif isinstance(given, str):
        values = _parse(field, given)
    elif isinstance(given, Iterable) and not isinstance(given, bytes | bytearray):
        items = list(given)
        if not items:
            raise _error(field, given, f"is empty: give at least one value; {field.what}")
        values = set()
        for item in items:
            if isinstance(item, bool) or not isinstance(item, int):
                raise _error(field, given, f"holds {item!r}: an iterable must hold ints; "
                                           f"{field.what}")
            values.add(_in_range(field, given, item))
    else:
        raise _error(field, given, f"must be an int, a string such as '*/15' or an iterable "
                                   f"of ints, not {type(given).__name__}")
    if field is _DAY_OF_WEEK:
        values = {0 if value == 7 else value for value in values}
    return frozenset(values)


def _in_range(field: _Field, given: object, number: int) -> int:
    if not field.low <= number <= field.high:
        where = "is" if given is number else f"holds {number}, which is"
        raise _error(field, given, f"{where} out of range: {field.what}")
    return number


def _parse(field: _Field, given: str) -> set[int]:
    """Celery's pattern language: ``*``, numbers, names, ``a-b`` (wrapping when ``b < a``),
    ``/step`` after ``*`` or a range, and lists of those."""
    text = given.strip()
    if not text:
        raise _error(field, given, f"is empty: use '*' for every value; {field.what}")
    values: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise _error(field, given, "has an empty item between commas")
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not (step_text.isascii() and step_text.isdigit()) or int(step_text) == 0:
                raise _error(field, given, f"has step {step_text!r} in {part!r}: a step is a "
                                           f"whole number of 1 or more, as in '*/15'")
            step = int(step_text)
        if base == "*":
            sequence = list(range(field.low, field.top + 1))
        elif "-" in base:
            first_text, _, last_text = base.partition("-")
            first, last = _number(field, given, first_text), _number(field, given, last_text)
            if first <= last:
                sequence = list(range(first, last + 1))
            else:  # wraps around, as in Celery: 22-2 is 22, 23, 0, 1, 2
                sequence = list(range(first, field.top + 1)) + list(range(field.low, last + 1))
        else:
            first = _number(field, given, base)
            # a lone number with a step runs to the end, as in cron: 5/15 is 5-59/15
            sequence = list(range(first, field.top + 1)) if slash else [first]
        values.update(sequence[::step])
    return values


def _number(field: _Field, given: str, word: str) -> int:
    word = word.strip()
    if word.isascii() and word.isdigit():
        return _in_range(field, given, int(word))
    lowered = word.lower()
    if field.names and len(lowered) >= 3:
        for index, name in enumerate(field.names):
            if name.startswith(lowered):
                return field.low + index
    if not word:
        raise _error(field, given, "has a range without a start or an end (negative numbers "
                                   f"are not read); {field.what}")
    raise _error(field, given, f"has {word!r}, which is not a number or a name; {field.what}")


def _check_day_exists(days: frozenset[int], months: frozenset[int]) -> None:
    """Refuse a crontab that can never fire, such as the 30th of February."""
    if min(days) > max(MONTH_DAYS[month - 1] for month in months):
        shown = f"day_of_month={_render(_DAY_OF_MONTH, days)!r}"
        raise ScheduleExpressionError(
            f"{shown} with month_of_year={_render(_MONTH_OF_YEAR, months)!r} never fires: "
            "none of those months has that day",
            expression=shown,
        )


# -- writing the cron line ----------------------------------------------------------------------


def _render(field: _Field, values: frozenset[int]) -> str:
    """``values`` as a short cron field: ``*``, ``*/3``, ``8-17/3`` or a list of ranges."""
    if values == field.every:
        return "*"
    ordered = sorted(values)
    if len(ordered) >= 3:
        step = ordered[1] - ordered[0]
        if step > 1 and all(b - a == step for a, b in zip(ordered, ordered[1:], strict=False)):
            if ordered[0] == field.low and ordered[-1] + step > field.top:
                return f"*/{step}"
            return f"{ordered[0]}-{ordered[-1]}/{step}"
    runs: list[list[int]] = []
    for value in ordered:
        if runs and runs[-1][-1] == value - 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    return ",".join(
        f"{run[0]}-{run[-1]}" if len(run) > 2 else ",".join(map(str, run)) for run in runs
    )
