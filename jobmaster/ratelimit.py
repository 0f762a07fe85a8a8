"""Rate limits of definitions (``@app.job(rate_limit="100/m")``): reading the limit and the
pure decision of which jobs run now. The limit holds across the whole cluster: the
master keeps, per definition, the time its next job may start (the *slot*), and a worker
reserves slots for the jobs it claimed. A job whose slot is later goes back to its bucket,
due at that slot and carrying it (``Envelope.permit_at``), so it waits without a worker
polling for it and runs then without asking again.
"""

from __future__ import annotations

import math
import re
from typing import Any

from jobmaster.exceptions import DefinitionError

_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|second|m|min|minute|h|hour|d|day))?\s*")
_PERIOD = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
           "h": 3600.0, "hour": 3600.0, "d": 86400.0, "day": 86400.0}


def parse_rate(value: Any, argument: str = "rate_limit") -> float:
    """Seconds between two starts for a rate written as Celery writes it: ``"100/m"``,
    ``"10/s"``, ``"2/h"``, ``"1/d"``, or a number of jobs per second."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        count, period = float(value), 1.0
    elif isinstance(value, str) and (match := _RATE.fullmatch(value.lower())) is not None:
        count, period = float(match.group(1)), _PERIOD[match.group(2) or "s"]
    else:
        raise DefinitionError(f"{argument}={value!r} is not a rate; write it as '100/m', "
                              "'10/s', '2/h' or a number of jobs per second")
    if not math.isfinite(count) or count <= 0 or count > 1_000_000:
        raise DefinitionError(f"{argument}={value!r}: the number of jobs must be more than 0 "
                              "and at most 1,000,000 per period")
    return period / count


def reserve(next_slot: float | None, now: float, count: int, interval: float
            ) -> tuple[list[float], float]:
    """Slots for ``count`` jobs, ``interval`` seconds apart, from the stored next slot (or
    now, if that has passed or none is stored); and the next slot after them."""
    first = now if next_slot is None or next_slot < now else next_slot
    slots = [first + i * interval for i in range(count)]
    return slots, first + count * interval


RUN_EARLY = 0.05
"""A slot this close ahead runs now: not worth a trip back to the agent."""
