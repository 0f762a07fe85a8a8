"""Pure decisions beat makes about a schedule's occurrences: no I/O, no clock reads.

Beat stores, per schedule, the last occurrence it materialised (``last_fire``) and the next
one due (``next_fire``). On each tick it asks :func:`due_occurrences` which fire times to turn
into jobs now and what to store as the new ``next_fire``; a new schedule gets its first
``next_fire`` from :func:`first_fire`. :func:`apply_overlap` decides whether due occurrences
may start while the previous occurrence's job is still running.

Lateness is measured against ``grace``: an occurrence due no more than ``grace`` before
``now`` is *on time* and always runs, whatever the policy (beat ticks, and a tick is never
exactly on the second). Older ones are *missed* (beat was down or stalled) and the
:class:`MisfirePolicy` decides what happens to them.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from jobmaster.schedules.expressions import Schedule

__all__ = ["MisfirePolicy", "OverlapPolicy", "apply_overlap", "due_occurrences", "first_fire"]

_TINY: Final = timedelta(microseconds=1)


class MisfirePolicy(StrEnum):
    """What to do with occurrences missed by more than ``grace`` (beat was down).

    ``RUN_ONCE`` (the default in beat): run one catch-up, the most recent missed occurrence,
    unless an on-time occurrence runs anyway (it is the catch-up). ``SKIP``: drop missed
    occurrences, run only on-time ones. ``RUN_ALL``: run every missed occurrence, the most
    recent ``cap`` of them.
    """

    RUN_ONCE = "run_once"
    SKIP = "skip"
    RUN_ALL = "run_all"


class OverlapPolicy(StrEnum):
    """Whether an occurrence may start while the schedule's previous job still runs.

    ``ALLOW``: always (occurrences are independent jobs). ``SKIP``: no two of the schedule's
    jobs at once; see :func:`apply_overlap`.
    """

    ALLOW = "allow"
    SKIP = "skip"


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def first_fire(
    schedule: Schedule, *, start: datetime | None = None, now: datetime
) -> datetime | None:
    """The first fire time of a schedule created at ``now``.

    ``start`` (default: the schedule's own ``start``) is when it may begin: a start in the
    future gives the first fire time at or after it (a fire time exactly at ``start``
    counts). Otherwise the first fire time strictly after ``now``: a new schedule does not
    fire retroactively, not even for an occurrence at exactly ``now``. ``None`` if the
    schedule has already ended. Naive datetimes are UTC.
    """
    now = _utc(now)
    begin = _utc(start) if start is not None else schedule.start
    if begin is not None and begin > now:
        return schedule.next_after(begin - _TINY)
    return schedule.next_after(now)


def _latest(schedule: Schedule, first: datetime, now: datetime, count: int) -> list[datetime]:
    """The latest ``count`` occurrences in ``[first, now]``, oldest first; ``first`` is one.

    Looks back from ``now`` through windows that double in width, so a schedule that
    missed a year of every-second occurrences costs about ``count`` evaluations, not 31M.
    """
    width = timedelta(seconds=1)
    while True:
        low = now - width
        if low <= first:
            fires: deque[datetime] = deque([first], maxlen=count)
            current = schedule.next_after(first)
        else:
            fires = deque(maxlen=count)
            current = schedule.next_after(low - _TINY)
        while current is not None and current <= now:
            fires.append(current)
            current = schedule.next_after(current)
        if low <= first or len(fires) >= count:
            return list(fires)
        width *= 2


def due_occurrences(
    schedule: Schedule,
    *,
    last_fire: datetime | None,
    next_fire: datetime | None,
    now: datetime,
    misfire: MisfirePolicy,
    grace: timedelta = timedelta(seconds=60),
    cap: int = 100,
) -> tuple[list[datetime], datetime | None]:
    """Which fire times to materialise at ``now``, and the schedule's new ``next_fire``.

    Returns ``(fire_times, new_next_fire)``: ``fire_times`` oldest first, never more than
    ``cap``, never at or before ``last_fire``; ``new_next_fire`` is the first fire time
    strictly after ``now`` (``None`` once the schedule has ended), or the unchanged
    ``next_fire`` when nothing is due yet.

    The due occurrences are ``next_fire`` and the schedule's fire times after it up to and
    including ``now``. Those at or after ``now - grace`` are on time and run under every
    policy; older ones are missed and ``misfire`` decides (see :class:`MisfirePolicy`).

    ``next_fire=None`` means "not known": it is recomputed from ``last_fire`` (an ended
    schedule stays ended), or, with no ``last_fire`` either, the schedule is treated as new
    (:func:`first_fire`) and nothing runs this tick. Naive datetimes are UTC.
    """
    if cap < 1:
        raise ValueError(f"cap must be at least 1, got {cap}")
    if grace < timedelta(0):
        raise ValueError(f"grace must not be negative, got {grace}")
    now = _utc(now)
    last = None if last_fire is None else _utc(last_fire)
    pending = None if next_fire is None else _utc(next_fire)
    if pending is None and last is None:
        return [], first_fire(schedule, now=now)
    if last is not None and (pending is None or pending <= last):
        pending = schedule.next_after(last)
    if pending is None:
        return [], None
    if pending > now:
        return [], pending
    following = schedule.next_after(now)
    recent = _latest(schedule, pending, now, cap)
    cutoff = now - grace
    on_time = [fire for fire in recent if fire >= cutoff]
    if misfire is MisfirePolicy.RUN_ALL:
        due = recent
    elif misfire is MisfirePolicy.SKIP:
        due = on_time
    else:
        due = on_time or recent[-1:]
    if last is not None:
        due = [fire for fire in due if fire > last]
    return due, following


def apply_overlap(
    fire_times: list[datetime], policy: OverlapPolicy, *, previous_running: bool
) -> tuple[list[datetime], list[datetime]]:
    """Split due ``fire_times`` into ``(to_run, skipped)`` under the overlap ``policy``.

    ``ALLOW`` runs them all. ``SKIP`` never lets two of the schedule's jobs run at once:
    while the previous occurrence's job still runs (``previous_running``) every due
    occurrence is skipped; otherwise only the most recent one runs, because occurrences
    materialised together would run side by side. Beat records skipped occurrences so
    they are visible and never retried.
    """
    if policy is OverlapPolicy.ALLOW or not fire_times:
        return list(fire_times), []
    if previous_running:
        return [], list(fire_times)
    return list(fire_times[-1:]), list(fire_times[:-1])


def continuous_fire(*, now: datetime, interval: float, iterations: int | None, ran: int,
                    previous_status: str | None, previous_finished: datetime | None,
                    recheck: float) -> tuple[datetime | None, datetime | None]:
    """The next run of a continuous job (``app.continuous``): ``(fire, next_check)``.

    One run at a time: while the previous run has not ended, nothing fires and beat looks
    again after ``recheck`` seconds. Once it ended, the next fires ``interval`` seconds
    after its end (the first at once). After ``iterations`` runs, nothing fires any more
    (``next_check`` is ``None``)."""
    if iterations is not None and ran >= iterations:
        return None, None
    if previous_status is not None and previous_status not in _ENDED:
        return None, now + timedelta(seconds=recheck)
    due = now if previous_finished is None else previous_finished + timedelta(seconds=interval)
    if due > now:
        return None, due
    return now, now + timedelta(seconds=recheck)


_ENDED = frozenset({"succeeded", "failed", "cancelled"})
