"""Job priorities."""

from __future__ import annotations

import enum


class Priority(enum.IntEnum):
    """How urgent a job is; a worker claims higher priorities first within its lanes."""

    VERY_LOW = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def coerce(cls, value: Priority | int | str, argument: str = "priority") -> Priority:
        """Turn ``Priority.HIGH``, ``3`` or ``"high"`` into a ``Priority``; refuse anything else."""
        from jobmaster.exceptions import ConfigurationError

        if isinstance(value, Priority):
            return value
        if isinstance(value, str):
            try:
                return cls[value.strip().upper().replace("-", "_").replace(" ", "_")]
            except KeyError:
                pass
        elif isinstance(value, int) and not isinstance(value, bool):
            try:
                return cls(value)
            except ValueError:
                pass
        names = ", ".join(p.name for p in cls)
        raise ConfigurationError(
            f"{argument}={value!r} is not a priority; use one of {names} (or 0..4)"
        )
