"""Recurring schedules: parse expressions and decide which occurrences are due.

``Schedule.parse`` reads intervals, cron, ``@daily``-style shortcuts and natural language
(``every weekday at 9:00 tz Europe/Paris``); :func:`crontab` builds an expression the way
Celery's ``crontab`` does; :mod:`.occurrences` holds the pure decisions beat makes with them
(misfires, overlap, the first fire time). See ``docs/scheduling.md``.
"""

from jobmaster.schedules.crontab import Crontab, crontab
from jobmaster.schedules.expressions import Schedule, ScheduleKind, validate_timezone
from jobmaster.schedules.occurrences import (
    MisfirePolicy,
    OverlapPolicy,
    apply_overlap,
    continuous_fire,
    due_occurrences,
    first_fire,
)

__all__ = [
    "Crontab",
    "MisfirePolicy",
    "OverlapPolicy",
    "Schedule",
    "ScheduleKind",
    "apply_overlap",
    "continuous_fire",
    "crontab",
    "due_occurrences",
    "first_fire",
    "validate_timezone",
]
